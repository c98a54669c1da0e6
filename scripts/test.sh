#!/usr/bin/env bash
# Installs what the tests need (Debian packages for the real servers they
# start) and runs every check of the code: format, lints, all tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: command the tests run -> package that provides it.
missing=()
need() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || missing+=("$2"); }
need promtool prometheus
need prometheus prometheus
need prometheus-alertmanager prometheus-alertmanager
need chromium chromium
need dnsmasq dnsmasq-base
# The postgres kind tests run initdb/pg_ctl from the server package (as its
# `postgres` user when run as root); the redis kind tests run redis-server.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
need redis-server redis-server
# The backup kind tests run Azurite and s3rver, npm packages.
need node nodejs
need npm npm
# The registry kind tests run the CNCF distribution server.
need docker-registry docker-registry
# The image test builds the OCI image without a daemon (scripts/image.sh).
need buildah buildah
# The benchmark smoke run of .ci/run (SMOKE=1 bench/run_all.sh): nginx as
# target, the exporters it compares with, the bare tools and wrk.
need nginx nginx-light
need wrk wrk
need prometheus-blackbox-exporter prometheus-blackbox-exporter
need prometheus-postgres-exporter prometheus-postgres-exporter
need prometheus-redis-exporter prometheus-redis-exporter
need redis-benchmark redis-tools
need curl curl
need openssl openssl
# The monitoring mixin (scripts/mixin.sh; tests/it/mixin.rs).
need jsonnet jsonnet
python3 -c 'import yaml' 2>/dev/null || missing+=(python3-yaml)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# npm: Azurite (Microsoft's Azure Blob emulator) and s3rver (an S3-compatible
# server) for the backup kind tests, into the cargo target directory, outside
# the repository, where tests/support/node_tools.rs finds them.
test_tools="${CARGO_TARGET_DIR:-target}/test-tools"
npm_missing=()
for tool in azurite@3.35.0:azurite-blob s3rver@3.7.1:s3rver; do
  command -v "${tool#*:}" >/dev/null 2>&1 || [ -x "$test_tools/node_modules/.bin/${tool#*:}" ] \
    || npm_missing+=("${tool%%:*}")
done
if [ ${#npm_missing[@]} -gt 0 ]; then
  echo "installing from npm: ${npm_missing[*]}"
  mkdir -p "$test_tools"
  npm install --prefix "$test_tools" --no-audit --no-fund --loglevel=error "${npm_missing[@]}"
fi
# npm: the twin's API tier (tests/support/twin/apps/api.js), a NestJS
# application with @nestjs/terminus, TypeORM and prom-client, into its own
# prefix (about 10 s, 209 packages).
twin_tools="$test_tools/twin"
twin_packages=(@nestjs/core@11.2.12 @nestjs/common@11.2.12 @nestjs/platform-express@11.2.12
  @nestjs/terminus@11.1.1 @nestjs/typeorm@11.0.3 typeorm@0.3.31 pg@8.23.1 ioredis@5.11.1
  prom-client@15.1.3 reflect-metadata@0.2.2 rxjs@7.8.2)
if [ ! -f "$twin_tools/node_modules/@nestjs/terminus/package.json" ]; then
  echo "installing from npm for the twin: ${twin_packages[*]}"
  mkdir -p "$twin_tools"
  npm install --prefix "$twin_tools" --no-audit --no-fund --loglevel=error "${twin_packages[@]}"
fi
# kubectl (with kustomize v5) comes with this kind of machine; Debian's
# kubernetes-client (1.20, kustomize v2) is too old for the manifests, so it
# is not installed here. tests/it/deploy.rs and tests/it/rbac.rs run `kubectl
# kustomize`: without it, stop here saying so, not halfway through the tests.
if ! kubectl version --client 2>/dev/null | grep -q '^Kustomize Version: v5'; then
  echo "scripts/test.sh: kubectl with kustomize v5 (kubectl 1.27 or later) is needed" \
    "by tests/it/deploy.rs and tests/it/rbac.rs; install it from" \
    "https://kubernetes.io/docs/tasks/tools/ (Debian's kubernetes-client is too old)" >&2
  exit 1
fi
# PyPI: the Kubernetes schemas, offline.
command -v kubernetes-validate >/dev/null 2>&1 || python3 -m pip install -q kubernetes-validate

cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked --all-targets
# Soak smoke run (the long runs are by hand, figures in bench/SOAK.md): the
# debug binary the tests built, 20 seconds against the flapping targets.
VOUCH_BIN="${CARGO_TARGET_DIR:-target}/debug/vouch" bash bench/soak.sh -d 20 -i 5 -o "$(mktemp -d)"
