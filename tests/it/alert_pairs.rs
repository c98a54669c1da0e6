//! The bundled rules and inhibit rules in a real Prometheus and a real
//! Alertmanager (every duration divided by 60), fed by real vouch
//! replicas: install `shop` (two replicas) breaks two TLS certificates,
//! four backups, a database, a cache, three Key Vault secrets and a DNS
//! record; install `blog` runs checks of the same names that pass. For
//! 13 warning/critical and specific/generic pairs, exactly one of the two
//! reaches the webhook and Alertmanager holds the other as inhibited, and
//! each failing check pages once; nothing of `shop` mutes or hides
//! anything of `blog`. Then the replicas stop: one down is a warning,
//! none up is the critical page that mutes the per-replica warnings.
//!
//! The second test takes every pair the inhibit rules define from the
//! generated rules and posts the alerts, labelled as Prometheus would send
//! them, to a live Alertmanager: each source pages once, each target is
//! held back, and the same target in another install still pages.
use crate::support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use support::certs::{self_signed_with, Validity};
use support::dnsmasq::Dnsmasq;
use support::http_server::{Reply, TestServer};
use support::key_vault::{now, FakeKeyVault, FakeSecret, CLIENT_ID, CLIENT_SECRET, TENANT};
use support::monitoring::{labels_of, AlertStack, StackSpec, Target};
use support::vouch::Daemon;
use support::{closed_port, wait_until, write_config};

fn backup_dir(files: &[(&str, u64, u64)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes, days_old) in files {
        let file = std::fs::File::create(dir.path().join(name)).unwrap();
        file.set_len(*bytes).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(days_old * 86_400))
            .unwrap();
    }
    dir
}

struct Install<'a> {
    tls_port: u16,
    www_port: u16,
    old_backups: &'a Path,
    small_backups: &'a Path,
    vault: &'a FakeKeyVault,
    vault_ca: &'a Path,
    /// Only shop: the checks whose failures need no counterpart in blog.
    shop: Option<Shop<'a>>,
}

struct Shop<'a> {
    empty_backups: &'a Path,
    shrunk_backups: &'a Path,
    dns: [String; 2],
}

fn vault_block(install: &Install, secrets: &str) -> String {
    format!(
        r#"    secret_age:
      key_vault:
        url: "{vault}"
        auth: client_secret
        tenant_id: {tenant}
        client_id: {client_id}
        authority_host: "{vault}"
        client_secret_env: VOUCH_KV_CLIENT_SECRET
        ca_file: "{ca}"
      secrets: {secrets}
"#,
        vault = install.vault.url(),
        tenant = TENANT,
        client_id = CLIENT_ID,
        ca = install.vault_ca.display(),
    )
}

fn config(install: &Install) -> String {
    let mut yaml = format!(
        r#"
defaults: {{ interval: 1s, timeout: 1s }}
checks:
  - name: api-cert
    section: infrastructure/tls
    severity: critical
    tls: {{ host: localhost, connect_to: 127.0.0.1, port: {tls_port}, insecure_skip_verify: true, min_valid_for: 21d }}
  - name: www-cert
    section: infrastructure/tls
    severity: warning
    tls: {{ host: localhost, connect_to: 127.0.0.1, port: {www_port}, insecure_skip_verify: true, min_valid_for: 21d }}
  - name: db-backup-old
    section: pre-deploy/database
    severity: critical
    backup: {{ url: "file://{old}", max_age: 1d }}
  - name: db-backup-small
    section: pre-deploy/database
    severity: warning
    backup: {{ url: "file://{small}", min_size: 1MB }}
  - name: vault-secrets
    section: pre-deploy/secrets
    severity: critical
    interval: 2s
    timeout: 2s
{vault}"#,
        tls_port = install.tls_port,
        www_port = install.www_port,
        old = install.old_backups.display(),
        small = install.small_backups.display(),
        vault = vault_block(install, "[{ name: jwt-secret, min_valid_for: 14d }]"),
    );
    let Some(shop) = &install.shop else {
        return yaml;
    };
    yaml.push_str(&format!(
        r#"  - name: db-backup-missing
    section: pre-deploy/database
    severity: critical
    backup: {{ url: "file://{empty}" }}
  - name: db-backup-shrunk
    section: pre-deploy/database
    severity: warning
    backup: {{ url: "file://{shrunk}", max_shrink: 50% }}
  - name: vault-missing
    section: pre-deploy/secrets
    severity: critical
    interval: 2s
    timeout: 2s
{missing}  - name: vault-overdue
    section: pre-deploy/secrets
    severity: warning
    interval: 2s
    timeout: 2s
{overdue}  - name: api-dns
    section: infrastructure/dns
    severity: critical
    dns: {{ name: api.test, servers: ["{dns_a}", "{dns_b}"], propagation: true, expect: {{ answers: [10.1.2.3] }} }}
  - name: database
    section: post-deploy/database
    severity: critical
    postgres: {{ url_env: VOUCH_PG_URL, tls: disable }}
  - name: cache
    section: post-deploy/cache
    severity: warning
    redis: {{ url_env: VOUCH_REDIS_URL }}
"#,
        empty = shop.empty_backups.display(),
        shrunk = shop.shrunk_backups.display(),
        missing = vault_block(install, "[{ name: absent-secret }]"),
        overdue = vault_block(install, "[{ name: old-secret, max_age: 90d }]"),
        dns_a = shop.dns[0],
        dns_b = shop.dns[1],
    ));
    yaml
}

