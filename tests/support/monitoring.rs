//! A real Prometheus and a real Alertmanager (Debian's packages), each in
//! its own temporary directory on a random loopback port, stopped on drop.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::vouch::http_get;
use super::{free_port, wait_until};

/// A child process with its directory; killed and reaped on drop.
pub struct Service {
    child: Child,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    name: &'static str,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    fn spawn(
        name: &'static str,
        program: &str,
        args: &[String],
        dir: tempfile::TempDir,
        addr: SocketAddr,
    ) -> Service {
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("start {program}: {err} (scripts/test.sh installs it)"));
        Service {
            child,
            addr,
            dir,
            name,
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    async fn wait_ready(&mut self) {
        let addr = self.addr;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("{} exited with {status}:\n{}", self.name, self.logs());
            }
            if matches!(http_get(addr, "/-/ready").await, Some((200, _))) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} not ready:\n{}",
                self.name,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn loopback() -> SocketAddr {
    format!("127.0.0.1:{}", free_port()).parse().unwrap()
}

/// Alertmanager with `config` (YAML).
pub async fn alertmanager(config: &str) -> Service {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alertmanager.yml");
    std::fs::write(&file, config).unwrap();
    let addr = loopback();
    let args = vec![
        format!("--config.file={}", file.display()),
        format!("--storage.path={}", dir.path().join("data").display()),
        format!("--web.listen-address={addr}"),
        "--cluster.listen-address=".to_string(),
    ];
    let mut service = Service::spawn("alertmanager", "prometheus-alertmanager", &args, dir, addr);
    service.wait_ready().await;
    service
}

/// Prometheus with `config` (YAML) and the given extra files written next
/// to it (rule files the config names).
pub async fn prometheus(config: &str, files: &[(&str, String)]) -> Service {
    prometheus_with_args(config, files, &[]).await
}

/// [`prometheus`] with extra command-line flags.
pub async fn prometheus_with_args(
    config: &str,
    files: &[(&str, String)],
    extra: &[&str],
) -> Service {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let file = dir.path().join("prometheus.yml");
    std::fs::write(&file, config).unwrap();
    let addr = loopback();
    let mut args = vec![
        format!("--config.file={}", file.display()),
        format!("--storage.tsdb.path={}", dir.path().join("data").display()),
        format!("--web.listen-address={addr}"),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let mut service = Service::spawn("prometheus", "prometheus", &args, dir, addr);
    service.wait_ready().await;
    service
}

/// Runs an instant query; returns the API's JSON answer.
pub async fn query(prometheus: SocketAddr, promql: &str) -> serde_json::Value {
    let encoded: String = url::form_urlencoded::byte_serialize(promql.as_bytes()).collect();
    let (_, body) = http_get(prometheus, &format!("/api/v1/query?query={encoded}"))
        .await
        .expect("Prometheus answers");
    serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}"))
}

