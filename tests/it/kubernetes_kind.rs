//! The `kubernetes` kind against the fake Kubernetes API server
//! (tests/support/kube_api): targets passing and failing through the shared
//! watch cache, and the faults — a rollout in progress then complete, crash
//! loops, restarts within a window, a missing CRD, RBAC refusals, a watch
//! that has not synced, dropped watches, expired resource versions, the API
//! server down and back — plus the request counts of 10 and 200 checks and
//! the daemon's metric, /readyz detail and reload.
use crate::support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use support::kind::expect;
use support::kube_api::{FakeKube, Rule};
use support::kube_cluster::{Cluster, WAIT};
use support::vouch::{Daemon, VERDICT_WAIT};
use support::wait_until;
use vouch::plan::PlannedCheck;
use vouch::result::{Outcome, Reason, Verdict};
use vouch::runner::run_once;

fn deployment(name: &str, replicas: i32, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "prod", "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]}
            }
        }
    })
}

/// Sets a Deployment's status as its controller would, caught up with its
/// current generation.
fn set_deployment_status(fake: &FakeKube, name: &str, updated: i32, ready: i32, total: i32) {
    let stored = fake
        .get("apps/v1", "Deployment", Some("prod"), name)
        .unwrap();
    let generation = stored["metadata"]["generation"].as_i64().unwrap_or(1);
    fake.patch_status(
        "apps/v1",
        "Deployment",
        Some("prod"),
        name,
        json!({"observedGeneration": generation, "replicas": total, "updatedReplicas": updated,
               "readyReplicas": ready, "availableReplicas": ready}),
    );
}

fn pod(name: &str, app: &str, ready: bool, state: Value, restarts: i32) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "prod", "labels": {"app": app}},
        "spec": {"containers": [{"name": "app", "image": "api:1"}]},
        "status": {
            "phase": "Running",
            "startTime": "2020-01-01T00:00:00Z",
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
            "containerStatuses": [{"name": "app", "image": "api:1", "imageID": "", "ready": ready,
                "restartCount": restarts, "state": state}]
        }
    })
}

