#!/usr/bin/env python3
"""(1) CPU per check run, vouch vs the peer exporter vs a bare client.

For each kind, against the same local target (nginx HTTP, nginx HTTPS with a
P-256 certificate, PostgreSQL 15, Redis 7):

- vouch: N checks of the kind at interval 1s (N runs/s); CPU of the vouch
  process over a window, divided by the runs it counted
  (vouch_check_runs_total delta).
- peer: the exporter doing the same work at the same rate, CPU of the
  exporter process only (the driver's CPU is not counted):
  http/https/tls -> blackbox_exporter /probe (http_2xx, https_2xx,
  tcp+tls modules), driven at N requests/s over keep-alive connections as
  Prometheus scrape loops would; postgres -> postgres_exporter /metrics;
  redis -> redis_exporter /metrics, scraped N times/s.
- bare: a client doing only the work, CPU from getrusage(RUSAGE_CHILDREN):
  curl with `Connection: close` (one process, many fresh connections),
  `openssl s_time -new` (full handshakes, no chain verification),
  pgbench -C (fresh SCRAM connection + SELECT 1 per transaction),
  redis-benchmark -k 0 (fresh connection + INFO per request).
- floor: the Rust bare client of bench/floor.rs (one tokio thread, hyper,
  rustls with ring, as vouch's probes), CPU from its own getrusage:
  http -> `http-fresh` (GET, fresh connection each), https ->
  `https-fresh` (full handshake, chain verified, + GET), tls -> `tls-full`
  (full handshake, chain verified). None for postgres and redis.
  The bare clients and the floor are not paced (CPU per operation barely
  depends on rate).

Usage: bench/cost_per_check.py [--kinds http,https,tls,postgres,redis]
       [--rate 50] [--seconds 8] [--reps 5] [--bare-ops 2000] [--warmup 2.5]
"""

import argparse
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (MachineLoad, Pacer, blackbox_path, check_blocks,  # noqa: E402
                    children_cpu, cpu_seconds, dump, floor_bin, machine, need, run_floor,
                    start_blackbox, start_exporter, start_nginx, start_postgres, start_redis,
                    start_vouch, summary, tmpdir, vouch_config, vouch_state)


def measure_vouch(kind, target, rate, seconds, warmup):
    d = tmpdir()
    checks = [(f"{kind}-{i:04d}", check_blocks(kind, target, d)) for i in range(rate)]
    cfg = vouch_config(d, checks, "1s", "900ms")
    proc, port, _ = start_vouch(cfg, d)
    time.sleep(warmup)  # every check has its first run behind it
    s0, c0 = vouch_state(port), cpu_seconds(proc.pid)
    time.sleep(seconds)
    c1, s1 = cpu_seconds(proc.pid), vouch_state(port)
    proc.terminate()
    proc.wait(10)
    runs = s1["runs"] - s0["runs"]
    return (c1 - c0) / runs if runs else float("nan"), runs


def measure_blackbox(kind, target, rate, seconds, warmup):
    d = tmpdir()
    proc, port, _ = start_blackbox(d, target)
    path = blackbox_path(kind, target)
    Pacer(port, [path], rate, min(warmup, 1.0), workers=4).run()  # warm up
    c0 = cpu_seconds(proc.pid)
    sent, errors = Pacer(port, [path], rate, seconds, workers=4).run()
    c1 = cpu_seconds(proc.pid)
    proc.terminate()
    proc.wait(10)
    if errors:
        print(f"  blackbox {kind}: {errors} failed probes of {sent}", file=sys.stderr)
    return (c1 - c0) / sent, sent


def measure_exporter(kind, target, rate, seconds, warmup):
    d = tmpdir()
    proc, port = start_exporter(kind, target, d)
    Pacer(port, ["/metrics"], rate, min(warmup, 1.0), workers=4).run()
    c0 = cpu_seconds(proc.pid)
    sent, errors = Pacer(port, ["/metrics"], rate, seconds, workers=4).run()
    c1 = cpu_seconds(proc.pid)
    proc.terminate()
    proc.wait(10)
    return (c1 - c0) / sent, sent


def run_child(args, env=None):
    c0 = children_cpu()
    out = subprocess.run(args, capture_output=True, text=True, env=env)
    return children_cpu() - c0, out.stdout + out.stderr


def measure_floor(kind, target, ops):
    """(µs per op, ops, what) from the Rust floor, or None for kinds without."""
    mode = {"http": "http-fresh", "https": "https-fresh", "tls": "tls-full"}.get(kind)
    if not mode:
        return None
    r = run_floor("--url", f"http://127.0.0.1:{target['http_port']}/",
                  "--tls", f"127.0.0.1:{target['https_port']}", "--ca", target["ca"],
                  "--count", str(ops), "--modes", mode)[mode]
    if r["errors"]:
        print(f"  floor {mode}: {r['errors']} failed of {r['ops']}", file=sys.stderr)
    return r["cpu_us_per_op"], r["ops"], f"floor {mode}"


