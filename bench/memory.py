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

Mixed (`--mixed N`, default 1000, 0 to skip): N checks spread evenly over
http, https (ca_file), tls (ca_file), dns (dnsmasq, UDP), postgres (SCRAM,
tls: disable) and redis against local servers, idle (interval 1h, 3 s after
/readyz) and loaded (interval 10s, after `--seconds`, VmRSS and VmHWM). For
comparison the three exporters a user would run instead
(blackbox_exporter, postgres_exporter, redis_exporter), each scraped or
probed 5 times, and their RSS summed.

Usage: bench/memory.py [--counts 10,100,1000] [--seconds 20] [--mixed 1000]
       [--mixed-interval 10] [--mixed-seconds S]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (MachineLoad, Pacer, blackbox_path, check_blocks, dump, machine,  # noqa: E402
                    anon_kib, rss_kib, start_blackbox, start_dnsmasq, start_exporter, start_nginx,
                    start_postgres, start_redis, start_vouch, tmpdir, vouch_config,
                    vouch_state)

MIXED_KINDS = ("http", "https", "tls", "dns", "postgres", "redis")


def vouch_rss(target, n, interval, seconds, mixed=None):
    d = tmpdir()
    if mixed:
        checks = [(f"{k}-{i:05d}", check_blocks(k, mixed[k], d))
                  for i, k in ((i, MIXED_KINDS[i % len(MIXED_KINDS)]) for i in range(n))]
    else:
        checks = [(f"http-{i:05d}", check_blocks("http", target, d)) for i in range(n)]
    cfg = vouch_config(d, checks, interval, "5s")
    proc, port, _ = start_vouch(cfg, d, max_concurrent=64)
    time.sleep(seconds)
    state = vouch_state(port)
    runs = state["runs"]
    if state["not_pass"]:
        print(f"  warning: {state['not_pass']:.0f} of {runs:.0f} runs did not pass "
              f"(log: {d}/vouch.log)", file=sys.stderr)
    rss, hwm = rss_kib(proc.pid)
    anon = anon_kib(proc.pid)
    proc.terminate()
    proc.wait(10)
    return rss, hwm, anon, runs


def blackbox_rss(target, rate, seconds):
    d = tmpdir()
    proc, port, _ = start_blackbox(d, target)
    time.sleep(3)
    idle = rss_kib(proc.pid)[0]
    if rate:
        Pacer(port, [blackbox_path("http", target)], rate, seconds,
              workers=min(16, max(1, int(rate)))).run()
    rss, hwm = rss_kib(proc.pid)
    anon = anon_kib(proc.pid)
    proc.terminate()
    proc.wait(10)
    return idle, rss, hwm, anon


def exporters_rss(targets):
    """The three exporters side by side, each exercised 5 times; KiB each."""
    d = tmpdir()
    out = {}
    proc, port, _ = start_blackbox(d, targets["http"])
    for kind in ("http", "https", "tls"):
        Pacer(port, [blackbox_path(kind, targets["http"])], 5, 1.0, workers=1).run()
    out["blackbox_exporter"] = rss_kib(proc.pid)[0]
    out["anon"] = {"blackbox_exporter": anon_kib(proc.pid)}
    for kind in ("postgres", "redis"):
        proc, port = start_exporter(kind, targets[kind], d)
        Pacer(port, ["/metrics"], 5, 1.0, workers=1).run()
        out[f"{kind}_exporter"] = rss_kib(proc.pid)[0]
        out["anon"][f"{kind}_exporter"] = anon_kib(proc.pid)
    return out