fn running() -> Value {
    json!({"running": {"startedAt": "2020-01-01T00:00:00Z"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_in_progress_fails_with_numbers_then_passes_when_complete() {
    let cluster = Cluster::start().await;
    cluster.fake.apply(deployment("api", 5, "api:1.4.1"));
    set_deployment_status(&cluster.fake, "api", 5, 5, 5);
    let check = cluster.check("{ deployment: prod/api, min_ready: 5 }");
    let outcome = cluster.run(&check).await;
    expect(
        &outcome,
        Verdict::Pass,
        Reason::Ok,
        "5/5 ready, 5/5 updated, 5/5 available",
    );

    // A new image: generation 2, not yet observed by the controller.
    cluster.fake.apply(deployment("api", 5, "api:1.4.2"));
    let outcome = cluster
        .run_until(&check, "the new generation to be seen", |o| {
            o.reason == Reason::Rollout
        })
        .await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::Rollout,
        "spec update to be observed",
    );

    // The controller has created 2 new pods; 3 old ones are ready.
    set_deployment_status(&cluster.fake, "api", 2, 3, 6);
    let outcome = cluster
        .run_until(&check, "the rollout's numbers", |o| {
            o.message.contains("2 of 5 new replicas updated")
        })
        .await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::Rollout,
        "3/5 ready, 2/5 updated",
    );
    assert!(
        outcome.message.contains("3 ready, at least 5 required"),
        "{}",
        outcome.message
    );

    set_deployment_status(&cluster.fake, "api", 5, 5, 5);
    let outcome = cluster
        .run_until(&check, "the rollout to complete", |o| {
            o.verdict == Verdict::Pass
        })
        .await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "rolled out: 5/5 ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loops_and_restarts_within_the_window_fail_the_pods_check() {
    let cluster = Cluster::start().await;
    cluster.fake.apply(deployment("api", 2, "api:1"));
    cluster.fake.apply(pod("api-a", "api", true, running(), 0));
    cluster.fake.apply(pod("api-b", "api", true, running(), 0));
    cluster.fake.apply(pod(
        "web-a",
        "web",
        false,
        json!({"waiting": {"reason": "CrashLoopBackOff"}}),
        9,
    ));
    let check =
        cluster.check("{ pods: { deployment: prod/api, max_restarts: 0, restart_window: 1h } }");
    let outcome = cluster.run(&check).await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "2/2 pods ready");

    // api-b restarts twice and is now crash-looping.
    let mut crashing = pod(
        "api-b",
        "api",
        false,
        json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}}),
        2,
    );
    crashing["status"]["containerStatuses"][0]["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "2020-01-01T00:00:00Z"}});
    cluster.fake.apply(crashing);
    let outcome = cluster
        .run_until(&check, "the crash loop", |o| o.reason == Reason::CrashLoop)
        .await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::CrashLoop,
        "api-b: container app CrashLoopBackOff",
    );
    assert!(
        outcome.message.contains("1/2 pods ready"),
        "{}",
        outcome.message
    );
    assert!(
        outcome
            .message
            .contains("2 restarts within 1h (max 0): api-b/app: 2"),
        "{}",
        outcome.message
    );

    // Back to running: the restarts are still within the window.
    cluster.fake.apply(pod("api-b", "api", true, running(), 2));
    let outcome = cluster
        .run_until(&check, "the pod to recover", |o| {
            o.reason != Reason::CrashLoop
        })
        .await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::Restarts,
        "2 restarts within 1h",
    );

    // Pods selected by a label selector: the crash-looping web pod.
    let web = cluster.check("{ pods: { namespace: prod, selector: app=web } }");
    let outcome = cluster.run(&web).await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::CrashLoop,
        "web-a: container app CrashLoopBackOff",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_pull_and_config_errors_have_their_words() {
    let cluster = Cluster::start().await;
    cluster.fake.apply(pod(
        "api-a",
        "api",
        false,
        json!({"waiting": {"reason": "ImagePullBackOff"}}),
        0,
    ));
    cluster.fake.apply(pod(
        "job-a",
        "job",
        false,
        json!({"waiting": {"reason": "CreateContainerConfigError"}}),
        0,
    ));
    let api = cluster.check("{ pods: { namespace: prod, selector: app=api } }");
    expect(
        &cluster.run(&api).await,
        Verdict::Fail,
        Reason::ImagePull,
        "ImagePullBackOff",
    );
    let job = cluster.check("{ pods: { namespace: prod, selector: app=job } }");
    expect(
        &cluster.run(&job).await,
        Verdict::Fail,
        Reason::ContainerConfig,
        "CreateContainerConfigError",
    );
    let none = cluster.check("{ pods: { namespace: prod, selector: app=nothing } }");
    expect(
        &cluster.run(&none).await,
        Verdict::Fail,
        Reason::NotFound,
        "0 pods match app=nothing in prod",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_target_passes_and_fails_against_the_fake() {
    let cluster = Cluster::start().await;
    let fake = &cluster.fake;
    fake.install_cert_manager();
    fake.install_external_secrets();
    fake.install_volume_snapshots();
    fake.install_prometheus_operator();
    let now = k8s_openapi::jiff::Timestamp::now();
    let ago =
        |seconds: i64| (now - k8s_openapi::jiff::SignedDuration::from_secs(seconds)).to_string();
    let ahead =
        |seconds: i64| (now + k8s_openapi::jiff::SignedDuration::from_secs(seconds)).to_string();
    fake.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}, "status": {"phase": "Active"}}));
    fake.apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-config", "namespace": "prod"},
        "data": {"NODE_ENV": "production", "DATABASE_HOST": "db"}}));
    fake.apply(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app-secrets", "namespace": "prod"},
        "type": "Opaque", "data": {"JWT_SECRET": "c3VwZXItc2VjcmV0LXZhbHVl"}}));
    fake.apply(json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "api-x1", "namespace": "prod", "labels": {"kubernetes.io/service-name": "api"}},
        "addressType": "IPv4", "endpoints": [
            {"addresses": ["10.0.0.1"], "conditions": {"ready": true}},
            {"addresses": ["10.0.0.2"], "conditions": {"ready": true}}]}));
    fake.apply(json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web", "namespace": "prod"},
        "spec": {}, "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}}));
    fake.apply(json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "api", "namespace": "prod"},
        "spec": {"minReplicas": 2, "maxReplicas": 10, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"}},
        "status": {"currentReplicas": 10, "desiredReplicas": 12}}));
    fake.apply(json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "api-a.1", "namespace": "prod"},
        "involvedObject": {"kind": "Pod", "name": "api-a", "namespace": "prod"},
        "type": "Warning", "reason": "BackOff", "message": "Back-off restarting failed container", "lastTimestamp": ago(60)}));
    let stored = fake.apply(deployment("api", 2, "registry.example.com/api:1.4.2"));
    let uid = stored["metadata"]["uid"].as_str().unwrap().to_string();
    fake.patch(
        "apps/v1",
        "Deployment",
        Some("prod"),
        "api",
        json!({"metadata": {"annotations": {"deployment.kubernetes.io/revision": "2"}}}),
    );
    for (revision, image) in [
        ("1", "registry.example.com/api:1.4.1"),
        ("2", "registry.example.com/api:1.4.2"),
    ] {
        fake.apply(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": format!("api-{revision}"), "namespace": "prod",
                "annotations": {"deployment.kubernetes.io/revision": revision},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "api", "uid": uid, "controller": true}]},
            "spec": {"selector": {"matchLabels": {"app": "api"}},
                "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "app", "image": image}]}}}}));
    }
    fake.apply(json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": "api-tls", "namespace": "prod"},
        "spec": {"secretName": "api-tls"},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready"}],
            "notAfter": ahead(60 * 86_400), "renewalTime": ahead(30 * 86_400)}}));
    fake.apply(json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": {"name": "letsencrypt"},
        "spec": {}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}));
    fake.apply(json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret", "metadata": {"name": "app-secrets", "namespace": "prod"},
        "spec": {"refreshInterval": "1h"},
        "status": {"refreshTime": ago(600), "conditions": [{"type": "Ready", "status": "True", "reason": "SecretSynced"}]}}));
    fake.apply(json!({"apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore", "metadata": {"name": "vault"},
        "spec": {}, "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "InvalidProviderConfig", "message": "cannot reach the vault"}]}}));
    fake.apply(json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot", "metadata": {"name": "db-1", "namespace": "prod"},
        "spec": {"source": {"persistentVolumeClaimName": "data-db-0"}},
        "status": {"readyToUse": true, "creationTime": ago(8 * 86_400)}}));
    fake.apply(json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": {"name": "api", "namespace": "prod"}, "spec": {}}));

    let cases: &[(&str, Verdict, Reason, &str)] = &[
        ("{ namespace: prod }", Verdict::Pass, Reason::Ok, "Namespace prod is Active"),
        ("{ namespace: staging }", Verdict::Fail, Reason::NotFound, "Namespace staging not found"),
        ("{ configmap: prod/app-config, keys: [DATABASE_HOST], values: { NODE_ENV: production } }", Verdict::Pass, Reason::Ok, "ConfigMap prod/app-config has 2 keys"),
        ("{ configmap: prod/app-config, values: { NODE_ENV: staging } }", Verdict::Fail, Reason::Values, "NODE_ENV is \"production\", expected \"staging\""),
        ("{ secret: prod/app-secrets }", Verdict::Pass, Reason::Ok, "Secret prod/app-secrets exists"),
        ("{ secret: prod/app-secrets, keys: [JWT_SECRET] }", Verdict::Pass, Reason::Ok, "has keys JWT_SECRET"),
        ("{ secret: prod/app-secrets, keys: [JWT_SECRET, STRIPE_KEY] }", Verdict::Fail, Reason::Keys, "lacks keys: STRIPE_KEY"),
        ("{ secret: prod/other }", Verdict::Fail, Reason::NotFound, "Secret prod/other not found"),
        ("{ service_endpoints: prod/api, min_ready: 2 }", Verdict::Pass, Reason::Ok, "2 ready endpoints"),
        ("{ service_endpoints: prod/api, min_ready: 3 }", Verdict::Fail, Reason::Endpoints, "2 ready endpoints (0 not ready), at least 3 required"),
        ("{ ingress: prod/web }", Verdict::Pass, Reason::Ok, "Ingress prod/web at 203.0.113.7"),
        ("{ hpa: prod/api }", Verdict::Fail, Reason::ScalingLimit, "pinned at its maximum: 10 current, 12 desired (min 2, max 10)"),
        ("{ hpa: prod/api, fail_at_max: false }", Verdict::Pass, Reason::Ok, "10 current"),
        ("{ events: { namespace: prod } }", Verdict::Fail, Reason::WarningEvents, "1× BackOff (Pod/api-a: Back-off restarting failed container)"),
        ("{ events: { namespace: prod, max_warnings: 1 } }", Verdict::Pass, Reason::Ok, "1 Warning events in prod within 15m"),
        ("{ rollback: { deployment: prod/api, min_revisions: 3 } }", Verdict::Fail, Reason::Revisions, "rev 2: registry.example.com/api:1.4.2 (current); rev 1: registry.example.com/api:1.4.1"),
        ("{ rollback: { deployment: prod/api } }", Verdict::Pass, Reason::Ok, "retains 2 revisions"),
        ("{ certificate: prod/api-tls, min_valid_for: 30d }", Verdict::Pass, Reason::Ok, "Certificate prod/api-tls is Ready, valid for 59d, renews in 29d"),
        ("{ certificate: prod/api-tls, min_valid_for: 90d }", Verdict::Fail, Reason::TlsExpiring, "at least 90d required"),
        ("{ cluster_issuer: letsencrypt }", Verdict::Pass, Reason::Ok, "ClusterIssuer letsencrypt is Ready"),
        ("{ issuer: prod/letsencrypt }", Verdict::Fail, Reason::NotFound, "Issuer prod/letsencrypt not found"),
        ("{ external_secret: prod/app-secrets }", Verdict::Pass, Reason::Ok, "synced 10m ago"),
        ("{ external_secret: prod/app-secrets, max_sync_age: 5m }", Verdict::Fail, Reason::Stale, "at most 5m allowed"),
        ("{ cluster_secret_store: vault }", Verdict::Fail, Reason::NotReady, "InvalidProviderConfig: cannot reach the vault"),
        ("{ volume_snapshots: { namespace: prod, pvc: data-db-0, max_age: 7d } }", Verdict::Fail, Reason::Stale, "PVC data-db-0 is 8d old"),
        ("{ volume_snapshots: { namespace: prod, max_age: 9d } }", Verdict::Pass, Reason::Ok, "data-db-0: 8d"),
        ("{ service_monitor: prod/api }", Verdict::Pass, Reason::Ok, "ServiceMonitor prod/api exists"),
        ("{ prometheus_rule: prod/api }", Verdict::Fail, Reason::NotFound, "PrometheusRule prod/api not found"),
    ];
    for (block, verdict, reason, part) in cases {
        let check = cluster.check(block);
        let outcome = cluster.run(&check).await;
        assert!(
            outcome.verdict == *verdict
                && outcome.reason == *reason
                && outcome.message.contains(part),
            "{block}: expected {verdict}/{reason} with {part:?}, got {}/{}: {}",
            outcome.verdict,
            outcome.reason,
            outcome.message
        );
        // Secret values never reach a message.
        assert!(!outcome.message.contains("c3VwZXIt"), "{}", outcome.message);
    }
    // Secrets without keys are watched as metadata only.
    let secret_requests: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.plural == "secrets")
        .collect();
    assert!(secret_requests.iter().any(|r| r.metadata_only));
    assert!(secret_requests.iter().any(|r| !r.metadata_only));

    // The cross-check lookups read the same cache.
    let kube = &cluster.clients.kube;
    let ingresses = vouch::kube::Lease::new(vouch::kube::WatchKey::new(
        vouch::kube::resource::INGRESSES,
        Some("prod"),
    ));
    let addresses = kube
        .ingress_addresses(&ingresses, "prod", "web", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(addresses, vec!["203.0.113.7".to_string()]);
    let deployments = vouch::kube::Lease::new(vouch::kube::WatchKey::new(
        vouch::kube::resource::DEPLOYMENTS,
        Some("prod"),
    ));
    let image = kube
        .container_image(&deployments, "prod", "api", "app", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(image.tag.as_deref(), Some("1.4.2"));
    assert_eq!(image.repository, "registry.example.com/api");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_replicas_an_ingress_without_address_and_an_expired_certificate_fail() {
    let cluster = Cluster::start().await;
    let fake = &cluster.fake;
    fake.install_cert_manager();
    fake.apply(deployment("api", 2, "api:1"));
    set_deployment_status(fake, "api", 2, 2, 2);
    fake.apply(json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web", "namespace": "prod"},
        "spec": {}, "status": {"loadBalancer": {}}}));
    let expired = k8s_openapi::jiff::Timestamp::now()
        - k8s_openapi::jiff::SignedDuration::from_secs(2 * 86_400 + 600);
    fake.apply(json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": "api-tls", "namespace": "prod"},
        "spec": {"secretName": "api-tls"},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready"}], "notAfter": expired.to_string()}}));
    let cases = [
        (
            "{ deployment: prod/api, min_ready: 2 }",
            Verdict::Pass,
            Reason::Ok,
            "2/2 ready",
        ),
        (
            "{ deployment: prod/api, min_ready: 3 }",
            Verdict::Fail,
            Reason::Replicas,
            "2 ready, at least 3 required",
        ),
        (
            "{ ingress: prod/web }",
            Verdict::Fail,
            Reason::IngressAddress,
            "Ingress prod/web has no load-balancer address yet",
        ),
        (
            "{ certificate: prod/api-tls }",
            Verdict::Fail,
            Reason::TlsExpired,
            "Certificate prod/api-tls expired 2d",
        ),
    ];
    for (block, verdict, reason, part) in cases {
        expect(
            &cluster.run(&cluster.check(block)).await,
            verdict,
            reason,
            part,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_the_api_server_refuses_are_an_auth_error() {
    let fake = FakeKube::start().await;
    fake.apply(deployment("api", 1, "api:1"));
    // The fake's kubeconfig with another bearer token.
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let yaml = fake.kubeconfig_yaml();
    let token = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .expect("a token in the fake's kubeconfig")
        .to_string();
    std::fs::write(&kubeconfig, yaml.replace(&token, "not-the-token")).unwrap();
    let cluster = Cluster::with_kubeconfig(fake, kubeconfig);
    let outcome = cluster
        .run(&cluster.check("{ deployment: prod/api }"))
        .await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Auth,
        "the API server refused vouch's credentials",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_crd_is_not_installed_until_it_is() {
    let cluster = Cluster::start().await;
    let check = cluster.check("{ certificate: prod/api-tls }");
    let outcome = cluster.run(&check).await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::NotInstalled,
        "does not serve certificates.cert-manager.io",
    );
    let outcome = cluster
        .run(&cluster.check("{ external_secret: prod/app }"))
        .await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::NotInstalled,
        "versions tried: v1, v1beta1",
    );

    // cert-manager installed later: the same check finds the type.
    cluster.fake.install_cert_manager();
    let outcome = cluster
        .run_until(&check, "the CRD to be found", |o| {
            o.reason != Reason::NotInstalled
        })
        .await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::NotFound,
        "Certificate prod/api-tls not found",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_names_what_to_grant_and_recovers_once_granted() {
    let cluster = Cluster::start().await;
    cluster.fake.apply(deployment("api", 1, "api:1"));
    set_deployment_status(&cluster.fake, "api", 1, 1, 1);
    cluster.fake.set_rules(Some(vec![Rule::new(
        &["get", "list", "watch"],
        &[""],
        &["pods"],
    )]));
    let check = cluster.check("{ deployment: prod/api }");
    let outcome = cluster.run(&check).await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Forbidden,
        "grant list,watch on deployments.apps in namespace prod",
    );
    let namespaces = cluster.check("{ namespace: prod }");
    expect(
        &cluster.run(&namespaces).await,
        Verdict::Error,
        Reason::Forbidden,
        "grant list,watch on namespaces cluster-wide",
    );
    cluster.fake.add_rules(vec![Rule::new(
        &["list", "watch"],
        &["apps"],
        &["deployments"],
    )
    .in_namespace("prod")]);
    // Refusals are retried with a backoff of up to 30 s.
    let outcome = cluster
        .run_until(&check, "the grant to be noticed", |o| {
            o.verdict == Verdict::Pass
        })
        .await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "1/1 ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_that_has_not_synced_is_an_error_not_a_verdict() {
    let cluster = Cluster::start().await;
    cluster.fake.apply(deployment("api", 1, "api:1"));
    set_deployment_status(&cluster.fake, "api", 1, 1, 1);
    // The list is held until released: the watch cannot sync, however
    // slow or fast the host, and the run ends at its sync wait (0.8 of
    // the 5s timeout), a second before the runner's own timeout.
    cluster.fake.hold();
    let check = cluster.check_with_timeout("{ deployment: prod/api }", "5s");
    let outcome = cluster.run(&check).await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::NotSynced,
        "the watch of deployments.apps in namespace prod has not synced within 4s",
    );
    assert_eq!(cluster.fake.count("list", "deployments", Some("prod")), 0);
    cluster.fake.release();
    cluster
        .run_until(&check, "the watch to sync", |o| o.verdict == Verdict::Pass)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_watches_and_expired_versions_are_recovered() {
    let cluster = Cluster::start().await;
    cluster.fake.apply(deployment("api", 3, "api:1"));
    set_deployment_status(&cluster.fake, "api", 3, 3, 3);
    let check = cluster.check("{ deployment: prod/api, min_ready: 3 }");
    expect(
        &cluster.run(&check).await,
        Verdict::Pass,
        Reason::Ok,
        "3/3 ready",
    );
    wait_until("the watch to be open", WAIT, || async {
        cluster.fake.open_watches() >= 1
    })
    .await;

    // Dropped mid-stream: resumed, and a change made meanwhile is seen.
    cluster.fake.drop_watches();
    set_deployment_status(&cluster.fake, "api", 3, 2, 3);
    let outcome = cluster
        .run_until(&check, "the change after the drop", |o| {
            o.message.contains("2 ready, at least 3 required")
        })
        .await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::Rollout,
        "2 of 3 updated replicas available",
    );
    // Resumed from its resource version: no second list.
    assert_eq!(cluster.fake.count("list", "deployments", Some("prod")), 1);
    wait_until("the watch to be open again", WAIT, || async {
        cluster.fake.open_watches() >= 1
    })
    .await;

    // History compacted and the watch dropped: the resume gets 410 Gone,
    // the cache lists again and sees the change.
    let lists_before = cluster.fake.count("list", "deployments", Some("prod"));
    cluster.fake.compact();
    cluster.fake.drop_watches();
    set_deployment_status(&cluster.fake, "api", 3, 3, 3);
    cluster
        .run_until(&check, "the change after 410", |o| {
            o.verdict == Verdict::Pass
        })
        .await;
    wait_until("a new list after 410", WAIT, || async {
        cluster.fake.count("list", "deployments", Some("prod")) > lists_before
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_down_is_an_error_and_back_up_passes_without_restart() {
    let cluster = Cluster::start().await;
    cluster.fake.apply(deployment("api", 2, "api:1"));
    set_deployment_status(&cluster.fake, "api", 2, 2, 2);
    let check = cluster.check("{ deployment: prod/api }");
    expect(
        &cluster.run(&check).await,
        Verdict::Pass,
        Reason::Ok,
        "2/2 ready",
    );

    cluster.fake.stop().await;
    let outcome = cluster
        .run_until(&check, "the outage to be noticed", |o| {
            o.verdict == Verdict::Error
        })
        .await;
    assert!(
        matches!(outcome.reason, Reason::ConnectionRefused | Reason::Connect),
        "{}: {}",
        outcome.reason,
        outcome.message
    );
    assert!(
        outcome.message.contains("Kubernetes API is unreachable"),
        "{}",
        outcome.message
    );

    cluster.fake.restart().await;
    set_deployment_status(&cluster.fake, "api", 2, 1, 2);
    let outcome = cluster
        .run_until(&check, "recovery", |o| o.verdict != Verdict::Error)
        .await;
    // The data is the present's, not what the cache held before the outage.
    expect(&outcome, Verdict::Fail, Reason::Rollout, "1/2 ready");
}

/// Runs every check once, concurrently.
async fn run_all(cluster: &Cluster, checks: &[Arc<PlannedCheck>]) -> Vec<Outcome> {
    let runs = checks
        .iter()
        .map(|check| run_once(check.clone(), cluster.clients.clone()));
    futures::future::join_all(runs)
        .await
        .into_iter()
        .map(|record| record.outcome)
        .collect()
}

/// Requests of the first round of `n` checks over one Deployment and its
/// pods, and of a second round.
async fn requests_for(n: usize) -> (usize, usize, usize, usize) {
    let cluster = Cluster::start().await;
    cluster.fake.apply(deployment("api", 1, "api:1"));
    set_deployment_status(&cluster.fake, "api", 1, 1, 1);
    cluster.fake.apply(pod("api-a", "api", true, running(), 0));
    let mut yaml = String::new();
    for i in 0..n {
        let block = if i % 2 == 0 {
            "{ deployment: prod/api }"
        } else {
            "{ pods: { deployment: prod/api } }"
        };
        yaml.push_str(&format!("  - name: c{i}\n    kubernetes: {block}\n"));
    }
    let checks = cluster.plan(&yaml);
    cluster.fake.reset_requests();
    for outcome in run_all(&cluster, &checks).await {
        assert_eq!(outcome.verdict, Verdict::Pass, "{}", outcome.message);
    }
    let first_lists = cluster.fake.count_any_namespace("list", "deployments")
        + cluster.fake.count_any_namespace("list", "pods");
    // The watches open once their lists are done, maybe after the round;
    // the fake logs a watch request once its answer has started.
    wait_until("both watch requests", WAIT, || async {
        cluster.fake.open_watches() == 2
            && cluster.fake.count_any_namespace("watch", "deployments")
                + cluster.fake.count_any_namespace("watch", "pods")
                == 2
    })
    .await;
    let first_total = cluster.fake.total_requests();
    cluster.fake.reset_requests();
    for outcome in run_all(&cluster, &checks).await {
        assert_eq!(outcome.verdict, Verdict::Pass, "{}", outcome.message);
    }
    let second_lists = cluster.fake.count_any_namespace("list", "deployments")
        + cluster.fake.count_any_namespace("list", "pods");
    let second_total = cluster.fake.total_requests();
    (first_lists, first_total, second_lists, second_total)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_requests_do_not_grow_with_the_number_of_checks() {
    let ten = requests_for(10).await;
    let two_hundred = requests_for(200).await;
    eprintln!("requests (first-round lists, first-round total, second-round lists, second-round total): 10 checks {ten:?}, 200 checks {two_hundred:?}");
    // One list per watch (deployments, pods), whatever the number of checks.
    assert_eq!(ten.0, 2);
    assert_eq!(two_hundred.0, 2);
    // Two lists and two watches in all.
    assert_eq!(ten.1, 4);
    assert_eq!(two_hundred.1, 4);
    // After the sync a round makes no request at all.
    assert_eq!((ten.2, ten.3), (0, 0));
    assert_eq!((two_hundred.2, two_hundred.3), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_exports_watch_state_on_metrics_and_readyz_and_reload_starts_keeps_and_stops_watches(
) {
    let cluster = Cluster::start().await;
    cluster.fake.apply(deployment("api", 1, "api:1"));
    set_deployment_status(&cluster.fake, "api", 1, 1, 1);
    cluster.fake.apply(pod("api-a", "api", true, running(), 0));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vouch.yaml");
    let one = "defaults: { interval: 1s, timeout: 1s }\nchecks:\n  - name: api-rollout\n    kubernetes: { deployment: prod/api }\n";
    std::fs::write(&config, one).unwrap();
    let kubeconfig = cluster.fake.kubeconfig_path().to_str().unwrap().to_string();
    let daemon = Daemon::start_with_args(
        &config,
        &["--kubeconfig", &kubeconfig, "--web.enable-reload"],
    )
    .await;
    // Awaited, not read from the first run: on a loaded machine the first
    // run may end before the watch synced (not_synced).
    wait_until("a pass of api-rollout", VERDICT_WAIT, || async {
        daemon.check("api-rollout").await["last_run"]["verdict"] == "pass"
    })
    .await;
    wait_until("the synced metric", WAIT, || async {
        daemon.get_ok("/metrics").await.contains(
            "vouch_kube_watch_synced{resource=\"deployments.apps\",watch_namespace=\"prod\"} 1",
        )
    })
    .await;
    let ready = daemon.get_ok("/readyz").await;
    assert!(
        ready.contains("kubernetes watch deployments.apps in prod: synced"),
        "{ready}"
    );

    // A reload adding a pods check starts the pods watch and keeps the
    // deployments watch (no second list).
    let two = format!(
        "{one}  - name: api-pods\n    kubernetes: {{ pods: {{ deployment: prod/api }} }}\n"
    );
    std::fs::write(&config, two).unwrap();
    let (status, body) = support::vouch::http_post(daemon.addr, "/-/reload")
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    wait_until("a pass of api-pods", VERDICT_WAIT, || async {
        daemon.check("api-pods").await["last_run"]["verdict"] == "pass"
    })
    .await;
    assert_eq!(cluster.fake.count("list", "deployments", Some("prod")), 1);
    assert_eq!(cluster.fake.count("list", "pods", Some("prod")), 1);
    wait_until("both watches open", WAIT, || async {
        cluster.fake.open_watches() == 2
    })
    .await;
    let metrics = daemon.get_ok("/metrics").await;

    // Removing the pods check stops the pods watch; the other stays.
    std::fs::write(&config, one).unwrap();
    let (status, body) = support::vouch::http_post(daemon.addr, "/-/reload")
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    wait_until("the pods watch to stop", WAIT, || async {
        cluster.fake.open_watches() == 1
    })
    .await;
    let ready = daemon.get_ok("/readyz").await;
    assert!(!ready.contains("watch pods"), "{ready}");
    assert_eq!(cluster.fake.count("list", "deployments", Some("prod")), 1);

    // The kind's families and the watch gauge pass promtool's lint.
    for family in [
        "vouch_kube_replicas",
        "vouch_kube_pods",
        "vouch_kube_watch_synced",
    ] {
        assert!(
            metrics.contains(&format!("# TYPE {family} gauge")),
            "{family}"
        );
    }
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed (scripts/test.sh installs Debian's prometheus)");
    use std::io::Write;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_generation_of_a_watched_workload_is_published_as_a_rollout() {
    let cluster = Cluster::start().await;
    cluster.fake.apply(deployment("api", 1, "api:1"));
    let mut feed = cluster.clients.rollouts.subscribe();
    let workload = vouch::plan::WorkloadRef::parse("prod/api").unwrap();
    let held = cluster
        .clients
        .kube
        .follow_rollouts(std::slice::from_ref(&workload))
        .await;
    assert_eq!(held.len(), 2, "deployments and statefulsets of prod");
    wait_until("the watches to be open", WAIT, || async {
        cluster.fake.open_watches() == 2
    })
    .await;
    // A label change is no rollout; a new image is.
    cluster.fake.patch(
        "apps/v1",
        "Deployment",
        Some("prod"),
        "api",
        json!({"metadata": {"labels": {"team": "a"}}}),
    );
    cluster.fake.apply(deployment("api", 1, "api:2"));
    let rollout = tokio::time::timeout(WAIT, feed.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rollout.workload, workload);
    assert_eq!(rollout.generation, 2);
    assert!(feed.try_recv().is_err(), "one rollout, one message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_runs_linked_checks_at_once_when_a_watched_deployment_rolls_out() {
    let cluster = Cluster::start().await;
    cluster.fake.apply(deployment("api", 1, "api:1"));
    set_deployment_status(&cluster.fake, "api", 1, 1, 1);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vouch.yaml");
    // A one-hour interval: only the rollout makes the check run soon.
    std::fs::write(
        &config,
        "checks:\n  - name: api-rollout\n    interval: 1h\n    timeout: 5s\n    after_rollout_of: [prod/api]\n    kubernetes: { deployment: prod/api }\n",
    )
    .unwrap();
    let kubeconfig = cluster.fake.kubeconfig_path().to_str().unwrap().to_string();
    let daemon = Daemon::start_with_args(&config, &["--kubeconfig", &kubeconfig]).await;
    wait_until("the rollout watches", WAIT, || async {
        cluster.fake.open_watches() >= 2
    })
    .await;
    cluster.fake.apply(deployment("api", 1, "api:2"));
    let result = daemon.wait_for_result("api-rollout", WAIT).await;
    assert_eq!(result["last_rollout"]["workload"], "prod/api", "{result}");
    assert_eq!(result["last_rollout"]["generation"], 2, "{result}");
    // The new generation is not observed yet: the run right after the
    // rollout says so.
    assert_eq!(result["last_run"]["reason"], "rollout", "{result}");
}

#[tokio::test]
async fn validate_names_a_bad_kubeconfig_flag_or_variable_and_never_connects() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vouch.yaml");
    std::fs::write(
        &config,
        "checks:\n  - name: api\n    kubernetes: { deployment: prod/api }\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let missing = dir.path().join("missing-kubeconfig");
    let missing = missing.to_str().unwrap();
    let out = support::vouch::run(&["validate", "--config", config, "--kubeconfig", missing]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{config}: --kubeconfig: cannot read kubeconfig {missing}: No such file"
        )),
        "{stderr}"
    );
    // A kubeconfig whose server is the fake: validate reads it and makes
    // no request.
    let fake = FakeKube::start().await;
    let kubeconfig = fake.kubeconfig_path().to_str().unwrap().to_string();
    let out =
        support::vouch::run(&["validate", "--config", config, "--kubeconfig", &kubeconfig]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fake.total_requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_waits_for_the_first_sync_and_judges_the_rollout() {
    let cluster = Cluster::start().await;
    cluster.fake.apply(deployment("api", 2, "api:1"));
    set_deployment_status(&cluster.fake, "api", 2, 2, 2);
    cluster.fake.apply(deployment("web", 2, "web:1"));
    set_deployment_status(&cluster.fake, "web", 1, 1, 2);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vouch.yaml");
    std::fs::write(
        &config,
        "checks:\n  - name: api-rollout\n    kubernetes: { deployment: prod/api }\n  - name: web-rollout\n    kubernetes: { deployment: prod/web }\n",
    )
    .unwrap();
    let kubeconfig = cluster.fake.kubeconfig_path().to_str().unwrap().to_string();
    let config = config.to_str().unwrap();
    let gate = |only: &'static str| {
        let kubeconfig = kubeconfig.clone();
        async move {
            support::vouch::run(&[
                "check",
                "--config",
                config,
                "--kubeconfig",
                &kubeconfig,
                "--format",
                "json",
                "--only",
                only,
            ])
            .await
        }
    };
    let out = gate("api-rollout").await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = gate("web-rollout").await;
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("\"reason\": \"rollout\"") || report.contains("\"reason\":\"rollout\""),
        "{report}"
    );
    assert!(report.contains("1/2 ready, 1/2 updated"), "{report}");
    assert_eq!(cluster.fake.count("list", "deployments", Some("prod")), 2);
    // Both checks in one gate run share one watch: one more list.
    let out =
        support::vouch::run(&["check", "--config", config, "--kubeconfig", &kubeconfig]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(cluster.fake.count("list", "deployments", Some("prod")), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_api_server_is_verified_against_the_kubeconfig_ca() {
    let cluster = Cluster::with(FakeKube::start_tls().await);
    cluster.fake.apply(deployment("api", 1, "api:1"));
    set_deployment_status(&cluster.fake, "api", 1, 1, 1);
    let check = cluster.check("{ deployment: prod/api }");
    expect(
        &cluster.run(&check).await,
        Verdict::Pass,
        Reason::Ok,
        "1/1 ready",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_during_the_list_are_errors_then_recover() {
    let cluster = Cluster::start().await;
    cluster.fake.apply(deployment("api", 1, "api:1"));
    set_deployment_status(&cluster.fake, "api", 1, 1, 1);
    cluster.fake.fail_requests("deployments", 500);
    let check = cluster.check("{ deployment: prod/api }");
    let outcome = cluster.run(&check).await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Protocol,
        "the Kubernetes API answered 500",
    );
    cluster.fake.clear_failures();
    cluster
        .run_until(&check, "recovery after the 500s", |o| {
            o.verdict == Verdict::Pass
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_values_reach_no_output_even_at_trace_level() {
    const PLANTED: &str = "planted-secret-value-7f3a9c";
    let cluster = Cluster::start().await;
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, PLANTED);
    let applied = json!({"data": {"API_KEY": encoded}});
    cluster
        .fake
        .apply(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "app-secrets", "namespace": "prod", "annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": applied.to_string()}},
        "type": "Opaque", "data": {"API_KEY": encoded}, "stringData": {"TOKEN": PLANTED}}));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vouch.yaml");
    std::fs::write(
        &config,
        "defaults: { interval: 2s, timeout: 1s }\nchecks:\n  - name: keys\n    kubernetes: { secret: prod/app-secrets, keys: [API_KEY, MISSING] }\n  - name: exists\n    kubernetes: { secret: prod/app-secrets }\n",
    )
    .unwrap();
    let kubeconfig = cluster.fake.kubeconfig_path().to_str().unwrap().to_string();
    let daemon = Daemon::start_with_args_env(
        &config,
        &["--kubeconfig", &kubeconfig],
        &[("RUST_LOG", "trace")],
    )
    .await;
    // Awaited, not read from the first run: on a loaded machine the first
    // run may end before the watch synced (not_synced).
    wait_until("keys to fail naming the key", VERDICT_WAIT, || async {
        daemon.check("keys").await["last_run"]["reason"] == "keys"
    })
    .await;
    wait_until("a pass of exists", VERDICT_WAIT, || async {
        daemon.check("exists").await["last_run"]["verdict"] == "pass"
    })
    .await;
    let mut everything = String::new();
    for path in [
        "/metrics",
        "/api/v1/checks",
        "/checks/keys",
        "/api/v1/checks/keys",
        "/readyz",
        "/",
    ] {
        everything.push_str(&daemon.get_ok(path).await);
    }
    let logs = daemon.logs();
    // The trace log did see the traffic with the API server.
    assert!(
        logs.contains("/api/v1/namespaces/prod/secrets"),
        "no request traced"
    );
    everything.push_str(&logs);
    for needle in [PLANTED, encoded.as_str(), cluster.fake.token()] {
        assert!(
            !everything.contains(needle),
            "a secret value reached an output"
        );
    }
}

fn config_map(namespace: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace}, "data": {"k": "v"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_past_max_objects_is_too_large_until_the_objects_fit_again() {
    let cluster = Cluster::start().await;
    for i in 0..5 {
        cluster.fake.apply(config_map("prod", &format!("cm-{i}")));
    }
    for i in 0..6 {
        cluster
            .fake
            .apply(config_map("staging", &format!("cm-{i}")));
    }
    let yaml = "kubernetes:\n  max_objects_per_watch: 5\nchecks:\n  \
        - { name: prod, timeout: 5s, kubernetes: { configmap: prod/cm-0 } }\n  \
        - { name: staging, timeout: 5s, kubernetes: { configmap: staging/cm-0 } }\n";
    let source = vouch::config::SourcedConfig::parse(yaml, "test.yaml", ".".into()).unwrap();
    let checks = vouch::plan::Plan::from_source(&source, &cluster.clients, |_| None)
        .unwrap()
        .checks;
    let (prod, staging) = (&checks[0], &checks[1]);
    let words =
        "brought more than 5 objects, the most one watch holds (kubernetes.max_objects_per_watch)";

    // Five fit.
    expect(&cluster.run(prod).await, Verdict::Pass, Reason::Ok, "");
    // Six in the first list: cut off there.
    expect(
        &cluster.run(staging).await,
        Verdict::Error,
        Reason::TooLarge,
        &format!("the watch of configmaps in namespace staging {words}"),
    );

    // A sixth arriving on a synced watch: the watch stops too.
    cluster.fake.apply(config_map("prod", "cm-5"));
    let outcome = cluster
        .run_until(prod, "the watch to stop at the limit", |o| {
            o.reason == Reason::TooLarge
        })
        .await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::TooLarge,
        &format!("the watch of configmaps in namespace prod {words}"),
    );
    // It lists again (after a backoff) and stays stopped while six remain.
    let lists = cluster.fake.count("list", "configmaps", Some("prod"));
    wait_until("a list after the stop", WAIT, || async {
        cluster.fake.count("list", "configmaps", Some("prod")) > lists
    })
    .await;
    expect(
        &cluster.run(prod).await,
        Verdict::Error,
        Reason::TooLarge,
        words,
    );

    // Back to five: the next list fits and the check passes again.
    assert!(cluster.fake.delete("v1", "ConfigMap", Some("prod"), "cm-5"));
    cluster
        .run_until(prod, "the watch to fit again", |o| {
            o.verdict == Verdict::Pass
        })
        .await;
}
