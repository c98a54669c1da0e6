//! The RBAC of deploy/ is least privilege for the shipped config, proven
//! against the fake Kubernetes API server (tests/support/kube_api), which
//! enforces exactly the rules it is given (403 for anything else).
//!
//! The rules and the config come from `kubectl kustomize
//! examples/broxiva`, as the overlay would be applied:
//! the rendered Role and RoleBinding (namespace broxiva-production, bound
//! to ServiceAccount broxiva-production/vouch) and the vouch.yaml of the
//! rendered vouch-config ConfigMap. The fake holds the objects that the
//! config's kubernetes checks read (names from that config); the other
//! checks (http, dns, postgres, ...) cannot run here and are left out with
//! `--only`.
//!
//! - With the rules as shipped, `vouch check` passes every kubernetes check
//!   and the fake answered no request with 403 (and saw no verb but list
//!   and watch).
//! - With any one rule, any one resource of a rule, or the `list` verb of
//!   a rule taken away, the gate fails: the checks reading what was taken
//!   away report `forbidden` naming the resource to grant, and only those.
//! - With the `watch` verb taken away for any one resource, a one-shot
//!   gate could still pass (the first list succeeds), but the cache could
//!   not follow changes: checks run repeatedly (as the daemon does) turn
//!   `forbidden` naming that resource.
use crate::support;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;
use serde_yaml_ng::Value as Yaml;
use support::kube_api::FakeKube;
use vouch::config::SourcedConfig;
use vouch::plan::Plan;
use vouch::probe::Clients;
use vouch::result::{Reason, Verdict};
use vouch::runner::run_once;

const OVERLAY: &str = "examples/broxiva";
const NAMESPACE: &str = "broxiva-production";
const SERVICE_ACCOUNT: &str = "system:serviceaccount:broxiva-production:vouch";

