//! Plain objects: Service endpoints, Ingress addresses, Namespaces,
//! ConfigMaps and Secrets.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;

use super::ObjectRef;
use crate::kube::lookup::addresses_of;
use crate::kube::{typed, Snapshot};
use crate::result::{Measure, Measurement, Outcome, Reason};

fn not_found(what: &str, o: &ObjectRef) -> Outcome {
    Outcome::fail(Reason::NotFound, format!("{what} {o} not found"))
}

/// Ready endpoint addresses over the EndpointSlices of Service `o`
/// (labelled `kubernetes.io/service-name`). Dual-stack Services have one
/// slice per address family; the larger family counts.
pub fn evaluate_endpoints(snapshot: &Snapshot, o: &ObjectRef, min_ready: u32) -> Outcome {
    let mut slices = Vec::new();
    for object in snapshot.in_namespace(Some(&o.namespace)) {
        let owned = object
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/service-name"))
            .is_some_and(|name| *name == o.name);
        if owned {
            match typed::<EndpointSlice>(object) {
                Ok(slice) => slices.push(slice),
                Err(message) => return Outcome::error(Reason::Protocol, message),
            }
        }
    }
    endpoints_outcome(&slices, o, min_ready)
}

pub fn endpoints_outcome(slices: &[EndpointSlice], o: &ObjectRef, min_ready: u32) -> Outcome {
    let mut ready: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    let mut not_ready: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for slice in slices {
        for endpoint in &slice.endpoints {
            // A missing `ready` means ready (EndpointConditions docs).
            let is_ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            let target = if is_ready { &mut ready } else { &mut not_ready };
            let set = target.entry(slice.address_type.as_str()).or_default();
            for address in &endpoint.addresses {
                set.insert(address.as_str());
            }
        }
    }
    let count =
        |m: &HashMap<&str, BTreeSet<&str>>| m.values().map(BTreeSet::len).max().unwrap_or(0);
    let (ready_count, not_ready_count) = (count(&ready), count(&not_ready));
    let measurements = vec![Measurement::new(
        Measure::KubeEndpointsReady,
        ready_count as f64,
    )];
    let outcome = if slices.is_empty() {
        Outcome::fail(
            Reason::Endpoints,
            format!("Service {o} has no EndpointSlices (does the Service exist and select pods?)"),
        )
    } else if ready_count < min_ready as usize {
        Outcome::fail(
            Reason::Endpoints,
            format!("Service {o} has {ready_count} ready endpoints ({not_ready_count} not ready), at least {min_ready} required"),
        )
    } else {
        Outcome::pass(format!(
            "Service {o} has {ready_count} ready endpoints ({not_ready_count} not ready)"
        ))
    };
    outcome.with_measurements(measurements)
}

pub fn evaluate_ingress(snapshot: &Snapshot, o: &ObjectRef) -> Outcome {
    let Some(object) = snapshot.get(&o.namespace, &o.name) else {
        return not_found("Ingress", o);
    };
    let ingress: Ingress = match typed(object) {
        Ok(i) => i,
        Err(message) => return Outcome::error(Reason::Protocol, message),
    };
    let addresses = addresses_of(&ingress);
    let outcome = if addresses.is_empty() {
        Outcome::fail(
            Reason::IngressAddress,
            format!("Ingress {o} has no load-balancer address yet"),
        )
    } else {
        Outcome::pass(format!("Ingress {o} at {}", addresses.join(", ")))
    };
    outcome.with_measurements(vec![Measurement::new(
        Measure::KubeIngressAddresses,
        addresses.len() as f64,
    )])
}

pub fn evaluate_namespace(snapshot: &Snapshot, name: &str) -> Outcome {
    let Some(object) = snapshot.get("", name) else {
        return Outcome::fail(Reason::NotFound, format!("Namespace {name} not found"))
            .with_measurements(vec![Measurement::new(Measure::KubeObjectReady, 0.0)]);
    };
    let namespace: Namespace = match typed(object) {
        Ok(n) => n,
        Err(message) => return Outcome::error(Reason::Protocol, message),
    };
    let phase = namespace
        .status
        .and_then(|s| s.phase)
        .unwrap_or_else(|| "Active".to_string());
    let active = phase == "Active";
    let outcome = if active {
        Outcome::pass(format!("Namespace {name} is Active"))
    } else {
        Outcome::fail(Reason::NotReady, format!("Namespace {name} is {phase}"))
    };
    outcome.with_measurements(vec![Measurement::new(
        Measure::KubeObjectReady,
        f64::from(u8::from(active)),
    )])
}

