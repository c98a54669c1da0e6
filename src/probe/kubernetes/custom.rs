//! Custom resources, read as JSON: cert-manager Certificates and issuers,
//! External Secrets ExternalSecrets and stores, VolumeSnapshots, and the
//! Prometheus Operator's ServiceMonitors and PrometheusRules.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::api::DynamicObject;
use serde_json::Value;

use super::ObjectRef;
use crate::config::format_duration;
use crate::kube::{ResourceType, Snapshot};
use crate::result::{Measure, Measurement, Outcome, Reason};

/// An RFC 3339 time as seconds since the Unix epoch.
fn parse_time(value: &Value) -> Option<f64> {
    let text = value.as_str()?;
    let timestamp: k8s_openapi::jiff::Timestamp = text.parse().ok()?;
    Some(timestamp.as_millisecond() as f64 / 1000.0)
}

/// A Go duration (`1h`, `1h30m`, `15m0s`, `90s`, `0`).
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push(chars.next()?);
        }
        let value: f64 = number.parse().ok()?;
        number.clear();
        total += value
            * match unit.as_str() {
                "h" => 3600.0,
                "m" => 60.0,
                "s" => 1.0,
                "ms" => 0.001,
                _ => return None,
            };
        any = true;
    }
    (number.is_empty() && any).then(|| Duration::from_secs_f64(total))
}

/// The `status.conditions` entry of `type`: (status, reason, message).
fn condition<'a>(object: &'a DynamicObject, kind: &str) -> Option<(&'a str, &'a str, &'a str)> {
    object.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"].as_str() == Some(kind))
        .map(|c| {
            (
                c["status"].as_str().unwrap_or(""),
                c["reason"].as_str().unwrap_or(""),
                c["message"].as_str().unwrap_or(""),
            )
        })
}

/// None when Ready is True; else why not.
fn not_ready(object: &DynamicObject) -> Option<String> {
    match condition(object, "Ready") {
        Some(("True", _, _)) => None,
        Some((status, reason, message)) => {
            let message: String = message.chars().take(200).collect();
            Some(format!("Ready is {status} ({reason}: {message})"))
        }
        None => Some("no Ready condition yet".to_string()),
    }
}

fn ready_measure(ready: bool) -> Measurement {
    Measurement::new(Measure::KubeObjectReady, f64::from(u8::from(ready)))
}

pub fn evaluate_ready(
    snapshot: &Snapshot,
    resource: &ResourceType,
    namespace: Option<&str>,
    name: &str,
) -> Outcome {
    let what = match namespace {
        Some(ns) => format!("{} {ns}/{name}", resource.kind),
        None => format!("{} {name}", resource.kind),
    };
    let Some(object) = snapshot.get(namespace.unwrap_or(""), name) else {
        return Outcome::fail(Reason::NotFound, format!("{what} not found"))
            .with_measurements(vec![ready_measure(false)]);
    };
    match not_ready(object) {
        None => {
            Outcome::pass(format!("{what} is Ready")).with_measurements(vec![ready_measure(true)])
        }
        Some(why) => Outcome::fail(Reason::NotReady, format!("{what}: {why}"))
            .with_measurements(vec![ready_measure(false)]),
    }
}

pub fn evaluate_certificate(
    snapshot: &Snapshot,
    o: &ObjectRef,
    min_valid_for: Option<Duration>,
    now: f64,
) -> Outcome {
    let Some(object) = snapshot.get(&o.namespace, &o.name) else {
        return Outcome::fail(Reason::NotFound, format!("Certificate {o} not found"));
    };
    let status = &object.data["status"];
    let not_after = parse_time(&status["notAfter"]);
    let renewal = parse_time(&status["renewalTime"]);
    let mut measurements = vec![ready_measure(not_ready(object).is_none())];
    if let Some(t) = not_after {
        measurements.push(Measurement::new(Measure::KubeCertificateNotAfter, t));
    }
    if let Some(t) = renewal {
        measurements.push(Measurement::new(Measure::KubeCertificateRenewal, t));
    }
    let mut failures = Vec::new();
    if let Some(why) = not_ready(object) {
        failures.push((Reason::NotReady, format!("Certificate {o}: {why}")));
    }
    let left = not_after.map(|t| t - now);
    match (left, min_valid_for) {
        (Some(left), _) if left <= 0.0 => failures.push((
            Reason::TlsExpired,
            format!("Certificate {o} expired {} ago", super::age_text(-left)),
        )),
        (Some(left), Some(min)) if left < min.as_secs_f64() => failures.push((
            Reason::TlsExpiring,
            format!(
                "Certificate {o} is valid for {} more, at least {} required",
                super::age_text(left),
                format_duration(min)
            ),
        )),
        (None, Some(_)) => failures.push((
            Reason::NotReady,
            format!("Certificate {o} has no status.notAfter yet"),
        )),
        _ => {}
    }
    let outcome = Outcome::from_failures(failures.iter().map(|(r, m)| (*r, m.as_str())))
        .unwrap_or_else(|| {
            let valid = left
                .map(|l| format!(", valid for {}", super::age_text(l)))
                .unwrap_or_default();
            let renews = renewal
                .map(|r| format!(", renews in {}", super::age_text(r - now)))
                .unwrap_or_default();
            Outcome::pass(format!("Certificate {o} is Ready{valid}{renews}"))
        });
    outcome.with_measurements(measurements)
}