/// The overlay as kustomize renders it: every object.
fn render_overlay() -> Vec<Yaml> {
    let out = Command::new("kubectl")
        .args(["kustomize", OVERLAY])
        .output()
        .expect("kubectl is installed");
    assert!(
        out.status.success(),
        "kubectl kustomize {OVERLAY}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Yaml::deserialize(doc).unwrap())
        .filter(|doc| !doc.is_null())
        .collect()
}

fn kind(object: &Yaml) -> &str {
    object["kind"].as_str().unwrap_or_default()
}

/// The RBAC objects of the rendered overlay, as one multi-document YAML.
fn rbac_yaml(objects: &[Yaml]) -> String {
    objects
        .iter()
        .filter(|o| {
            matches!(
                kind(o),
                "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding"
            )
        })
        .map(|o| serde_yaml_ng::to_string(o).unwrap())
        .collect::<Vec<_>>()
        .join("---\n")
}

/// The config the overlay ships (vouch.yaml of ConfigMap vouch-config).
fn shipped_config(objects: &[Yaml]) -> String {
    objects
        .iter()
        .find(|o| kind(o) == "ConfigMap" && o["data"]["vouch.yaml"].is_string())
        .expect("the overlay renders the vouch config")["data"]["vouch.yaml"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Names of the config's kubernetes checks.
fn kubernetes_checks(config: &str) -> Vec<String> {
    let config: Yaml = serde_yaml_ng::from_str(config).unwrap();
    config["checks"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|c| c.get("kubernetes").is_some())
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

/// The rules of the rendered Role: (API groups, resources, verbs).
fn role_rules(objects: &[Yaml]) -> Vec<(Vec<String>, Vec<String>, Vec<String>)> {
    let roles: Vec<&Yaml> = objects.iter().filter(|o| kind(o) == "Role").collect();
    assert_eq!(roles.len(), 1, "one Role");
    let cluster_roles: Vec<&Yaml> = objects
        .iter()
        .filter(|o| kind(o) == "ClusterRole")
        .collect();
    assert_eq!(cluster_roles.len(), 1, "one ClusterRole, the optional one");
    let granted: Vec<String> = cluster_roles[0]["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|rule| serde_yaml_ng::to_string(rule).unwrap().replace('\n', " "))
        .collect();
    assert_eq!(
        granted,
        [
            "apiGroups: - cert-manager.io resources: - clusterissuers verbs: - list - watch ",
            "apiGroups: - '' resources: - namespaces verbs: - list - watch ",
        ],
        "cluster-wide, only what cluster-issuer-ready and namespace-exists read"
    );
    let list = |v: &Yaml| -> Vec<String> {
        v.as_sequence()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    roles[0]["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| {
            (
                list(&r["apiGroups"]),
                list(&r["resources"]),
                list(&r["verbs"]),
            )
        })
        .collect()
}

/// The rendered objects with the Role's rules changed by `edit`.
fn with_role_rules(objects: &[Yaml], edit: impl Fn(&mut Vec<Yaml>)) -> Vec<Yaml> {
    let mut objects = objects.to_vec();
    for object in &mut objects {
        if kind(object) == "Role" {
            let rules = object
                .get_mut("rules")
                .and_then(Yaml::as_sequence_mut)
                .unwrap();
            edit(rules);
        }
    }
    objects
}

/// The RBAC name checks' messages use: `deployments.apps`, `pods`.
fn rbac_name(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

/// A fake cluster holding what the shipped kubernetes checks read, all of
/// it healthy: the twin's platform objects (tests/support/twin/cluster.rs).
async fn populated_cluster() -> FakeKube {
    let fake = FakeKube::start().await;
    fake.set_user(SERVICE_ACCOUNT);
    support::twin::cluster::populate(&fake, &Default::default());
    fake
}

/// One `vouch check` of the shipped kubernetes checks: exit code and the
/// JSON report's checks by name.
struct GateRun {
    code: i32,
    checks: Vec<Value>,
}

impl GateRun {
    fn not_passed(&self) -> Vec<&Value> {
        self.checks
            .iter()
            .filter(|c| c["state"] != "pass")
            .collect()
    }
}

async fn gate(fake: &FakeKube, config: &std::path::Path, names: &[String]) -> GateRun {
    let mut args = vec![
        "check".to_string(),
        "--config".to_string(),
        config.display().to_string(),
        "--kubeconfig".to_string(),
        fake.kubeconfig_path().display().to_string(),
        "--format".to_string(),
        "json".to_string(),
        "--fail-on".to_string(),
        "info".to_string(),
    ];
    for name in names {
        args.push("--only".to_string());
        args.push(name.clone());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = support::vouch::run(&args).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|err| {
        panic!(
            "the gate's JSON report ({err}): {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    GateRun {
        code: output.status.code().unwrap_or(-1),
        checks: report["checks"].as_array().unwrap().clone(),
    }
}

fn summary(checks: &[&Value]) -> String {
    checks
        .iter()
        .map(|c| {
            format!(
                "{}: {}/{}: {}",
                c["name"].as_str().unwrap_or("?"),
                c["state"].as_str().unwrap_or("?"),
                c["last_run"]["reason"].as_str().unwrap_or("?"),
                c["last_run"]["message"].as_str().unwrap_or("?")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asserts that the gate failed and that every check that did not pass is
/// `forbidden` naming one of `resources` in the overlay's namespace. With
/// one resource, it is named. (A check reading two refused resources
/// names the first it reads: the rollback check names deployments before
/// replicasets; each resource alone is proven separately.)
fn assert_forbidden_for(run: &GateRun, resources: &[String], what: &str) {
    let not_passed = run.not_passed();
    assert_ne!(run.code, 0, "{what}: the gate must fail");
    assert!(!not_passed.is_empty(), "{what}: no check failed");
    for check in &not_passed {
        let message = check["last_run"]["message"].as_str().unwrap_or_default();
        assert!(
            check["state"] == "error"
                && check["last_run"]["reason"] == "forbidden"
                && resources.iter().any(|r| message
                    .contains(&format!("grant list,watch on {r} in namespace {NAMESPACE}"))),
            "{what}: expected only forbidden errors naming one of {resources:?}, got:\n{}",
            summary(&not_passed)
        );
    }
    for resource in resources.iter().filter(|_| resources.len() == 1) {
        let needle = format!("grant list,watch on {resource} in namespace");
        assert!(
            not_passed.iter().any(|c| c["last_run"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(&needle)),
            "{what}: no check names {resource}:\n{}",
            summary(&not_passed)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_rbac_grants_exactly_what_the_shipped_kubernetes_checks_need() {
    let rendered = render_overlay();
    let config_text = shipped_config(&rendered);
    let names = kubernetes_checks(&config_text);
    assert_eq!(
        names.len(),
        26,
        "the shipped config's kubernetes checks: {names:?}"
    );
    let config = support::write_config(&config_text);
    let fake = populated_cluster().await;
    let rules = role_rules(&rendered);

    // As shipped: every kubernetes check passes, nothing was refused, and
    // nothing but list and watch (and discovery) was asked.
    fake.set_rules_from_manifests(&rbac_yaml(&rendered), NAMESPACE);
    let started = Instant::now();
    let run = gate(&fake, &config.path, &names).await;
    let took = started.elapsed();
    assert_eq!(run.checks.len(), names.len());
    assert!(
        run.not_passed().is_empty() && run.code == 0,
        "with the shipped rules every kubernetes check passes:\n{}",
        summary(&run.not_passed())
    );
    let requests = fake.requests();
    let refused: Vec<_> = requests.iter().filter(|r| r.status == 403).collect();
    assert!(refused.is_empty(), "requests refused: {refused:?}");
    let verbs: BTreeSet<&str> = requests
        .iter()
        .filter(|r| r.verb != "discovery")
        .map(|r| r.verb.as_str())
        .collect();
    assert!(
        verbs.iter().all(|v| ["list", "watch"].contains(v)),
        "verbs used: {verbs:?}"
    );
    // Every resource the Role grants was read.
    let read: BTreeSet<String> = requests
        .iter()
        .filter(|r| r.verb == "list")
        .map(|r| rbac_name(&r.group, &r.plural))
        .collect();
    for (groups, resources, _) in &rules {
        for resource in resources {
            let name = rbac_name(&groups[0], resource);
            assert!(read.contains(&name), "{name} granted but never listed");
        }
    }
    eprintln!(
        "shipped rules: {} checks passed in {took:?} with {} requests",
        run.checks.len(),
        requests.len()
    );

    let mut proven = 0;
    // Each rule taken away.
    for (index, (groups, resources, _)) in rules.iter().enumerate() {
        let objects = with_role_rules(&rendered, |rules| {
            rules.remove(index);
        });
        fake.set_rules_from_manifests(&rbac_yaml(&objects), NAMESPACE);
        let names_of: Vec<String> = resources.iter().map(|r| rbac_name(&groups[0], r)).collect();
        let run = gate(&fake, &config.path, &names).await;
        assert_forbidden_for(
            &run,
            &names_of,
            &format!("without rule {groups:?} {resources:?}"),
        );
        proven += 1;
    }
    // Each resource of a rule taken away (rules of one resource are done
    // above).
    for (index, (groups, resources, _)) in rules.iter().enumerate() {
        if resources.len() < 2 {
            continue;
        }
        for resource in resources {
            let objects = with_role_rules(&rendered, |rules| {
                let list = rules[index]
                    .get_mut("resources")
                    .and_then(Yaml::as_sequence_mut)
                    .unwrap();
                list.retain(|r| r.as_str() != Some(resource));
            });
            fake.set_rules_from_manifests(&rbac_yaml(&objects), NAMESPACE);
            let name = rbac_name(&groups[0], resource);
            let run = gate(&fake, &config.path, &names).await;
            assert_forbidden_for(
                &run,
                std::slice::from_ref(&name),
                &format!("without {name}"),
            );
            proven += 1;
        }
    }
    // The list verb of each rule taken away.
    for (index, (groups, resources, verbs)) in rules.iter().enumerate() {
        assert_eq!(verbs, &["list", "watch"], "rule {groups:?} {resources:?}");
        let objects = with_role_rules(&rendered, |rules| {
            rules[index]["verbs"] = Yaml::Sequence(vec!["watch".into()]);
        });
        fake.set_rules_from_manifests(&rbac_yaml(&objects), NAMESPACE);
        let names_of: Vec<String> = resources.iter().map(|r| rbac_name(&groups[0], r)).collect();
        let run = gate(&fake, &config.path, &names).await;
        assert_forbidden_for(&run, &names_of, &format!("without list on {resources:?}"));
        proven += 1;
    }
    eprintln!("{proven} reductions of the shipped rules each failed a check with forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_watch_on_any_resource_the_checks_reading_it_turn_forbidden() {
    let rendered = render_overlay();
    let config_text = shipped_config(&rendered);
    let rules = role_rules(&rendered);
    let resources: Vec<(usize, String, String)> = rules
        .iter()
        .enumerate()
        .flat_map(|(index, (groups, resources, _))| {
            resources
                .iter()
                .map(move |r| (index, groups[0].clone(), r.clone()))
        })
        .collect();
    assert_eq!(resources.len(), 14, "{resources:?}");
    // One resource at a time: with a whole rule's watch gone, a check
    // reading two of its resources (rollback: deployments, then
    // replicasets) would keep naming the first.
    for (index, group, resource) in &resources {
        let fake = populated_cluster().await;
        let objects = with_role_rules(&rendered, |rules| {
            let mut list_only = rules[*index].clone();
            list_only["resources"] = Yaml::Sequence(vec![resource.as_str().into()]);
            list_only["verbs"] = Yaml::Sequence(vec!["list".into()]);
            rules[*index]
                .get_mut("resources")
                .and_then(Yaml::as_sequence_mut)
                .unwrap()
                .retain(|r| r.as_str() != Some(resource));
            rules.push(list_only);
        });
        fake.set_rules_from_manifests(&rbac_yaml(&objects), NAMESPACE);
        let clients = Arc::new(Clients::with_kubeconfig(Some(
            fake.kubeconfig_path().to_path_buf(),
        )));
        let source = SourcedConfig::parse(&config_text, "vouch.yaml", ".".into()).unwrap();
        let plan = Plan::from_source(&source, &clients, |_| None).unwrap();
        let names = kubernetes_checks(&config_text);
        let checks: Vec<_> = plan
            .checks
            .into_iter()
            .filter(|c| names.contains(&c.name))
            .collect();
        let wanted = vec![rbac_name(group, resource)];
        // Run every check until each resource is named by a forbidden
        // error (the list succeeds, the watch after it is refused, and the
        // cache retries: the daemon's checks see the refusal).
        let mut named: BTreeSet<String> = BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while named.len() < wanted.len() {
            for check in &checks {
                let outcome = run_once(check.clone(), clients.clone()).await.outcome;
                if outcome.verdict == Verdict::Pass {
                    continue;
                }
                assert!(
                    outcome.verdict == Verdict::Error && outcome.reason == Reason::Forbidden,
                    "without watch on {resource}: {} {}/{}: {}",
                    check.name,
                    outcome.verdict,
                    outcome.reason,
                    outcome.message
                );
                let hit = wanted.iter().find(|r| {
                    outcome
                        .message
                        .contains(&format!("grant list,watch on {r} in namespace {NAMESPACE}"))
                });
                let hit = hit.unwrap_or_else(|| {
                    panic!(
                        "{}: names none of {wanted:?}: {}",
                        check.name, outcome.message
                    )
                });
                named.insert(hit.clone());
            }
            assert!(
                Instant::now() < deadline,
                "without watch on {resource}: no check reported forbidden"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let refused_watches = fake
            .requests()
            .iter()
            .filter(|r| r.status == 403 && r.verb == "watch")
            .count();
        assert!(refused_watches > 0);
        assert!(
            !fake
                .requests()
                .iter()
                .any(|r| r.status == 403 && r.verb == "list"),
            "only watches are refused"
        );
    }
}
