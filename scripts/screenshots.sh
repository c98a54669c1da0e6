#!/usr/bin/env bash
# The status page at 100 checks, as docs/status-page.png (desktop) and
# docs/status-page-phone.png: vouch serves a generated config of ten
# sections of ten checks of its own endpoints (three failing, one erroring)
# and headless Chromium takes both screenshots once every check has run.
#
#   scripts/screenshots.sh [VOUCH_BINARY]     # default: target/debug/vouch
set -euo pipefail
cd "$(dirname "$0")/.."
vouch="${1:-${CARGO_TARGET_DIR:-target}/debug/vouch}"
port=19847
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
base="http://127.0.0.1:$port"
{
  echo "defaults: { interval: 5s, timeout: 2s }"
  echo "checks:"
  sections=(pre-deploy/config pre-deploy/database pre-deploy/secrets deployment/tls deployment/dns
            post-deploy/api post-deploy/web post-deploy/cache monitoring/alerts rollback/readiness)
  for s in "${!sections[@]}"; do
    for i in $(seq 1 10); do
      name="${sections[$s]##*/}-$i"
      severity=warning
      [ "$i" -le 2 ] && severity=critical
      [ "$i" -ge 9 ] && severity=info
      expect="{ status: [200] }"
      url="$base/livez"
      case "$s-$i" in
        5-3) expect="{ status: [200], json: { \"\$.summary.total\": 99 } }"; url="$base/api/v1/checks" ;;  # fails: there are 100
        1-2) expect="{ status: [418] }" ;;                                                                  # fails, critical
        7-9) expect="{ body_matches: [\"^ready\$\"] }" ;;                                                  # fails, info
        8-4) url="http://127.0.0.1:9/health" ;;                                                           # errors: refused
      esac
      printf '  - name: %s\n    section: %s\n    severity: %s\n    http: { url: "%s", expect: %s }\n' \
        "$name" "${sections[$s]}" "$severity" "$url" "$expect"
    done
  done
} >"$work/vouch.yaml"
"$vouch" serve --config "$work/vouch.yaml" --web.listen-address "127.0.0.1:$port" 2>"$work/log" &
pid=$!
for _ in $(seq 1 60); do
  pending=$(curl -s "$base/api/v1/checks" | sed -n 's/.*"pending":\([0-9]*\).*/\1/p' || true)
  [ "$pending" = 0 ] && break
  sleep 0.5
done
[ "$pending" = 0 ] || { echo "screenshots.sh: checks still pending" >&2; exit 1; }
shoot() {
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --hide-scrollbars --user-data-dir="$work/profile-$1" --window-size="$2" \
    --screenshot="$3" "$base/" 2>/dev/null
}
shoot desktop 1280,900 docs/status-page.png
shoot phone 390,844 docs/status-page-phone.png
echo "screenshots.sh: docs/status-page.png, docs/status-page-phone.png"
