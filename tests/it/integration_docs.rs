//! docs/integrations.md against the real CRD schemas (Argo Rollouts'
//! AnalysisTemplate and Rollout, Flagger's Canary; upstream CRDs kept in
//! tests/fixtures/crds/, validated by validate.py there with Python's
//! jsonschema, which scripts/test.sh installs with kubernetes-validate),
//! and every gate URL in it against vouch's own query parser.
use std::io::Write;
use std::process::{Command, Stdio};

use vouch::output::gate::GateQuery;

fn docs() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/integrations.md")).unwrap()
}

/// Every ```yaml block that is a Kubernetes object (has `apiVersion`).
fn manifests(text: &str) -> Vec<serde_json::Value> {
    let mut found = Vec::new();
    let mut block: Option<String> = None;
    for line in text.lines() {
        match (&mut block, line.trim_end()) {
            (None, "```yaml") => block = Some(String::new()),
            (Some(yaml), "```") => {
                let value: serde_json::Value = serde_yaml_ng::from_str(yaml)
                    .unwrap_or_else(|err| panic!("a yaml block does not parse: {err}\n{yaml}"));
                if value.get("apiVersion").is_some() {
                    found.push(value);
                }
                block = None;
            }
            (Some(yaml), _) => {
                yaml.push_str(line);
                yaml.push('\n');
            }
            (None, _) => {}
        }
    }
    found
}

/// validate.py's verdict on `objects`: Ok, or its list of problems.
fn validate(objects: &[serde_json::Value]) -> Result<(), String> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/crds/validate.py"
    );
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(objects).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("ModuleNotFoundError"),
        "jsonschema or PyYAML is missing (scripts/test.sh installs kubernetes-validate): {text}"
    );
    if out.status.success() {
        Ok(())
    } else {
        Err(text)
    }
}

fn kinds(objects: &[serde_json::Value]) -> Vec<&str> {
    objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect()
}

#[test]
fn every_manifest_in_the_docs_is_accepted_by_its_crd() {
    let objects = manifests(&docs());
    assert_eq!(kinds(&objects), ["AnalysisTemplate", "Rollout", "Canary"]);
    validate(&objects).unwrap_or_else(|problems| panic!("{problems}"));
}

#[test]
fn the_schemas_reject_what_the_controllers_would() {
    let objects = manifests(&docs());
    // The old README's Flagger snippet: webhooks without interval,
    // threshold and a step setting.
    let mut canary = objects[2].clone();
    canary["spec"]["analysis"] = serde_json::json!({
        "webhooks": [{ "name": "vouch-gate", "type": "rollout",
                       "url": "http://vouch:9847/api/v1/gate", "timeout": "5s" }]
    });
    let problems = validate(&[canary]).unwrap_err();
    assert!(problems.contains("spec.analysis"), "{problems}");
    // A misspelt field of the web provider (Argo has `timeoutSeconds`).
    let mut template = objects[0].clone();
    template["spec"]["metrics"][0]["provider"]["web"]["timeout"] = "10s".into();
    let problems = validate(&[template]).unwrap_err();
    assert!(problems.contains("'timeout' was unexpected"), "{problems}");
    // A metric without a provider.
    let mut template = objects[0].clone();
    template["spec"]["metrics"][0]
        .as_object_mut()
        .unwrap()
        .remove("provider");
    let problems = validate(&[template]).unwrap_err();
    assert!(
        problems.contains("'provider' is a required property"),
        "{problems}"
    );
}

fn gate_query(url: &str) -> (GateQuery, Vec<(String, String)>) {
    let url = url::Url::parse(url).unwrap();
    assert_eq!(url.path(), "/api/v1/gate", "{url}");
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let map: serde_json::Map<String, serde_json::Value> = pairs
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into()))
        .collect();
    let query = serde_json::from_value(map.into())
        .unwrap_or_else(|err| panic!("vouch rejects the query of {url}: {err}"));
    (query, pairs)
}

#[test]
fn the_gate_urls_are_set_as_each_controller_needs() {
    let objects = manifests(&docs());
    let argo = &objects[0]["spec"]["metrics"][0];
    // Deliberate error handling, not Argo's defaults.
    assert_eq!(argo["consecutiveErrorLimit"], 3);
    assert_eq!(argo["failureLimit"], 2);
    assert_eq!(argo["successCondition"], "result == true");
    assert_eq!(argo["provider"]["web"]["jsonPath"], "{$.passed}");
    assert!(argo["provider"]["web"]["timeoutSeconds"].is_u64());
    let (query, _) = gate_query(argo["provider"]["web"]["url"].as_str().unwrap());
    assert_eq!(query.held_status.as_deref(), Some("200"));
    assert_eq!(query.since_rollout.as_deref(), Some("true"));

    let webhook = &objects[2]["spec"]["analysis"]["webhooks"][0];
    let (query, _) = gate_query(webhook["url"].as_str().unwrap());
    assert_eq!(
        query.held_status, None,
        "Flagger reads only the status: a held gate must answer 503"
    );
    assert_eq!(query.since_rollout.as_deref(), Some("true"));
    assert_eq!(webhook["type"], "rollout");
}
