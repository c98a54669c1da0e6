#!/usr/bin/env bash
# Builds vouch's OCI image without a container daemon, with Debian's
# buildah (vfs storage, chroot isolation, so it runs as root in a plain
# container or VM; it stops at once without buildah or root). The image
# is FROM scratch: the vouch binary, the C libraries it links (as ldd
# lists them), CA certificates, a passwd entry for the non-root user
# 65532, and the demo config; no shell.
#
#   scripts/image.sh --archive vouch.tar              # an OCI archive (load with skopeo, podman, crane...)
#   scripts/image.sh --push REGISTRY/vouch:TAG        # push to a registry (--insecure for plain HTTP)
#   scripts/image.sh --rootfs DIR --binary PATH       # only assemble the layers' files in DIR/base, DIR/bin (the Dockerfile does this)
#
# By default the binary is built with `cargo build --release --locked`
# (about 11 minutes on 2 cores from a cold cache). `--binary PATH` takes one
# already built instead: CI (tests/it/image.rs) passes the debug binary the
# tests built, which makes a larger image (its binary is about 340 MB
# unstripped) with the same layout, so the image test costs about half a
# minute rather than a release build.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-2}"; }

binary= archive= push= rootfs= insecure=false
revision="${VOUCH_REVISION:-}"
tag="vouch:latest"
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --archive) archive="$2"; shift 2 ;;
    --push) push="$2"; shift 2 ;;
    --rootfs) rootfs="$2"; shift 2 ;;
    --revision) revision="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    --insecure) insecure=true; shift ;;
    -h|--help) usage 0 ;;
    *) echo "image.sh: unknown argument $1" >&2; usage ;;
  esac
done
if [ -z "$archive$push$rootfs" ]; then
  echo "image.sh: give --archive FILE, --push REF or --rootfs DIR" >&2
  usage
fi
# Building the image needs buildah, as root: say so now, not after an
# 11-minute release build. (--rootfs only copies files: the Dockerfile runs
# it in a build stage without buildah.)
if [ -z "$rootfs" ]; then
  if ! command -v buildah >/dev/null 2>&1; then
    echo "image.sh: buildah is not installed (Debian/Ubuntu: apt-get install buildah;" \
      "with Docker, build the Dockerfile instead)" >&2
    exit 2
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "image.sh: run as root: buildah builds here with chroot isolation and vfs" \
      "storage (where rootless buildah is set up, buildah unshare bash scripts/image.sh ... works too)" >&2
    exit 2
  fi
fi
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
if [ -z "$revision" ] && [ -n "$binary" ]; then
  # The label says what the binary says (`vouch 0.1.0 (REVISION)`), not
  # what the checkout has moved on to since it was built.
  revision=$("$binary" --version | sed -n 's/.*(\(.*\))$/\1/p')
fi
if [ -z "$revision" ]; then
  revision=$(git rev-parse --short=12 HEAD 2>/dev/null || true)
fi
if [ "$revision" = unknown ]; then revision=; fi
if [ -z "$revision" ]; then
  echo "image.sh: no revision (the binary says unknown, or this is not a git checkout): pass --revision or VOUCH_REVISION" >&2
  exit 2
fi
if [ -z "$binary" ]; then
  VOUCH_REVISION="$revision" cargo build --release --locked --bin vouch
  binary="${CARGO_TARGET_DIR:-target}/release/vouch"
fi

# The root filesystem: base/ (libraries, certificates, users, demo) and
# bin/ (the binary) become two layers, so a new binary reuses the first.
assemble() {
  local out="$1" base="$1/base" bin="$1/bin"
  mkdir -p "$base"/{etc/ssl/certs,etc/vouch,usr/share/vouch/demo,tmp} "$bin/usr/local/bin"
  install -m 0755 "$binary" "$bin/usr/local/bin/vouch"
  # Every shared library the binary loads, at the path the loader asks for
  # (the interpreter included); glibc 2.34+ has its NSS modules built in.
  local lib
  for lib in $(ldd "$binary" | grep -o '/[^ ]*'); do
    mkdir -p "$base$(dirname "$lib")"
    cp -L "$lib" "$base$lib"
  done
  cp -L /etc/ssl/certs/ca-certificates.crt "$base/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nvouch:x:65532:65532:vouch:/nonexistent:/sbin/nologin\n' >"$base/etc/passwd"
  printf 'root:x:0:\nvouch:x:65532:\n' >"$base/etc/group"
  printf 'hosts: files dns\n' >"$base/etc/nsswitch.conf"
  cp config/demo.yaml "$base/usr/share/vouch/demo/vouch.yaml"
  cp -r config/demo-tls "$base/usr/share/vouch/demo/demo-tls"
  chmod 1777 "$base/tmp"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -n "$rootfs" ]; then
  # base/ and bin/, the two layers, for the Dockerfile to COPY.
  mkdir -p "$rootfs"
  assemble "$rootfs"
  exit 0
fi
assemble "$work/context"
# The same final stage as the Dockerfile's (tests/it/image.rs compares them).
cat >"$work/Containerfile" <<'EOF'
FROM scratch
ARG VERSION
ARG REVISION
COPY base/ /
COPY bin/ /
USER 65532:65532
EXPOSE 9847
ENTRYPOINT ["/usr/local/bin/vouch"]
CMD ["serve", "--config", "/usr/share/vouch/demo/vouch.yaml", "--web.listen-address", "0.0.0.0:9847"]
LABEL org.opencontainers.image.title="vouch" \
      org.opencontainers.image.description="Deployment checklist items as scheduled checks, Prometheus metrics and a deployment gate" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
EOF
# Storage of its own, so parallel builds and the host's containers stay apart.
buildah=(buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs)
"${buildah[@]}" bud --isolation chroot --quiet --layers \
  --build-arg VERSION="$version" --build-arg REVISION="$revision" \
  -f "$work/Containerfile" -t "$tag" "$work/context" >/dev/null
if [ -n "$archive" ]; then
  rm -f "$archive"
  "${buildah[@]}" push --quiet "$tag" "oci-archive:$archive:$tag"
  echo "image.sh: wrote $archive ($tag, revision $revision)"
fi
if [ -n "$push" ]; then
  "${buildah[@]}" push --quiet --tls-verify="$([ "$insecure" = true ] && echo false || echo true)" \
    "$tag" "docker://$push"
  echo "image.sh: pushed $push (revision $revision)"
fi
