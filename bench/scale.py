#!/usr/bin/env python3
"""(3) /metrics render cost and (4) behaviour at scale.

For each N in `--checks` (default 100, 1000, 10000), vouch runs N http
checks at `--interval` (10 s) against nginx. After a warm-up of one interval
plus 5 s (every check has run):

- quiet: `--reps` windows of `--seconds` each: vouch's CPU per second
  (cores used), median [min–max] over the windows; runs/s, CPU per run and
  scheduler lateness p50/p99 over all of them (/metrics is read only at
  both ends of the span: at 10,000 checks a scrape is ~0.3 s of rendering
  that would disturb the windows), from the difference of
  vouch's own `vouch_scheduler_lateness_seconds` histogram (buckets 1, 5,
  10, 50, 100 ms ...: quantiles are interpolated inside a bucket, as
  Prometheus' histogram_quantile does);
- scraped as Prometheus would, but more often: one GET /metrics every
  `--scrape-every` seconds for the same span; lateness p50/p99 in that span
  (does scraping delay the checks?) and the scrape latency seen by the client;
- back to back (`--b2b-seconds`, 0 to skip): one client scrapes /metrics
  over a keep-alive connection as fast as it can; render CPU per scrape =
  (CPU in the window - quiet cores x window) / scrapes, /metrics size and
  series, client-side latency p50/p99, lateness in that window;
- wrk, when installed (`--wrk-seconds`, 0 to skip): `wrk -t1 -c1` on /metrics
  (requests/s, a wall-clock figure, so noisy on a shared machine).

Usage: bench/scale.py [--checks 100,1000,10000] [--interval 10] [--reps 5]
       [--seconds 6] [--scrape-every 1] [--b2b-seconds 10] [--wrk-seconds 5]
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
                    machine, rss_kib, start_nginx, start_vouch, summary, tmpdir, vouch_config,
                    vouch_state)


def lateness(s0, s1):
    return {
        "lateness_p50_ms": histogram_quantile(0.5, s0["lateness"], s1["lateness"]) * 1e3,
        "lateness_p99_ms": histogram_quantile(0.99, s0["lateness"], s1["lateness"]) * 1e3,
        "lateness_count": s1["lateness"][float("inf")] - s0["lateness"][float("inf")],
    }


def scrape(conn):
    q0 = time.perf_counter()
    conn.request("GET", "/metrics")
    r = conn.getresponse()
    body = r.read()
    return time.perf_counter() - q0, body


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] if values else float("nan")


def run_n(target, n, a):
    d = tmpdir()
    cfg = vouch_config(d, [(f"http-{i:05d}", check_blocks("http", target, d))
                           for i in range(n)], f"{a.interval}s",
                       "5s" if a.interval > 5 else "1s")
    proc, port, ready = start_vouch(cfg, d)
    time.sleep(a.interval + 5)
    load = MachineLoad().start()

    # quiet windows: the CPU is read per window, but /metrics (runs and
    # lateness) only at both ends of the span, because at 10,000 checks one
    # scrape costs vouch ~0.3 s of rendering that would disturb the windows
    windows = []
    s0 = vouch_state(port)
    c0, t0 = cpu_seconds(proc.pid), time.monotonic()
    span_c0, span_t0 = c0, t0
    for _ in range(a.reps):
        time.sleep(a.seconds)
        c1, t1 = cpu_seconds(proc.pid), time.monotonic()
        windows.append({"cores": (c1 - c0) / (t1 - t0)})
        c0, t0 = c1, t1
    s1 = vouch_state(port)
    runs = s1["runs"] - s0["runs"]
    quiet = {"windows": windows, "runs_per_s": runs / (t0 - span_t0),
             "cpu_us_per_run": (c0 - span_c0) / max(runs, 1) * 1e6,
             "not_pass": s1["not_pass"] - s0["not_pass"], **lateness(s0, s1),
             "rss_kib": rss_kib(proc.pid)[0]}
    quiet_rate = statistics.median(w["cores"] for w in windows)
    if quiet["not_pass"]:
        print(f"  warning: {quiet['not_pass']:.0f} of {runs:.0f} runs did not pass",
              file=sys.stderr)
    print(f"N={n} quiet", quiet, flush=True)

    # scraped every --scrape-every seconds, as Prometheus would (more often)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    span = a.reps * a.seconds
    s0, t0 = vouch_state(port), time.monotonic()
    lat, size = [], 0
    while time.monotonic() - t0 < span:
        due = t0 + len(lat) * a.scrape_every
        time.sleep(max(0.0, due - time.monotonic()))
        took, body = scrape(conn)
        lat.append(took)
        size = len(body)
    s1 = vouch_state(port)
    paced = {"scrapes": len(lat), "every_s": a.scrape_every, "bytes": size,
             "latency_p50_ms": pct(lat, 0.5) * 1e3, "latency_max_ms": max(lat) * 1e3,
             **lateness(s0, s1)}
    print(f"N={n} paced scrapes", paced, flush=True)

    b2b = None
    if a.b2b_seconds > 0:
        lat = []
        s0, c0, t0 = vouch_state(port), cpu_seconds(proc.pid), time.monotonic()
        while time.monotonic() < t0 + a.b2b_seconds and len(lat) < 100000:
            took, body = scrape(conn)
            lat.append(took)
        c1, t1 = cpu_seconds(proc.pid), time.monotonic()
        s1 = vouch_state(port)
        b2b = {
            "scrapes": len(lat),
            "bytes": len(body),
            "series": sum(1 for line in body.decode().splitlines() if line and line[0] != "#"),
            "cpu_ms_per_scrape": ((c1 - c0) - quiet_rate * (t1 - t0)) / len(lat) * 1e3,
            "cores": (c1 - c0) / (t1 - t0),
            "latency_p50_ms": pct(lat, 0.5) * 1e3,
            "latency_p99_ms": pct(lat, 0.99) * 1e3,
            "runs_per_s": (s1["runs"] - s0["runs"]) / (t1 - t0),
            **lateness(s0, s1),
        }
        print(f"N={n} back to back", b2b, flush=True)
    conn.close()

    wrk = None
    if a.wrk_seconds > 0 and shutil.which("wrk"):
        out = subprocess.run(["wrk", "-t1", "-c1", f"-d{a.wrk_seconds}s",
                              f"http://127.0.0.1:{port}/metrics"],
                             capture_output=True, text=True).stdout
        m = re.search(r"Requests/sec:\s+([\d.]+)", out)
        wrk = float(m.group(1)) if m else None
        print(f"N={n} wrk -t1 -c1 /metrics: requests/s", wrk, flush=True)
    flood = page_flood(port, n, a)
    proc.terminate()
    proc.wait(30)
    return {"checks": n, "ready_s": ready, "load": load.stop(), "quiet": quiet,
            "paced": paced, "back_to_back": b2b, "wrk_rps": wrk, "flood": flood}


def page_flood(port, n, a):
    """Many clients on the status page and the JSON API at once (issue 20:
    rendering them must not hold up the scheduler): `wrk -c` connections per
    path for `--flood-seconds`; the scheduler's lateness over that span."""
    if a.flood_seconds <= 0:
        return None
    if not shutil.which("wrk"):
        print("  page flood: wrk is not installed, not measured", file=sys.stderr)
        return None
    s0, t0 = vouch_state(port), time.monotonic()
    floods = [subprocess.Popen(["wrk", "-t1", f"-c{a.flood_clients}", f"-d{a.flood_seconds}s",
                                f"http://127.0.0.1:{port}{path}"],
                               stdout=subprocess.PIPE, text=True)
              for path in ("/", "/api/v1/checks")]
    served = []
    for f in floods:
        out = f.communicate()[0]
        m = re.search(r"Requests/sec:\s+([\d.]+)", out)
        served.append(float(m.group(1)) if m else None)
    s1 = vouch_state(port)
    flood = {"clients_per_path": a.flood_clients, "seconds": time.monotonic() - t0,
             "page_rps": served[0], "api_rps": served[1],
             "runs_per_s": (s1["runs"] - s0["runs"]) / (time.monotonic() - t0),
             **lateness(s0, s1)}
    print(f"N={n} page flood", flood, flush=True)
    return flood


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checks", default="100,1000,10000", help="comma-separated N")
    ap.add_argument("--interval", type=int, default=10)
    ap.add_argument("--reps", type=int, default=5, help="quiet windows per N")
    ap.add_argument("--seconds", type=float, default=6, help="length of one quiet window")
    ap.add_argument("--scrape-every", type=float, default=1.0)
    ap.add_argument("--b2b-seconds", type=float, default=10)
    ap.add_argument("--wrk-seconds", type=int, default=5)
    ap.add_argument("--flood-clients", type=int, default=50,
                    help="wrk connections on / and on /api/v1/checks each")
    ap.add_argument("--flood-seconds", type=int, default=15, help="0 to skip the page flood")
    a = ap.parse_args()
    target = start_nginx()
    rows = [run_n(target, int(n), a) for n in a.checks.split(",")]
    result = {"machine": machine(), "interval_s": a.interval, "reps": a.reps,
              "window_s": a.seconds, "rows": rows}

    print(f"\nhttp checks at {a.interval}s; quiet: {a.reps} windows of {a.seconds}s, cores "
          f"median [min–max]; runs/s, CPU per run and lateness over all windows")
    print("| N | runs/s | vouch cores | CPU µs per run | lateness p50 | lateness p99 | "
          f"lateness p50 / p99, scraped every {a.scrape_every}s | RSS MiB | machine |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        q, p, w = r["quiet"], r["paced"], r["quiet"]["windows"]
        print(f"| {r['checks']} | {q['runs_per_s']:.0f} | "
              f"{summary([x['cores'] for x in w], '{:.3f}')} | "
              f"{q['cpu_us_per_run']:.0f} | "
              f"{q['lateness_p50_ms']:.2f} ms | {q['lateness_p99_ms']:.2f} ms | "
              f"{p['lateness_p50_ms']:.2f} / {p['lateness_p99_ms']:.2f} ms | "
              f"{q['rss_kib'] / 1024:.1f} | {r['load']['busy_cores']} busy, load "
              f"{r['load']['load1']} |")
    print("\n/metrics")
    print("| N | size | series | render CPU per scrape | latency p50 / p99 (back to back) | "
          "lateness p50 / p99 while back to back | paced scrape latency p50 / max | "
          "wrk -t1 -c1 req/s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        b, p = r["back_to_back"], r["paced"]
        if b:
            bcols = (f"{b['bytes']} | {b['series']} | {b['cpu_ms_per_scrape']:.2f} ms | "
                     f"{b['latency_p50_ms']:.2f} / {b['latency_p99_ms']:.2f} ms | "
                     f"{b['lateness_p50_ms']:.2f} / {b['lateness_p99_ms']:.2f} ms")
        else:
            bcols = f"{p['bytes']} | n/a | n/a | n/a | n/a"
        print(f"| {r['checks']} | {bcols} | {p['latency_p50_ms']:.2f} / "
              f"{p['latency_max_ms']:.2f} ms | {r['wrk_rps']} |")
    print("\npage flood: wrk connections on / and on /api/v1/checks at once")
    print("| N | clients per path | / req/s | /api/v1/checks req/s | runs/s | "
          "lateness p50 / p99 |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        f = r["flood"]
        if f:
            print(f"| {r['checks']} | {f['clients_per_path']} | {f['page_rps']} | "
                  f"{f['api_rps']} | {f['runs_per_s']:.0f} | "
                  f"{f['lateness_p50_ms']:.2f} / {f['lateness_p99_ms']:.2f} ms |")
    dump(result, "scale.json")


if __name__ == "__main__":
    main()
