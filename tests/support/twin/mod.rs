//! A twin of the broxiva platform from real parts on loopback (see
//! docs/twin.md): PostgreSQL 15 and Redis 7 configured as the checklist
//! says, the NestJS API (apps/api.js: @nestjs/terminus, TypeORM
//! migrations, prom-client metrics), the web tier (apps/web.js, Next.js's
//! routes and headers without Next.js), nginx terminating TLS with
//! certificates of a test CA named like Let's Encrypt's, dnsmasq answering
//! the platform's names with the Ingress addresses, docker-registry behind
//! ACR's token service (the fake of tests/support/acr.rs) trusting the
//! Entra ID of the Key Vault fake, and the platform's Kubernetes objects
//! in the fake API server.
//!
//! The shipped config runs against it unchanged: [`Twin::vouch_args`] are
//! only `--connect-to`, `--map-path` and `--kubeconfig`, and
//! [`Twin::vouch_env`] only `SSL_CERT_FILE` (the twin's CA as the trusted
//! roots).

pub mod backups;
pub mod cluster;
pub mod ingress;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::acr::FakeAcr;
use super::certs::{Identity, TestCa, Validity};
use super::dnsmasq::Dnsmasq;
use super::key_vault::{FakeKeyVault, FakeSecret};
use super::kube_api::FakeKube;
use super::monitoring::{AlertStack, StackSpec, Target};
use super::postgres::Postgres;
use super::redis::Redis;
use super::registry::{Auth, Registry, TokenIssuer};
use super::{free_port, node_tools};
use backups::Backups;
use cluster::{Platform, API_INGRESS_IP, WEB_INGRESS_IP};
use ingress::{AcrFront, Ingress, IngressSpec};

/// The shipped config, run as it ships.
pub const CONFIG: &str = "examples/broxiva/vouch.yaml";
/// The vault the shipped config reads, and Entra ID's host (the default
/// authority, which AKS's workload identity webhook also sets).
pub const VAULT_HOST: &str = "broxiva-kv.vault.azure.net";
pub const LOGIN_HOST: &str = "login.microsoftonline.com";
/// ACR's Entra ID audience, the one vouch asks tokens for by default.
pub const ACR_AUDIENCE: &str = "https://containerregistry.azure.net";
/// The repositories of the platform's images.
pub const REPOSITORIES: &[&str] = &["broxiva-api", "broxiva-web"];
/// Every secret the shipped Key Vault checks name, optional ones too.
pub const VAULT_SECRETS: &[&str] = &[
    "jwt-access-secret",
    "jwt-refresh-secret",
    "session-secret",
    "encryption-key",
    "kyc-encryption-key",
    "postgres-password",
    "postgres-url",
    "internal-api-key",
    "webhook-secret",
    "stripe-secret-key",
    "stripe-webhook-secret",
    "paypal-client-id",
    "paypal-client-secret",
    "sendgrid-api-key",
    "redis-password",
    "redis-url",
    "google-oauth-client-id",
    "google-oauth-client-secret",
    "facebook-app-id",
    "facebook-app-secret",
    "openai-api-key",
    "sentry-dsn",
    "datadog-api-key",
];
/// Every duration in the shipped alert rules is divided by this
/// (`scale_durations`): a `for: 5m` holds 5 s, a `[5m]` range spans 5 s.
/// "N scaled minutes" are N minutes of the rules' own clock: N seconds of
/// wall time. Nothing else is scaled: vouch's checks run on the shipped
/// intervals (15 s to 10 min), and the checks' own PromQL windows are
/// real time.
pub const TIME_SCALE: f64 = 60.0;
/// The shipped rules as prometheus-operator loads a PrometheusRule of the
/// namespace (`<namespace>-<name>-<uid>.yaml`).
pub const RULES_FILE: &str = "broxiva-production-vouch-rules.yaml";
pub const PROMETHEUS_HOST: &str = "kube-prometheus-stack-prometheus.monitoring.svc";
pub const ALERTMANAGER_HOST: &str = "kube-prometheus-stack-alertmanager.monitoring.svc";
/// The receivers the platform's Alertmanager has (the checklist's email,
/// Slack and PagerDuty); no route sends to them here.
const RECEIVERS: &str = r##"  - name: email
    email_configs:
      - { to: oncall@broxiva.com, from: alertmanager@broxiva.com, smarthost: "127.0.0.1:25", require_tls: false }
  - name: slack
    slack_configs:
      - { api_url: "http://127.0.0.1:9/slack", channel: "#alerts" }
  - name: pagerduty
    pagerduty_configs:
      - { routing_key: twin-routing-key, url: "http://127.0.0.1:9/pagerduty" }