pub fn evaluate_configmap(
    snapshot: &Snapshot,
    o: &ObjectRef,
    keys: &[String],
    values: &BTreeMap<String, String>,
) -> Outcome {
    let Some(object) = snapshot.get(&o.namespace, &o.name) else {
        return not_found("ConfigMap", o);
    };
    let map: ConfigMap = match typed(object) {
        Ok(m) => m,
        Err(message) => return Outcome::error(Reason::Protocol, message),
    };
    let data = map.data.unwrap_or_default();
    let binary = map.binary_data.unwrap_or_default();
    let missing: Vec<&str> = keys
        .iter()
        .chain(values.keys())
        .filter(|k| !data.contains_key(*k) && !binary.contains_key(*k))
        .map(String::as_str)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut failures = Vec::new();
    if !missing.is_empty() {
        failures.push((
            Reason::Keys,
            format!("ConfigMap {o} lacks keys: {}", missing.join(", ")),
        ));
    }
    let differing: Vec<String> = values
        .iter()
        .filter_map(|(k, want)| {
            let got = data.get(k)?;
            (got != want).then(|| format!("{k} is {:?}, expected {want:?}", shorten(got)))
        })
        .collect();
    if !differing.is_empty() {
        failures.push((
            Reason::Values,
            format!("ConfigMap {o}: {}", differing.join(", ")),
        ));
    }
    Outcome::from_failures(failures.iter().map(|(r, m)| (*r, m.as_str()))).unwrap_or_else(|| {
        Outcome::pass(format!(
            "ConfigMap {o} has {} keys{}",
            data.len() + binary.len(),
            if values.is_empty() {
                String::new()
            } else {
                format!(", {} expected values", values.len())
            }
        ))
    })
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= 80 {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(80).collect::<String>())
    }
}