pub fn evaluate_external_secret(
    snapshot: &Snapshot,
    o: &ObjectRef,
    max_age: Option<Duration>,
    now: f64,
) -> Outcome {
    let Some(object) = snapshot.get(&o.namespace, &o.name) else {
        return Outcome::fail(Reason::NotFound, format!("ExternalSecret {o} not found"));
    };
    let mut failures = Vec::new();
    if let Some(why) = not_ready(object) {
        failures.push((Reason::NotReady, format!("ExternalSecret {o}: {why}")));
    }
    let refreshed = parse_time(&object.data["status"]["refreshTime"]);
    let interval = object.data["spec"]["refreshInterval"]
        .as_str()
        .and_then(parse_go_duration)
        // The operator's default.
        .unwrap_or(Duration::from_secs(3600));
    let allowed = max_age.or((!interval.is_zero()).then(|| interval * 2));
    let age = refreshed.map(|t| (now - t).max(0.0));
    let mut measurements = vec![ready_measure(failures.is_empty())];
    if let Some(age) = age {
        measurements.push(Measurement::new(Measure::KubeSecretSyncAgeSeconds, age));
    }
    match (age, allowed) {
        (Some(age), Some(allowed)) if age > allowed.as_secs_f64() => failures.push((
            Reason::Stale,
            format!(
                "ExternalSecret {o} last refreshed {} ago, at most {} allowed (refreshInterval {})",
                super::age_text(age),
                format_duration(allowed),
                format_duration(interval)
            ),
        )),
        (None, _) if failures.is_empty() => failures.push((
            Reason::NotReady,
            format!("ExternalSecret {o} has no status.refreshTime yet"),
        )),
        _ => {}
    }
    Outcome::from_failures(failures.iter().map(|(r, m)| (*r, m.as_str())))
        .unwrap_or_else(|| {
            Outcome::pass(format!(
                "ExternalSecret {o} synced {} ago",
                super::age_text(age.unwrap_or(0.0))
            ))
        })
        .with_measurements(measurements)
}

/// The newest ready VolumeSnapshot of each source PVC (of `pvc` only, if
/// given) must be younger than `max_age`.
pub fn evaluate_snapshots(
    snapshot: &Snapshot,
    namespace: &str,
    pvc: Option<&str>,
    max_age: Duration,
    now: f64,
) -> Outcome {
    // PVC → creation time of its newest ready snapshot (None: none ready).
    let mut newest: BTreeMap<String, Option<f64>> = BTreeMap::new();
    if let Some(pvc) = pvc {
        newest.insert(pvc.to_string(), None);
    }
    for object in snapshot.in_namespace(Some(namespace)) {
        let Some(source) = object.data["spec"]["source"]["persistentVolumeClaimName"].as_str()
        else {
            continue;
        };
        if pvc.is_some_and(|p| p != source) {
            continue;
        }
        let entry = newest.entry(source.to_string()).or_default();
        if object.data["status"]["readyToUse"].as_bool() != Some(true) {
            continue;
        }
        let created = parse_time(&object.data["status"]["creationTime"]).or_else(|| {
            object
                .metadata
                .creation_timestamp
                .as_ref()
                .map(super::unix_of)
        });
        if let Some(created) = created {
            *entry = Some(entry.map_or(created, |e: f64| e.max(created)));
        }
    }
    if newest.is_empty() {
        return Outcome::fail(
            Reason::NotFound,
            format!("no VolumeSnapshots of any PVC in {namespace}"),
        );
    }
    let mut measurements = Vec::new();
    let mut failures = Vec::new();
    let mut fine = Vec::new();
    for (pvc, created) in &newest {
        match created {
            None => failures.push((
                Reason::NotFound,
                format!("PVC {pvc} has no ready VolumeSnapshot"),
            )),
            Some(created) => {
                let age = (now - created).max(0.0);
                measurements.push(Measurement::labelled(
                    Measure::KubeSnapshotAgeSeconds,
                    &[pvc],
                    age,
                ));
                let age_text = super::age_text(age);
                if age > max_age.as_secs_f64() {
                    failures.push((
                        Reason::Stale,
                        format!("newest ready snapshot of PVC {pvc} is {age_text} old, at most {} allowed", format_duration(max_age)),
                    ));
                } else {
                    fine.push(format!("{pvc}: {age_text}"));
                }
            }
        }
    }
    Outcome::from_failures(failures.iter().map(|(r, m)| (*r, m.as_str())))
        .unwrap_or_else(|| {
            Outcome::pass(format!(
                "newest ready snapshots in {namespace}: {}",
                fine.join(", ")
            ))
        })
        .with_measurements(measurements)
}

