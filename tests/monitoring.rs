//! The monitoring stack end to end: vouch scraped by a real Prometheus
//! with the bundled rules, alerts routed by a real Alertmanager to a
//! webhook in the test; then every dashboard and rule expression run
//! against that Prometheus.
mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::certs::self_signed;
use support::dnsmasq::Dnsmasq;
use support::http_server::{Reply, TestServer};
use support::monitoring::{alertmanager, prometheus, query, wait_for_data};
use support::postgres::Postgres;
use support::redis::Redis;
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

/// Webhook notifications received so far, as (status, alert) pairs.
fn notifications(hook: &TestServer) -> Vec<(String, Value)> {
    hook.seen()
        .iter()
        .filter(|r| r.target == "/hook")
        .flat_map(|r| {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            body["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| (a["status"].as_str().unwrap().to_string(), a.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn has(hook: &TestServer, status: &str, alertname: &str, check: &str) -> Option<Value> {
    notifications(hook)
        .into_iter()
        .find(|(s, a)| {
            s == status && a["labels"]["alertname"] == alertname && a["labels"]["check"] == check
        })
        .map(|(_, a)| a)
}

/// Every PromQL expression of every dashboard panel, with Grafana's
/// variables replaced by values that select everything.
fn dashboard_queries() -> Vec<(String, String)> {
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
                    .replace("$job", ".*")
                    .replace("$instance", ".*")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_target_pages_through_prometheus_and_alertmanager_and_resolves() {
    let target = TestServer::http().await;
    target.route(
        "/api/health/live",
        Reply::json(200, serde_json::json!({"status": "ok"})),
    );
    let hook = TestServer::http().await;
    hook.route("/hook", Reply::status(200));
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
                    let _: Option<String> = redis::cmd("GET")
                        .arg(key)
                        .query_async(&mut connection)
                        .await
                        .unwrap();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let config = write_config(&format!(
        r#"
defaults: {{ interval: 1s, timeout: 1s }}
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
    tls: {{ host: localhost, port: {tls_port}, insecure_skip_verify: true }}
  - name: api-dns
    section: infrastructure/dns
    dns: {{ name: api.test, servers: ["{dns_a}", "{dns_b}"], propagation: true }}
  - name: database
    section: post-deploy/database
    postgres: {{ url_env: VOUCH_E2E_PG_URL, tls: disable, max_connections_used: 80%, max_query_age: 1s }}
  - name: cache
    section: post-deploy/cache
    redis: {{ url_env: VOUCH_E2E_REDIS_URL, min_lookups: 0 }}
"#,
        url = target.url("/api/health/live"),
        tls_port = tls_target.addr.port(),
        dns_a = dns_a.server(),
        dns_b = dns_b.server(),
    ));
    let vouch = Daemon::start_with_env(
        &config.path,
        &[
            ("VOUCH_E2E_PG_URL", &postgres.url()),
            ("VOUCH_E2E_REDIS_URL", &redis.url()),
        ],
    )
    .await;

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
"#,
        hook.url("/hook")
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
    static_configs: [{{ targets: ["{vouch}"] }}]
"#,
            am = alertmanager.addr,
            vouch = vouch.addr
        ),
        &[("rules.yml", rules_for_test())],
    )
    .await;
    let prom = prometheus.addr;

    wait_for_data(
        prom,
        r#"vouch_check_success{check="api-health-live"} == 1"#,
        Duration::from_secs(30),
    )
    .await;
    assert!(has(
        &hook,
        "firing",
        "VouchCriticalCheckFailing",
        "api-health-live"
    )
    .is_none());

    // Break the target: the critical check's alert must reach the webhook.
    target.route(
        "/api/health/live",
        Reply::json(503, serde_json::json!({"status": "degraded"})),
    );
    let broken_at = Instant::now();
    wait_until(
        "the firing notification",
        Duration::from_secs(60),
        || async {
            has(
                &hook,
                "firing",
                "VouchCriticalCheckFailing",
                "api-health-live",
            )
            .is_some()
        },
    )
    .await;
    let delivery = broken_at.elapsed();
    eprintln!("alert delivery latency (target broken -> webhook): {delivery:?}");
    let alert = has(
        &hook,
        "firing",
        "VouchCriticalCheckFailing",
        "api-health-live",
    )
    .unwrap();
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["labels"]["section"], "post-deploy/api");
    assert_eq!(
        alert["annotations"]["summary"],
        "Critical check api-health-live is failing"
    );
    assert_eq!(
        alert["annotations"]["runbook_url"],
        "docs/runbooks.md#vouchcriticalcheckfailing"
    );
    // The warning check fails too, and pages at its own severity.
    wait_until(
        "the warning notification",
        Duration::from_secs(60),
        || async { has(&hook, "firing", "VouchWarningCheckFailing", "web-health").is_some() },
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
        || async {
            has(
                &hook,
                "resolved",
                "VouchCriticalCheckFailing",
                "api-health-live",
            )
            .is_some()
        },
    )
    .await;
    eprintln!(
        "resolve delivery latency (target repaired -> webhook): {:?}",
        repaired_at.elapsed()
    );

    // Every dashboard panel's query parses and returns data.
    let mut empty = Vec::new();
    for (panel, expr) in dashboard_queries() {
        let answer = query(prom, &expr).await;
        assert_eq!(answer["status"], "success", "{panel}: {expr}: {answer}");
        if answer["data"]["result"]
            .as_array()
            .is_none_or(|r| r.is_empty())
        {
            empty.push(format!("{panel}: {expr}"));
        }
    }
    assert!(
        empty.is_empty(),
        "panels without data:\n{}",
        empty.join("\n")
    );

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
    drop(prometheus);
    drop(alertmanager);
}
