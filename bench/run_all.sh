#!/usr/bin/env bash
# Runs every hand-run benchmark in bench/ and keeps their output in
# bench/results/. Not part of `cargo test` or CI. Needs root-free ports on
# 127.0.0.1 and: nginx-light wrk prometheus-blackbox-exporter
# prometheus-postgres-exporter prometheus-redis-exporter postgresql
# redis-server redis-tools curl openssl (Debian packages).
#
#   bash bench/run_all.sh            # full run, about 15 minutes
#   QUICK=1 bash bench/run_all.sh    # smoke run, about 3 minutes
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
cd "$repo"

# The release binary is copied to a private place so that another build in
# a shared CARGO_TARGET_DIR cannot swap it in the middle of a run.
work=$(mktemp -d /tmp/vouch-bench-run.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM
if [[ -z "${VOUCH_BIN:-}" ]]; then
  cargo build --release --bin vouch
  cp "${CARGO_TARGET_DIR:-$repo/target}/release/vouch" "$work/vouch"
  export VOUCH_BIN="$work/vouch"
fi
mkdir -p "$here/results"
{
  echo "vouch: $("$VOUCH_BIN" --version) (worktree at $(git rev-parse --short HEAD))"
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-) x $(nproc)"
  echo "load before: $(cat /proc/loadavg)"
} | tee "$here/results/env.txt"

if [[ -n "${QUICK:-}" ]]; then
  cost=(--reps 1 --seconds 3 --rate 10); mem=(--counts 10,100 --seconds 5)
  scale=(--checks 100 --seconds 5 --interval 2); start=(--counts 10 --reps 2)
else
  cost=(); mem=(); scale=(); start=()
fi
python3 "$here/cost_per_check.py" "${cost[@]}" | tee "$here/results/cost_per_check.txt"
python3 "$here/memory.py" "${mem[@]}" | tee "$here/results/memory.txt"
python3 "$here/scale.py" "${scale[@]}" | tee "$here/results/scale.txt"
python3 "$here/startup.py" "${start[@]}" | tee "$here/results/startup.txt"
echo "load after: $(cat /proc/loadavg)" | tee -a "$here/results/env.txt"
