//! The deploy/ tree (the rules and dashboards in the prometheus-operator
//! component are generated from mixin/; tests/it/mixin.rs keeps them current):
//! every overlay, alone and with every component (ha, sharded, cluster-wide,
//! prometheus-operator) and the combinations that go together, renders with
//! `kubectl kustomize`, validates against the Kubernetes schemas, and keeps
//! the overlay's image, volumes, labels and namespace; the workload carries
//! the hardening fields.

use std::path::Path;
use std::process::Command;

use serde_yaml_ng::Value;

fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).unwrap()
}

fn render(dir: impl AsRef<Path>) -> Vec<Value> {
    let dir = dir.as_ref().display().to_string();
    let out = Command::new("kubectl")
        .args(["kustomize", &dir])
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
}

#[test]
fn every_shipped_config_under_deploy_is_valid() {
    let clients = vouch::probe::Clients::new();
    let mut found = 0;
    let mut stack = vec![
        Path::new("deploy").to_path_buf(),
        Path::new("examples/broxiva").to_path_buf(),
    ];
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
    assert!(found >= 3, "base, overlay and examples/broxiva configs");
}

const COMPONENTS: [&str; 4] = ["ha", "sharded", "cluster-wide", "prometheus-operator"];

/// Each component alone, and the two sets that go together (`ha` and
/// `sharded` are alternatives).
fn combinations() -> Vec<Vec<&'static str>> {
    let mut sets: Vec<Vec<&str>> = vec![vec![]];
    sets.extend(COMPONENTS.iter().map(|c| vec![*c]));
    sets.push(vec!["ha", "cluster-wide", "prometheus-operator"]);
    sets.push(vec!["sharded", "cluster-wide", "prometheus-operator"]);
    sets
}

/// Every overlay under deploy/overlays, and the real one kept under
/// examples/, as paths from the package root.
fn overlays() -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir("deploy/overlays")
        .unwrap()
        .map(|e| {
            format!(
                "deploy/overlays/{}",
                e.unwrap().file_name().to_string_lossy()
            )
        })
        .collect();
    found.sort();
    assert!(
        found.contains(&"deploy/overlays/example".to_string()),
        "{found:?}"
    );
    found.push("examples/broxiva".to_string());
    found
}

/// How `overlay`'s kustomization reaches deploy/: `../../` from
/// deploy/overlays/NAME, `../../deploy/` from examples/NAME.
fn deploy_prefix(overlay: &str) -> &'static str {
    if overlay.starts_with("deploy/") {
        "../../"
    } else {
        "../../deploy/"
    }
}

/// A copy of `overlay` in a temporary directory with `components` added to
/// its own list (components must be listed by the overlay itself, so its
/// namespace, image and patches apply after them), and `extra` appended.
fn compose(overlay: &str, components: &[&str], extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let source = Path::new(overlay);
    for entry in std::fs::read_dir(source).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    // kustomize refuses absolute paths: reach deploy/ relatively.
    let here = dir.path().canonicalize().unwrap();
    let deploy = Path::new("deploy").canonicalize().unwrap();
    let up = "../".repeat(here.components().count() - 1);
    let deploy = format!(
        "{up}{}/",
        deploy.display().to_string().trim_start_matches('/')
    );
    let file = dir.path().join("kustomization.yaml");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace(deploy_prefix(overlay), &deploy);
    let mut document: Value = yaml(&text);
    let listed = document
        .as_mapping_mut()
        .unwrap()
        .entry("components".into())
        .or_insert(Value::Sequence(Vec::new()))
        .as_sequence_mut()
        .unwrap();
    for component in components {
        let path = format!("{deploy}components/{component}");
        if !listed.iter().any(|c| c.as_str() == Some(path.as_str())) {
            listed.push(path.into());
        }
    }
    let mut text = serde_yaml_ng::to_string(&document).unwrap();
    text.push_str(extra);
    std::fs::write(&file, text).unwrap();
    dir
}

