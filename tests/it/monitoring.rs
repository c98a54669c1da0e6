//! The monitoring stack end to end: vouch scraped by a real Prometheus
//! with the bundled rules, alerts routed by a real Alertmanager (with the
//! bundled inhibit rules) to a webhook in the test; a stale backup in a
//! local directory raises VouchBackupTooOld with its numbers while the
//! generic alert of the same check is inhibited; a Deployment in the fake
//! Kubernetes API rolls out and the check that follows it runs again and
//! passes; then every dashboard and rule expression run against that
//! Prometheus, and every dashboard panel must have data.
use crate::support;

use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use support::certs::self_signed;
use support::dnsmasq::Dnsmasq;
use support::http_server::{Reply, TestServer};
use support::key_vault::{now, FakeKeyVault, FakeSecret, CLIENT_ID, CLIENT_SECRET, TENANT};
use support::kube_api::{objects, FakeKube};
use support::monitoring::{
    alertmanager, alertmanager_alerts, prometheus, query, wait_for_data, Webhook,
};
use support::postgres::Postgres;
use support::redis::Redis;
use support::registry::{Auth, Registry};
use support::vouch::Daemon;
use support::{wait_until, write_config};

/// The bundled rules with every `for:` shortened, so the test need not
/// wait minutes; everything else is as shipped.
fn rules_for_test() -> String {
    let mut rules: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string("alerts/vouch.rules.yml").unwrap())
            .unwrap();
    for group in rules["groups"].as_sequence_mut().unwrap() {
        for rule in group["rules"].as_sequence_mut().unwrap() {
            if let Some(rule) = rule.as_mapping_mut() {
                if rule.contains_key("for") {
                    rule.insert("for".into(), "2s".into());
                }
            }
        }
    }
    serde_yaml_ng::to_string(&rules).unwrap()
}

/// The first notification of `alertname` for `check` in namespace prod.
fn has(hook: &Webhook, status: &str, alertname: &str, check: &str) -> Option<Value> {
    has_in(hook, "prod", status, alertname, check)
}

fn has_in(
    hook: &Webhook,
    namespace: &str,
    status: &str,
    alertname: &str,
    check: &str,
) -> Option<Value> {
    hook.alerts().into_iter().find(|a| {
        a["status"] == status
            && a["labels"]["alertname"] == alertname
            && a["labels"]["check"] == check
            && a["labels"]["namespace"] == namespace
    })
}

/// A cluster for the Workloads dashboard: in namespace prod a settled
/// Deployment `api` with two ready pods, a Service's EndpointSlice, an
/// Ingress with an address, an autoscaler, a Warning event, a cert-manager
/// Certificate, an ExternalSecret synced 10 minutes ago, a day-old
/// VolumeSnapshot, and a crash-looping `worker` pod.
async fn workloads_cluster() -> FakeKube {
    let fake = FakeKube::start().await;
    fake.install_cert_manager();
    fake.install_external_secrets();
    fake.install_volume_snapshots();
    let ago = |seconds: i64| {
        (chrono::Utc::now() - chrono::Duration::seconds(seconds))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    fake.apply(objects::deployment(
        "prod",
        "api",
        2,
        "registry.example.com/api:1.4.2",
    ));
    fake.settle_deployment("prod", "api");
    for name in ["api-a", "api-b"] {
        fake.apply(objects::ready_pod(
            "prod",
            name,
            json!({"app": "api"}),
            "registry.example.com/api:1.4.2",
        ));
    }
    fake.apply(objects::ready_pod(
        "prod",
        "worker-a",
        json!({"app": "worker"}),
        "registry.example.com/worker:2.0.0",
    ));
    fake.crash_loop_pod("prod", "worker-a", "app");
    fake.apply(json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "api-x1", "namespace": "prod", "labels": {"kubernetes.io/service-name": "api"}},
        "addressType": "IPv4", "endpoints": [
            {"addresses": ["10.244.0.10"], "conditions": {"ready": true}},
            {"addresses": ["10.244.0.11"], "conditions": {"ready": true}}]}));
    fake.apply(
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "web", "namespace": "prod"},
        "spec": {}, "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}}),
    );
    fake.apply(
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "api", "namespace": "prod"},
        "spec": {"minReplicas": 2, "maxReplicas": 10,
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"}},
        "status": {"currentReplicas": 2, "desiredReplicas": 2}}),
    );
    fake.apply(objects::event(
        "prod",
        ("v1", "Pod", "worker-a"),
        "Warning",
        "BackOff",
        "Back-off restarting failed container app",
    ));
    let now = chrono::Utc::now();
    fake.apply(objects::certificate(
        "prod",
        "api-tls",
        &["api.example.com"],
        now - chrono::Duration::days(30),
        now + chrono::Duration::days(60),
    ));
    fake.apply(
        json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": "app-secrets", "namespace": "prod"},
        "spec": {"refreshInterval": "1h"},
        "status": {"refreshTime": ago(600),
            "conditions": [{"type": "Ready", "status": "True", "reason": "SecretSynced"}]}}),
    );
    fake.apply(
        json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": {"name": "db-1", "namespace": "prod"},
        "spec": {"source": {"persistentVolumeClaimName": "data-db-0"}},
        "status": {"readyToUse": true, "creationTime": ago(86_400)}}),
    );
    fake
}

