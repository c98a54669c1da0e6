"""Screenshots of the Overview dashboard's panels, drawn from real data.

There is no Grafana here, so this runs what Grafana would: vouch serving
120 checks (most passing, some failing, erroring or pending) against a
local HTTP target, a real Prometheus scraping it as two installs in two
namespaces, and every panel query of dashboards/vouch-overview.json
against that Prometheus. A small static page lays the panels out on
Grafana's 24-column grid (stacked on a phone, as Grafana does), applies the
panels' value mappings, colours, units and table columns, and headless
Chromium photographs it at desktop and phone widths.

    python3 scripts/dashboard_shots.py VOUCH_BINARY OUT_DIR
"""

import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

SECTIONS = [
    "pre-deploy/database",
    "pre-deploy/secrets",
    "pre-deploy/registry",
    "post-deploy/api",
    "post-deploy/web",
    "post-deploy/cache",
    "infrastructure/dns",
    "infrastructure/tls",
]
PER_SECTION = 15  # 120 checks
SEVERITIES = ["critical", "warning", "warning", "info"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Target(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/hang":
            time.sleep(600)
        status = 500 if self.path == "/fail" else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def config(target, closed):
    lines = ["defaults: { interval: 5s, timeout: 2s }", "checks:"]
    n = 0
    for section in SECTIONS:
        for i in range(PER_SECTION):
            n += 1
            name = "%s-%02d" % (section.split("/")[1], i + 1)
            url, extra = "http://%s/ok" % target, ""
            if n % 13 == 0:
                url = "http://%s/fail" % target
            elif n % 29 == 0:
                url = "http://127.0.0.1:%d/" % closed
            elif n % 41 == 0:
                url, extra = "http://%s/hang" % target, ", interval: 10m, timeout: 5m"
            lines.append(
                '  - { name: %s, section: %s, severity: %s%s, http: { url: "%s" } }'
                % (name, section, SEVERITIES[n % len(SEVERITIES)], extra, url)
            )
    return "\n".join(lines) + "\n"


def get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.load(r)


def substitute(expr):
    for var, value in [
        ("$__rate_interval", "30s"),
        ("$__range", "5m"),
        ("$cluster", ".*"),
        ("$namespace", ".*"),
        ("$job", ".*"),
        ("$instance", ".*"),
        ("$section", ".*"),
        ("$check", ".*"),
    ]:
        expr = expr.replace(var, value)
    return expr


def panel_data(prom, dashboard):
    now = time.time()
    out = []
    for panel in dashboard["panels"]:
        results = {}
        for target in panel.get("targets", []):
            expr = substitute(target["expr"])
            if target.get("instant"):
                q = urllib.parse.urlencode({"query": expr, "time": now})
                answer = get("http://%s/api/v1/query?%s" % (prom, q))
            else:
                q = urllib.parse.urlencode({"query": expr, "start": now - 180, "end": now, "step": 5})
                answer = get("http://%s/api/v1/query_range?%s" % (prom, q))
            if answer["status"] != "success":
                raise SystemExit("%s: %s" % (panel["title"], answer))
            results[target["refId"]] = answer["data"]["result"]
        out.append({"panel": panel, "results": results})
    return out


PAGE = open(os.path.join(os.path.dirname(__file__), "dashboard_shots.html")).read()


def main(binary, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    work = tempfile.mkdtemp()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Target)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    target = "127.0.0.1:%d" % server.server_address[1]
    with open(os.path.join(work, "vouch.yaml"), "w") as f:
        f.write(config(target, free_port()))
    procs, installs = [], []
    try:
        for namespace in ["shop", "blog"]:
            port = free_port()
            log = open(os.path.join(work, "vouch-%s.log" % namespace), "w")
            procs.append(subprocess.Popen(
                [binary, "serve", "--config", os.path.join(work, "vouch.yaml"), "--web.listen-address", "127.0.0.1:%d" % port],
                stdout=log, stderr=log))
            installs.append((namespace, port))
        prom_port = free_port()
        scrape = "\n".join(
            "  - job_name: vouch-%s\n    static_configs:\n"
            "      - targets: ['127.0.0.1:%d']\n        labels: { job: vouch, namespace: %s }" % (ns, port, ns)
            for ns, port in installs
        )
        with open(os.path.join(work, "prometheus.yml"), "w") as f:
            f.write("global: { scrape_interval: 2s }\nscrape_configs:\n" + scrape + "\n")
        log = open(os.path.join(work, "prometheus.log"), "w")
        procs.append(subprocess.Popen(
            ["prometheus", "--config.file=" + os.path.join(work, "prometheus.yml"),
             "--storage.tsdb.path=" + os.path.join(work, "data"),
             "--web.listen-address=127.0.0.1:%d" % prom_port],
            stdout=log, stderr=log))
        prom = "127.0.0.1:%d" % prom_port
        # Every check of both installs scraped, and the quick ones run a few
        # times (the hanging ones stay pending).
        deadline = time.time() + 120
        while True:
            try:
                states = get("http://%s/api/v1/query?query=%s" % (prom, urllib.parse.quote('count(vouch_check_state{state="pending"} == 0)')))
                done = states["data"]["result"] and float(states["data"]["result"][0]["value"][1])
            except Exception:
                done = 0
            if done and done >= 2 * (len(SECTIONS) * PER_SECTION - 3):
                break
            if time.time() > deadline:
                raise SystemExit("vouch's checks did not all run: %s" % done)
            time.sleep(2)
        time.sleep(20)  # some history for the time series
        with open("dashboards/vouch-overview.json") as f:
            dashboard = json.load(f)
        data = panel_data(prom, dashboard)
        page = os.path.join(work, "overview.html")
        with open(page, "w") as f:
            f.write(PAGE.replace("/*DATA*/null", json.dumps({"title": dashboard["title"], "panels": data})))
        # Desktop in one picture; a phone (390px wide, as an iPhone 12-15
        # in CSS pixels) in screen-high parts.
        shots = [("desktop", 1440, 2000, 0)] + [("phone-%d" % (i + 1), 390, 844, i * 844) for i in range(4)]
        for name, width, height, start in shots:
            shot = os.path.join(out_dir, "overview-%s.png" % name)
            subprocess.run(
                ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                 "--window-size=%d,%d" % (width, height), "--screenshot=" + shot,
                 "file://%s#from=%d" % (page, start)],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            print(shot)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        server.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