/// The alerts Alertmanager holds now, by (alertname, check, severity,
/// namespace, instance): `suppressed` or `active`.
async fn held(stack: &AlertStack) -> BTreeMap<(String, String, String, String, String), String> {
    stack
        .alertmanager_alerts()
        .await
        .iter()
        .map(|a| {
            let l = labels_of(&a["labels"]);
            let get = |k: &str| l.get(k).cloned().unwrap_or_default();
            (
                (
                    get("alertname"),
                    get("check"),
                    get("severity"),
                    get("namespace"),
                    get("instance"),
                ),
                a["status"]["state"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

/// How many firing notifications of `alertname` (and `check`, `severity`
/// when given) reached the webhook, over every replica and time.
fn notified(stack: &AlertStack, alertname: &str, check: &str, severity: &str) -> usize {
    stack
        .webhook
        .alerts()
        .iter()
        .filter(|a| a["status"] == "firing")
        .map(|a| labels_of(&a["labels"]))
        .filter(|l| {
            l["alertname"] == alertname
                && (check.is_empty() || l.get("check").is_some_and(|c| c == check))
                && (severity.is_empty() || l["severity"] == severity)
        })
        .count()
}

fn key(
    alertname: &str,
    check: &str,
    severity: &str,
    instance: &str,
) -> (String, String, String, String, String) {
    (
        alertname.into(),
        check.into(),
        severity.into(),
        "shop".into(),
        instance.into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_pair_notifies_once_and_the_other_alert_is_inhibited() {
    // shop: the certificate of a critical check with 15 days left (the
    // check wants 21), that of a warning check with 3 days left, a backup
    // 2 days old (max 1d), a 10-byte backup (min 1MB), a secret expiring
    // in 3 days (min_valid_for 14d), PostgreSQL and Redis unreachable.
    let expiring = TestServer::https(self_signed_with(
        &["localhost"],
        Validity::ValidFor { days: 15 },
    ))
    .await;
    expiring.route("/", Reply::status(200));
    let expiring_soon = TestServer::https(self_signed_with(
        &["localhost"],
        Validity::ValidFor { days: 3 },
    ))
    .await;
    expiring_soon.route("/", Reply::status(200));
    let old = backup_dir(&[("pg-1.sql.gz", 2_000_000, 2)]);
    let small = backup_dir(&[("pg-1.sql.gz", 10, 0)]);
    let vault = FakeKeyVault::start().await;
    let vault_dir = tempfile::tempdir().unwrap();
    let vault_ca = vault.write_ca(vault_dir.path());
    let mut jwt = FakeSecret::aged("VALUE-of-jwt-secret", 10);
    jwt.exp = Some(now() + 3 * 86_400);
    vault.put("jwt-secret", jwt);
    vault.put("old-secret", FakeSecret::aged("VALUE-of-old-secret", 100));
    // Nothing at all, and a backup half the size of the one before.
    let empty = backup_dir(&[]);
    let shrunk = backup_dir(&[("pg-1.sql.gz", 2_000_000, 1), ("pg-2.sql.gz", 600_000, 0)]);
    // Two name servers: one gives the expected answer, one another.
    let dns_right = Dnsmasq::start(&["--address=/api.test/10.1.2.3"]);
    let dns_wrong = Dnsmasq::start(&["--address=/api.test/10.9.9.9"]);
    let shop_config = write_config(&config(&Install {
        tls_port: expiring.addr.port(),
        www_port: expiring_soon.addr.port(),
        old_backups: old.path(),
        small_backups: small.path(),
        vault: &vault,
        vault_ca: &vault_ca,
        shop: Some(Shop {
            empty_backups: empty.path(),
            shrunk_backups: shrunk.path(),
            dns: [dns_right.server(), dns_wrong.server()],
        }),
    }));
    // blog: the same check names, all passing.
    let fine = TestServer::https(self_signed_with(
        &["localhost"],
        Validity::ValidFor { days: 80 },
    ))
    .await;
    fine.route("/", Reply::status(200));
    let fresh = backup_dir(&[("pg-1.sql.gz", 2_000_000, 0)]);
    let blog_vault = FakeKeyVault::start().await;
    let blog_vault_dir = tempfile::tempdir().unwrap();
    let blog_vault_ca = blog_vault.write_ca(blog_vault_dir.path());
    let mut jwt = FakeSecret::aged("VALUE-of-jwt-secret", 10);
    jwt.exp = Some(now() + 60 * 86_400);
    blog_vault.put("jwt-secret", jwt);
    let blog_config = write_config(&config(&Install {
        tls_port: fine.addr.port(),
        www_port: fine.addr.port(),
        old_backups: fresh.path(),
        small_backups: fresh.path(),
        vault: &blog_vault,
        vault_ca: &blog_vault_ca,
        shop: None,
    }));
    let pg_url = format!("postgres://vouch@127.0.0.1:{}/vouch", closed_port());
    let redis_url = format!("redis://127.0.0.1:{}", closed_port());
    let env = [
        ("VOUCH_PG_URL", pg_url.as_str()),
        ("VOUCH_REDIS_URL", redis_url.as_str()),
        ("VOUCH_KV_CLIENT_SECRET", CLIENT_SECRET),
    ];
    let shop_a = Daemon::start_with_env(&shop_config.path, &env).await;
    let shop_b = Daemon::start_with_env(&shop_config.path, &env).await;
    let blog = Daemon::start_with_env(&blog_config.path, &env).await;

    let stack = AlertStack::start(StackSpec {
        targets: vec![
            Target::new("vouch", shop_a.addr).label("namespace", "shop"),
            Target::new("vouch", shop_b.addr).label("namespace", "shop"),
            Target::new("vouch", blog.addr).label("namespace", "blog"),
        ],
        rule_files: vec![(
            "vouch.rules.yml".into(),
            std::fs::read_to_string("alerts/vouch.rules.yml").unwrap(),
        )],
        inhibit_rules: std::fs::read_to_string("alerts/alertmanager-inhibit.yml").unwrap(),
        time_scale: 60.0,
    })
    .await;

    // (source that pages, target that must be held back) for one check.
    // The critical api-cert, 15 days left of its 21: one page, critical,
    // the check's severity. The warning www-cert, 3 days left: its
    // critical tier (under 7 days) mutes its warning tier and the generic
    // warning.
    let pairs = [
        (
            ("VouchCertificateExpiring", "api-cert", "critical"),
            ("VouchCheckFailing", "api-cert", "critical"),
        ),
        (
            ("VouchCertificateExpiring", "www-cert", "critical"),
            ("VouchCertificateExpiring", "www-cert", "warning"),
        ),
        (
            ("VouchCertificateExpiring", "www-cert", "critical"),
            ("VouchCheckFailing", "www-cert", "warning"),
        ),
        (
            ("VouchSecretExpiring", "vault-secrets", "critical"),
            ("VouchCheckFailing", "vault-secrets", "critical"),
        ),
        (
            ("VouchBackupTooOld", "db-backup-old", "critical"),
            ("VouchCheckFailing", "db-backup-old", "critical"),
        ),
        (
            ("VouchBackupTooSmall", "db-backup-small", "warning"),
            ("VouchCheckFailing", "db-backup-small", "warning"),
        ),
        (
            ("VouchDatabaseUnreachable", "database", "critical"),
            ("VouchCheckFailing", "database", "critical"),
        ),
        (
            ("VouchRedisUnreachable", "cache", "warning"),
            ("VouchCheckFailing", "cache", "warning"),
        ),
        (
            ("VouchBackupMissing", "db-backup-missing", "critical"),
            ("VouchCheckFailing", "db-backup-missing", "critical"),
        ),
        (
            ("VouchBackupShrunk", "db-backup-shrunk", "warning"),
            ("VouchCheckFailing", "db-backup-shrunk", "warning"),
        ),
        (
            ("VouchSecretMissing", "vault-missing", "critical"),
            ("VouchCheckFailing", "vault-missing", "critical"),
        ),
        (
            ("VouchSecretRotationOverdue", "vault-overdue", "warning"),
            ("VouchCheckFailing", "vault-overdue", "warning"),
        ),
        (
            ("VouchDnsServersDisagree", "api-dns", "critical"),
            ("VouchCheckFailing", "api-dns", "critical"),
        ),
    ];
    wait_until(
        "every pair's target held as inhibited",
        Duration::from_secs(90),
        || async {
            let held = held(&stack).await;
            pairs.iter().all(|(source, target)| {
                held.get(&key(source.0, source.1, source.2, ""))
                    .is_some_and(|s| s == "active")
                    && held
                        .get(&key(target.0, target.1, target.2, ""))
                        .is_some_and(|s| s == "suppressed")
            })
        },
    )
    .await;
    // Notifications go out a group_wait after an alert arrives: give them
    // that, then count.
    stack
        .webhook
        .wait_for("the pages of every source", Duration::from_secs(30), |_| {
            pairs
                .iter()
                .all(|(source, _)| notified(&stack, source.0, source.1, source.2) > 0)
        })
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (source, target) in &pairs {
        assert_eq!(
            notified(&stack, target.0, target.1, target.2),
            0,
            "{target:?} paged beside {source:?}"
        );
        assert!(notified(&stack, source.0, source.1, source.2) >= 1);
    }
    // Each failing check paged exactly once: its source, and no other
    // alert about its verdict (the alerts about vouch's own loop aside).
    for (source, _) in &pairs {
        let paged: std::collections::BTreeSet<(String, String)> = stack
            .webhook
            .alerts()
            .iter()
            .filter(|a| a["status"] == "firing")
            .map(|a| labels_of(&a["labels"]))
            .filter(|l| {
                l.get("check").is_some_and(|c| c == source.1)
                    && ![
                        "VouchCheckStale",
                        "VouchCheckNeverRan",
                        "VouchCheckSlow",
                        "VouchRunsSkipped",
                    ]
                    .contains(&l["alertname"].as_str())
            })
            .map(|l| (l["alertname"].clone(), l["severity"].clone()))
            .collect();
        assert_eq!(
            paged,
            [(source.0.to_string(), source.2.to_string())].into(),
            "check {} paged more than its source",
            source.1
        );
    }
    let held_now = held(&stack).await;
    // Every alert is shop's: blog's passing checks of the same names
    // neither hid shop's failures nor raised anything.
    for (alertname, _, _, namespace, _) in held_now.keys() {
        if alertname.starts_with("Vouch") {
            assert_eq!(namespace, "shop", "{alertname} in {namespace}");
        }
    }

    // One replica of shop stops: a warning for it, no critical page.
    let b = shop_b.addr.to_string();
    drop(shop_b);
    stack
        .webhook
        .wait_for(
            "VouchInstanceDown for replica b",
            Duration::from_secs(60),
            |alerts| {
                alerts.iter().any(|a| {
                    a["status"] == "firing"
                        && a["labels"]["alertname"] == "VouchInstanceDown"
                        && a["labels"]["instance"] == b.as_str()
                })
            },
        )
        .await;
    assert_eq!(notified(&stack, "VouchNoInstanceUp", "", ""), 0);
    // The other stops too: the critical page, and the warning of the last
    // replica is held back by it.
    let a = shop_a.addr.to_string();
    drop(shop_a);
    wait_until(
        "VouchNoInstanceUp to hold back replica a's warning",
        Duration::from_secs(60),
        || async {
            let held = held(&stack).await;
            held.get(&key("VouchNoInstanceUp", "", "critical", ""))
                .is_some_and(|s| s == "active")
                && held
                    .get(&key("VouchInstanceDown", "", "warning", &a))
                    .is_some_and(|s| s == "suppressed")
        },
    )
    .await;
    assert_eq!(notified(&stack, "VouchNoInstanceUp", "", "critical"), 1);
    assert!(
        !stack
            .webhook
            .alerts()
            .iter()
            .any(|x| x["status"] == "firing"
                && x["labels"]["alertname"] == "VouchInstanceDown"
                && x["labels"]["instance"] == a.as_str()),
        "replica a's warning paged beside VouchNoInstanceUp"
    );
    drop(blog);
}

// ---------------------------------------------------------------------------
// Every pair the inhibit rules define, in a live Alertmanager. The test
// above drives real vouch replicas through Prometheus, which needs a fake
// for every kind; this one takes the pairs from the generated rules (each
// alert name, severity and the labels its outer aggregation keeps) and
// posts the alerts as Prometheus would send them, straight to
// Alertmanager: the same inhibit rules judge them, for all of them.
// ---------------------------------------------------------------------------

/// An alerting rule's name, severity and the labels of its outer
/// aggregation (`by (...)` of the expression's first line).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct RuleShape {
    name: String,
    severity: String,
    labels: Vec<String>,
    /// In the `vouch.checks` group: an alert about one check's verdict.
    check_group: bool,
}

fn rule_shapes() -> Vec<RuleShape> {
    let rules: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string("alerts/vouch.rules.yml").unwrap())
            .unwrap();
    let by = regex::Regex::new(r"by \(([^)]*)\)").unwrap();
    let mut shapes = Vec::new();
    for group in rules["groups"].as_sequence().unwrap() {
        let check_group = group["name"] == "vouch.checks";
        for rule in group["rules"].as_sequence().unwrap() {
            let Some(name) = rule["alert"].as_str() else {
                continue;
            };
            let expr = rule["expr"].as_str().unwrap();
            let labels = by
                .captures(expr.lines().next().unwrap_or_default())
                .or_else(|| by.captures(expr))
                .map(|c| {
                    c[1].split(',')
                        .map(|l| l.trim().to_string())
                        .filter(|l| !l.is_empty() && l != "severity" && l != "le")
                        .collect()
                })
                .unwrap_or_default();
            shapes.push(RuleShape {
                name: name.to_string(),
                severity: rule["labels"]["severity"].as_str().unwrap().to_string(),
                labels,
                check_group,
            });
        }
    }
    shapes
}

const GENERIC_IN_CHECK_GROUP: [&str; 5] = [
    "VouchCheckFailing",
    "VouchCheckStale",
    "VouchCheckNeverRan",
    "VouchCheckSlow",
    "VouchProbeErrorRateHigh",
];

fn rank(severity: &str) -> usize {
    ["info", "warning", "critical"]
        .iter()
        .position(|s| *s == severity)
        .unwrap()
}

/// (source, target) for every pair: each specific alert at each of its
/// severities with VouchCheckFailing at the same or a lower one; each
/// alert name's higher severity with its lower ones; VouchNoInstanceUp
/// with VouchInstanceDown.
fn every_pair() -> Vec<(RuleShape, RuleShape)> {
    let shapes = rule_shapes();
    let find = |name: &str, severity: &str| {
        shapes
            .iter()
            .find(|s| s.name == name && s.severity == severity)
            .cloned()
    };
    let mut pairs = Vec::new();
    for source in &shapes {
        if source.check_group && !GENERIC_IN_CHECK_GROUP.contains(&source.name.as_str()) {
            for severity in ["critical", "warning", "info"] {
                if rank(severity) <= rank(&source.severity) {
                    if let Some(target) = find("VouchCheckFailing", severity) {
                        pairs.push((source.clone(), target));
                    }
                }
            }
        }
        for target in &shapes {
            if target.name == source.name && rank(&target.severity) < rank(&source.severity) {
                pairs.push((source.clone(), target.clone()));
            }
        }
    }
    pairs.push((
        find("VouchNoInstanceUp", "critical").unwrap(),
        find("VouchInstanceDown", "warning").unwrap(),
    ));
    pairs
}

/// The labels Prometheus would send for `shape` of pair `n` in
/// `namespace`: the rule's severity and the labels its aggregation keeps,
/// each with a value of its own (the check is `pair-n`).
fn alert_labels(shape: &RuleShape, n: usize, namespace: &str) -> serde_json::Value {
    let mut labels = serde_json::Map::new();
    labels.insert("alertname".into(), shape.name.clone().into());
    labels.insert("severity".into(), shape.severity.clone().into());
    for label in &shape.labels {
        let value = match label.as_str() {
            "cluster" => "eu-1".to_string(),
            "namespace" => namespace.to_string(),
            "job" => "vouch".to_string(),
            "instance" => "10.0.0.1:9847".to_string(),
            "check" => format!("pair-{n}"),
            other => format!("{other}-of-pair-{n}"),
        };
        labels.insert(label.clone(), value.into());
    }
    serde_json::Value::Object(labels)
}

/// POSTs alerts to Alertmanager's v2 API (one HTTP/1.1 request).
async fn post_alerts(alertmanager: std::net::SocketAddr, alerts: &[serde_json::Value]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = serde_json::to_string(alerts).unwrap();
    let mut stream = tokio::net::TcpStream::connect(alertmanager).await.unwrap();
    let request = format!(
        "POST /api/v2/alerts HTTP/1.1\r\nHost: {alertmanager}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

fn same_labels(alert: &serde_json::Value, labels: &serde_json::Value) -> bool {
    labels_of(&alert["labels"]) == labels_of(labels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pair_of_the_inhibit_rules_pages_once_in_a_live_alertmanager() {
    let pairs = every_pair();
    // 26 specific alerts (3 of them with an escalated critical tier),
    // their warning/critical tiers, and the instance pair.
    assert!(pairs.len() > 60, "only {} pairs", pairs.len());
    let webhook = support::monitoring::Webhook::start().await;
    let config = format!(
        "route:\n  receiver: hook\n  group_by: ['...']\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: \"{}\"\n        send_resolved: true\n{}",
        webhook.url(),
        std::fs::read_to_string("alerts/alertmanager-inhibit.yml").unwrap()
    );
    let alertmanager = support::monitoring::alertmanager(&config).await;
    let sources: Vec<_> = pairs
        .iter()
        .enumerate()
        .map(|(n, (source, _))| alert_labels(source, n, "shop"))
        .collect();
    // Shop's targets are muted by shop's sources; blog has the same
    // targets without sources, and nothing of shop may mute them.
    let shop_targets: Vec<_> = pairs
        .iter()
        .enumerate()
        .map(|(n, (_, target))| alert_labels(target, n, "shop"))
        .collect();
    let blog_targets: Vec<_> = pairs
        .iter()
        .enumerate()
        .map(|(n, (_, target))| alert_labels(target, n, "blog"))
        .collect();
    let as_alerts = |labels: &[serde_json::Value]| -> Vec<serde_json::Value> {
        labels
            .iter()
            .map(|l| serde_json::json!({ "labels": l }))
            .collect()
    };
    post_alerts(alertmanager.addr, &as_alerts(&sources)).await;
    wait_until(
        "Alertmanager to hold every source",
        Duration::from_secs(30),
        || async {
            let held = support::monitoring::alertmanager_alerts(alertmanager.addr).await;
            let held = held.as_array().cloned().unwrap_or_default();
            sources
                .iter()
                .all(|s| held.iter().any(|a| same_labels(a, s)))
        },
    )
    .await;
    let mut targets = as_alerts(&shop_targets);
    targets.extend(as_alerts(&blog_targets));
    post_alerts(alertmanager.addr, &targets).await;
    let state_of = |held: &[serde_json::Value], labels: &serde_json::Value| {
        held.iter()
            .find(|a| same_labels(a, labels))
            .and_then(|a| a["status"]["state"].as_str().map(str::to_string))
            .unwrap_or_default()
    };
    wait_until(
        "every shop target inhibited, every blog target active",
        Duration::from_secs(30),
        || async {
            let held = support::monitoring::alertmanager_alerts(alertmanager.addr).await;
            let held = held.as_array().cloned().unwrap_or_default();
            shop_targets
                .iter()
                .all(|t| state_of(&held, t) == "suppressed")
                && blog_targets.iter().all(|t| state_of(&held, t) == "active")
                && sources.iter().all(|s| state_of(&held, s) == "active")
        },
    )
    .await;
    // Blog's targets arrived with shop's: once all of them have paged,
    // shop's had their group_wait too.
    webhook
        .wait_for(
            "the pages of every source and every blog target",
            Duration::from_secs(30),
            |alerts| {
                sources
                    .iter()
                    .chain(&blog_targets)
                    .all(|l| alerts.iter().any(|a| same_labels(a, l)))
            },
        )
        .await;
    let paged = webhook.alerts();
    let firing = |labels: &serde_json::Value| {
        paged
            .iter()
            .filter(|a| a["status"] == "firing" && same_labels(a, labels))
            .count()
    };
    for (n, (source, target)) in pairs.iter().enumerate() {
        assert_eq!(
            firing(&sources[n]),
            1,
            "{} {} of pair {n} did not page exactly once",
            source.name,
            source.severity
        );
        assert_eq!(
            firing(&shop_targets[n]),
            0,
            "{} {} paged beside {} {}",
            target.name,
            target.severity,
            source.name,
            source.severity
        );
        assert_eq!(firing(&blog_targets[n]), 1, "blog's {target:?} was muted");
    }
}
