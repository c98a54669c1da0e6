"""Shared helpers for the hand-run benchmarks in bench/ (Python 3 standard
library only). Nothing here is part of `cargo test` or CI.

Every server is started on 127.0.0.1 on a free port, registered with
`Cleanup`, and stopped at exit (normal exit, exception, SIGINT or SIGTERM).
CPU is read from /proc/PID/stat (user + system time of the process and all
its threads) or from getrusage(RUSAGE_CHILDREN) for short-lived clients, so
the figures do not depend on wall-clock time on a busy machine.
"""

import atexit
import http.client
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TICK = os.sysconf("SC_CLK_TCK")


def vouch_bin():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    path = os.environ.get("VOUCH_BIN", os.path.join(target, "release", "vouch"))
    if not os.path.exists(path):
        sys.exit(f"no vouch binary at {path}: run `cargo build --release --bin vouch` "
                 "(or set VOUCH_BIN)")
    return path


_FLOOR = None


def floor_bin():
    """The bare-client floor (bench/floor.rs): FLOOR_BIN, else the
    executable `cargo build --release --bench floor` builds (or finds): the
    release profile, as vouch's own build, since `cargo bench`'s profile
    shares target/release with it and each would rebuild vouch for the other."""
    global _FLOOR
    if _FLOOR:
        return _FLOOR
    path = os.environ.get("FLOOR_BIN")
    if not path:
        out = subprocess.run(["cargo", "build", "--release", "--bench", "floor",
                              "--message-format=json"], cwd=REPO, capture_output=True,
                             text=True)
        for line in out.stdout.splitlines():
            msg = json.loads(line)
            if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "floor":
                path = msg["executable"]
        if not path:
            sys.exit("cannot build the floor (cargo build --release --bench floor):\n"
                     + out.stderr)
    if not os.path.exists(path):
        sys.exit(f"no floor binary at {path} (FLOOR_BIN)")
    _FLOOR = path
    return path


def run_floor(*args):
    """Runs the floor; returns {mode: result dict} from its JSON lines."""
    out = subprocess.run([floor_bin(), "--bench", *args], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"floor {' '.join(args)} failed: {out.stderr.strip()}")
    results = {}
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            results[r["mode"]] = r
    return results


def need(*programs):
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        sys.exit("missing programs: " + ", ".join(missing) +
                 " (apt-get install nginx-light wrk prometheus-blackbox-exporter "
                 "prometheus-postgres-exporter prometheus-redis-exporter "
                 "postgresql redis-server redis-tools)")


# --------------------------------------------------------------- cleanup

class Cleanup:
    """Stops everything started by this process (the Python `trap`)."""

    def __init__(self):
        self.actions = []
        atexit.register(self.run)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._signal)

    def _signal(self, signum, _frame):
        sys.exit(128 + signum)  # runs atexit

    def add(self, action):
        self.actions.append(action)

    def process(self, proc):
        def stop():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.add(stop)
        return proc

    def run(self):
        while self.actions:
            action = self.actions.pop()
            try:
                action()
            except Exception as err:  # keep cleaning
                print(f"cleanup: {err}", file=sys.stderr)


CLEANUP = Cleanup()


def tmpdir(prefix="vouch-bench-"):
    path = tempfile.mkdtemp(prefix=prefix)
    CLEANUP.add(lambda: shutil.rmtree(path, ignore_errors=True))
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(args, log, env=None, **kw):
    out = open(log, "ab")
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                            env=env, start_new_session=True, **kw)
    return CLEANUP.process(proc)


def wait_http(port, path="/", timeout=30, ok=(200,)):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            c.close()
            if r.status in ok:
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"127.0.0.1:{port}{path} not ready after {timeout}s")


def wait_tcp(port, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"127.0.0.1:{port} not listening after {timeout}s")


def http_get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


# --------------------------------------------------------------- measures