def mixed_row(n, seconds, interval="10s"):
    nginx = start_nginx()
    targets = {"http": nginx, "https": nginx, "tls": nginx, "dns": start_dnsmasq(),
               "postgres": start_postgres(), "redis": start_redis()}
    idle = vouch_rss(None, n, "1h", 3, mixed=targets)[0]
    rss, hwm, loaded_anon, runs = vouch_rss(None, n, interval, seconds, mixed=targets)
    exporters = exporters_rss(targets)
    exporters_anon = exporters.pop("anon")
    row = {"n": n, "kinds": list(MIXED_KINDS), "interval": interval, "seconds": seconds,
           "vouch_idle_kib": idle, "vouch_loaded_kib": rss,
           "vouch_peak_kib": hwm, "vouch_runs": runs, "exporters_kib": exporters,
           "vouch_loaded_anon_kib": loaded_anon, "exporters_anon_kib": exporters_anon}
    print(row, flush=True)
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--counts", default="10,100,1000", help="http-only N, comma-separated")
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--mixed", type=int, default=1000, help="mixed N (0 skips)")
    ap.add_argument("--mixed-interval", type=int, default=10,
                    help="interval of the mixed checks, seconds")
    ap.add_argument("--mixed-seconds", type=int, default=0,
                    help="how long the mixed checks run before RSS is read (default "
                         "--seconds; 61 intervals and more fill every check's 60-run history)")
    a = ap.parse_args()
    target = start_nginx()
    load = MachineLoad().start()
    rows = []
    for n in [int(x) for x in a.counts.split(",") if x]:
        idle = vouch_rss(target, n, "1h", 3)[0]
        rss, hwm, anon, runs = vouch_rss(target, n, "10s", a.seconds)
        b_idle, b_rss, b_hwm, b_anon = blackbox_rss(target, n / 10, a.seconds)
        row = {"n": n, "vouch_idle_kib": idle, "vouch_loaded_kib": rss, "vouch_peak_kib": hwm,
               "vouch_runs": runs, "blackbox_idle_kib": b_idle, "blackbox_loaded_kib": b_rss,
               "blackbox_peak_kib": b_hwm, "vouch_loaded_anon_kib": anon,
               "blackbox_loaded_anon_kib": b_anon}
        print(row, flush=True)
        rows.append(row)
    mixed_seconds = a.mixed_seconds or a.seconds
    mixed = (mixed_row(a.mixed, mixed_seconds, f"{a.mixed_interval}s")
             if a.mixed else None)
    result = {"machine": machine(), "load": load.stop(), "rows": rows, "mixed": mixed,
              "seconds": a.seconds}
    mib = lambda k: f"{k / 1024:.1f}"  # noqa: E731
    print(f"\nRSS in MiB; loaded = N/10 runs/s for {a.seconds}s; machine {result['load']}")
    print("| N http checks | vouch idle | vouch loaded | vouch peak | "
          "blackbox idle | blackbox loaded | blackbox peak | vouch loaded anon | "
          "blackbox loaded anon |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']} | {mib(r['vouch_idle_kib'])} | {mib(r['vouch_loaded_kib'])} | "
              f"{mib(r['vouch_peak_kib'])} | {mib(r['blackbox_idle_kib'])} | "
              f"{mib(r['blackbox_loaded_kib'])} | {mib(r['blackbox_peak_kib'])} | "
              f"{mib(r['vouch_loaded_anon_kib'])} | {mib(r['blackbox_loaded_anon_kib'])} |")
    if mixed:
        ex = mixed["exporters_kib"]
        print(f"\n{a.mixed} mixed checks ({', '.join(MIXED_KINDS)}, evenly), RSS in MiB; "
              f"loaded = interval {mixed['interval']} for {mixed['seconds']}s "
              f"({mixed['vouch_runs']:.0f} runs)")
        exa = mixed["exporters_anon_kib"]
        print("| vouch idle | vouch loaded | vouch peak | blackbox + postgres_exporter + "
              "redis_exporter (each exercised 5 times) | vouch loaded anon | exporters anon |")
        print("|---|---|---|---|---|---|")
        print(f"| {mib(mixed['vouch_idle_kib'])} | {mib(mixed['vouch_loaded_kib'])} | "
              f"{mib(mixed['vouch_peak_kib'])} | {mib(sum(ex.values()))} = "
              + " + ".join(mib(v) for v in ex.values()) + f" | {mib(mixed['vouch_loaded_anon_kib'])} | "
              f"{mib(sum(exa.values()))} = " + " + ".join(mib(v) for v in exa.values()) + " |")
    dump(result, "memory.json")


if __name__ == "__main__":
    main()
