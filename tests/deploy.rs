//! The deploy/ tree: kustomize renders the base and the overlay, every
//! object validates against the Kubernetes schemas, and the Deployment
//! carries the hardening fields.
//!
//! The rules and dashboards under deploy/base are generated from mixin/
//! (tests/mixin.rs checks they are current).

use std::path::Path;
use std::process::Command;

use serde_yaml_ng::Value;

fn render(dir: &str) -> Vec<Value> {
    let out = Command::new("kubectl")
        .args(["kustomize", dir])
        .output()
        .expect("kubectl is installed");
    assert!(
        out.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .collect()
}

use serde::Deserialize;

fn kind(object: &Value) -> &str {
    object["kind"].as_str().unwrap_or_default()
}

/// Validates every object of a kind the Kubernetes schemas know (the
/// Prometheus Operator's CRDs are checked by shape below instead).
fn validate_against_schemas(objects: &[Value]) {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        if object["apiVersion"]
            .as_str()
            .unwrap()
            .starts_with("monitoring.coreos.com")
        {
            continue;
        }
        let path = dir.path().join(format!("{i}-{}.yaml", kind(object)));
        std::fs::write(&path, serde_yaml_ng::to_string(object).unwrap()).unwrap();
        files.push(path);
    }
    let out = Command::new("kubernetes-validate")
        .args(["--strict", "--quiet", "-k", "1.32.0"])
        .args(&files)
        .output()
        .expect("kubernetes-validate is installed (scripts/test.sh installs it from PyPI)");
    assert!(
        out.status.success(),
        "kubernetes-validate:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn find<'a>(objects: &'a [Value], wanted: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| kind(o) == wanted)
        .unwrap_or_else(|| panic!("no {wanted} rendered"))
}

fn check_hardening(objects: &[Value]) {
    let workload = objects
        .iter()
        .find(|o| kind(o) == "Deployment" || kind(o) == "StatefulSet")
        .expect("a Deployment or StatefulSet");
    let pod = &workload["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], Value::Bool(true));
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["allowPrivilegeEscalation"], Value::Bool(false));
    assert_eq!(security["readOnlyRootFilesystem"], Value::Bool(true));
    assert_eq!(security["capabilities"]["drop"][0], "ALL");
    for bound in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                container["resources"][bound][resource].is_string(),
                "resources.{bound}.{resource} missing"
            );
        }
    }
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(pod["terminationGracePeriodSeconds"].as_u64().unwrap() >= 10);

    // The config the Deployment mounts is the one the generator made.
    let config_map = objects
        .iter()
        .find(|o| kind(o) == "ConfigMap" && o["data"]["vouch.yaml"].is_string())
        .expect("the config ConfigMap");
    let volume = &pod["volumes"][0]["configMap"]["name"];
    assert_eq!(volume, &config_map["metadata"]["name"]);

    // Read-only RBAC: no verb that changes anything, no secrets' data.
    for object in objects
        .iter()
        .filter(|o| kind(o) == "Role" || kind(o) == "ClusterRole")
    {
        for rule in object["rules"].as_sequence().unwrap() {
            for verb in rule["verbs"].as_sequence().unwrap() {
                assert!(
                    ["get", "list", "watch"].contains(&verb.as_str().unwrap()),
                    "RBAC grants {verb:?}"
                );
            }
            let resources = rule["resources"].as_sequence().unwrap();
            assert!(
                !resources.iter().any(|r| r == "secrets"),
                "RBAC reads secrets"
            );
        }
    }

    let monitor = find(objects, "ServiceMonitor");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "http");
    let rule = find(objects, "PrometheusRule");
    assert!(!rule["spec"]["groups"].as_sequence().unwrap().is_empty());
    let dashboards: Vec<_> = objects
        .iter()
        .filter(|o| o["metadata"]["labels"]["grafana_dashboard"] == "1")
        .collect();
    assert_eq!(
        dashboards.len(),
        std::fs::read_dir("dashboards").unwrap().count(),
        "one ConfigMap per dashboard"
    );
}

#[test]
fn the_base_renders_validates_and_is_hardened() {
    let objects = render("deploy/base");
    validate_against_schemas(&objects);
    check_hardening(&objects);
}

#[test]
fn the_overlay_renders_validates_and_targets_its_platform() {
    let objects = render("deploy/overlays/broxiva-production");
    validate_against_schemas(&objects);
    check_hardening(&objects);
    // Cluster-scoped: the optional ClusterRole of cluster-read.yaml.
    let namespaced = |o: &&Value| !matches!(kind(o), "ClusterRole" | "ClusterRoleBinding");
    for object in objects.iter().filter(namespaced) {
        assert_eq!(
            object["metadata"]["namespace"],
            "broxiva-production",
            "{} {:?}",
            kind(object),
            object["metadata"]["name"]
        );
    }
    assert_eq!(
        find(&objects, "ServiceMonitor")["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
}

#[test]
fn every_shipped_config_under_deploy_is_valid() {
    let clients = vouch::probe::Clients::new();
    let mut found = 0;
    let mut stack = vec![Path::new("deploy").to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == "vouch.yaml") {
                vouch::plan::Plan::load(&path, &clients).unwrap_or_else(|err| panic!("{err}"));
                found += 1;
            }
        }
    }
    assert!(found >= 2, "base and overlay configs");
}

#[test]
fn the_ha_and_sharded_variants_render_validate_and_are_hardened() {
    let ha = render("deploy/variants/ha");
    validate_against_schemas(&ha);
    check_hardening(&ha);
    assert_eq!(find(&ha, "Deployment")["spec"]["replicas"], 2);
    find(&ha, "PodDisruptionBudget");

    let sharded = render("deploy/variants/sharded");
    validate_against_schemas(&sharded);
    check_hardening(&sharded);
    assert!(
        !sharded.iter().any(|o| kind(o) == "Deployment"),
        "the Deployment is replaced"
    );
    let set = find(&sharded, "StatefulSet");
    let replicas = set["spec"]["replicas"].as_u64().unwrap();
    let args: Vec<&str> = set["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let shard = args[args.iter().position(|a| *a == "--shard").unwrap() + 1];
    assert_eq!(
        shard,
        format!("$(POD_INDEX)/{replicas}"),
        "shard count matches the replicas"
    );
}
