#!/usr/bin/env python3
"""(5) Startup time to ready.

vouch with N http checks (interval 10s): time from spawn to the first 200 of
/readyz (polled every 5 ms), and the CPU the process's threads used by then (scheduler
nanosecond counters).
blackbox_exporter for comparison: spawn to the first 200 of /-/healthy.
Wall-clock by nature, so it is repeated (`--reps`) and given as median
[min–max]; the CPU column is the robust one.

Usage: bench/startup.py [--counts 10,100,1000] [--reps 5]
"""

import argparse
import http.client
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (CLEANUP, MachineLoad, blackbox_config, check_blocks, cpu_seconds_threads,  # noqa: E402
                    dump, free_port, machine, need, start_nginx, summary, tmpdir, vouch_bin,
                    vouch_config)


def time_to_ready(args, port, path, env=None):
    t0 = time.monotonic()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    CLEANUP.process(proc)
    deadline = t0 + 60
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            c.close()
            if r.status == 200:
                break
        except OSError:
            pass
        time.sleep(0.005)
    else:
        raise RuntimeError(f"{args[0]} not ready in 60 s")
    elapsed = time.monotonic() - t0
    cpu = cpu_seconds_threads(proc.pid)
    proc.terminate()
    proc.wait(10)
    return elapsed, cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--counts", default="10,100,1000")
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    need("prometheus-blackbox-exporter")
    target = start_nginx()
    load = MachineLoad().start()
    rows = []
    env = dict(os.environ, RUST_LOG="warn")
    for n in [int(x) for x in a.counts.split(",")]:
        d = tmpdir()
        cfg = vouch_config(d, [(f"http-{i:05d}", check_blocks("http", target, d))
                               for i in range(n)], "10s", "5s")
        wall, cpu = [], []
        for _ in range(a.reps):
            port = free_port()
            w, c = time_to_ready([vouch_bin(), "serve", "--config", cfg, "--web.listen-address",
                                  f"127.0.0.1:{port}"], port, "/readyz", env)
            wall.append(w * 1e3)
            cpu.append(c * 1e3)
        rows.append({"what": f"vouch, {n} http checks", "wall_ms": wall, "cpu_ms": cpu})
        print(rows[-1], flush=True)
    d = tmpdir()
    cfg = blackbox_config(d, target)
    wall, cpu = [], []
    for _ in range(a.reps):
        port = free_port()
        w, c = time_to_ready(["prometheus-blackbox-exporter", "--config.file", cfg,
                              "--web.listen-address", f"127.0.0.1:{port}"], port, "/-/healthy")
        wall.append(w * 1e3)
        cpu.append(c * 1e3)
    rows.append({"what": "blackbox_exporter (3 modules)", "wall_ms": wall, "cpu_ms": cpu})
    print(rows[-1], flush=True)
    result = {"machine": machine(), "load": load.stop(), "rows": rows}
    print(f"\nmedian [min–max] of {a.reps}; machine {result['load']}")
    print("| process | spawn → ready (wall ms) | CPU ms used by then |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r['what']} | {summary(r['wall_ms'])} | {summary(r['cpu_ms'])} |")
    dump(result, "startup.json")


if __name__ == "__main__":
    main()