/// Every PromQL expression of every dashboard panel, with Grafana's
/// variables replaced by values that select everything.
/// Every panel query, the dashboard variables set to all values but
/// `instance` (a regex).
fn dashboard_queries(instance: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("dashboards").unwrap() {
        let path = entry.unwrap().path();
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for panel in dashboard["panels"].as_array().unwrap() {
            // Rows carry no query.
            let Some(targets) = panel["targets"].as_array() else {
                continue;
            };
            for target in targets {
                let expr = target["expr"]
                    .as_str()
                    .unwrap()
                    .replace("$__rate_interval", "30s")
                    .replace("$__range", "5m")
                    .replace("$cluster", ".*")
                    .replace("$namespace", ".*")
                    .replace("$section", ".*")
                    .replace("$job", ".*")
                    .replace("$instance", instance)
                    .replace("$check", ".*");
                found.push((
                    format!("{} / {}", path.display(), panel["title"].as_str().unwrap()),
                    expr,
                ));
            }
        }
    }
    found
}

/// What a Workloads dashboard panel shows now: each series of each of
/// its queries as (check, the series' other distinguishing label or the
/// query's refId, value).
async fn workloads_panel(
    prometheus: std::net::SocketAddr,
    instance: &str,
    title: &str,
) -> Vec<(String, String, f64)> {
    let label = format!("dashboards/vouch-workloads.json / {title}");
    // One install's numbers (both show the same cluster).
    let queries: Vec<_> = dashboard_queries(instance)
        .into_iter()
        .filter(|(panel, _)| *panel == label)
        .collect();
    assert!(!queries.is_empty(), "no panel {title}");
    let mut shown = Vec::new();
    for (index, (_, expr)) in queries.iter().enumerate() {
        let answer = query(prometheus, expr).await;
        for series in answer["data"]["result"].as_array().unwrap() {
            let metric = &series["metric"];
            let what = ["state", "pvc", "resource"]
                .iter()
                .find_map(|l| metric[l].as_str())
                .map(str::to_string)
                .unwrap_or_else(|| format!("query {index}"));
            shown.push((
                metric["check"].as_str().unwrap_or_default().to_string(),
                what,
                series["value"][1].as_str().unwrap().parse().unwrap(),
            ));
        }
    }
    shown
}

