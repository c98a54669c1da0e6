#!/usr/bin/env bash
# Generates the plain alert rules, the inhibit rules, the PrometheusRule,
# the dashboards and their ConfigMaps from the monitoring mixin in mixin/.
# `scripts/mixin.sh` rewrites them in the repository; `scripts/mixin.sh DIR`
# writes them under DIR instead (tests/it/mixin.rs compares the two).
# Needs jsonnet and PyYAML (Debian's jsonnet and python3-yaml, installed by
# scripts/test.sh).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root}"
json="$(mktemp -d)"
trap 'rm -rf "$json"' EXIT
mkdir -p "$json/alerts" "$json/dashboards" "$json/deploy/components/prometheus-operator"
jsonnet -J "$root/mixin" -m "$json" "$root/mixin/build.jsonnet" >/dev/null
python3 "$root/scripts/mixin_files.py" "$json" "$out"
