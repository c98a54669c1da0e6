#!/usr/bin/env bash
# Runs every hand-run benchmark in bench/ and keeps their output in
# bench/results/. Needs free ports on 127.0.0.1 and: nginx-light wrk
# prometheus-blackbox-exporter prometheus-postgres-exporter
# prometheus-redis-exporter postgresql redis-server redis-tools dnsmasq-base
# curl openssl (Debian packages).
#
#   bash bench/run_all.sh            # full run, about 20 minutes
#   QUICK=1 bash bench/run_all.sh    # small sizes, about 4 minutes
#   SMOKE=1 bash bench/run_all.sh    # CI: tiny sizes, all scripts at once,
#                                    # under a minute; fails when a script
#                                    # fails or prints no figures
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
cd "$repo"
target=${CARGO_TARGET_DIR:-$repo/target}

# The binaries are copied to a private place so that another build in a
# shared CARGO_TARGET_DIR cannot swap them in the middle of a run.
work=$(mktemp -d /tmp/vouch-bench-run.XXXXXX)
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

# Executables as cargo reports them (`cargo <args> --message-format=json`):
# the floor, and vouch. One cargo command builds both with one profile:
# `cargo bench` and `cargo build --release` share target/release with
# different fingerprints, so using both would rebuild vouch each time.
built_exe() { # target-name cargo-args...
    local name=$1
    shift
    cargo "$@" --message-format=json 2>"$work/build.log" |
        python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == sys.argv[1] \
            and m.get("executable"):
        print(m["executable"])' "$name" | tail -1
}
private_copy() { # name path
    [[ -n $2 && -x $2 ]] || { cat "$work/build.log" >&2; echo "cannot build $1" >&2; exit 1; }
    cp "$2" "$work/$1"
}
# Sets VAR to a private copy of the executable NAME that `cargo ARGS`
# builds, unless VAR is set already.
use_built() { # name var cargo-args...
    local name=$1 var=$2
    shift 2
    [[ -n "${!var:-}" ]] && return
    private_copy "$name" "$(built_exe "$name" "$@")"
    export "$var=$work/$name"
}

if [[ -n "${SMOKE:-}" ]]; then
    # The debug binaries `cargo test --all-targets` has built already.
    if [[ -z "${VOUCH_BIN:-}" ]]; then
        [[ -x $target/debug/vouch ]] || cargo build --bin vouch
        private_copy vouch "$target/debug/vouch"
        export VOUCH_BIN="$work/vouch"
    fi
    use_built floor FLOOR_BIN test --bench floor --no-run
    results=$work/results
else
    if [[ -z "${VOUCH_BIN:-}" || -z "${FLOOR_BIN:-}" ]]; then
        cargo build --release --bin vouch --bench floor
        use_built vouch VOUCH_BIN build --release --bin vouch --bench floor
        use_built floor FLOOR_BIN build --release --bin vouch --bench floor
    fi
    results=$here/results
fi
export BENCH_RESULTS=$results
mkdir -p "$results"
started=$(date +%s)
{
    echo "vouch: $("$VOUCH_BIN" --version) (worktree at $(git rev-parse --short HEAD))"
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-) x $(nproc)"
    echo "load before: $(cat /proc/loadavg)"
} | tee "$results/env.txt"

scripts=(cost_per_check memory scale startup throughput)
if [[ -n "${SMOKE:-}" ]]; then
    args_cost_per_check=(--reps 1 --seconds 1 --rate 20 --bare-ops 50 --warmup 1.2)
    args_memory=(--counts 10 --seconds 2 --mixed 12)
    args_scale=(--checks 20 --interval 1 --reps 1 --seconds 1 --b2b-seconds 1 --wrk-seconds 1 --flood-seconds 1 --flood-clients 2)
    args_startup=(--counts 10 --reps 1)
    args_throughput=(--rate 50 --seconds 1 --reps 1 --floor-ops 200)
elif [[ -n "${QUICK:-}" ]]; then
    args_cost_per_check=(--reps 2 --seconds 3 --rate 20 --bare-ops 500)
    args_memory=(--counts 10,100 --seconds 5 --mixed 120)
    args_scale=(--checks 100,1000 --interval 2 --reps 2 --seconds 2 --b2b-seconds 3 --wrk-seconds 2 --flood-seconds 3 --flood-clients 10)
    args_startup=(--counts 10,100 --reps 2)
    args_throughput=(--rate 500 --seconds 2 --reps 2 --floor-ops 5000)
else
    args_cost_per_check=() args_memory=() args_scale=() args_startup=() args_throughput=()
fi

# A script passes when it exits 0 and prints at least one table row whose
# second cell is a number, and no "nan".
check_output() {
    local out=$1
    grep -Eq '^\| [^|]+ \| [0-9]' "$out" && ! grep -Eqw 'nan|NaN' "$out"
}

failed=()
if [[ -n "${SMOKE:-}" ]]; then
    # All at once: the figures mean nothing at this size, only that every
    # script still runs end to end.
    declare -A pid
    for s in "${scripts[@]}"; do
        declare -n args="args_$s"
        python3 "$here/$s.py" "${args[@]}" >"$results/$s.txt" 2>&1 &
        pid[$s]=$!
        unset -n args
    done
    for s in "${scripts[@]}"; do
        if ! wait "${pid[$s]}"; then
            failed+=("$s (exit status)")
        elif ! check_output "$results/$s.txt"; then
            failed+=("$s (no figures)")
        fi
    done
    for s in "${scripts[@]}"; do
        echo "== $s"
        grep -E '^\|' "$results/$s.txt" || tail -20 "$results/$s.txt"
    done
else
    for s in "${scripts[@]}"; do
        declare -n args="args_$s"
        if ! python3 "$here/$s.py" "${args[@]}" 2>&1 | tee "$results/$s.txt"; then
            failed+=("$s (exit status)")
        elif ! check_output "$results/$s.txt"; then
            failed+=("$s (no figures)")
        fi
        unset -n args
    done
fi
echo "load after: $(cat /proc/loadavg); took $(( $(date +%s) - started )) s" | tee -a "$results/env.txt"
if (( ${#failed[@]} )); then
    for s in "${failed[@]}"; do
        echo "bench: FAILED $s; output in ${results}/${s%% *}.txt" >&2
        [[ -n "${SMOKE:-}" ]] && tail -30 "$results/${s%% *}.txt" >&2
    done
    exit 1
fi
