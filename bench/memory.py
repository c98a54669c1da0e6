#!/usr/bin/env python3
"""(2) Resident memory with N HTTP checks, vouch vs blackbox_exporter.

vouch, for each N:
- idle: N http checks at interval 1h (config loaded, N check loops, almost
  no run yet), VmRSS 3 s after /readyz;
- loaded: N http checks at interval 10s against nginx (N/10 runs/s), after
  `--seconds` (every check has run at least once), VmRSS and VmHWM (peak).
blackbox_exporter has no list of targets (Prometheus holds it), so its config
is the same one http module whatever N:
- idle: VmRSS 3 s after start;
- loaded: /probe driven at N/10 requests/s for `--seconds` with up to 16
  concurrent keep-alive connections (as Prometheus scrape loops would),
  VmRSS and VmHWM.

Usage: bench/memory.py [--counts 10,100,1000] [--seconds 20]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (MachineLoad, Pacer, blackbox_path, check_blocks, dump, machine,  # noqa: E402
                    rss_kib, start_blackbox, start_nginx, start_vouch, tmpdir, vouch_config,
                    vouch_state)


def vouch_rss(target, n, interval, seconds):
    d = tmpdir()
    cfg = vouch_config(d, [(f"http-{i:05d}", check_blocks("http", target, d)) for i in range(n)],
                       interval, "5s")
    proc, port, _ = start_vouch(cfg, d, max_concurrent=64)
    time.sleep(seconds)
    runs = vouch_state(port)["runs"]
    rss, hwm = rss_kib(proc.pid)
    proc.terminate()
    proc.wait(10)
    return rss, hwm, runs


def blackbox_rss(target, rate, seconds):
    d = tmpdir()
    proc, port, _ = start_blackbox(d, target)
    time.sleep(3)
    idle = rss_kib(proc.pid)[0]
    if rate:
        Pacer(port, [blackbox_path("http", target)], rate, seconds,
              workers=min(16, max(1, int(rate)))).run()
    rss, hwm = rss_kib(proc.pid)
    proc.terminate()
    proc.wait(10)
    return idle, rss, hwm


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--counts", default="10,100,1000")
    ap.add_argument("--seconds", type=int, default=20)
    a = ap.parse_args()
    target = start_nginx()
    load = MachineLoad().start()
    rows = []
    for n in [int(x) for x in a.counts.split(",")]:
        idle, _, _ = vouch_rss(target, n, "1h", 3)
        rss, hwm, runs = vouch_rss(target, n, "10s", a.seconds)
        b_idle, b_rss, b_hwm = blackbox_rss(target, n / 10, a.seconds)
        row = {"n": n, "vouch_idle_kib": idle, "vouch_loaded_kib": rss, "vouch_peak_kib": hwm,
               "vouch_runs": runs, "blackbox_idle_kib": b_idle, "blackbox_loaded_kib": b_rss,
               "blackbox_peak_kib": b_hwm}
        print(row, flush=True)
        rows.append(row)
    result = {"machine": machine(), "load": load.stop(), "rows": rows, "seconds": a.seconds}
    mib = lambda k: f"{k / 1024:.1f}"  # noqa: E731
    print(f"\nRSS in MiB; loaded = N/10 runs/s for {a.seconds}s; machine {result['load']}")
    print("| N http checks | vouch idle | vouch loaded | vouch peak | "
          "blackbox idle | blackbox loaded | blackbox peak |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']} | {mib(r['vouch_idle_kib'])} | {mib(r['vouch_loaded_kib'])} | "
              f"{mib(r['vouch_peak_kib'])} | {mib(r['blackbox_idle_kib'])} | "
              f"{mib(r['blackbox_loaded_kib'])} | {mib(r['blackbox_peak_kib'])} |")
    dump(result, "memory.json")


if __name__ == "__main__":
    main()
