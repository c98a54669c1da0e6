#!/usr/bin/env bash
# Instruction profile of vouch under valgrind's callgrind (instruction counts
# are repeatable where CPU time on a shared machine is not): a release vouch
# runs N http checks against nginx at a short interval for D seconds, is
# scraped once (/metrics), and is stopped; the script prints the top
# functions by inclusive and by exclusive instructions (callgrind_annotate)
# and keeps the summary.
#
#   bash bench/profile.sh [-n CHECKS] [-i INTERVAL] [-d SECONDS] [-t TOP] [-o FILE]
#     -n 200 checks, -i 1s interval, -d 20 s of runs, -t 30 functions,
#     -o bench/results/callgrind-top.txt (the full callgrind.out is kept
#        next to it as callgrind.out)
#
# Binary: VOUCH_BIN, else the release build in ${CARGO_TARGET_DIR:-target}
# (`strip = "debuginfo"` keeps the symbols, so functions have names but no
# lines). DEBUGINFO=1 builds one with line tables instead, into its own
# target directory ($CARGO_TARGET_DIR/callgrind, a full build the first time):
#   CARGO_PROFILE_RELEASE_STRIP=none CARGO_PROFILE_RELEASE_DEBUG=line-tables-only
# Needs valgrind, nginx (nginx-light), curl.
set -euo pipefail
checks=200 interval=1s duration=20 top=30 out=""
while getopts "n:i:d:t:o:h" opt; do
    case "$opt" in
    n) checks=$OPTARG ;;
    i) interval=$OPTARG ;;
    d) duration=$OPTARG ;;
    t) top=$OPTARG ;;
    o) out=$OPTARG ;;
    *) sed -n '2,20p' "$0"; exit 64 ;;
    esac
done
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
target=${CARGO_TARGET_DIR:-$repo/target}
out=${out:-$here/results/callgrind-top.txt}
for p in valgrind callgrind_annotate curl; do
    command -v "$p" >/dev/null || { echo "missing $p (apt-get install valgrind curl)" >&2; exit 1; }
done
nginx=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x $nginx ]] || { echo "missing nginx (apt-get install nginx-light)" >&2; exit 1; }

if [[ -n "${VOUCH_BIN:-}" ]]; then
    vouch=$VOUCH_BIN
elif [[ -n "${DEBUGINFO:-}" ]]; then
    (cd "$repo" && CARGO_PROFILE_RELEASE_STRIP=none CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
        cargo build --release --bin vouch --target-dir "$target/callgrind")
    vouch=$target/callgrind/release/vouch
else
    vouch=$target/release/vouch
fi
[[ -x $vouch ]] || { echo "no vouch binary at $vouch (cargo build --release, or set VOUCH_BIN)" >&2; exit 1; }

work=$(mktemp -d /tmp/vouch-profile.XXXXXX)
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_ready() { # url seconds [pid that must stay alive]
    local i
    for i in $(seq $(( $2 * 10 ))); do
        curl -fs -o /dev/null --max-time 2 "$1" && return 0
        if [[ -n ${3:-} ]] && ! kill -0 "$3" 2>/dev/null; then
            cat "$work/vouch.log" >&2
            echo "vouch exited before it was ready" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "$1 not ready after $2 s" >&2
    return 1
}

http_port=$(free_port)
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body; proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fcgi; uwsgi_temp_path $work/nginx/uwsgi; scgi_temp_path $work/nginx/scgi;
  server {
    listen 127.0.0.1:$http_port;
    location / { default_type text/plain; return 200 "ok\n"; }
  }
}
CONF
"$nginx" -c "$work/nginx/nginx.conf" -p "$work/nginx" &
pids+=($!)
wait_ready "http://127.0.0.1:$http_port/" 20

{
    echo "defaults: { interval: $interval, timeout: $interval, severity: warning }"
    echo "checks:"
    for i in $(seq -w 1 "$checks"); do
        echo "  - name: http-$i"
        echo "    http: { url: \"http://127.0.0.1:$http_port/\", expect: { status: [200] } }"
    done
} >"$work/vouch.yaml"

vouch_port=$(free_port)
RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" \
    "$vouch" serve --config "$work/vouch.yaml" --web.listen-address "127.0.0.1:$vouch_port" \
    >"$work/vouch.log" 2>&1 &
vg=$!
pids+=("$vg")
wait_ready "http://127.0.0.1:$vouch_port/readyz" 120 "$vg"
echo "vouch under callgrind, $checks http checks at $interval; ${duration}s of runs" >&2
sleep "$duration"
curl -fsS --max-time 60 "http://127.0.0.1:$vouch_port/metrics" >"$work/metrics.txt"
runs=$(awk '/^vouch_check_runs_total\{/ {n += $2} END {print n + 0}' "$work/metrics.txt")
failed=$(awk '/^vouch_check_runs_total\{/ && !/result="pass"/ {n += $2} END {print n + 0}' "$work/metrics.txt")
kill -TERM "$vg"
wait "$vg" || true
[[ -s $work/callgrind.out ]] || { cat "$work/vouch.log" >&2; echo "callgrind wrote nothing" >&2; exit 1; }

mkdir -p "$(dirname "$out")"
cp "$work/callgrind.out" "$(dirname "$out")/callgrind.out"
total=$(awk '/^(summary|totals):/ {print $2; exit}' "$work/callgrind.out")
annotate() { # extra callgrind_annotate options
    callgrind_annotate --threshold=100 "$@" "$work/callgrind.out" 2>/dev/null |
        awk -v top="$top" '
            /^-+$/ { dashes++; next }
            dashes >= 3 && /^ *[0-9][0-9,]* \(/ && !/PROGRAM TOTALS/ && n < top { print; n++ }'
}
{
    echo "vouch $("$vouch" --version | awk '{print $NF}') under valgrind --tool=callgrind: $checks http checks at $interval against nginx,"
    echo "${duration}s of runs after /readyz, then one /metrics scrape ($(wc -c <"$work/metrics.txt") bytes), then SIGTERM."
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); binary: $(basename "$vouch") ($( [[ -n "${DEBUGINFO:-}" ]] && echo 'line tables' || echo 'symbols only'))"
    echo "runs counted: $runs ($failed not passing); instructions in all: $total"
    if [[ $runs -gt 0 ]]; then
        echo "instructions per run, startup and scrape included: $(( total / runs ))"
    fi
    echo
    echo "== top $top by inclusive instructions (Ir, share of all, file:function [object])"
    annotate --inclusive=yes
    echo
    echo "== top $top by exclusive (self) instructions"
    annotate --inclusive=no
} | tee "$out"