def cpu_seconds(pid):
    """user + system CPU seconds of a live process (all threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def cpu_seconds_threads(pid):
    """CPU seconds of the live threads of a process, from the scheduler's
    nanosecond counters (/proc/PID/task/*/schedstat): finer than the 10 ms
    ticks of /proc/PID/stat, but blind to threads that already exited, so
    only for short spans such as startup."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total / 1e9


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def anon_kib(pid):
    """RssAnon in KiB: the process's own memory, without the pages of its
    executable and libraries (shared, and given back under pressure)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key == "RssAnon":
                return int(rest.split()[0])
    return 0


def rss_kib(pid):
    """(VmRSS, VmHWM) in KiB."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


class MachineLoad:
    """Busy fraction of all CPUs between start() and stop(), from /proc/stat,
    plus the 1-minute load average at the end: how loaded the machine was."""

    @staticmethod
    def _read():
        with open("/proc/stat") as f:
            parts = [int(x) for x in f.readline().split()[1:]]
        idle = parts[3] + parts[4]
        return sum(parts), idle

    def start(self):
        self.t0 = self._read()
        return self

    def stop(self):
        total, idle = self._read()
        dt = total - self.t0[0]
        busy = 1 - (idle - self.t0[1]) / dt if dt else 0.0
        with open("/proc/loadavg") as f:
            load1 = float(f.read().split()[0])
        return {"busy_cores": round(busy * os.cpu_count(), 2), "load1": load1}


def machine():
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024
    return {"cpu": model, "cores": os.cpu_count(), "mem_mib": mem,
            "kernel": os.uname().release,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def summary(values, fmt="{:.1f}"):
    """median [min–max] of repetitions."""
    if not values:
        return "n/a"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} [{fmt.format(min(values))}–{fmt.format(max(values))}]"


# --------------------------------------------------------------- metrics

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')


def parse_metrics(text):
    """[(name, labels-string, value)]."""
    out = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if m:
            out.append((m.group(1), m.group(2) or "", float(m.group(3))))
    return out


def vouch_state(port):
    """Runs counted so far and the lateness histogram buckets."""
    _, body = http_get(port, "/metrics")
    samples = parse_metrics(body.decode())
    runs = sum(v for n, _, v in samples if n == "vouch_check_runs_total")
    not_pass = sum(v for n, labels, v in samples
                   if n == "vouch_check_runs_total" and 'result="pass"' not in labels)
    buckets = {}
    for n, labels, v in samples:
        if n == "vouch_scheduler_lateness_seconds_bucket":
            le = re.search(r'le="([^"]+)"', labels).group(1)
            buckets[float("inf") if le == "+Inf" else float(le)] = v
    return {"runs": runs, "not_pass": not_pass, "lateness": buckets, "bytes": len(body)}


def histogram_quantile(q, before, after):
    """Prometheus-style linear interpolation inside the bucket, on the
    difference of two cumulative histograms."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0) for b in bounds]
    total = counts[-1]
    if total <= 0:
        return float("nan")
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in zip(bounds, counts):
        if count >= rank:
            if bound == float("inf"):
                return prev_bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / max(count - prev_count, 1e-9)
        prev_bound, prev_count = bound, count
    return bounds[-2]


# --------------------------------------------------------------- load driver

class Pacer:
    """Issues GET requests at a fixed rate for `seconds` (bounded), over
    keep-alive connections from `workers` threads, as Prometheus scrape loops
    would. Returns (sent, errors). Its own CPU is not counted anywhere."""

    def __init__(self, port, paths, rate, seconds, workers=8):
        self.port, self.paths, self.rate, self.seconds = port, paths, rate, seconds
        self.workers = workers

    def run(self):
        total = int(self.rate * self.seconds)
        start = time.monotonic() + 0.05
        lock = threading.Lock()
        state = {"next": 0, "errors": 0}

        def worker():
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            while True:
                with lock:
                    i = state["next"]
                    if i >= total:
                        break
                    state["next"] += 1
                delay = start + i / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                try:
                    conn.request("GET", self.paths[i % len(self.paths)])
                    r = conn.getresponse()
                    body = r.read()
                    if r.status != 200 or b"probe_success 0" in body:
                        with lock:
                            state["errors"] += 1
                except OSError:
                    with lock:
                        state["errors"] += 1
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            conn.close()

        threads = [threading.Thread(target=worker) for _ in range(self.workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return total, state["errors"]


# --------------------------------------------------------------- targets

def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def make_certs(d):
    """A P-256 CA and a leaf for 127.0.0.1 / localhost signed by it."""
    def run(*args):
        subprocess.run(args, check=True, capture_output=True)
    ca_key, ca = os.path.join(d, "ca.key"), os.path.join(d, "ca.pem")
    key, csr, crt = (os.path.join(d, n) for n in ("leaf.key", "leaf.csr", "leaf.pem"))
    ext = write(os.path.join(d, "ext.cnf"),
                "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                "basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", ca_key)
    run("openssl", "req", "-x509", "-new", "-key", ca_key, "-sha256", "-days", "30",
        "-subj", "/CN=vouch bench CA", "-out", ca)
    run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key)
    run("openssl", "req", "-new", "-key", key, "-subj", "/CN=localhost", "-out", csr)
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
        "-CAcreateserial", "-days", "30", "-sha256", "-extfile", ext, "-out", crt)
    return {"ca": ca, "cert": crt, "key": key}


def start_nginx():
    """nginx answering `ok` on HTTP and HTTPS (P-256 leaf, TLS 1.2/1.3)."""
    need("nginx")
    d = tmpdir("vouch-bench-nginx-")
    certs = make_certs(d)
    http_port, https_port = free_port(), free_port()
    conf = write(os.path.join(d, "nginx.conf"), f"""
daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{http_port};
    listen 127.0.0.1:{https_port} ssl;
    ssl_certificate {certs['cert']};
    ssl_certificate_key {certs['key']};
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {{ default_type text/plain; return 200 "ok\\n"; }}
  }}
}}
""")
    spawn(["nginx", "-c", conf, "-p", d], os.path.join(d, "out.log"))
    wait_http(http_port)
    return {"http_port": http_port, "https_port": https_port, **certs}


def start_redis():
    need("redis-server")
    d = tmpdir("vouch-bench-redis-")
    port = free_port()
    spawn(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
           "--appendonly", "no", "--dir", d], os.path.join(d, "redis.log"))
    wait_tcp(port)
    return {"port": port, "url": f"redis://127.0.0.1:{port}/0"}


PG_PASSWORD = "bench-Secr3t-pw"


def start_postgres():
    """A throwaway cluster as tests/support/postgres.rs makes it: initdb as
    the `postgres` user (via runuser when root), SCRAM on TCP, fsync off."""
    bins = sorted(
        (p for p in (os.path.join("/usr/lib/postgresql", v, "bin")
                     for v in os.listdir("/usr/lib/postgresql"))
         if os.path.exists(os.path.join(p, "initdb"))),
        key=lambda p: int(p.split("/")[-2]))
    if not bins:
        sys.exit("no PostgreSQL server binaries under /usr/lib/postgresql")
    bindir = bins[-1]
    root = os.getuid() == 0
    d = tempfile.mkdtemp(prefix="vouch-bench-pg-")
    os.chmod(d, 0o755)

    def as_owner(*args):
        cmd = [os.path.join(bindir, args[0]), *args[1:]]
        if root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True)

    write(os.path.join(d, "pw"), PG_PASSWORD)
    if root:
        subprocess.run(["chown", "-R", "postgres:postgres", d], check=True)
    data = os.path.join(d, "data")
    r = as_owner("initdb", "-D", data, "-U", "postgres", "-E", "UTF8", "--auth-local=trust",
                 "--auth-host=scram-sha-256", "--pwfile", os.path.join(d, "pw"), "--no-sync")
    if r.returncode:
        sys.exit("initdb failed:\n" + r.stdout + r.stderr)
    port = free_port()
    opts = f"-p {port} -k {d} -c listen_addresses=127.0.0.1 -c fsync=off"
    r = as_owner("pg_ctl", "-D", data, "-l", os.path.join(d, "server.log"), "-o", opts,
                 "-w", "-t", "60", "start")
    if r.returncode:
        sys.exit("pg_ctl start failed:\n" + r.stdout + r.stderr)

    def stop():
        as_owner("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(d, ignore_errors=True)
    CLEANUP.add(stop)
    return {"port": port, "bindir": bindir,
            "url": f"postgres://postgres:{PG_PASSWORD}@127.0.0.1:{port}/postgres"}


# --------------------------------------------------------------- vouch & peers

def start_dnsmasq():
    """dnsmasq answering bench.test -> 10.9.8.7 on UDP and TCP (as soak.sh)."""
    binary = shutil.which("dnsmasq") or ("/usr/sbin/dnsmasq" if os.path.exists(
        "/usr/sbin/dnsmasq") else None)
    if not binary:
        need("dnsmasq")
    d = tmpdir("vouch-bench-dns-")
    port = free_port()
    user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    spawn([binary, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--port", str(port),
           "--listen-address", "127.0.0.1", "--bind-interfaces", f"--user={user}",
           f"--pid-file={d}/dnsmasq.pid", "--address=/bench.test/10.9.8.7"],
          os.path.join(d, "dnsmasq.log"))
    wait_tcp(port)
    return {"port": port}


def start_exporter(kind, target, d):
    """postgres_exporter or redis_exporter for the target; (proc, port)."""
    port = free_port()
    if kind == "postgres":
        need("prometheus-postgres-exporter")
        env = dict(os.environ, DATA_SOURCE_NAME=target["url"] + "?sslmode=disable")
        args = ["prometheus-postgres-exporter", f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn"]
    else:
        need("prometheus-redis-exporter")
        env = dict(os.environ)
        args = ["prometheus-redis-exporter", "-redis.addr", target["url"],
                "-web.listen-address", f"127.0.0.1:{port}"]
    proc = spawn(args, os.path.join(d, f"{kind}-exporter.log"), env=env)
    wait_http(port, "/metrics")
    return proc, port


def vouch_config(d, checks, interval, timeout="5s"):
    """checks: list of (name, kind-block-yaml-lines)."""
    lines = ["defaults:", f"  interval: {interval}", f"  timeout: {timeout}",
             "  severity: warning", "checks:"]
    for name, block in checks:
        lines.append(f"  - name: {name}")
        lines.extend("    " + b for b in block)
    return write(os.path.join(d, "vouch.yaml"), "\n".join(lines) + "\n")


def check_blocks(kind, t, d):
    """The kind block vouch runs for each bench kind against target t."""
    if kind == "http":
        return ["http:", f"  url: http://127.0.0.1:{t['http_port']}/",
                "  expect: { status: [200] }"]
    if kind == "http-keepalive":
        return check_blocks("http", t, d) + ["  keep_alive: true"]
    if kind == "https":
        return ["http:", f"  url: https://127.0.0.1:{t['https_port']}/",
                f"  ca_file: {t['ca']}", "  expect: { status: [200] }"]
    if kind == "tls":
        return ["tls:", "  host: localhost", f"  port: {t['https_port']}",
                "  connect_to: 127.0.0.1", f"  ca_file: {t['ca']}", "  min_valid_for: 1d"]
    if kind == "postgres":
        url_file = write(os.path.join(d, "pg-url"), t["url"])
        return ["postgres:", f"  url_file: {url_file}", "  tls: disable"]
    if kind == "redis":
        url_file = write(os.path.join(d, "redis-url"), t["url"])
        return ["redis:", f"  url_file: {url_file}"]
    if kind == "dns":
        return ["dns:", "  name: bench.test", f"  servers: [\"127.0.0.1:{t['port']}\"]",
                "  expect: { answers: [10.9.8.7] }"]
    raise ValueError(kind)


def start_vouch(config, d, max_concurrent=None):
    port = free_port()
    env = dict(os.environ, RUST_LOG="warn")
    if max_concurrent:
        env["VOUCH_MAX_CONCURRENT_RUNS"] = str(max_concurrent)
    t0 = time.monotonic()
    proc = spawn([vouch_bin(), "serve", "--config", config,
                  "--web.listen-address", f"127.0.0.1:{port}"],
                 os.path.join(d, "vouch.log"), env=env)
    wait_http(port, "/readyz")
    return proc, port, time.monotonic() - t0


def blackbox_config(d, t):
    return write(os.path.join(d, "blackbox.yml"), f"""
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http: {{ preferred_ip_protocol: ip4, valid_status_codes: [200] }}
  https_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      valid_status_codes: [200]
      tls_config: {{ ca_file: {t['ca']} }}
  tls_connect:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
      tls: true
      tls_config: {{ ca_file: {t['ca']}, server_name: localhost }}
""")


def start_blackbox(d, t):
    need("prometheus-blackbox-exporter")
    port = free_port()
    t0 = time.monotonic()
    proc = spawn(["prometheus-blackbox-exporter", "--config.file", blackbox_config(d, t),
                  "--web.listen-address", f"127.0.0.1:{port}", "--log.level=warn"],
                 os.path.join(d, "blackbox.log"))
    wait_http(port, "/-/healthy")
    return proc, port, time.monotonic() - t0


def blackbox_path(kind, t):
    from urllib.parse import quote
    if kind == "http":
        return "/probe?module=http_2xx&target=" + quote("http://127.0.0.1:%d/" % t["http_port"], safe="")
    if kind == "http-keepalive":
        return check_blocks("http", t, d) + ["  keep_alive: true"]
    if kind == "https":
        return f"/probe?module=https_2xx&target={quote('https://127.0.0.1:%d/' % t['https_port'], safe='')}"
    if kind == "tls":
        return f"/probe?module=tls_connect&target=127.0.0.1:{t['https_port']}"
    raise ValueError(kind)


def dump(obj, name):
    """Writes JSON to bench/results/ (or $BENCH_RESULTS, which the smoke run
    points elsewhere so that CI leaves the tree clean)."""
    path = os.path.join(os.environ.get("BENCH_RESULTS") or os.path.join(HERE, "results"), name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
    print(f"wrote {os.path.relpath(path, REPO)}")