def measure_bare(kind, target, seconds, ops):
    if kind == "http":
        n = ops
        url = f"http://127.0.0.1:{target['http_port']}/"
        cpu, _ = run_child(["curl", "-s", "-o", "/dev/null", "-H", "Connection: close",
                            *([url] * n)])
        return cpu / n, n, "curl, fresh connection"
    if kind in ("https", "tls"):
        cpu, out = run_child(["openssl", "s_time", "-new", "-connect",
                              f"127.0.0.1:{target['https_port']}", "-time",
                              str(max(1, seconds // 4))])
        m = re.search(r"(\d+) connections in [\d.]+s", out)
        n = int(m.group(1)) if m else 0
        return (cpu / n if n else float("nan")), n, "openssl s_time -new (full handshake)"
    if kind == "postgres":
        d = tmpdir()
        script = os.path.join(d, "select1.sql")
        with open(script, "w") as f:
            f.write("SELECT 1;\n")
        env = dict(os.environ, PGPASSWORD=target["url"].split(":")[2].split("@")[0])
        cpu, out = run_child([os.path.join(target["bindir"], "pgbench"), "-n", "-C",
                              "-h", "127.0.0.1", "-p", str(target["port"]), "-U", "postgres",
                              "-f", script, "-t", str(max(10, ops // 7)), "postgres"], env=env)
        m = re.search(r"number of transactions actually processed: (\d+)", out)
        n = int(m.group(1)) if m else 0
        return (cpu / n if n else float("nan")), n, "pgbench -C, SELECT 1"
    if kind == "redis":
        n = max(100, ops * 3 // 2)
        cpu, _ = run_child(["redis-benchmark", "-h", "127.0.0.1", "-p", str(target["port"]),
                            "-c", "1", "-n", str(n), "-k", "0", "-q", "INFO"])
        return cpu / n, n, "redis-benchmark -k 0, INFO"
    raise ValueError(kind)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kinds", default="http,https,tls,postgres,redis")
    ap.add_argument("--rate", type=int, default=50, help="check runs per second")
    ap.add_argument("--seconds", type=int, default=8, help="measured window per phase")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--bare-ops", type=int, default=2000,
                    help="operations of curl and the floor per repetition (pgbench does "
                         "a seventh, redis-benchmark 1.5 times as many)")
    ap.add_argument("--warmup", type=float, default=2.5,
                    help="seconds between vouch's start and the window")
    a = ap.parse_args()
    kinds = a.kinds.split(",")
    need("curl", "openssl")
    if {"http", "https", "tls"} & set(kinds):
        floor_bin()  # built before anything is measured
    targets = {}
    if {"http", "https", "tls"} & set(kinds):
        targets["nginx"] = start_nginx()
    if "postgres" in kinds:
        targets["postgres"] = start_postgres()
    if "redis" in kinds:
        need("redis-benchmark")
        targets["redis"] = start_redis()
    results = {"machine": machine(), "rate": a.rate, "seconds": a.seconds, "kinds": {}}
    load = MachineLoad().start()
    for kind in kinds:
        t = targets["nginx"] if kind in ("http", "https", "tls") else targets[kind]
        r = {"vouch": [], "peer": [], "bare": [], "floor": []}
        floor_what = None
        for rep in range(a.reps):
            v, vn = measure_vouch(kind, t, a.rate, a.seconds, a.warmup)
            if kind in ("postgres", "redis"):
                p, pn = measure_exporter(kind, t, a.rate, a.seconds, a.warmup)
            else:
                p, pn = measure_blackbox(kind, t, a.rate, a.seconds, a.warmup)
            b, bn, bare_what = measure_bare(kind, t, a.seconds, a.bare_ops)
            floor = measure_floor(kind, t, a.bare_ops)
            r["vouch"].append(v * 1e6)
            r["peer"].append(p * 1e6)
            r["bare"].append(b * 1e6)
            line = (f"{kind} rep {rep + 1}: vouch {v * 1e6:.0f} us/run ({vn:.0f} runs), "
                    f"peer {p * 1e6:.0f} us ({pn}), bare {b * 1e6:.0f} us ({bn})")
            if floor:
                f_us, fn, floor_what = floor
                r["floor"].append(f_us)
                line += f", floor {f_us:.0f} us ({fn})"
            print(line, flush=True)
        r["bare_what"] = bare_what
        r["floor_what"] = floor_what
        # a window too short for the 10 ms ticks of /proc can read 0 CPU:
        # such a repetition gives no ratio
        r["ratio_vouch_peer"] = [v / p for v, p in zip(r["vouch"], r["peer"]) if p > 0]
        r["ratio_vouch_floor"] = [v / f for v, f in zip(r["vouch"], r["floor"]) if f > 0]
        results["kinds"][kind] = r
    results["load"] = load.stop()
    peer_names = {"http": "blackbox", "https": "blackbox", "tls": "blackbox (tcp+tls)",
                  "postgres": "postgres_exporter scrape", "redis": "redis_exporter scrape"}
    print(f"\nCPU µs per check run, median [min–max] of {a.reps}; "
          f"{a.rate} runs/s; machine {results['load']}")
    print("| kind | vouch | peer | peer is | vouch/peer | floor (Rust bare client) | "
          "vouch/floor | bare tool | bare tool is |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind, r in results["kinds"].items():
        print(f"| {kind} | {summary(r['vouch'], '{:.0f}')} | {summary(r['peer'], '{:.0f}')} | "
              f"{peer_names[kind]} | {summary(r['ratio_vouch_peer'], '{:.2f}')} | "
              f"{summary(r['floor'], '{:.0f}')} | {summary(r['ratio_vouch_floor'], '{:.2f}')} | "
              f"{summary(r['bare'], '{:.0f}')} | {r['bare_what']} |")
    dump(results, "cost_per_check.json")


if __name__ == "__main__":
    main()
