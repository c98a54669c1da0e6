#!/usr/bin/env python3
"""(6) HTTP throughput per core: vouch against the floor, fresh and keep-alive.

vouch's http probe opens a fresh connection per run by default (to time the
phases), so its ceiling is the fresh-connection floor; with `keep_alive: true`
it is the keep-alive one. This measures, against the same nginx:

- vouch at a high rate, fresh and with `keep_alive: true`: `--rate` http checks at interval 1s (`--rate` runs/s,
  `VOUCH_MAX_CONCURRENT_RUNS` = `--concurrency`); CPU per run over `--reps`
  windows of `--seconds`, and runs per CPU-second (what one core could do);
- the floor (bench/floor.rs), one tokio thread: `http-fresh` and
  `http-keepalive`, `--floor-ops` GETs each, `--reps` times: CPU per GET and
  GETs per CPU-second.

Usage: bench/throughput.py [--rate 1000] [--seconds 5] [--reps 5]
       [--concurrency 256] [--floor-ops 20000]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (MachineLoad, check_blocks, cpu_seconds, dump, floor_bin, machine,  # noqa: E402
                    run_floor, start_nginx, start_vouch, summary, tmpdir, vouch_config,
                    vouch_state)


def measure_vouch(a, kind, target, d):
    """CPU per run of `--rate` checks of `kind` at 1s, `--reps` windows."""
    cfg = vouch_config(d, [(f"{kind}-{i:05d}", check_blocks(kind, target, d))
                           for i in range(a.rate)], "1s", "900ms")
    proc, port, _ = start_vouch(cfg, d, max_concurrent=a.concurrency)
    time.sleep(2.5)
    windows = []
    s0, c0, t0 = vouch_state(port), cpu_seconds(proc.pid), time.monotonic()
    for _ in range(a.reps):
        time.sleep(a.seconds)
        c1, t1 = cpu_seconds(proc.pid), time.monotonic()
        s1 = vouch_state(port)
        runs = s1["runs"] - s0["runs"]
        cpu = c1 - c0
        windows.append({"runs_per_s": runs / (t1 - t0), "cpu_us_per_run": cpu / max(runs, 1) * 1e6,
                        "runs_per_cpu_s": runs / cpu if cpu else float("nan"),
                        "cores": cpu / (t1 - t0), "not_pass": s1["not_pass"] - s0["not_pass"]})
        print("vouch", kind, windows[-1], flush=True)
        s0, c0, t0 = s1, cpu_seconds(proc.pid), time.monotonic()
    proc.terminate()
    proc.wait(10)
    return windows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=int, default=1000, help="vouch http runs per second")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--floor-ops", type=int, default=20000)
    a = ap.parse_args()
    floor_bin()
    target = start_nginx()
    load = MachineLoad().start()
    url = f"http://127.0.0.1:{target['http_port']}/"

    d = tmpdir()
    vouch = {kind: measure_vouch(a, kind, target, d) for kind in ("http", "http-keepalive")}

    floor = {"http-fresh": [], "http-keepalive": [], "http-fresh-paced": []}
    for _ in range(a.reps):
        r = run_floor("--url", url, "--count", str(a.floor_ops),
                      "--modes", "http-fresh,http-keepalive")
        # Paced at vouch's rate: the fair floor for vouch's figure.
        paced = run_floor("--url", url, "--count", str(min(a.floor_ops, a.rate * 5)),
                          "--modes", "http-fresh", "--rate", str(a.rate))
        r["http-fresh-paced"] = paced["http-fresh"]
        for mode in floor:
            floor[mode].append(r[mode])
            print("floor", mode, r[mode], flush=True)

    result = {"machine": machine(), "load": load.stop(), "rate": a.rate, "reps": a.reps,
              "vouch": vouch, "floor": floor}
    print(f"\nHTTP GET on loopback against nginx, median [min–max] of {a.reps}; "
          f"machine {result['load']}")
    print("| client | CPU µs per GET | GETs per CPU-second | GETs/s achieved |")
    print("|---|---|---|---|")
    for kind, what in (("http", "fresh connection"), ("http-keepalive", "keep_alive: true")):
        vs = vouch[kind]
        print(f"| vouch http check ({what}), {a.rate} checks at 1s | "
              f"{summary([v['cpu_us_per_run'] for v in vs], '{:.0f}')} | "
              f"{summary([v['runs_per_cpu_s'] for v in vs], '{:.0f}')} | "
              f"{summary([v['runs_per_s'] for v in vs], '{:.0f}')} |")
    for mode, what in (("http-fresh", "unpaced, fresh connection"),
                       ("http-fresh-paced", f"paced at {a.rate}/s, fresh connection"),
                       ("http-keepalive", "unpaced, keep-alive")):
        rs = floor[mode]
        print(f"| floor (tokio + hyper, 1 thread, {what}) | "
              f"{summary([r['cpu_us_per_op'] for r in rs], '{:.1f}')} | "
              f"{summary([r['ops_per_cpu_s'] for r in rs], '{:.0f}')} | "
              f"{summary([r['ops_per_s'] for r in rs], '{:.0f}')} |")
    if sum(v["not_pass"] for vs in vouch.values() for v in vs):
        print("warning: some vouch runs did not pass (nginx or vouch saturated?)")
    dump(result, "throughput.json")


if __name__ == "__main__":
    main()
