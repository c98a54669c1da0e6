#!/usr/bin/env bash
# Soak test: runs a release vouch for a chosen time against many local
# targets (HTTP answers that flap, a slow one, a refused port, a Redis that
# is stopped and started again, TLS, DNS and PostgreSQL when their servers
# are installed) while the config is reloaded every RELOAD seconds (a check
# added and removed by turns, an invalid config every third time), and
# samples every INTERVAL seconds into a
# CSV: RSS, open file descriptors, threads, check loops and runs in flight,
# runs so far, and scheduler lateness (mean and share over 100 ms over the
# sample window, from vouch_scheduler_lateness_seconds). Everything it
# starts is stopped at the end (trap), also on Ctrl-C.
#
#   bench/soak.sh [-d SECONDS] [-i SECONDS] [-n HTTP_CHECKS] [-r RELOAD] [-o DIR]
#
# Needs bash, curl, awk, python3 (the HTTP and TLS targets); redis-server,
# openssl, dnsmasq and PostgreSQL's initdb/pg_ctl are used when present
# (their checks are skipped without them). -r 0 turns reloads off. VOUCH_BIN picks the binary (default: the release
# build in ${CARGO_TARGET_DIR:-target}).
set -euo pipefail

duration=600
interval=10
http_checks=60
reload_every=60
out=""
while getopts "d:i:n:o:r:h" opt; do
    case "$opt" in
    d) duration=$OPTARG ;;
    i) interval=$OPTARG ;;
    n) http_checks=$OPTARG ;;
    o) out=$OPTARG ;;
    r) reload_every=$OPTARG ;;
    *) sed -n '2,20p' "$0"; exit 64 ;;
    esac
done

here=$(cd "$(dirname "$0")" && pwd)
vouch=${VOUCH_BIN:-${CARGO_TARGET_DIR:-$here/../target}/release/vouch}
[[ -x $vouch ]] || { echo "no vouch binary at $vouch (cargo build --release, or set VOUCH_BIN)" >&2; exit 1; }
out=${out:-$here/soak-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
work=$(mktemp -d)
pids=()

cleanup() {
    local pid
    [[ -n ${redis_flap_pid:-} ]] && pids+=("$redis_flap_pid")
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n ${pg_data:-} ]]; then
        as_postgres "$pg_ctl" -D "$pg_data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {
    local port=$1 i
    for i in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "nothing listens on $port" >&2
    return 1
}