/// A Secret exists, with `keys` when asked. The cache holds key names
/// only (values are blanked as they arrive); without `keys` it holds
/// metadata only.
pub fn evaluate_secret(snapshot: &Snapshot, o: &ObjectRef, keys: &[String]) -> Outcome {
    let Some(object) = snapshot.get(&o.namespace, &o.name) else {
        return not_found("Secret", o);
    };
    if keys.is_empty() {
        return Outcome::pass(format!("Secret {o} exists"));
    }
    let present: BTreeSet<&str> = ["data", "stringData"]
        .iter()
        .filter_map(|field| object.data.get(*field).and_then(|v| v.as_object()))
        .flat_map(|map| map.keys().map(String::as_str))
        .collect();
    let missing: Vec<&str> = keys
        .iter()
        .map(String::as_str)
        .filter(|k| !present.contains(k))
        .collect();
    if missing.is_empty() {
        Outcome::pass(format!("Secret {o} has keys {}", keys.join(", ")))
    } else {
        Outcome::fail(
            Reason::Keys,
            format!("Secret {o} lacks keys: {}", missing.join(", ")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::resource;
    use crate::probe::kubernetes::testing::snapshot;
    use serde_json::json;

    fn r(name: &str) -> ObjectRef {
        ObjectRef {
            namespace: "prod".into(),
            name: name.into(),
        }
    }

    fn slice(
        name: &str,
        service: &str,
        family: &str,
        endpoints: serde_json::Value,
    ) -> serde_json::Value {
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "prod", "labels": {"kubernetes.io/service-name": service}},
            "addressType": family, "endpoints": endpoints})
    }

    #[test]
    fn endpoints_count_ready_addresses_of_the_service_only() {
        let snap = snapshot(
            resource::ENDPOINT_SLICES,
            vec![
                slice(
                    "api-a",
                    "api",
                    "IPv4",
                    json!([
                    {"addresses": ["10.0.0.1"], "conditions": {"ready": true}},
                    {"addresses": ["10.0.0.2"]},
                    {"addresses": ["10.0.0.3"], "conditions": {"ready": false}}]),
                ),
                slice(
                    "api-b",
                    "api",
                    "IPv6",
                    json!([{"addresses": ["fd00::1"], "conditions": {"ready": true}}]),
                ),
                slice("web-a", "web", "IPv4", json!([{"addresses": ["10.0.1.1"]}])),
            ],
        );
        let outcome = evaluate_endpoints(&snap, &r("api"), 2);
        assert_eq!(outcome.reason, Reason::Ok, "{}", outcome.message);
        assert!(
            outcome.message.contains("2 ready endpoints (1 not ready)"),
            "{}",
            outcome.message
        );
        let outcome = evaluate_endpoints(&snap, &r("api"), 3);
        assert_eq!(outcome.reason, Reason::Endpoints);
        assert_eq!(
            evaluate_endpoints(&snap, &r("none"), 1).reason,
            Reason::Endpoints
        );
    }

    #[test]
    fn ingress_needs_an_address() {
        let snap = snapshot(
            resource::INGRESSES,
            vec![
                json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web", "namespace": "prod"},
                    "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}, {"hostname": "lb.example.com"}]}}}),
                json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "new", "namespace": "prod"},
                    "status": {"loadBalancer": {}}}),
            ],
        );
        let outcome = evaluate_ingress(&snap, &r("web"));
        assert_eq!(
            outcome.message,
            "Ingress prod/web at 203.0.113.7, lb.example.com"
        );
        assert_eq!(
            evaluate_ingress(&snap, &r("new")).reason,
            Reason::IngressAddress
        );
        assert_eq!(evaluate_ingress(&snap, &r("gone")).reason, Reason::NotFound);
    }

    #[test]
    fn namespaces_must_exist_and_be_active() {
        let snap = snapshot(
            resource::NAMESPACES,
            vec![
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}, "status": {"phase": "Active"}}),
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "old"}, "status": {"phase": "Terminating"}}),
            ],
        );
        assert_eq!(evaluate_namespace(&snap, "prod").reason, Reason::Ok);
        assert_eq!(evaluate_namespace(&snap, "old").reason, Reason::NotReady);
        assert_eq!(evaluate_namespace(&snap, "nope").reason, Reason::NotFound);
    }

    #[test]
    fn configmaps_need_their_keys_and_values() {
        let snap = snapshot(
            resource::CONFIGMAPS,
            vec![
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app", "namespace": "prod"},
                "data": {"LOG_LEVEL": "info", "REGION": "eu"}}),
            ],
        );
        let keys = vec!["LOG_LEVEL".to_string()];
        let mut values = BTreeMap::new();
        values.insert("REGION".to_string(), "eu".to_string());
        assert_eq!(
            evaluate_configmap(&snap, &r("app"), &keys, &values).reason,
            Reason::Ok
        );
        let missing =
            evaluate_configmap(&snap, &r("app"), &["FEATURE".to_string()], &BTreeMap::new());
        assert_eq!(missing.reason, Reason::Keys);
        assert!(missing.message.contains("lacks keys: FEATURE"));
        values.insert("REGION".to_string(), "us".to_string());
        let wrong = evaluate_configmap(&snap, &r("app"), &[], &values);
        assert_eq!(wrong.reason, Reason::Values);
        assert!(
            wrong.message.contains("REGION is \"eu\", expected \"us\""),
            "{}",
            wrong.message
        );
        assert_eq!(
            evaluate_configmap(&snap, &r("x"), &[], &BTreeMap::new()).reason,
            Reason::NotFound
        );
    }

    #[test]
    fn secrets_are_judged_by_key_names_only() {
        let snap = snapshot(
            resource::SECRETS,
            vec![
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app", "namespace": "prod"},
                "data": {"password": ""}}),
            ],
        );
        assert_eq!(evaluate_secret(&snap, &r("app"), &[]).reason, Reason::Ok);
        assert_eq!(
            evaluate_secret(&snap, &r("app"), &["password".into()]).reason,
            Reason::Ok
        );
        let missing = evaluate_secret(&snap, &r("app"), &["password".into(), "token".into()]);
        assert_eq!(missing.reason, Reason::Keys);
        assert_eq!(missing.message, "Secret prod/app lacks keys: token");
        assert_eq!(
            evaluate_secret(&snap, &r("gone"), &[]).reason,
            Reason::NotFound
        );
    }
}