/// Waits until `promql` returns at least one sample.
pub async fn wait_for_data(prometheus: SocketAddr, promql: &str, limit: Duration) {
    wait_until(&format!("data for {promql}"), limit, || async {
        let answer = query(prometheus, promql).await;
        answer["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    })
    .await;
}

/// The alerts Alertmanager holds now (`/api/v2/alerts`: firing, inhibited
/// and silenced ones, each with its `status.state` and `inhibitedBy`).
pub async fn alertmanager_alerts(alertmanager: SocketAddr) -> serde_json::Value {
    let (_, body) = http_get(alertmanager, "/api/v2/alerts")
        .await
        .expect("Alertmanager answers");
    serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}"))
}

// ---------------------------------------------------------------------------
// The alert stack: Prometheus evaluating rules, Alertmanager routing every
// alert to a webhook the test reads. Shared by the twin and the alert tests,
// so both see pages exactly as a person would receive them.
// ---------------------------------------------------------------------------

/// An Alertmanager webhook receiver on loopback that keeps every payload.
pub struct Webhook {
    server: super::http_server::TestServer,
}

impl Webhook {
    pub async fn start() -> Webhook {
        let server = super::http_server::TestServer::http().await;
        server.route("/hook", super::http_server::Reply::status(200));
        Webhook { server }
    }

    /// The URL to put in a `webhook_configs` entry.
    pub fn url(&self) -> String {
        self.server.url("/hook")
    }

    /// Every payload Alertmanager POSTed, oldest first.
    pub fn notifications(&self) -> Vec<serde_json::Value> {
        self.server
            .seen()
            .iter()
            .filter(|r| r.target == "/hook" && r.method == "POST")
            .map(|r| serde_json::from_slice(&r.body).expect("Alertmanager posts JSON"))
            .collect()
    }

    /// Every alert of every payload, oldest first, each with its `status`
    /// (`firing` or `resolved`), `labels` and `fingerprint`.
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        self.notifications()
            .iter()
            .flat_map(|n| n["alerts"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// The label sets whose newest notification says `firing`.
    pub fn firing(&self) -> Vec<BTreeMap<String, String>> {
        let mut newest: BTreeMap<String, serde_json::Value> = BTreeMap::new();
        for alert in self.alerts() {
            let key = match alert["fingerprint"].as_str() {
                Some(print) => print.to_string(),
                None => alert["labels"].to_string(),
            };
            newest.insert(key, alert);
        }
        newest
            .values()
            .filter(|a| a["status"] == "firing")
            .map(|a| labels_of(&a["labels"]))
            .collect()
    }

    /// Waits until `condition` holds for the alerts received so far
    /// (as [`Webhook::alerts`] returns them); panics naming `what`.
    pub async fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        condition: impl Fn(&[serde_json::Value]) -> bool,
    ) {
        wait_until(what, limit, || {
            let alerts = self.alerts();
            let holds = condition(&alerts);
            async move { holds }
        })
        .await;
    }
}

/// A JSON object of string labels as a sorted map.
pub fn labels_of(labels: &serde_json::Value) -> BTreeMap<String, String> {
    labels
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// One scrape target of the stack's Prometheus.
pub struct Target {
    pub job: String,
    pub addr: SocketAddr,
    /// Extra target labels (e.g. `namespace`, `cluster`), as a
    /// ServiceMonitor's relabelling would attach them.
    pub labels: Vec<(String, String)>,
}

impl Target {
    pub fn new(job: &str, addr: SocketAddr) -> Target {
        Target {
            job: job.to_string(),
            addr,
            labels: Vec::new(),
        }
    }

    pub fn label(mut self, name: &str, value: &str) -> Target {
        self.labels.push((name.to_string(), value.to_string()));
        self
    }
}

/// What the stack runs: the targets, the rule files (name, YAML text), the
/// Alertmanager inhibit rules (YAML text with a top-level `inhibit_rules:`,
/// as `alerts/alertmanager-inhibit.yml` is, or empty), and by how much
/// every duration in the rules is divided.
pub struct StackSpec {
    pub targets: Vec<Target>,
    pub rule_files: Vec<(String, String)>,
    pub inhibit_rules: String,
    pub time_scale: f64,
}

/// Prometheus (scrape and evaluation every second) alerting to
/// Alertmanager (group_wait and group_interval 1 s, one group per label
/// set), which notifies the webhook. Stopped on drop.
pub struct AlertStack {
    pub prometheus: Service,
    pub alertmanager: Service,
    pub webhook: Webhook,
}

impl AlertStack {
    pub async fn start(spec: StackSpec) -> AlertStack {
        Self::start_with_receivers(spec, "").await
    }

    /// [`AlertStack::start`] with more receivers in Alertmanager's config
    /// (YAML list entries, indented as under `receivers:`), which no route
    /// names: a platform's configured receivers, for checks that read
    /// Alertmanager's status.
    pub async fn start_with_receivers(spec: StackSpec, receivers: &str) -> AlertStack {
        let webhook = Webhook::start().await;
        let alertmanager = alertmanager(&alertmanager_config(
            &webhook,
            &spec.inhibit_rules,
            receivers,
        ))
        .await;
        let files: Vec<(&str, String)> = spec
            .rule_files
            .iter()
            .map(|(name, text)| (name.as_str(), scale_durations(text, spec.time_scale)))
            .collect();
        let config = prometheus_config(&spec, alertmanager.addr);
        // Alerts that fire before Prometheus has discovered Alertmanager
        // would otherwise wait for the default one-minute resend.
        let prometheus =
            prometheus_with_args(&config, &files, &["--rules.alert.resend-delay=1s"]).await;
        AlertStack {
            prometheus,
            alertmanager,
            webhook,
        }
    }

    /// Adds `target` to the running Prometheus and writes `rule_files`
    /// (name, YAML; durations divided by `time_scale`) over the files of
    /// those names the stack started with, then reloads Prometheus (SIGHUP)
    /// and waits until it lists the target: an exporter deployed with its
    /// rules after the stack started (as a ServiceMonitor and a
    /// PrometheusRule appearing together), never "down" or "absent" before
    /// it exists.
    pub async fn deploy(&self, target: &Target, rule_files: &[(String, String)], time_scale: f64) {
        for (name, text) in rule_files {
            std::fs::write(
                self.prometheus.path(name),
                scale_durations(text, time_scale),
            )
            .unwrap();
        }
        let path = self.prometheus.path("prometheus.yml");
        let mut config = std::fs::read_to_string(&path).unwrap();
        config.push_str(&scrape_job(target));
        std::fs::write(&path, config).unwrap();
        let status = Command::new("kill")
            .args(["-HUP", &self.prometheus.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let addr = self.prometheus.addr;
        let wanted = target.addr.to_string();
        wait_until(
            &format!("Prometheus lists {wanted}"),
            Duration::from_secs(30),
            || {
                let wanted = wanted.clone();
                async move {
                    http_get(addr, "/api/v1/targets")
                        .await
                        .is_some_and(|(_, body)| body.contains(&wanted))
                }
            },
        )
        .await;
    }

    /// An instant query against the stack's Prometheus.
    pub async fn query(&self, promql: &str) -> serde_json::Value {
        query(self.prometheus.addr, promql).await
    }

    /// The alerts Prometheus holds now (`/api/v1/alerts`), pending and
    /// firing, each with `labels` and `state`.
    pub async fn prometheus_alerts(&self) -> Vec<serde_json::Value> {
        let (_, body) = http_get(self.prometheus.addr, "/api/v1/alerts")
            .await
            .expect("Prometheus answers");
        let answer: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        answer["data"]["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The alerts Alertmanager holds now, with `status.state` (`active`,
    /// `suppressed`) and `status.inhibitedBy`.
    pub async fn alertmanager_alerts(&self) -> Vec<serde_json::Value> {
        alertmanager_alerts(self.alertmanager.addr)
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

fn alertmanager_config(webhook: &Webhook, inhibit_rules: &str, receivers: &str) -> String {
    format!(
        r#"
route:
  receiver: hook
  group_by: ['...']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: "{}"
        send_resolved: true
{}
{}"#,
        webhook.url(),
        receivers,
        inhibit_rules
    )
}

fn prometheus_config(spec: &StackSpec, alertmanager: SocketAddr) -> String {
    let rule_files: Vec<String> = spec
        .rule_files
        .iter()
        .map(|(name, _)| format!("\"{name}\""))
        .collect();
    let mut config = format!(
        "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\n\
         rule_files: [{}]\n\
         alerting:\n  alertmanagers:\n    - static_configs: [{{ targets: [\"{alertmanager}\"] }}]\n\
         scrape_configs:\n",
        rule_files.join(", ")
    );
    for target in &spec.targets {
        config.push_str(&scrape_job(target));
    }
    config
}

fn scrape_job(target: &Target) -> String {
    let labels: Vec<String> = target
        .labels
        .iter()
        .map(|(k, v)| format!("{k}: \"{v}\""))
        .collect();
    format!(
        "  - job_name: \"{job}-{port}\"\n    static_configs:\n      - targets: [\"{addr}\"]\n        labels: {{ job: \"{job}\", {labels} }}\n",
        job = target.job,
        port = target.addr.port(),
        addr = target.addr,
        labels = labels.join(", ")
    )
}

/// Divides every duration in alerting/recording rules by `factor`: the
/// `for:` and `keep_firing_for:` values and, inside expressions, range
/// selectors, subqueries and `offset`s. Ranges stay at least 3 s (three
/// scrapes at the stack's 1 s interval, so `rate` has samples) and `for`
/// values at least 1 s. Plain numbers in expressions (a threshold of 900
/// seconds, say) are not durations and are left alone.
pub fn scale_durations(rules_yaml: &str, factor: f64) -> String {
    if factor == 1.0 {
        return rules_yaml.to_string();
    }
    let mut rules: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(rules_yaml).expect("rule file is YAML");
    let groups = rules
        .get_mut("groups")
        .and_then(|g| g.as_sequence_mut())
        .expect("a rule file has groups");
    for group in groups {
        let Some(list) = group.get_mut("rules").and_then(|r| r.as_sequence_mut()) else {
            continue;
        };
        for rule in list.iter_mut().filter_map(|r| r.as_mapping_mut()) {
            for key in ["for", "keep_firing_for"] {
                if let Some(text) = rule.get(key).and_then(|v| v.as_str()) {
                    let scaled = scale_one(text, factor, 1.0);
                    rule.insert(key.into(), scaled.into());
                }
            }
            if let Some(expr) = rule.get("expr").and_then(|v| v.as_str()) {
                let scaled = scale_expr(expr, factor);
                rule.insert("expr".into(), scaled.into());
            }
        }
    }
    serde_yaml_ng::to_string(&rules).unwrap()
}

const DURATION: &str = r"(?:\d+(?:ms|[smhdwy]))+";

fn scale_expr(expr: &str, factor: f64) -> String {
    let range = regex::Regex::new(&format!(r"\[({DURATION})(?::({DURATION})?)?\]")).unwrap();
    let scaled = range.replace_all(expr, |c: &regex::Captures| {
        let window = scale_one(&c[1], factor, 3.0);
        match (c.get(0).unwrap().as_str().contains(':'), c.get(2)) {
            (true, Some(step)) => format!("[{window}:{}]", scale_one(step.as_str(), factor, 1.0)),
            (true, None) => format!("[{window}:]"),
            (false, _) => format!("[{window}]"),
        }
    });
    let offset = regex::Regex::new(&format!(r"\boffset\s+({DURATION})")).unwrap();
    offset
        .replace_all(&scaled, |c: &regex::Captures| {
            format!("offset {}", scale_one(&c[1], factor, 1.0))
        })
        .into_owned()
}

/// `15m` / 60 → `15s`; never below `floor` seconds; milliseconds kept.
fn scale_one(text: &str, factor: f64, floor: f64) -> String {
    let seconds = parse_duration(text) / factor;
    let millis = (seconds.max(floor) * 1000.0).round() as u64;
    if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else {
        format!("{millis}ms")
    }
}

/// A Prometheus duration (`1h30m`, `500ms`) in seconds.
pub fn parse_duration(text: &str) -> f64 {
    let part = regex::Regex::new(r"(\d+)(ms|[smhdwy])").unwrap();
    part.captures_iter(text)
        .map(|c| {
            let n: f64 = c[1].parse().unwrap();
            n * match &c[2] {
                "ms" => 0.001,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                "d" => 86_400.0,
                "w" => 604_800.0,
                _ => 31_536_000.0,
            }
        })
        .sum()
}