# HTTP targets: /ok, /flap (200 and 500 by turns), /slow (300 ms),
# /json (a JSON health document whose status flaps every 7 answers).
http_port=$(free_port)
cat >"$work/targets.py" <<'EOF'
import http.server, itertools, json, sys, time
counter = itertools.count()
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        n = next(counter)
        status, body = 200, b"ok"
        if self.path.startswith("/flap"):
            status = 200 if n % 2 else 500
        elif self.path.startswith("/slow"):
            time.sleep(0.3)
        elif self.path.startswith("/json"):
            body = json.dumps({"status": "ok" if (n // 7) % 2 else "degraded"}).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # vouch gave up on a slow answer (its timeout)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
EOF
python3 "$work/targets.py" "$http_port" &
pids+=($!)
wait_port "$http_port"

# Redis: one steady, one stopped and started every 30 s.
redis_steady="" redis_flap="" redis_flap_pid=""
# Started by the script itself (not in a $(...) subshell) so it can reap
# them; the pid is left in $started.
start_redis() {
    redis-server --port "$1" --bind 127.0.0.1 --save "" --appendonly no \
        --daemonize no --dir "$work" >/dev/null 2>&1 &
    started=$!
}
if command -v redis-server >/dev/null; then
    redis_steady=$(free_port)
    start_redis "$redis_steady"
    pids+=("$started")
    redis_flap=$(free_port)
    start_redis "$redis_flap"
    redis_flap_pid=$started
    wait_port "$redis_steady"
    wait_port "$redis_flap"
fi
closed_port=$(free_port)

# TLS: a Python server with a self-signed certificate (the checks trust it
# through ca_file).
tls_port=""
if command -v openssl >/dev/null; then
    tls_port=$(free_port)
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
        -subj "/CN=vouch soak CA" -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj /CN=localhost -keyout "$work/tls.key" -out "$work/tls.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost\nbasicConstraints=critical,CA:FALSE\n' >"$work/tls.ext"
    openssl x509 -req -in "$work/tls.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
        -CAcreateserial -days 20 -extfile "$work/tls.ext" -out "$work/tls.pem" 2>/dev/null
    python3 -c '
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[2], sys.argv[3])
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()' "$tls_port" "$work/tls.pem" "$work/tls.key" &
    pids+=($!)
    wait_port "$tls_port"
fi

# DNS: dnsmasq answering one name, over UDP and TCP.
dns_port=""
dnsmasq_bin=$(command -v dnsmasq || { [[ -x /usr/sbin/dnsmasq ]] && echo /usr/sbin/dnsmasq; } || true)
if [[ -n $dnsmasq_bin ]]; then
    dns_port=$(free_port)
    "$dnsmasq_bin" --keep-in-foreground --no-resolv --no-hosts --port "$dns_port" \
        --listen-address 127.0.0.1 --bind-interfaces --user="$(id -un)" \
        --pid-file="$work/dnsmasq.pid" --address=/soak.test/10.9.8.7 2>"$work/dnsmasq.log" &
    pids+=($!)
    wait_port "$dns_port"
fi

# PostgreSQL: a throwaway cluster (as the postgres user when run as root).
pg_port="" pg_data="" pg_ctl=""
as_postgres() {
    if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
pg_bin=$(compgen -G '/usr/lib/postgresql/*/bin' | sort -V | tail -1 || true)
if [[ -n $pg_bin && -x $pg_bin/initdb ]]; then
    pg_port=$(free_port)
    pg_data=$work/pg
    pg_ctl=$pg_bin/pg_ctl
    mkdir -p "$pg_data"
    [[ $(id -u) == 0 ]] && chown postgres "$work" "$pg_data"
    as_postgres "$pg_bin/initdb" -D "$pg_data" -U soak --auth=trust >/dev/null
    as_postgres "$pg_ctl" -D "$pg_data" -l "$pg_data/log" -w \
        -o "-p $pg_port -k $pg_data -c listen_addresses=127.0.0.1" start >/dev/null
fi

config=$work/vouch.yaml
{
    echo "defaults: { interval: 2s, timeout: 1s }"
    echo "checks:"
    paths=(ok flap slow json)
    for i in $(seq 1 "$http_checks"); do
        path=${paths[$((i % 4))]}
        echo "  - name: http-$i"
        echo "    section: soak/http"
        if [[ $path == json ]]; then
            echo "    http: { url: \"http://127.0.0.1:$http_port/$path?$i\", expect: { json: { \"\$.status\": ok } } }"
        else
            echo "    http: { url: \"http://127.0.0.1:$http_port/$path?$i\" }"
        fi
    done
    echo "  - name: refused"
    echo "    http: { url: \"http://127.0.0.1:$closed_port/\" }"
    if [[ -n $redis_steady ]]; then
        echo "redis://127.0.0.1:$redis_steady/" >"$work/redis-steady-url"
        echo "redis://127.0.0.1:$redis_flap/" >"$work/redis-flap-url"
        for i in $(seq 1 10); do
            echo "  - name: redis-steady-$i"
            echo "    redis: { url_file: $work/redis-steady-url }"
            echo "  - name: redis-flap-$i"
            echo "    redis: { url_file: $work/redis-flap-url }"
        done
    fi
    if [[ -n $tls_port ]]; then
        for i in $(seq 1 5); do
            echo "  - name: tls-$i"
            echo "    tls: { host: localhost, port: $tls_port, ca_file: $work/ca.pem, min_valid_for: 7d }"
            echo "  - name: https-$i"
            echo "    http: { url: \"https://localhost:$tls_port/?$i\", ca_file: $work/ca.pem }"
        done
    fi
    if [[ -n $dns_port ]]; then
        for i in $(seq 1 5); do
            echo "  - name: dns-udp-$i"
            echo "    dns: { name: soak.test, servers: [\"127.0.0.1:$dns_port\"], expect: { answers: [10.9.8.7] } }"
            echo "  - name: dns-tcp-$i"
            echo "    dns: { name: soak.test, servers: [\"127.0.0.1:$dns_port\"], protocol: tcp, expect: { answers: [10.9.8.7] } }"
        done
    fi
    if [[ -n $pg_port ]]; then
        echo "postgres://soak@127.0.0.1:$pg_port/postgres" >"$work/pg-url"
        for i in $(seq 1 5); do
            echo "  - name: postgres-$i"
            echo "    postgres: { url_file: $work/pg-url, tls: disable, max_connections_used: 80% }"
        done
    fi
} >"$config"
checks=$(grep -c -- '- name:' "$config")
# The reload variants: the same config plus one check, and a broken one.
cp "$config" "$work/base.yaml"
{ cat "$work/base.yaml"; echo "  - name: reloaded"; echo "    http: { url: \"http://127.0.0.1:$http_port/ok?reloaded\" }"; } >"$work/plus.yaml"
{ cat "$work/base.yaml"; echo "  - name: broken"; echo "    http: { url: 42, bogus: true }"; } >"$work/broken.yaml"
reloads=0

vouch_port=$(free_port)
RUST_LOG=warn "$vouch" serve --config "$config" --web.listen-address "127.0.0.1:$vouch_port" \
    2>"$out/vouch.log" &
vouch_pid=$!
pids+=("$vouch_pid")
wait_port "$vouch_port"
echo "vouch $("$vouch" --version | awk '{print $NF}') pid $vouch_pid, $checks checks, ${duration}s, sample every ${interval}s -> $out/samples.csv" >&2

csv=$out/samples.csv
echo "elapsed_s,rss_kb,fds,threads,check_loops,runs_in_flight,runs_total,lateness_mean_ms,lateness_over_100ms_ratio,lateness_count" >"$csv"
prev_count=0 prev_sum=0 prev_le=0
start=$(date +%s)
next_flap=$((start + 30))
next_reload=$((start + reload_every))
while :; do
    now=$(date +%s)
    elapsed=$((now - start))
    (( elapsed > duration )) && break
    if [[ -n $redis_flap ]] && (( now >= next_flap )); then
        if [[ -n $redis_flap_pid ]]; then
            kill "$redis_flap_pid" 2>/dev/null || true
            wait "$redis_flap_pid" 2>/dev/null || true
            redis_flap_pid=""
        else
            start_redis "$redis_flap"
            redis_flap_pid=$started
        fi
        next_flap=$((now + 30))
    fi
    if (( reload_every > 0 && now >= next_reload )); then
        reloads=$((reloads + 1))
        case $((reloads % 3)) in
        1) cp "$work/plus.yaml" "$config" ;;
        2) cp "$work/broken.yaml" "$config" ;;
        0) cp "$work/base.yaml" "$config" ;;
        esac
        kill -HUP "$vouch_pid"
        next_reload=$((now + reload_every))
    fi
    kill -0 "$vouch_pid" 2>/dev/null || { echo "vouch exited" >&2; exit 1; }
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$vouch_pid/status")
    threads=$(awk '/^Threads:/ {print $2}' "/proc/$vouch_pid/status")
    fds=$(find "/proc/$vouch_pid/fd" -mindepth 1 -maxdepth 1 | wc -l)
    metrics=$(curl -fsS --max-time 5 "http://127.0.0.1:$vouch_port/metrics" || true)
    read -r loops inflight runs count sum le <<<"$(awk '
        /^vouch_scheduler_check_loops / {loops=$2}
        /^vouch_scheduler_runs_in_flight / {inflight=$2}
        /^vouch_check_runs_total\{/ {runs+=$2}
        /^vouch_scheduler_lateness_seconds_count / {count=$2}
        /^vouch_scheduler_lateness_seconds_sum / {sum=$2}
        /^vouch_scheduler_lateness_seconds_bucket\{le="0.1"\}/ {le=$2}
        END {printf "%s %s %d %s %s %s\n", loops+0, inflight+0, runs, count+0, sum+0, le+0}
    ' <<<"$metrics")"
    read -r mean over <<<"$(awk -v c="$count" -v s="$sum" -v l="$le" -v pc="$prev_count" -v ps="$prev_sum" -v pl="$prev_le" '
        BEGIN { d = c - pc; if (d > 0) printf "%.3f %.4f\n", (s - ps) / d * 1000, ((c - l) - (pc - pl)) / d; else print "0 0" }')"
    prev_count=$count prev_sum=$sum prev_le=$le
    echo "$elapsed,$rss,$fds,$threads,$loops,$inflight,$runs,$mean,$over,$count" >>"$csv"
    sleep "$interval"
done

# Summary: the first sample after a warm-up of a fifth of the run (at least
# 60 s) against the last, and the range in between.
awk -F, -v warm="$(( duration / 5 > 60 ? duration / 5 : 60 ))" '
    NR == 1 { next }
    $1 >= warm {
        if (!seen) { seen = 1; r0 = $2; f0 = $3; t0 = $4; rmin = rmax = $2; fmin = fmax = $3 }
        if ($2 < rmin) rmin = $2; if ($2 > rmax) rmax = $2
        if ($3 < fmin) fmin = $3; if ($3 > fmax) fmax = $3
        r1 = $2; f1 = $3; t1 = $4; e = $1
        lat += $8; n++; if ($8 > latmax) latmax = $8; if ($9 > overmax) overmax = $9
    }
    END {
        if (!seen) { print "no samples after the warm-up"; exit }
        printf "after warm-up (%ds .. %ds, %d samples):\n", warm, e, n
        printf "  RSS  %d KiB -> %d KiB (min %d, max %d)\n", r0, r1, rmin, rmax
        printf "  fds  %d -> %d (min %d, max %d)\n", f0, f1, fmin, fmax
        printf "  threads %d -> %d\n", t0, t1
        printf "  lateness mean of sample means %.3f ms, worst sample mean %.3f ms, worst share over 100 ms %.4f\n", lat / n, latmax, overmax
    }
' "$csv" | tee "$out/summary.txt"