fn workload(objects: &[Value]) -> &Value {
    let workloads: Vec<&Value> = objects
        .iter()
        .filter(|o| kind(o) == "Deployment" || kind(o) == "StatefulSet")
        .collect();
    assert_eq!(workloads.len(), 1, "one workload");
    workloads[0]
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list.as_sequence()
        .map(|items| {
            items
                .iter()
                .map(|i| i[key].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// What the overlay sets, read off its rendering without components (the
/// `release` label off its rendering with prometheus-operator).
struct Expected {
    image: String,
    namespace: String,
    volumes: Vec<String>,
    mounts: Vec<String>,
    release: Option<Value>,
    /// Whether the overlay itself lists the prometheus-operator component.
    operator_by_default: bool,
}

fn expected_of(overlay: &str) -> Expected {
    let text = std::fs::read_to_string(format!("{overlay}/kustomization.yaml")).unwrap();
    let kustomization = yaml(&text);
    let image = &kustomization["images"][0];
    assert_eq!(image["name"], "vouch", "{overlay} sets the image");
    let plain = render(overlay);
    let pod = &workload(&plain)["spec"]["template"]["spec"];
    Expected {
        image: format!(
            "{}:{}",
            image["newName"].as_str().unwrap(),
            image["newTag"].as_str().unwrap()
        ),
        namespace: kustomization["namespace"].as_str().unwrap().to_string(),
        volumes: names(&pod["volumes"], "name"),
        mounts: names(&pod["containers"][0]["volumeMounts"], "mountPath"),
        release: render(compose(overlay, &["prometheus-operator"], "").path())
            .iter()
            .find(|o| kind(o) == "ServiceMonitor")
            .map(|m| m["metadata"]["labels"]["release"].clone()),
        operator_by_default: plain.iter().any(|o| kind(o) == "ServiceMonitor"),
    }
}

/// What must survive every composition: the image, the volumes and their
/// mounts, the labels, the namespace.
fn check_survivors(objects: &[Value], expected: &Expected, what: &str) {
    let pod = &workload(objects)["spec"]["template"]["spec"];
    for container in pod["containers"].as_sequence().unwrap() {
        assert_eq!(container["image"], expected.image.as_str(), "{what}");
    }
    assert_eq!(names(&pod["volumes"], "name"), expected.volumes, "{what}");
    assert_eq!(
        names(&pod["containers"][0]["volumeMounts"], "mountPath"),
        expected.mounts,
        "{what}"
    );
    for object in objects.iter().filter(|o| kind(o) != "Namespace") {
        let labels = &object["metadata"]["labels"];
        assert_eq!(
            labels["app.kubernetes.io/name"], "vouch",
            "{what}: {object:?}"
        );
        assert_eq!(labels["app.kubernetes.io/part-of"], "vouch", "{what}");
        let cluster_scoped = ["ClusterRole", "ClusterRoleBinding"].contains(&kind(object));
        if !cluster_scoped {
            assert_eq!(
                object["metadata"]["namespace"],
                expected.namespace.as_str(),
                "{what}: {} {:?}",
                kind(object),
                object["metadata"]["name"]
            );
        }
    }
    if let Some(release) = &expected.release {
        for object in objects.iter().filter(|o| {
            o["apiVersion"]
                .as_str()
                .unwrap()
                .starts_with("monitoring.coreos.com")
        }) {
            assert_eq!(&object["metadata"]["labels"]["release"], release, "{what}");
        }
    }
}

/// What each component promises.
fn check_components(objects: &[Value], components: &[&str], expected: &Expected, what: &str) {
    let has = |wanted: &str| objects.iter().any(|o| kind(o) == wanted);
    if components.contains(&"prometheus-operator") || expected.operator_by_default {
        assert_eq!(
            find(objects, "ServiceMonitor")["spec"]["endpoints"][0]["port"],
            "http"
        );
        let rule = find(objects, "PrometheusRule");
        assert!(!rule["spec"]["groups"].as_sequence().unwrap().is_empty());
        let dashboards = objects
            .iter()
            .filter(|o| o["metadata"]["labels"]["grafana_dashboard"] == "1")
            .count();
        assert_eq!(
            dashboards,
            std::fs::read_dir("dashboards").unwrap().count(),
            "{what}: one ConfigMap per dashboard"
        );
    } else {
        // Nothing that needs the Prometheus Operator's CRDs.
        assert!(
            !objects.iter().any(|o| o["apiVersion"]
                .as_str()
                .unwrap()
                .starts_with("monitoring.coreos.com")),
            "{what}"
        );
    }
    if components.contains(&"ha") {
        assert_eq!(find(objects, "Deployment")["spec"]["replicas"], 2, "{what}");
        find(objects, "PodDisruptionBudget");
    }
    if components.contains(&"sharded") {
        assert!(!has("Deployment"), "{what}: the Deployment is replaced");
        assert_shards_match_replicas(objects, what);
        assert_shards_reach_each_other(objects, what);
    }
    if components.contains(&"cluster-wide") {
        assert!(!has("Role") && !has("RoleBinding"), "{what}");
        let binding = find(objects, "ClusterRoleBinding");
        assert_eq!(
            binding["subjects"][0]["namespace"],
            expected.namespace.as_str()
        );
        let cluster_rules = find(objects, "ClusterRole")["rules"].clone();
        let base = render("deploy/base");
        for rule in find(&base, "Role")["rules"].as_sequence().unwrap() {
            assert!(
                cluster_rules.as_sequence().unwrap().contains(rule),
                "{what}: the ClusterRole lacks the Role's {rule:?}"
            );
        }
    } else {
        find(objects, "Role");
    }
}

/// The shards ask each other by pod name under a headless Service that
/// lists pods not ready yet, and the StatefulSet is governed by it.
fn assert_shards_reach_each_other(objects: &[Value], what: &str) {
    let headless = objects
        .iter()
        .find(|o| kind(o) == "Service" && o["metadata"]["name"] == "vouch-shards")
        .unwrap_or_else(|| panic!("{what}: the Service vouch-shards"));
    assert_eq!(headless["spec"]["clusterIP"], "None", "{what}");
    assert_eq!(headless["spec"]["publishNotReadyAddresses"], true, "{what}");
    let set = find(objects, "StatefulSet");
    assert_eq!(set["spec"]["serviceName"], "vouch-shards", "{what}");
    let pod_labels = &set["spec"]["template"]["metadata"]["labels"];
    for (key, value) in headless["spec"]["selector"].as_mapping().unwrap() {
        assert_eq!(
            &pod_labels[key], value,
            "{what}: the Service selects the shards"
        );
    }
    let port = &headless["spec"]["ports"][0];
    assert_eq!(port["port"], 9847, "{what}");
    let args: Vec<&str> = set["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let at = args
        .iter()
        .position(|a| *a == "--shard.peers")
        .unwrap_or_else(|| panic!("{what}: --shard.peers in {args:?}"));
    assert_eq!(
        args.get(at + 1).copied(),
        Some("http://vouch-{shard}.vouch-shards:9847"),
        "{what}"
    );
    // The NetworkPolicy lets the shards in, from the same namespace.
    let policy = find(objects, "NetworkPolicy");
    let admitted = policy["spec"]["ingress"]
        .as_sequence()
        .unwrap()
        .iter()
        .any(|rule| {
            rule["ports"][0]["port"] == 9847
                && rule["from"].as_sequence().is_some_and(|from| {
                    from.iter().any(|f| {
                        f["namespaceSelector"].is_null()
                            && f["podSelector"]["matchLabels"] == headless["spec"]["selector"]
                    })
                })
        });
    assert!(
        admitted,
        "{what}: the shards may call each other: {policy:?}"
    );
    // The template names the StatefulSet's pods under that Service.
    let set_name = set["metadata"]["name"].as_str().unwrap();
    assert!(args[at + 1].starts_with(&format!("http://{set_name}-{{shard}}.vouch-shards:")));
}

fn assert_shards_match_replicas(objects: &[Value], what: &str) {
    let set = find(objects, "StatefulSet");
    let replicas = set["spec"]["replicas"].as_u64().unwrap();
    let env = &set["spec"]["template"]["spec"]["containers"][0]["env"];
    let shard = env
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "VOUCH_SHARD")
        .expect("VOUCH_SHARD");
    assert_eq!(
        shard["value"],
        format!("$(POD_INDEX)/{replicas}").as_str(),
        "{what}: the shard count is the replica count"
    );
}

#[test]
fn every_overlay_with_every_component_renders_validates_and_keeps_what_it_set() {
    let mut everything = Vec::new();
    for overlay in overlays() {
        let expected = expected_of(&overlay);
        for components in combinations() {
            let what = format!("{overlay} + {components:?}");
            let dir = compose(&overlay, &components, "");
            let objects = render(dir.path());
            check_hardening(&objects);
            check_survivors(&objects, &expected, &what);
            check_components(&objects, &components, &expected, &what);
            everything.extend(objects);
        }
    }
    // One run of the schema validator for every rendering.
    validate_against_schemas(&everything);
}

#[test]
fn the_base_renders_without_any_crd_and_validates() {
    let objects = render("deploy/base");
    validate_against_schemas(&objects);
    check_hardening(&objects);
    assert!(objects.iter().all(|o| !o["apiVersion"]
        .as_str()
        .unwrap()
        .starts_with("monitoring.coreos.com")));
}

#[test]
fn an_overlay_sets_another_shard_count_with_one_value() {
    // The way the component's comment tells: `replicas:` and its
    // replacement repeated inline.
    let text = std::fs::read_to_string("deploy/components/sharded/kustomization.yaml").unwrap();
    let start = text.find("#   replicas:").expect("the documented recipe");
    let recipe: String = text[start..]
        .lines()
        .take_while(|l| l.starts_with("#   "))
        .map(|l| format!("{}\n", &l[4..]))
        .collect();
    let dir = compose("deploy/overlays/example", &["sharded"], &recipe);
    let objects = render(dir.path());
    assert_eq!(find(&objects, "StatefulSet")["spec"]["replicas"], 5);
    assert_shards_match_replicas(&objects, "example + sharded, 5 shards");
}

#[test]
fn the_example_overlay_needs_no_crd_and_labels_the_operator_objects_when_asked() {
    // A first `kubectl apply -k` of the copied overlay must work on a
    // cluster without the Prometheus Operator: nothing of its API groups.
    let plain = render("deploy/overlays/example");
    let operator_objects: Vec<&str> = plain
        .iter()
        .filter(|o| {
            o["apiVersion"]
                .as_str()
                .unwrap()
                .starts_with("monitoring.coreos.com")
        })
        .map(kind)
        .collect();
    assert_eq!(operator_objects, Vec::<&str>::new());
    // Turned on, its objects carry the release label the overlay sets.
    let dir = compose("deploy/overlays/example", &["prometheus-operator"], "");
    let objects = render(dir.path());
    for wanted in ["ServiceMonitor", "PrometheusRule"] {
        assert_eq!(
            find(&objects, wanted)["metadata"]["labels"]["release"],
            "kube-prometheus-stack",
            "{wanted}"
        );
    }
    // The overlay says how to turn it on.
    let text = std::fs::read_to_string("deploy/overlays/example/kustomization.yaml").unwrap();
    assert!(
        text.contains("#   - ../../components/prometheus-operator"),
        "{text}"
    );
}

#[test]
fn the_example_overlay_admits_prometheus_and_the_gate_callers() {
    let objects = render("deploy/overlays/example");
    let policy = find(&objects, "NetworkPolicy");
    let from: Vec<&str> = policy["spec"]["ingress"][0]["from"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|f| {
            f["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(from, ["monitoring", "argo-rollouts", "flagger-system"]);
    let config = objects
        .iter()
        .find(|o| kind(o) == "ConfigMap" && o["data"]["vouch.yaml"].is_string())
        .expect("the config ConfigMap");
    let checks: Value = yaml(config["data"]["vouch.yaml"].as_str().unwrap());
    assert_eq!(checks["checks"].as_sequence().unwrap().len(), 3);
}
