//! `after_rollout_of` with Argo Rollouts `Rollout` objects, against the
//! fake API server: a new generation of a Rollout runs the checks that
//! follow it at once, and the gate's `since_rollout` holds until they have
//! run; without the CRD nothing is watched and the log says so; the
//! optional RBAC component (deploy/components/argo-rollouts) is what makes
//! the watch allowed.
use crate::support;

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use support::http_server::{Reply, TestServer};
use support::kube_api::FakeKube;
use support::vouch::{Daemon, VERDICT_WAIT};
use support::wait_until;

const WAIT: Duration = Duration::from_secs(15);

/// A canary Rollout as Argo's users write it (spec.template like a
/// Deployment's, the strategy in spec.strategy).
fn rollout(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": "prod", "labels": {"app": name}},
        "spec": {
            "replicas": 4,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": image}]}
            },
            "strategy": {"canary": {"steps": [
                {"setWeight": 25},
                {"analysis": {"templates": [{"templateName": "vouch-post-deploy"}]}},
                {"setWeight": 100}
            ]}}
        }
    })
}

fn install_argo(fake: &FakeKube) {
    fake.install_crd("argoproj.io", "v1alpha1", "Rollout", "rollouts", true);
}

struct Setup {
    daemon: Daemon,
    server: TestServer,
    _dir: tempfile::TempDir,
}

/// The check's target: healthy, answering after `delay`.
fn health(delay: Duration) -> Reply {
    Reply::json(200, json!({"status": "ok"})).delay(delay)
}

/// A daemon with one http check (its target answers at once) that follows
/// prod/api, on an hour's interval so only rollouts make it run. Its
/// timeout is generous: a rollout makes one run, which must pass even on a
/// loaded machine.
async fn start(fake: &FakeKube) -> Setup {
    let server = TestServer::http().await;
    server.route("/health", health(Duration::ZERO));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vouch.yaml");
    std::fs::write(
        &config,
        format!(
            "checks:\n  - name: api-health\n    section: post-deploy/api\n    interval: 1h\n    timeout: 50s\n    after_rollout_of: [prod/api]\n    http: {{ url: \"{}\" }}\n",
            server.url("/health")
        ),
    )
    .unwrap();
    let kubeconfig = fake.kubeconfig_path().to_str().unwrap().to_string();
    let daemon = Daemon::start_with_args(&config, &["--kubeconfig", &kubeconfig]).await;
    Setup {
        daemon,
        server,
        _dir: dir,
    }
}