pub fn evaluate_present(snapshot: &Snapshot, resource: &ResourceType, o: &ObjectRef) -> Outcome {
    match snapshot.get(&o.namespace, &o.name) {
        Some(_) => Outcome::pass(format!("{} {o} exists", resource.kind)),
        None => Outcome::fail(Reason::NotFound, format!("{} {o} not found", resource.kind)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::resource;
    use crate::probe::kubernetes::testing::snapshot;
    use serde_json::json;

    const NOW: f64 = 1_800_000_000.0;
    const DAY: f64 = 86_400.0;

    fn iso(unix: f64) -> String {
        k8s_openapi::jiff::Timestamp::from_second(unix as i64)
            .unwrap()
            .to_string()
    }

    fn r(name: &str) -> ObjectRef {
        ObjectRef {
            namespace: "prod".into(),
            name: name.into(),
        }
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("15m0s"), Some(Duration::from_secs(900)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("1d"), None);
        assert_eq!(parse_go_duration("10"), None);
    }

    fn certificate(name: &str, ready: &str, not_after: f64) -> serde_json::Value {
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": name, "namespace": "prod"},
            "status": {"conditions": [{"type": "Ready", "status": ready, "reason": "Issuing", "message": "waiting"}],
                "notAfter": iso(not_after), "renewalTime": iso(not_after - 30.0 * DAY)}})
    }

    #[test]
    fn certificates_must_be_ready_and_valid_long_enough() {
        let snap = snapshot(
            resource::CERTIFICATES,
            vec![
                certificate("ok", "True", NOW + 60.0 * DAY),
                certificate("soon", "True", NOW + 10.0 * DAY),
                certificate("gone", "True", NOW - DAY),
                certificate("issuing", "False", NOW + 60.0 * DAY),
            ],
        );
        let min = Some(Duration::from_secs(30 * 86_400));
        let ok = evaluate_certificate(&snap, &r("ok"), min, NOW);
        assert_eq!(ok.reason, Reason::Ok, "{}", ok.message);
        assert!(ok.measurements.contains(&Measurement::new(
            Measure::KubeCertificateNotAfter,
            NOW + 60.0 * DAY
        )));
        let soon = evaluate_certificate(&snap, &r("soon"), min, NOW);
        assert_eq!(soon.reason, Reason::TlsExpiring);
        assert!(
            soon.message
                .contains("valid for 10d more, at least 30d required"),
            "{}",
            soon.message
        );
        assert_eq!(
            evaluate_certificate(&snap, &r("gone"), None, NOW).reason,
            Reason::TlsExpired
        );
        let issuing = evaluate_certificate(&snap, &r("issuing"), min, NOW);
        assert_eq!(issuing.reason, Reason::NotReady);
        assert!(
            issuing
                .message
                .contains("Ready is False (Issuing: waiting)"),
            "{}",
            issuing.message
        );
        assert_eq!(
            evaluate_certificate(&snap, &r("x"), min, NOW).reason,
            Reason::NotFound
        );
    }

    #[test]
    fn issuers_and_stores_need_ready() {
        let snap = snapshot(
            resource::CLUSTER_ISSUERS,
            vec![
                json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": {"name": "letsencrypt"},
                    "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
                json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": {"name": "broken"},
                    "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "ErrRegisterACMEAccount", "message": "no"}]}}),
                json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": {"name": "new"}}),
            ],
        );
        let ready = |name| evaluate_ready(&snap, &resource::CLUSTER_ISSUERS, None, name).reason;
        assert_eq!(ready("letsencrypt"), Reason::Ok);
        assert_eq!(ready("broken"), Reason::NotReady);
        assert_eq!(ready("new"), Reason::NotReady);
        assert_eq!(ready("missing"), Reason::NotFound);
    }

    fn external_secret(
        name: &str,
        ready: &str,
        refreshed: f64,
        interval: &str,
    ) -> serde_json::Value {
        json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
            "metadata": {"name": name, "namespace": "prod"},
            "spec": {"refreshInterval": interval},
            "status": {"refreshTime": iso(refreshed),
                "conditions": [{"type": "Ready", "status": ready, "reason": "SecretSynced", "message": "ok"}]}})
    }

    #[test]
    fn external_secrets_must_be_synced_and_fresh() {
        let snap = snapshot(
            resource::EXTERNAL_SECRETS,
            vec![
                external_secret("fresh", "True", NOW - 600.0, "1h"),
                external_secret("stale", "True", NOW - 3.0 * 3600.0, "1h"),
                external_secret("failing", "False", NOW - 600.0, "1h"),
                external_secret("manual", "True", NOW - 30.0 * DAY, "0"),
            ],
        );
        let fresh = evaluate_external_secret(&snap, &r("fresh"), None, NOW);
        assert_eq!(fresh.reason, Reason::Ok, "{}", fresh.message);
        assert!(fresh
            .measurements
            .contains(&Measurement::new(Measure::KubeSecretSyncAgeSeconds, 600.0)));
        let stale = evaluate_external_secret(&snap, &r("stale"), None, NOW);
        assert_eq!(stale.reason, Reason::Stale);
        assert!(
            stale.message.contains("3h ago, at most 2h allowed"),
            "{}",
            stale.message
        );
        assert_eq!(
            evaluate_external_secret(&snap, &r("fresh"), Some(Duration::from_secs(300)), NOW)
                .reason,
            Reason::Stale
        );
        assert_eq!(
            evaluate_external_secret(&snap, &r("failing"), None, NOW).reason,
            Reason::NotReady
        );
        assert_eq!(
            evaluate_external_secret(&snap, &r("manual"), None, NOW).reason,
            Reason::Ok
        );
    }

    fn volume_snapshot(name: &str, pvc: &str, ready: bool, created: f64) -> serde_json::Value {
        json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
            "metadata": {"name": name, "namespace": "prod"},
            "spec": {"source": {"persistentVolumeClaimName": pvc}},
            "status": {"readyToUse": ready, "creationTime": iso(created)}})
    }

    #[test]
    fn the_newest_ready_snapshot_of_each_pvc_must_be_recent() {
        let snap = snapshot(
            resource::VOLUME_SNAPSHOTS,
            vec![
                volume_snapshot("db-1", "data-db-0", true, NOW - 10.0 * DAY),
                volume_snapshot("db-2", "data-db-0", true, NOW - DAY),
                volume_snapshot("db-3", "data-db-0", false, NOW - 60.0),
                volume_snapshot("redis-1", "data-redis-0", true, NOW - 9.0 * DAY),
            ],
        );
        let week = Duration::from_secs(7 * 86_400);
        let db = evaluate_snapshots(&snap, "prod", Some("data-db-0"), week, NOW);
        assert_eq!(db.reason, Reason::Ok, "{}", db.message);
        assert!(db.measurements.contains(&Measurement::labelled(
            Measure::KubeSnapshotAgeSeconds,
            &["data-db-0"],
            DAY
        )));
        let all = evaluate_snapshots(&snap, "prod", None, week, NOW);
        assert_eq!(all.reason, Reason::Stale);
        assert!(
            all.message.contains("PVC data-redis-0 is 9d old"),
            "{}",
            all.message
        );
        assert_eq!(
            evaluate_snapshots(&snap, "prod", Some("other"), week, NOW).reason,
            Reason::NotFound
        );
    }

    #[test]
    fn presence_of_monitoring_objects() {
        let snap = snapshot(
            resource::SERVICE_MONITORS,
            vec![
                json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": {"name": "api", "namespace": "prod"}}),
            ],
        );
        assert_eq!(
            evaluate_present(&snap, &resource::SERVICE_MONITORS, &r("api")).reason,
            Reason::Ok
        );
        assert_eq!(
            evaluate_present(&snap, &resource::SERVICE_MONITORS, &r("web")).reason,
            Reason::NotFound
        );
    }
}
