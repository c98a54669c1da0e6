//! The shared alert plumbing itself: durations scale as documented, and a
//! rule evaluated by the real Prometheus reaches the webhook through the
//! real Alertmanager, with an inhibited alert held back.

use crate::support;

use std::time::Duration;

use support::monitoring::{scale_durations, AlertStack, StackSpec};

#[test]
fn durations_in_rules_scale_with_floors() {
    let rules = r#"
groups:
  - name: g
    rules:
      - alert: A
        expr: rate(x_total[5m]) > 0 and y offset 10m and max_over_time(z[1h:1m]) > 900
        for: 15m
        keep_firing_for: 90s
      - alert: B
        expr: rate(x_total[30s]) > 0
"#;
    let scaled: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&scale_durations(rules, 60.0)).unwrap();
    let a = &scaled["groups"][0]["rules"][0];
    assert_eq!(a["for"], "15s");
    assert_eq!(a["keep_firing_for"], "1500ms");
    assert_eq!(
        a["expr"],
        "rate(x_total[5s]) > 0 and y offset 10s and max_over_time(z[60s:1s]) > 900"
    );
    // A 30 s range divided by 60 would hold no two scrapes: kept at 3 s.
    assert_eq!(
        scaled["groups"][0]["rules"][1]["expr"],
        "rate(x_total[3s]) > 0"
    );
}

#[tokio::test]
async fn a_firing_rule_reaches_the_webhook_and_inhibition_holds_the_other() {
    // No scrape target: the rules need none.
    let rules = r#"
groups:
  - name: g
    rules:
      - alert: StackTestCritical
        expr: vector(1)
        for: 2m
        labels: { severity: critical, check: c }
      - alert: StackTestWarning
        expr: vector(1)
        labels: { severity: warning, check: c }
"#;
    let inhibit = r#"
inhibit_rules:
  - source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
    equal: [check]
"#;
    let stack = AlertStack::start(StackSpec {
        targets: Vec::new(),
        rule_files: vec![("rules.yml".into(), rules.into())],
        inhibit_rules: inhibit.into(),
        time_scale: 60.0,
    })
    .await;
    stack
        .webhook
        .wait_for("the critical page", Duration::from_secs(60), |alerts| {
            alerts
                .iter()
                .any(|a| a["labels"]["alertname"] == "StackTestCritical" && a["status"] == "firing")
        })
        .await;
    // The warning (no `for`) may have been delivered before the critical
    // alert fired; from then on Alertmanager holds it as inhibited.
    support::wait_until("the warning inhibited", Duration::from_secs(30), || async {
        stack.alertmanager_alerts().await.iter().any(|a| {
            a["labels"]["alertname"] == "StackTestWarning"
                && a["status"]["state"] == "suppressed"
                && !a["status"]["inhibitedBy"].as_array().unwrap().is_empty()
        })
    })
    .await;
    let firing = stack.webhook.firing();
    assert!(
        firing.iter().any(|l| l["alertname"] == "StackTestCritical"),
        "{firing:?}"
    );
}