async fn generation_seen(daemon: &Daemon) -> Option<i64> {
    daemon.check("api-health").await["last_rollout"]["generation"].as_i64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_argo_rollout_runs_its_checks_and_holds_a_since_rollout_gate_until_they_ran() {
    let fake = FakeKube::start().await;
    install_argo(&fake);
    fake.apply(rollout("api", "api:1"));
    let setup = start(&fake).await;
    let daemon = &setup.daemon;
    wait_until(
        "the Deployment, StatefulSet and Rollout watches",
        WAIT,
        || async { fake.open_watches() == 3 },
    )
    .await;

    // A new pod template: a new generation of the Rollout.
    fake.apply(rollout("api", "api:2"));
    wait_until("the rollout to be seen", WAIT, || async {
        generation_seen(daemon).await == Some(2)
    })
    .await;
    let result = daemon.wait_for_result("api-health", WAIT).await;
    assert_eq!(result["last_rollout"]["workload"], "prod/api", "{result}");
    assert_eq!(result["last_run"]["verdict"], "pass", "{result}");
    let gate = "/api/v1/gate?section=post-deploy&since_rollout=true";
    assert_eq!(daemon.get(gate).await.unwrap().0, 200);

    // The next rollout: while the run it started is under way (its target
    // now takes 10 s, time enough for the gate to be asked on a busy
    // machine), the last run predates the rollout and holds the gate.
    setup
        .server
        .route("/health", health(Duration::from_secs(10)));
    fake.apply(rollout("api", "api:3"));
    wait_until("the second rollout to be seen", WAIT, || async {
        generation_seen(daemon).await == Some(3)
    })
    .await;
    let (status, body) = daemon.get(gate).await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("has not run since the rollout of prod/api (generation 3)"),
        "{body}"
    );
    // Without since_rollout the earlier pass still counts.
    assert_eq!(
        daemon
            .get("/api/v1/gate?section=post-deploy")
            .await
            .unwrap()
            .0,
        200
    );
    wait_until("the gate to open after the run", VERDICT_WAIT, || async {
        daemon.get(gate).await.unwrap().0 == 200
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_argo_rollouts_installed_nothing_more_is_watched_and_the_log_says_so() {
    let fake = FakeKube::start().await;
    let setup = start(&fake).await;
    wait_until("the Deployment and StatefulSet watches", WAIT, || async {
        fake.open_watches() == 2
    })
    .await;
    wait_until("the log to explain", WAIT, || async {
        let logs = setup.daemon.logs();
        logs.contains("Argo Rollouts is not installed (the API server does not serve argoproj.io/v1alpha1)")
            && logs.contains("after_rollout_of names prod/api, which is no Deployment or StatefulSet (and Argo Rollouts is not installed, so it cannot be a Rollout)")
    })
    .await;
    assert_eq!(fake.count_any_namespace("list", "rollouts"), 0);
    assert_eq!(fake.open_watches(), 2);
}

/// `kubectl kustomize` of the base in namespace prod, with the
/// argo-rollouts component or without.
fn rendered_rbac(with_component: bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    // kustomize takes only relative roots: up from the temporary folder
    // to `/`, then down to this checkout.
    let up = "../".repeat(dir.path().components().count() - 1);
    let root = format!("{up}{}", env!("CARGO_MANIFEST_DIR").trim_start_matches('/'));
    let components = if with_component {
        format!("components:\n  - {root}/deploy/components/argo-rollouts\n")
    } else {
        String::new()
    };
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        format!("namespace: prod\nresources:\n  - {root}/deploy/base\n{components}"),
    )
    .unwrap();
    let out = Command::new("kubectl")
        .args(["kustomize"])
        .arg(dir.path())
        .output()
        .expect("kubectl is installed");
    assert!(
        out.status.success(),
        "kubectl kustomize: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.split("\n---\n")
        .filter(|doc| {
            doc.lines()
                .any(|l| ["kind: Role", "kind: RoleBinding"].contains(&l.trim_end()))
        })
        .collect::<Vec<_>>()
        .join("\n---\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_optional_component_grants_what_the_rollouts_watch_needs() {
    let fake = FakeKube::start().await;
    install_argo(&fake);
    fake.apply(rollout("api", "api:1"));
    fake.set_user("system:serviceaccount:prod:vouch");

    // The base alone: the Rollouts watch is refused, and /readyz says what
    // to grant.
    fake.set_rules_from_manifests(&rendered_rbac(false), "prod");
    let setup = start(&fake).await;
    wait_until("the refusal to show on /readyz", WAIT, || async {
        let (_, body) = setup.daemon.get("/readyz").await.unwrap();
        body.contains("kubernetes watch rollouts.argoproj.io in prod: failing:")
            && body.contains("grant list,watch on rollouts.argoproj.io in namespace prod")
    })
    .await;
    drop(setup);

    // With the component: listed and watched, nothing refused.
    fake.set_rules_from_manifests(&rendered_rbac(true), "prod");
    fake.reset_requests();
    let setup = start(&fake).await;
    wait_until("the Rollouts watch to sync", WAIT, || async {
        let (_, body) = setup.daemon.get("/readyz").await.unwrap();
        body.contains("kubernetes watch rollouts.argoproj.io in prod: synced")
    })
    .await;
    let refused: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.status == 403)
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_rollouts_watch_is_named_not_taken_for_a_missing_workload() {
    let fake = FakeKube::start().await;
    install_argo(&fake);
    fake.apply(rollout("api", "api:1"));
    fake.set_user("system:serviceaccount:prod:vouch");
    // The base alone: Deployments and StatefulSets may be watched, the
    // Rollouts watch is refused.
    fake.set_rules_from_manifests(&rendered_rbac(false), "prod");
    let setup = start(&fake).await;
    wait_until("the log to name the refused watch", WAIT, || async {
        setup.daemon.logs().contains(
            "after_rollout_of names prod/api, which vouch cannot look for: rollouts.argoproj.io: ",
        )
    })
    .await;
    let logs = setup.daemon.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("which vouch cannot look for"))
        .unwrap();
    assert!(
        line.contains("grant list,watch on rollouts.argoproj.io in namespace prod"),
        "{line}"
    );
    assert!(
        !logs.contains("which is no Deployment or StatefulSet"),
        "{logs}"
    );
}

/// `kubectl kustomize` of the base in namespace prod with the cluster-wide
/// component, and the cluster-wide argo-rollouts component or not: its
/// RBAC objects.
fn rendered_cluster_wide_rbac(with_argo: bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    let up = "../".repeat(dir.path().components().count() - 1);
    let root = format!("{up}{}", env!("CARGO_MANIFEST_DIR").trim_start_matches('/'));
    let argo = if with_argo {
        format!("  - {root}/deploy/components/argo-rollouts/cluster-wide\n")
    } else {
        String::new()
    };
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        format!(
            "namespace: prod\nresources:\n  - {root}/deploy/base\ncomponents:\n  - {root}/deploy/components/cluster-wide\n{argo}"
        ),
    )
    .unwrap();
    let out = Command::new("kubectl")
        .args(["kustomize"])
        .arg(dir.path())
        .output()
        .expect("kubectl is installed");
    assert!(
        out.status.success(),
        "kubectl kustomize: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .split("\n---\n")
        .filter(|doc| {
            doc.lines().any(|l| {
                [
                    "kind: Role",
                    "kind: RoleBinding",
                    "kind: ClusterRole",
                    "kind: ClusterRoleBinding",
                ]
                .contains(&l.trim_end())
            })
        })
        .collect::<Vec<_>>()
        .join("\n---\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_wide_variant_grants_rollouts_in_any_namespace() {
    let fake = FakeKube::start().await;
    install_argo(&fake);
    let mut staged = rollout("api", "api:1");
    staged["metadata"]["namespace"] = json!("staging");
    fake.apply(staged);
    fake.set_user("system:serviceaccount:prod:vouch");
    let server = TestServer::http().await;
    server.route("/health", Reply::json(200, json!({"status": "ok"})));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vouch.yaml");
    std::fs::write(
        &config,
        format!(
            "checks:\n  - name: api-health\n    interval: 1h\n    after_rollout_of: [staging/api]\n    http: {{ url: \"{}\" }}\n",
            server.url("/health")
        ),
    )
    .unwrap();
    let kubeconfig = fake.kubeconfig_path().to_str().unwrap().to_string();

    // cluster-wide alone: Deployments anywhere, Rollouts nowhere.
    fake.set_rules_from_manifests(&rendered_cluster_wide_rbac(false), "prod");
    let daemon = Daemon::start_with_args(&config, &["--kubeconfig", &kubeconfig]).await;
    wait_until("the refusal to show on /readyz", WAIT, || async {
        let (_, body) = daemon.get("/readyz").await.unwrap();
        body.contains("kubernetes watch rollouts.argoproj.io in staging: failing:")
    })
    .await;
    drop(daemon);

    // With the cluster-wide argo-rollouts component: watched in staging.
    fake.set_rules_from_manifests(&rendered_cluster_wide_rbac(true), "prod");
    fake.reset_requests();
    let daemon = Daemon::start_with_args(&config, &["--kubeconfig", &kubeconfig]).await;
    wait_until("the Rollouts watch to sync", WAIT, || async {
        let (_, body) = daemon.get("/readyz").await.unwrap();
        body.contains("kubernetes watch rollouts.argoproj.io in staging: synced")
    })
    .await;
    let refused: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.status == 403)
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
}
