#!/usr/bin/env python3
"""(3) /metrics scrape cost and (4) behaviour at scale.

vouch runs N http checks (default 1000) at interval 10s against nginx.
After a warm-up of one interval plus 5 s (every check has run):

- quiet window (`--seconds`): CPU of vouch per second (cores used),
  runs/s, and scheduler lateness p50/p99 from the difference of vouch's own
  `vouch_scheduler_lateness_seconds` histogram over the window (buckets
  1, 5, 10, 50, 100 ms ...: quantiles are interpolated inside a bucket, as
  Prometheus' histogram_quantile does);
- scrape window (`--seconds`): one client scrapes /metrics back to back
  over a keep-alive connection (far harder than Prometheus' one scrape per
  15-60 s); CPU per scrape = (CPU in the window - quiet CPU rate x window)
  / scrapes, client-side latency p50/p99 of the scrapes, /metrics size, and
  lateness p50/p99 in the same window (does scraping delay the checks?);
- wrk, when installed: `wrk -t1 -c1 -d5s` on /metrics (requests/s, a
  wall-clock figure, so noisy on a shared machine).

Usage: bench/scale.py [--checks 1000] [--seconds 30]
"""

import argparse
import http.client
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (MachineLoad, check_blocks, cpu_seconds, dump, histogram_quantile,  # noqa: E402
                    machine, rss_kib, start_nginx, start_vouch, tmpdir, vouch_config,
                    vouch_state)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checks", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--interval", type=int, default=10)
    a = ap.parse_args()
    target = start_nginx()
    d = tmpdir()
    cfg = vouch_config(d, [(f"http-{i:05d}", check_blocks("http", target, d))
                           for i in range(a.checks)], f"{a.interval}s",
                       "5s" if a.interval > 5 else "1s")
    proc, port, ready = start_vouch(cfg, d)
    time.sleep(a.interval + 5)
    load = MachineLoad().start()

    # quiet window
    s0, c0, t0 = vouch_state(port), cpu_seconds(proc.pid), time.monotonic()
    time.sleep(a.seconds)
    s1, c1, t1 = vouch_state(port), cpu_seconds(proc.pid), time.monotonic()
    quiet_rate = (c1 - c0) / (t1 - t0)
    quiet = {
        "cores": quiet_rate,
        "runs_per_s": (s1["runs"] - s0["runs"]) / (t1 - t0),
        "cpu_us_per_run": (c1 - c0) / max(s1["runs"] - s0["runs"], 1) * 1e6,
        "lateness_p50_ms": histogram_quantile(0.5, s0["lateness"], s1["lateness"]) * 1e3,
        "lateness_p99_ms": histogram_quantile(0.99, s0["lateness"], s1["lateness"]) * 1e3,
        "lateness_count": s1["lateness"][float("inf")] - s0["lateness"][float("inf")],
        "rss_kib": rss_kib(proc.pid)[0],
    }
    print("quiet", quiet, flush=True)

    # scrape window: back-to-back scrapes, bounded by time and count
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    lat, size = [], 0
    s0, c0, t0 = vouch_state(port), cpu_seconds(proc.pid), time.monotonic()
    deadline = t0 + a.seconds
    while time.monotonic() < deadline and len(lat) < 100000:
        q0 = time.perf_counter()
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        body = r.read()
        lat.append(time.perf_counter() - q0)
        size = len(body)
    c1, t1 = cpu_seconds(proc.pid), time.monotonic()
    s1 = vouch_state(port)
    conn.close()
    lat.sort()
    n = len(lat)
    scrape = {
        "scrapes": n,
        "bytes": size,
        "series": sum(1 for line in body.decode().splitlines() if line and line[0] != "#"),
        "cpu_ms_per_scrape": ((c1 - c0) - quiet_rate * (t1 - t0)) / n * 1e3,
        "latency_p50_ms": lat[n // 2] * 1e3,
        "latency_p99_ms": lat[min(n - 1, int(n * 0.99))] * 1e3,
        "lateness_p50_ms": histogram_quantile(0.5, s0["lateness"], s1["lateness"]) * 1e3,
        "lateness_p99_ms": histogram_quantile(0.99, s0["lateness"], s1["lateness"]) * 1e3,
        "runs_per_s": (s1["runs"] - s0["runs"]) / (t1 - t0),
    }
    print("scrape", scrape, flush=True)

    wrk = None
    if shutil.which("wrk"):
        out = subprocess.run(["wrk", "-t1", "-c1", "-d5s", f"http://127.0.0.1:{port}/metrics"],
                             capture_output=True, text=True).stdout
        m = re.search(r"Requests/sec:\s+([\d.]+)", out)
        wrk = float(m.group(1)) if m else None
        print("wrk -t1 -c1 -d5s /metrics: requests/s", wrk, flush=True)
    proc.terminate()
    proc.wait(10)
    result = {"machine": machine(), "load": load.stop(), "checks": a.checks,
              "interval_s": a.interval, "window_s": a.seconds, "ready_s": ready,
              "quiet": quiet, "scrape": scrape, "wrk_rps": wrk}
    print(f"\n{a.checks} http checks at {a.interval}s, windows of {a.seconds}s; "
          f"machine {result['load']}")
    print("| window | runs/s | vouch cores | lateness p50 | lateness p99 |")
    print("|---|---|---|---|---|")
    print(f"| quiet | {quiet['runs_per_s']:.0f} | {quiet['cores']:.3f} | "
          f"{quiet['lateness_p50_ms']:.2f} ms | {quiet['lateness_p99_ms']:.2f} ms |")
    print(f"| scraping back to back | {scrape['runs_per_s']:.0f} | "
          f"{quiet['cores'] + scrape['cpu_ms_per_scrape'] * n / a.seconds / 1e3:.3f} | "
          f"{scrape['lateness_p50_ms']:.2f} ms | {scrape['lateness_p99_ms']:.2f} ms |")
    print(f"\n/metrics: {scrape['bytes']} bytes, {scrape['series']} series, "
          f"{scrape['cpu_ms_per_scrape']:.2f} ms CPU per scrape, latency p50 "
          f"{scrape['latency_p50_ms']:.2f} ms p99 {scrape['latency_p99_ms']:.2f} ms; "
          f"wrk {wrk} req/s")
    dump(result, f"scale-{a.checks}.json")


if __name__ == "__main__":
    main()