"##;

/// Age of every secret in the healthy twin: rotated a month ago.
pub const SECRET_AGE_DAYS: i64 = 30;
const DB_PASSWORD: &str = "twin-db-password";

/// A Node.js app of apps/, killed on drop, restartable.
pub struct NodeApp {
    script: PathBuf,
    pub port: u16,
    env: Vec<(String, String)>,
    child: Option<Child>,
    log: PathBuf,
}

impl NodeApp {
    fn new(name: &str, dir: &Path, env: Vec<(String, String)>) -> NodeApp {
        NodeApp {
            script: Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/support/twin/apps")
                .join(format!("{name}.js")),
            port: free_port(),
            env,
            child: None,
            log: dir.join(format!("{name}.log")),
        }
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::File::create(&self.log).unwrap();
        let child = Command::new("node")
            .arg(&self.script)
            .env("NODE_PATH", node_tools::prefix().join("twin/node_modules"))
            .env("PORT", self.port.to_string())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("node is installed (scripts/test.sh installs nodejs)");
        self.child = Some(child);
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `GET path` answers `status` (plain HTTP on loopback).
    pub fn wait_for(&mut self, path: &str, status: u16, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if http_status(self.port, path) == Some(status) {
                return;
            }
            if let Some(exit) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!(
                    "{} exited with {exit}:\n{}",
                    self.script.display(),
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not answer {status} on {path} within {limit:?}:\n{}",
                self.script.display(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for NodeApp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The status of a plain HTTP/1.0 `GET path` on loopback, if it answers.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut head = [0u8; 16];
    let n = stream.read(&mut head).ok()?;
    std::str::from_utf8(&head[..n])
        .ok()?
        .get(9..12)?
        .parse()
        .ok()
}

pub struct Twin {
    pub dir: tempfile::TempDir,
    pub platform: Platform,
    pub kube: FakeKube,
    pub postgres: Postgres,
    pub redis: Redis,
    pub api: NodeApp,
    pub web: NodeApp,
    pub ingress: Ingress,
    pub dns: Dnsmasq,
    /// Azure Key Vault `broxiva-kv` and Entra ID (the in-process fake),
    /// with its own CA as Azure's roots. Entra ID issues tokens for the
    /// vault's audience and ACR's.
    pub vault: FakeKeyVault,
    /// ACR `broxivaprodacr`: docker-registry with token auth behind the
    /// ingress, and ACR's token service (`/oauth2/exchange` and
    /// `/oauth2/token`, the fake of tests/support/acr.rs, as issue 21
    /// allows) trusting the Entra ID tokens of ACR's audience; the
    /// workload identity may pull both repositories (AcrPull).
    pub registry: Registry,
    pub acr: FakeAcr,
    /// The database backups in Azurite (account broxivastorage).
    pub backups: Backups,
    /// Namespace monitoring: Prometheus scraping the API, the web tier and
    /// vouch (added when [`Twin::serve`] runs it) with
    /// the shipped rules; Alertmanager with the shipped inhibit rules,
    /// notifying a webhook the tests read.
    pub monitoring: AlertStack,
    ca: TestCa,
    issuer: TestCa,
    roots: PathBuf,
    /// How long [`Twin::start`] took.
    pub started_in: Duration,
}

/// Writes `identity` as the tls.crt of Secret `secret` (what the overlay
/// mounts under /etc/vouch/tls) and a key beside it for nginx.
fn write_cert(root: &Path, secret: &str, identity: &Identity) -> (PathBuf, PathBuf) {
    let dir = root.join("etc/tls").join(secret);
    std::fs::create_dir_all(&dir).unwrap();
    let cert = identity.write_chain_pem(&dir, "tls.crt");
    let keys = root.join("keys").join(secret);
    std::fs::create_dir_all(&keys).unwrap();
    let (_, key) = super::pem::write_identity(identity, &keys);
    (cert, key)
}

fn unix(at: DateTime<Utc>) -> i64 {
    at.timestamp()
}

impl Twin {
    /// The twin with vouch's rules loaded in its Prometheus, as on a
    /// platform where vouch is deployed (the `vouch check` runs).
    pub async fn start() -> Twin {
        Self::start_with_rules(true).await
    }

    /// The twin before vouch is deployed: its Prometheus holds none of
    /// vouch's rules until [`Twin::serve`] deploys vouch with them (else
    /// VouchAbsent would fire while the twin starts).
    pub async fn start_without_vouch() -> Twin {
        Self::start_with_rules(false).await
    }

    async fn start_with_rules(vouch_rules: bool) -> Twin {
        let started = Instant::now();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let root = dir.path();
        let platform = Platform::default();

        // Certificates as cert-manager would have issued them.
        let ca = TestCa::new("Twin ISRG Root X1");
        let issuer = ca.intermediate(
            "Let's Encrypt R11 (twin)",
            Validity::ValidFor { days: 3650 },
        );
        let roots = ca.write_pem(root);
        let issue = |names: &[&str], not_after: DateTime<Utc>| {
            issuer.issue(
                names,
                Validity::Between {
                    not_before: unix(platform.cert_not_before),
                    not_after: unix(not_after),
                },
            )
        };
        let api_cert = write_cert(
            root,
            "broxiva-api-tls-production",
            &issue(&["api.broxiva.com"], platform.api_cert_not_after),
        );
        let web_cert = write_cert(
            root,
            "broxiva-web-tls-production",
            &issue(
                &["broxiva.com", "www.broxiva.com"],
                platform.web_cert_not_after,
            ),
        );

        // Data stores, as the checklist configures them.
        let postgres = Postgres::with_settings(&[("max_connections", "200")]);
        {
            let session = postgres.session().await;
            for statement in [
                format!("CREATE ROLE broxiva LOGIN PASSWORD '{DB_PASSWORD}'"),
                "CREATE DATABASE broxiva OWNER broxiva".to_string(),
            ] {
                session
                    .batch_execute(&statement)
                    .await
                    .expect("create the broxiva database");
            }
        }
        let redis = Redis::with_args(&[
            "--maxmemory",
            "1gb",
            "--maxmemory-policy",
            "allkeys-lru",
            "--appendonly",
            "yes",
            "--save",
            "3600 1",
        ]);
        let database_url = format!(
            "postgres://broxiva:{DB_PASSWORD}@127.0.0.1:{}/broxiva",
            postgres.port
        );
        let redis_url = format!("redis://127.0.0.1:{}/0", redis.port);
        let secrets = root.join("etc/secrets");
        std::fs::create_dir_all(&secrets).unwrap();
        std::fs::write(secrets.join("postgres-url"), &database_url).unwrap();
        std::fs::write(secrets.join("redis-url"), &redis_url).unwrap();

        // The API and web tiers, running the Deployments' current commits.
        let api_commit = platform.api_tags.last().unwrap().clone();
        let web_commit = platform.web_tags.last().unwrap().clone();
        let mut api = NodeApp::new(
            "api",
            root,
            vec![
                ("DATABASE_URL".into(), database_url),
                ("REDIS_URL".into(), redis_url),
                ("COMMIT".into(), api_commit),
            ],
        );
        let mut web = NodeApp::new("web", root, vec![("COMMIT".into(), web_commit)]);
        api.start();
        web.start();
        api.wait_for("/api/health/ready", 200, Duration::from_secs(60));
        web.wait_for("/api/health", 200, Duration::from_secs(20));

        let monitoring = start_monitoring(api.port, web.port, vouch_rules).await;
        let vault = start_vault(root, &roots).await;
        let (registry, acr) = start_registry(&platform, &vault).await;
        let acr_cert = write_cert(
            root,
            "acr",
            &issuer.issue(&[cluster::REGISTRY], Validity::ValidFor { days: 365 }),
        );
        let ingress = Ingress::start(
            &root.join("nginx"),
            IngressSpec {
                acr: Some(AcrFront {
                    cert: acr_cert,
                    registry: registry.port,
                    token_service: acr.port,
                }),
                api_upstream: api.port,
                web_upstream: web.port,
                www_redirects: true,
                hsts: true,
                api_cert,
                web_cert,
            },
        );
        let dns = Dnsmasq::start(&[
            &format!("--host-record=api.broxiva.com,{API_INGRESS_IP}"),
            &format!("--host-record=broxiva.com,{WEB_INGRESS_IP}"),
            &format!("--host-record=www.broxiva.com,{WEB_INGRESS_IP}"),
        ]);

        let kube = FakeKube::start().await;
        cluster::populate(&kube, &platform);

        let backups = Backups::start(root, &issuer, &roots).await;

        Twin {
            dir,
            platform,
            kube,
            postgres,
            redis,
            api,
            web,
            ingress,
            dns,
            vault,
            registry,
            acr,
            backups,
            monitoring,
            ca,
            issuer,
            roots,
            started_in: started.elapsed(),
        }
    }

    /// The mapping that points the shipped config at the twin: its names
    /// and addresses to loopback ports, /etc/vouch to the twin's files,
    /// and the fake cluster's kubeconfig.
    pub fn vouch_args(&self) -> Vec<String> {
        let ingress = format!("127.0.0.1:{}", self.ingress.port);
        let dns: SocketAddr = self.dns.server().parse().unwrap();
        let mut rules: Vec<String> = [
            "api.broxiva.com:443",
            "broxiva.com:443",
            "www.broxiva.com:443",
            &format!("{}:443", cluster::REGISTRY),
            &format!("{API_INGRESS_IP}:443"),
            &format!("{WEB_INGRESS_IP}:443"),
        ]
        .iter()
        .map(|from| format!("{from}:{ingress}"))
        .collect();
        rules.push(format!(
            "{}:443:127.0.0.1:{}",
            backups::HOST,
            self.backups.azurite.port
        ));
        rules.push(format!(
            "{PROMETHEUS_HOST}:9090:{}",
            self.monitoring.prometheus.addr
        ));
        rules.push(format!(
            "{ALERTMANAGER_HOST}:9093:{}",
            self.monitoring.alertmanager.addr
        ));
        for host in [VAULT_HOST, LOGIN_HOST] {
            rules.push(format!("{host}:443:127.0.0.1:{}", self.vault.addr.port()));
        }
        rules.push(format!(
            "broxiva-api.broxiva-production.svc:4000:127.0.0.1:{}",
            self.api.port
        ));
        rules.push(format!(
            "broxiva-web.broxiva-production.svc:3000:127.0.0.1:{}",
            self.web.port
        ));
        // Public resolvers and the system's own name servers ask dnsmasq.
        let mut servers: Vec<String> = ["1.1.1.1", "8.8.8.8", "9.9.9.9"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        servers.extend(system_name_servers());
        for server in servers {
            rules.push(format!("{server}:53:{dns}"));
        }
        let mut args = Vec::new();
        for rule in rules {
            args.push("--connect-to".to_string());
            args.push(rule);
        }
        args.push("--map-path".into());
        args.push(format!(
            "/etc/vouch={}",
            self.dir.path().join("etc").display()
        ));
        args.push("--kubeconfig".into());
        args.push(self.kube.kubeconfig_path().display().to_string());
        args
    }

    /// The environment of a vouch run: the twin's CA and the Azure fake's
    /// as the only roots, and what AKS's workload identity webhook sets
    /// in the pod (client, tenant, the projected token's file, the
    /// authority).
    pub fn vouch_env(&self) -> Vec<(String, String)> {
        vec![
            ("SSL_CERT_FILE".into(), self.roots.display().to_string()),
            ("AZURE_CLIENT_ID".into(), super::key_vault::CLIENT_ID.into()),
            ("AZURE_TENANT_ID".into(), super::key_vault::TENANT.into()),
            (
                "AZURE_FEDERATED_TOKEN_FILE".into(),
                self.federated_token_file().display().to_string(),
            ),
            (
                "AZURE_AUTHORITY_HOST".into(),
                format!("https://{LOGIN_HOST}/"),
            ),
            // The backup check's `identity: environment` with the storage
            // account's key (it wins over the workload identity above;
            // Azurite does not take Entra ID tokens from the fake).
            (
                "AZURE_STORAGE_ACCOUNT_KEY".into(),
                self.backups.azurite.key.clone(),
            ),
        ]
    }

    /// The workload identity's projected service account token, where
    /// `AZURE_FEDERATED_TOKEN_FILE` points.
    pub fn federated_token_file(&self) -> PathBuf {
        self.dir.path().join("azure-identity-token")
    }

    /// Puts `name` into the vault, written `age_days` ago.
    pub fn put_secret(&self, name: &str, age_days: i64) {
        self.vault.put(
            name,
            FakeSecret::aged(&format!("twin-value-of-{name}"), age_days),
        );
    }

    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    /// Issues a new certificate for api.broxiva.com valid until
    /// `not_after`, as cert-manager would: the Secret's tls.crt, the
    /// certificate nginx serves (reloaded) and the Certificate's status.
    pub fn reissue_api_certificate(&mut self, not_after: DateTime<Utc>) {
        let identity = self.issuer.issue(
            &["api.broxiva.com"],
            Validity::Between {
                not_before: unix(self.platform.cert_not_before),
                not_after: unix(not_after),
            },
        );
        let files = write_cert(self.dir.path(), "broxiva-api-tls-production", &identity);
        let mut spec = self.ingress.spec.clone();
        spec.api_cert = files;
        self.ingress.reload(spec);
        self.kube.renew_certificate(
            cluster::NAMESPACE,
            "broxiva-api-tls-production",
            self.platform.cert_not_before,
            not_after,
        );
    }

    /// Restarts dnsmasq answering api.broxiva.com with `api_address`.
    pub fn answer_api_with(&mut self, api_address: &str) {
        // On the same port: a running `vouch serve` keeps its mapping.
        self.dns.restart(&[
            &format!("--host-record=api.broxiva.com,{api_address}"),
            &format!("--host-record=broxiva.com,{WEB_INGRESS_IP}"),
            &format!("--host-record=www.broxiva.com,{WEB_INGRESS_IP}"),
        ]);
    }

    /// A session as the application's role (broxiva), as the API's
    /// connection pool holds them.
    pub async fn app_session(&self) -> tokio_postgres::Client {
        let url =
            std::fs::read_to_string(self.dir.path().join("etc/secrets/postgres-url")).unwrap();
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect as broxiva");
        tokio::spawn(connection);
        client
    }

    /// A superuser session on the broxiva database (the test's own).
    pub async fn broxiva_session(&self) -> tokio_postgres::Client {
        let url = format!(
            "postgres://postgres:{}@127.0.0.1:{}/broxiva",
            super::postgres::PASSWORD,
            self.postgres.port
        );
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect to the twin's database");
        tokio::spawn(connection);
        client
    }

    /// `vouch serve` of the shipped config against the twin (the same
    /// mapping as [`Twin::check`]), scraped by the twin's Prometheus from
    /// then on, with `extra` arguments (`--skip`).
    pub async fn serve(&self, extra: &[String]) -> super::vouch::Daemon {
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join(CONFIG);
        let mut args = self.vouch_args();
        args.extend(extra.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env = self.vouch_env();
        let mut env: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        env.push(("RUST_LOG", "info"));
        let daemon = super::vouch::Daemon::start_with_args_env(&config, &args, &env).await;
        // vouch's ServiceMonitor and PrometheusRule, deployed with it.
        let target = Target::new("vouch", daemon.addr).label("namespace", cluster::NAMESPACE);
        self.monitoring
            .deploy(&target, &[(RULES_FILE.into(), shipped_rules())], TIME_SCALE)
            .await;
        daemon
    }

    /// Waits until the twin's Prometheus has the API's request series
    /// again (after the API restarted): the checks' queries need them.
    pub async fn wait_for_api_series(&self) {
        super::monitoring::wait_for_data(
            self.monitoring.prometheus.addr,
            "broxiva_api_request_duration_seconds_count{job=\"broxiva-api\"}",
            Duration::from_secs(30),
        )
        .await;
    }

    /// `vouch check` of the shipped config against the twin, with `extra`
    /// arguments (`--only`, `--skip`): exit code and the JSON report.
    pub async fn check(&self, extra: &[String]) -> (i32, serde_json::Value) {
        let mut args = vec![
            "check".to_string(),
            "--config".into(),
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(CONFIG)
                .display()
                .to_string(),
            "--format".into(),
            "json".into(),
            "--fail-on".into(),
            "info".into(),
        ];
        args.extend(self.vouch_args());
        args.extend(extra.iter().cloned());
        let output = tokio::process::Command::new(super::vouch::bin())
            .args(&args)
            .envs(self.vouch_env())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .await
            .expect("run vouch");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let report = serde_json::from_str(&stdout).unwrap_or_else(|err| {
            panic!(
                "vouch check's JSON report ({err}): {stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
        (output.status.code().unwrap_or(-1), report)
    }
}

fn read_repo_file(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// The shipped rules (alerts/vouch.rules.yml, the PrometheusRule's groups).
pub fn shipped_rules() -> String {
    read_repo_file("alerts/vouch.rules.yml")
}

/// Prometheus and Alertmanager of namespace monitoring, with the shipped
/// rules and inhibit rules; returns once the API's request series are in.
async fn start_monitoring(api: u16, web: u16, vouch_rules: bool) -> AlertStack {
    let rules = if vouch_rules {
        shipped_rules()
    } else {
        "groups: []\n".to_string()
    };
    let loopback = |port: u16| -> SocketAddr { format!("127.0.0.1:{port}").parse().unwrap() };
    let target = |job: &str, port: u16| {
        Target::new(job, loopback(port)).label("namespace", cluster::NAMESPACE)
    };
    let stack = AlertStack::start_with_receivers(
        StackSpec {
            targets: vec![target("broxiva-api", api), target("broxiva-web", web)],
            rule_files: vec![(RULES_FILE.into(), rules)],
            inhibit_rules: read_repo_file("alerts/alertmanager-inhibit.yml"),
            time_scale: TIME_SCALE,
        },
        RECEIVERS,
    )
    .await;
    // Prometheus' own scrapes are the API's first traffic.
    super::monitoring::wait_for_data(
        stack.prometheus.addr,
        "broxiva_api_request_duration_seconds_count{job=\"broxiva-api\"}",
        Duration::from_secs(30),
    )
    .await;
    stack
}

/// docker-registry with token auth whose realm is ACR's token endpoint,
/// holding a build of every commit tag of the two Deployments; and ACR's
/// token service, which exchanges the Entra ID tokens `entra` issued for
/// ACR's audience and grants the workload identity pull on both
/// repositories.
async fn start_registry(platform: &Platform, entra: &FakeKeyVault) -> (Registry, FakeAcr) {
    let registry = Registry::start_new(Auth::Token {
        realm: format!("https://{}/oauth2/token", cluster::REGISTRY),
        issuer: Box::new(TokenIssuer::new()),
    });
    for (repository, tags) in REPOSITORIES
        .iter()
        .zip([&platform.api_tags, &platform.web_tags])
    {
        for tag in tags {
            registry.push_build(repository, tag);
        }
    }
    let acr = FakeAcr::start(entra.token_principals_for(ACR_AUDIENCE)).await;
    acr.front(&registry);
    for repository in REPOSITORIES {
        acr.grant_pull(super::key_vault::CLIENT_ID, repository);
    }
    (registry, acr)
}

/// The vault with every secret of the shipped checks, a month old; its CA
/// appended to the twin's roots, and the workload identity's projected
/// token written where `AZURE_FEDERATED_TOKEN_FILE` will point.
async fn start_vault(root: &Path, roots: &Path) -> FakeKeyVault {
    let vault = FakeKeyVault::start_as(
        &[VAULT_HOST, LOGIN_HOST],
        Some(&format!("https://{VAULT_HOST}")),
    )
    .await;
    // A real vault's challenge names its cloud's audience; Entra ID also
    // issues tokens for ACR's (the workload identity holds AcrPull).
    vault.set_challenge("login.windows.net", "https://vault.azure.net");
    vault.issue_also_for(ACR_AUDIENCE);
    for name in VAULT_SECRETS {
        vault.put(
            name,
            FakeSecret::aged(&format!("twin-value-of-{name}"), SECRET_AGE_DAYS),
        );
    }
    let mut bundle = std::fs::read_to_string(roots).unwrap();
    bundle.push_str(&vault.ca.pem());
    std::fs::write(roots, bundle).unwrap();
    std::fs::write(
        root.join("azure-identity-token"),
        super::key_vault::FEDERATED_TOKEN,
    )
    .unwrap();
    vault
}

/// The name servers of /etc/resolv.conf (the system resolver's).
fn system_name_servers() -> Vec<String> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.strip_prefix("nameserver"))
        .map(|server| server.trim().to_string())
        .filter(|server| server.parse::<std::net::IpAddr>().is_ok())
        .collect()
}