/// The one value a panel shows for `check` and `what`.
fn shown(panel: &[(String, String, f64)], check: &str, what: &str) -> f64 {
    let found: Vec<f64> = panel
        .iter()
        .filter(|(c, w, _)| c == check && w == what)
        .map(|(_, _, v)| *v)
        .collect();
    assert_eq!(found.len(), 1, "{check} {what} in {panel:?}");
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_target_pages_through_prometheus_and_alertmanager_and_resolves() {
    let target = TestServer::http().await;
    target.route(
        "/api/health/live",
        Reply::json(200, serde_json::json!({"status": "ok"})),
    );
    let hook = Webhook::start().await;
    let tls_target = TestServer::https(self_signed(&["localhost"])).await;
    let dns_a = Dnsmasq::start(&["--address=/api.test/10.1.2.3"]);
    let dns_b = Dnsmasq::start(&["--address=/api.test/10.1.2.3"]);
    let postgres = Postgres::start_new();
    let redis = Redis::with_args(&["--maxmemory", "64mb"]);
    // Cache traffic, so every window of the redis check has lookups to
    // judge (a hit and a miss every 20ms, until the test ends).
    let traffic = {
        let mut connection = redis.connection(None).await;
        tokio::spawn(async move {
            let _: () = redis::cmd("SET")
                .arg("warm")
                .arg("1")
                .query_async(&mut connection)
                .await
                .unwrap();
            loop {
                for key in ["warm", "cold"] {
                    // Redis goes away when a failing test unwinds; the
                    // traffic just stops then, without a second panic.
                    let read: redis::RedisResult<Option<String>> = redis::cmd("GET")
                        .arg(key)
                        .query_async(&mut connection)
                        .await;
                    if read.is_err() {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    // Two 2MB backups, the newer written 2 days ago: older than the
    // checklist's 24h.
    let backups = tempfile::tempdir().unwrap();
    for (name, days) in [("pg-1.sql.gz", 3), ("pg-2.sql.gz", 2)] {
        let file = std::fs::File::create(backups.path().join(name)).unwrap();
        file.set_len(2_000_000).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(days * 86_400))
            .unwrap();
    }
    let registry = Registry::start_new(Auth::None);
    registry.push_image("broxiva/api", &["v1.2.3", "0a1b2c3", "1b2c3d4", "2c3d4e5"]);
    let vault = FakeKeyVault::start().await;
    let vault_dir = tempfile::tempdir().unwrap();
    let vault_ca = vault.write_ca(vault_dir.path());
    let mut jwt = FakeSecret::aged("VALUE-of-jwt-secret", 10);
    jwt.exp = Some(now() + 60 * 86_400);
    vault.put("jwt-secret", jwt);
    let cluster = workloads_cluster().await;

    let config = write_config(&format!(
        r#"
defaults: {{ interval: 1s, timeout: 1s }}
kubernetes: {{ kubeconfig: "{kubeconfig}" }}
checks:
  - name: api-health-live
    section: post-deploy/api
    severity: critical
    http:
      url: "{url}"
      expect: {{ status: [200], json: {{ "$.status": ok }}, max_latency: 1s }}
  - name: web-health
    section: post-deploy/web
    severity: warning
    http: {{ url: "{url}" }}
  - name: api-certificate
    section: infrastructure/tls
    tls: {{ host: localhost, connect_to: 127.0.0.1, port: {tls_port}, insecure_skip_verify: true }}
  - name: api-dns
    section: infrastructure/dns
    dns: {{ name: api.test, servers: ["{dns_a}", "{dns_b}"], propagation: true }}
  - name: database
    section: post-deploy/database
    postgres: {{ url_env: VOUCH_E2E_PG_URL, tls: disable, max_connections_used: 80%, max_query_age: 1s }}
  - name: cache
    section: post-deploy/cache
    redis: {{ url_env: VOUCH_E2E_REDIS_URL, min_lookups: 0 }}
  - name: database-backup
    section: pre-deploy/database
    severity: critical
    backup: {{ url: "file://{backups}", max_age: 24h, min_size: 1MB }}
  - name: api-image
    section: pre-deploy/registry
    registry: {{ url: "{registry}", repository: broxiva/api, tag: v1.2.3, min_rollback_tags: 3 }}
  - name: key-vault-secrets
    section: pre-deploy/secrets
    interval: 2s
    timeout: 2s
    secret_age:
      key_vault:
        url: "{vault}"
        auth: client_secret
        tenant_id: {tenant}
        client_id: {client_id}
        authority_host: "{vault}"
        client_secret_env: VOUCH_E2E_KV_CLIENT_SECRET
        ca_file: "{vault_ca}"
      secrets: [{{ name: jwt-secret, max_age: 90d }}]
  - name: api-rollout
    section: post-deploy/kubernetes
    severity: critical
    after_rollout_of: [prod/api]
    kubernetes: {{ deployment: prod/api, min_ready: 2 }}
  - name: api-pods
    section: post-deploy/kubernetes
    kubernetes:
      pods: {{ deployment: prod/api, max_restarts: 3, restart_window: 1h }}
  - name: worker-pods
    section: post-deploy/kubernetes
    kubernetes:
      pods: {{ namespace: prod, selector: app=worker }}
  - name: api-endpoints
    section: post-deploy/kubernetes
    kubernetes: {{ service_endpoints: prod/api, min_ready: 2 }}
  - name: web-ingress
    section: post-deploy/kubernetes
    kubernetes: {{ ingress: prod/web }}
  - name: api-autoscaler
    section: post-deploy/kubernetes
    kubernetes: {{ hpa: prod/api }}
  - name: prod-events
    section: post-deploy/kubernetes
    kubernetes:
      events: {{ namespace: prod, max_warnings: 5, window: 15m }}
  - name: api-rollback
    section: pre-deploy/kubernetes
    kubernetes:
      rollback: {{ deployment: prod/api, min_revisions: 2 }}
  - name: api-tls-certificate
    section: infrastructure/kubernetes
    kubernetes: {{ certificate: prod/api-tls, min_valid_for: 30d }}
  - name: app-external-secret
    section: pre-deploy/kubernetes
    kubernetes: {{ external_secret: prod/app-secrets, max_sync_age: 1h }}
  - name: db-snapshots
    section: pre-deploy/kubernetes
    kubernetes:
      volume_snapshots: {{ namespace: prod, pvc: data-db-0, max_age: 7d }}
"#,
        kubeconfig = cluster.kubeconfig_path().display(),
        backups = backups.path().display(),
        registry = registry.url(),
        vault = vault.url(),
        tenant = TENANT,
        client_id = CLIENT_ID,
        vault_ca = vault_ca.display(),
        url = target.url("/api/health/live"),
        tls_port = tls_target.addr.port(),
        dns_a = dns_a.server(),
        dns_b = dns_b.server(),
    ));
    let env = [
        ("VOUCH_E2E_PG_URL", postgres.url()),
        ("VOUCH_E2E_REDIS_URL", redis.url()),
        ("VOUCH_E2E_KV_CLIENT_SECRET", CLIENT_SECRET.to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let vouch = Daemon::start_with_env(&config.path, &env).await;
    // A second install of the same checks in another namespace, scraped by
    // the same Prometheus: alerts and inhibition stay per install, and the
    // dashboards read both.
    let staging = Daemon::start_with_env(&config.path, &env).await;

    let alertmanager = alertmanager(&format!(
        r#"
route:
  receiver: hook
  group_by: [alertname, check]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: "{}"
        send_resolved: true
{}"#,
        hook.url(),
        std::fs::read_to_string("alerts/alertmanager-inhibit.yml").unwrap()
    ))
    .await;
    let prometheus = prometheus(
        &format!(
            r#"
global: {{ scrape_interval: 1s, evaluation_interval: 1s }}
rule_files: [rules.yml]
alerting:
  alertmanagers:
    - static_configs: [{{ targets: ["{am}"] }}]
scrape_configs:
  - job_name: vouch
    static_configs:
      - {{ targets: ["{vouch}"], labels: {{ namespace: prod }} }}
      - {{ targets: ["{staging}"], labels: {{ namespace: staging }} }}
"#,
            am = alertmanager.addr,
            vouch = vouch.addr,
            staging = staging.addr
        ),
        &[("rules.yml", rules_for_test())],
    )
    .await;
    let prom = prometheus.addr;
    let prod_instance = vouch.addr.to_string();

    wait_for_data(
        prom,
        r#"vouch_check_success{check="api-health-live"} == 1"#,
        Duration::from_secs(30),
    )
    .await;
    assert!(has(&hook, "firing", "VouchCheckFailing", "api-health-live").is_none());

    // Break the target: the critical check's alert must reach the webhook.
    target.route(
        "/api/health/live",
        Reply::json(503, serde_json::json!({"status": "degraded"})),
    );
    let broken_at = Instant::now();
    wait_until(
        "the firing notification",
        Duration::from_secs(60),
        || async { has(&hook, "firing", "VouchCheckFailing", "api-health-live").is_some() },
    )
    .await;
    let delivery = broken_at.elapsed();
    eprintln!("alert delivery latency (target broken -> webhook): {delivery:?}");
    let alert = has(&hook, "firing", "VouchCheckFailing", "api-health-live").unwrap();
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["labels"]["section"], "post-deploy/api");
    assert_eq!(alert["labels"]["namespace"], "prod");
    assert_eq!(
        alert["annotations"]["summary"],
        "Check api-health-live (critical) is failing in prod"
    );
    assert_eq!(
        alert["annotations"]["runbook_url"],
        "https://vouch-runbooks.set-runbookURLPattern.invalid/docs/runbooks.md#vouchcheckfailing"
    );
    // The warning check fails too, and pages at its own severity.
    wait_until(
        "the warning notification",
        Duration::from_secs(60),
        || async {
            has(&hook, "firing", "VouchCheckFailing", "web-health")
                .is_some_and(|a| a["labels"]["severity"] == "warning")
        },
    )
    .await;

    // The other install sees the same target and pages on its own.
    wait_until(
        "the other install's notification",
        Duration::from_secs(60),
        || async {
            has_in(
                &hook,
                "staging",
                "firing",
                "VouchCheckFailing",
                "api-health-live",
            )
            .is_some()
        },
    )
    .await;

    // Repair it: the resolved notification follows.
    target.route(
        "/api/health/live",
        Reply::json(200, serde_json::json!({"status": "ok"})),
    );
    let repaired_at = Instant::now();
    wait_until(
        "the resolved notification",
        Duration::from_secs(60),
        || async { has(&hook, "resolved", "VouchCheckFailing", "api-health-live").is_some() },
    )
    .await;
    eprintln!(
        "resolve delivery latency (target repaired -> webhook): {:?}",
        repaired_at.elapsed()
    );

    // The stale backup: the specific alert reaches the webhook with the
    // measured age, and the generic alert of the same check is held back
    // by the bundled inhibit rule instead of paging a second time.
    wait_until(
        "the backup alert's notification",
        Duration::from_secs(60),
        || async { has(&hook, "firing", "VouchBackupTooOld", "database-backup").is_some() },
    )
    .await;
    let alert = has(&hook, "firing", "VouchBackupTooOld", "database-backup").unwrap();
    assert_eq!(alert["labels"]["severity"], "critical");
    let description = alert["annotations"]["description"].as_str().unwrap();
    assert!(
        description.starts_with(
            "The newest backup found by check database-backup in prod/vouch was written 2d "
        ),
        "{description}"
    );
    wait_until(
        "the generic alert of the backup check to be inhibited",
        Duration::from_secs(60),
        || async {
            alertmanager_alerts(alertmanager.addr)
                .await
                .as_array()
                .unwrap()
                .iter()
                .any(|a| {
                    a["labels"]["alertname"] == "VouchCheckFailing"
                        && a["labels"]["check"] == "database-backup"
                        && a["status"]["state"] == "suppressed"
                        && a["status"]["inhibitedBy"]
                            .as_array()
                            .is_some_and(|by| !by.is_empty())
                })
        },
    )
    .await;
    assert!(
        has(&hook, "firing", "VouchCheckFailing", "database-backup").is_none(),
        "the generic alert paged besides VouchBackupTooOld"
    );
    // The registry and vault checks pass: their alerts stay quiet.
    for name in [
        "VouchRegistryTagMissing",
        "VouchSecretMissing",
        "VouchSecretRotationOverdue",
    ] {
        assert!(
            hook.alerts()
                .iter()
                .all(|a| a["labels"]["alertname"] != name),
            "{name} fired"
        );
    }

    // The Workloads dashboard's facts reach Prometheus: the crash-looping
    // worker pod is counted, and so are the api pods' ready replicas.
    wait_for_data(
        prom,
        r#"vouch_kube_pods{check="worker-pods", state="crash_loop"} == 1"#,
        Duration::from_secs(30),
    )
    .await;
    wait_for_data(
        prom,
        r#"vouch_kube_replicas{check="api-rollout", state="ready"} == 2"#,
        Duration::from_secs(30),
    )
    .await;
    // A rollout of prod/api, once vouch watches the workloads that
    // after_rollout_of follows: the check that follows it records the
    // rollout, runs after it and passes; the retained revisions grow to 2.
    // Both installs watch the same cluster, and the dashboards are read
    // for both below, so neither may miss the rollout.
    for install in [&vouch, &staging] {
        wait_until(
            "vouch's rollout watches to sync",
            Duration::from_secs(30),
            || async {
                let metrics = install.get_ok("/metrics").await;
                ["deployments.apps", "statefulsets.apps"]
                    .iter()
                    .all(|resource| {
                        metrics.contains(&format!(
                            "vouch_kube_watch_synced{{resource=\"{resource}\",watch_namespace=\"prod\"}} 1"
                        ))
                    })
            },
        )
        .await;
    }
    cluster.start_rollout("prod", "api", "registry.example.com/api:1.4.3");
    assert!(
        (0..10).any(|_| cluster.rollout_step("prod", "api")),
        "the rollout of prod/api did not complete"
    );
    for namespace in ["prod", "staging"] {
        wait_for_data(
            prom,
            &format!(
                r#"vouch_check_success{{namespace="{namespace}", check="api-rollout"}} == 1
                and on (check) vouch_check_last_run_timestamp_seconds{{namespace="{namespace}", check="api-rollout"}}
                  > on (check) vouch_check_last_rollout_timestamp_seconds{{namespace="{namespace}", check="api-rollout"}}"#
            ),
            Duration::from_secs(30),
        )
        .await;
    }
    wait_for_data(
        prom,
        r#"vouch_kube_rollback_revisions{check="api-rollback"} == 2"#,
        Duration::from_secs(30),
    )
    .await;

    // The Workloads dashboard shows the cluster's numbers.
    let replicas = workloads_panel(prom, &prod_instance, "Replicas ready of desired").await;
    assert_eq!(shown(&replicas, "api-rollout", "query 0"), 1.0);
    let pods = workloads_panel(prom, &prod_instance, "Pods in trouble").await;
    assert_eq!(shown(&pods, "worker-pods", "crash_loop"), 1.0);
    assert_eq!(shown(&pods, "worker-pods", "image_pull"), 0.0);
    assert_eq!(shown(&pods, "worker-pods", "query 1"), 1.0, "not ready");
    assert_eq!(shown(&pods, "api-pods", "query 1"), 0.0, "not ready");
    let verified = workloads_panel(prom, &prod_instance, "Verified since rollout").await;
    assert!(shown(&verified, "api-rollout", "query 0") >= 0.0);
    assert!(shown(&verified, "api-rollout", "query 1") >= 0.0);
    assert_eq!(shown(&verified, "api-rollout", "query 2"), 1.0);
    assert!(verified.iter().all(|(check, _, _)| check == "api-rollout"));
    let autoscaler = workloads_panel(prom, &prod_instance, "Autoscaler replicas").await;
    assert_eq!(shown(&autoscaler, "api-autoscaler", "max"), 10.0);
    let events = workloads_panel(prom, &prod_instance, "Warning events in window").await;
    assert_eq!(shown(&events, "prod-events", "query 0"), 1.0);
    let days = workloads_panel(prom, &prod_instance, "Certificate days left").await;
    let days = shown(&days, "api-tls-certificate", "query 0");
    assert!((59.0..=60.0).contains(&days), "{days}");
    let renewal = workloads_panel(prom, &prod_instance, "Certificate renewal due, days").await;
    let renewal = shown(&renewal, "api-tls-certificate", "query 0");
    assert!((29.0..=30.0).contains(&renewal), "{renewal}");
    let sync = workloads_panel(
        prom,
        &prod_instance,
        "ExternalSecret sync age (dashed: max_sync_age)",
    )
    .await;
    let sync = shown(&sync, "app-external-secret", "query 0");
    assert!((600.0..3600.0).contains(&sync), "{sync}");
    let snapshots = workloads_panel(
        prom,
        &prod_instance,
        "Snapshot age per PVC (dashed: max_age)",
    )
    .await;
    let age = shown(&snapshots, "db-snapshots", "data-db-0");
    assert!((1.0..2.0).contains(&age), "{age}");
    let watches = workloads_panel(prom, &prod_instance, "Watch sync state").await;
    assert!(
        watches.iter().any(|(_, w, _)| w == "pods")
            && watches.iter().all(|(_, _, synced)| *synced == 1.0),
        "{watches:?}"
    );

    // Every dashboard panel's query parses and returns data, for each
    // install. Awaited: a run that ends by its timeout on a loaded machine
    // exports no measurements, so its series are stale until the next run;
    // every panel must show data again within a minute.
    let both = [prod_instance.clone(), staging.addr.to_string()];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut empty = Vec::new();
        for (panel, expr) in both.iter().flat_map(|i| dashboard_queries(i)) {
            let answer = query(prom, &expr).await;
            assert_eq!(answer["status"], "success", "{panel}: {expr}: {answer}");
            if answer["data"]["result"]
                .as_array()
                .is_none_or(|r| r.is_empty())
            {
                empty.push(format!("{panel}: {expr}"));
            }
        }
        if empty.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "panels without data for a minute:\n{}",
            empty.join("\n")
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // Every rule expression parses (most are quiet now, which is fine).
    let rules: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string("alerts/vouch.rules.yml").unwrap())
            .unwrap();
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let expr = rule["expr"].as_str().unwrap();
            let answer = query(prom, expr).await;
            assert_eq!(answer["status"], "success", "{expr}: {answer}");
        }
    }
    traffic.abort();
    drop(registry);
    drop(prometheus);
    drop(alertmanager);
    drop(staging);
}
