//! The fake Kubernetes API (tests/support/kube_api) driven by the real
//! `kube` client and kube-runtime watchers: if these pass, what vouch's
//! kubernetes checks meet in tests behaves like a real API server.

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, DynamicObject, ListParams, WatchEvent, WatchParams};
use kube::core::PartialObjectMeta;
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::ResourceExt;
use serde_json::json;

use support::kube_api::{FakeKube, Rule};
use support::wait_until;

const LIMIT: Duration = Duration::from_secs(10);

fn pod(namespace: &str, name: &str, labels: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]},
        "status": {"phase": "Running"}
    })
}

fn config_map(namespace: &str, name: &str, value: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"value": value}
    })
}

fn api_error(error: kube::Error) -> kube::core::Status {
    match error {
        kube::Error::Api(status) => *status,
        other => panic!("expected an API error Status, got {other:?}"),
    }
}

fn names<K: ResourceExt>(items: &[K]) -> Vec<String> {
    let mut names: Vec<String> = items.iter().map(|i| i.name_any()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn lists_with_label_and_field_selectors() {
    let fake = FakeKube::start().await;
    fake.apply(pod("prod", "web-1", json!({"app": "web", "tier": "front"})));
    fake.apply(pod("prod", "web-2", json!({"app": "web"})));
    fake.apply(pod("prod", "db-1", json!({"app": "db", "tier": "back"})));
    fake.apply(pod("staging", "web-1", json!({"app": "web"})));
    let client = fake.client().await;
    let prod: Api<Pod> = Api::namespaced(client.clone(), "prod");
    let all: Api<Pod> = Api::all(client.clone());

    let listed = |api: Api<Pod>, params: ListParams| async move {
        names(&api.list(&params).await.expect("list pods").items)
    };
    assert_eq!(
        listed(prod.clone(), ListParams::default()).await,
        ["db-1", "web-1", "web-2"]
    );
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        4
    );
    assert_eq!(
        listed(prod.clone(), ListParams::default().labels("app=web")).await,
        ["web-1", "web-2"]
    );
    assert_eq!(
        listed(prod.clone(), ListParams::default().labels("app==db")).await,
        ["db-1"]
    );
    assert_eq!(
        listed(prod.clone(), ListParams::default().labels("app!=web")).await,
        ["db-1"]
    );
    assert_eq!(
        listed(
            prod.clone(),
            ListParams::default().labels("tier in (front, back)")
        )
        .await,
        ["db-1", "web-1"]
    );
    assert_eq!(
        listed(
            prod.clone(),
            ListParams::default().labels("tier notin (front)")
        )
        .await,
        ["db-1", "web-2"]
    );
    assert_eq!(
        listed(prod.clone(), ListParams::default().labels("tier")).await,
        ["db-1", "web-1"]
    );
    assert_eq!(
        listed(prod.clone(), ListParams::default().labels("!tier")).await,
        ["web-2"]
    );
    assert_eq!(
        listed(prod.clone(), ListParams::default().labels("app=web,tier")).await,
        ["web-1"]
    );
    assert_eq!(
        listed(
            prod.clone(),
            ListParams::default().fields("metadata.name=web-2")
        )
        .await,
        ["web-2"]
    );
    assert_eq!(
        listed(
            all.clone(),
            ListParams::default().fields("metadata.namespace=staging")
        )
        .await,
        ["web-1"]
    );
    assert_eq!(
        listed(
            prod.clone(),
            ListParams::default().fields("status.phase=Running,metadata.name!=db-1")
        )
        .await,
        ["web-1", "web-2"]
    );

    let bad_field = prod
        .list(&ListParams::default().fields("spec.nothing=1"))
        .await
        .expect_err("an unsupported field label");
    let status = api_error(bad_field);
    assert_eq!((status.code, status.reason.as_str()), (400, "BadRequest"));
    assert_eq!(status.message, "field label not supported: spec.nothing");

    let list = prod.list(&ListParams::default()).await.unwrap();
    assert_eq!(
        list.metadata.resource_version.as_deref(),
        Some(fake.resource_version().to_string().as_str())
    );
}

#[tokio::test]
async fn pages_with_limit_and_continue_from_a_consistent_snapshot() {
    let fake = FakeKube::start().await;
    for i in 0..5 {
        fake.apply(config_map("prod", &format!("cm-{i}"), "v"));
    }
    let api: Api<ConfigMap> = Api::namespaced(fake.client().await, "prod");
    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(names(&first.items), ["cm-0", "cm-1"]);
    assert_eq!(first.metadata.remaining_item_count, Some(3));
    let token = first.metadata.continue_.clone().expect("a continue token");

    // Changes after the first page do not show in later pages.
    fake.apply(config_map("prod", "cm-3a", "new"));
    fake.delete("v1", "ConfigMap", Some("prod"), "cm-4");
    let second = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(names(&second.items), ["cm-2", "cm-3"]);
    assert_eq!(
        second.metadata.resource_version,
        first.metadata.resource_version
    );
    let third = api
        .list(
            &ListParams::default()
                .limit(2)
                .continue_token(second.metadata.continue_.as_ref().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(names(&third.items), ["cm-4"]);
    assert_eq!(third.metadata.continue_, None);

    // A token older than the retained history is Expired.
    fake.compact();
    let expired = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .expect_err("a too old continue token");
    let status = api_error(expired);
    assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));

    // Listing everything afresh sees the present.
    assert_eq!(
        names(&api.list_all(&ListParams::default().limit(2)).await),
        ["cm-0", "cm-1", "cm-2", "cm-3", "cm-3a"]
    );
}

trait ListAll<K> {
    async fn list_all(&self, params: &ListParams) -> Vec<K>;
}

impl<K> ListAll<K> for Api<K>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    async fn list_all(&self, params: &ListParams) -> Vec<K> {
        let mut items = Vec::new();
        let mut params = params.clone();
        loop {
            let page = self.list(&params).await.expect("list a page");
            items.extend(page.items);
            match page.metadata.continue_ {
                Some(token) if !token.is_empty() => params = params.continue_token(&token),
                _ => return items,
            }
        }
    }
}

#[tokio::test]
async fn get_answers_the_object_or_a_not_found_status() {
    let fake = FakeKube::start().await;
    fake.apply(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "prod"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:1"}]}}}
    }));
    let api: Api<Deployment> = Api::namespaced(fake.client().await, "prod");
    let web = api.get("web").await.expect("get the deployment");
    assert_eq!(web.spec.unwrap().replicas, Some(2));
    assert_eq!(web.metadata.generation, Some(1));
    assert!(web.metadata.uid.is_some());
    assert!(web.metadata.creation_timestamp.is_some());

    let status = api_error(api.get("nope").await.expect_err("a missing deployment"));
    assert_eq!(status.code, 404);
    assert_eq!(status.reason, "NotFound");
    assert_eq!(status.message, "deployments.apps \"nope\" not found");

    let pods: Api<Pod> = Api::namespaced(fake.client().await, "prod");
    let status = api_error(pods.get("nope").await.expect_err("a missing pod"));
    assert_eq!(status.message, "pods \"nope\" not found");
    assert_eq!(fake.count("get", "pods", Some("prod")), 1);
    assert_eq!(fake.count("get", "deployments", Some("prod")), 2);
}

#[tokio::test]
async fn a_wrong_token_is_unauthorized() {
    let fake = FakeKube::start().await;
    let yaml = fake
        .kubeconfig_yaml()
        .replace(fake.token(), "not-the-token");
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let status = api_error(pods.list(&ListParams::default()).await.expect_err("401"));
    assert_eq!((status.code, status.reason.as_str()), (401, "Unauthorized"));
}

fn certificate_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("cert-manager.io", "v1", "Certificate"),
        "certificates",
    )
}

#[tokio::test]
async fn a_missing_crd_is_not_found_and_discovery_lists_installed_ones() {
    let fake = FakeKube::start().await;
    let client = fake.client().await;
    let certificates: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "prod", &certificate_resource());
    let status = api_error(
        certificates
            .list(&ListParams::default())
            .await
            .expect_err("no Certificate type yet"),
    );
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
    assert_eq!(
        status.message,
        "the server could not find the requested resource"
    );

    let discovery = kube::Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    assert!(!discovery.has_group("cert-manager.io"));
    assert!(discovery.has_group("apps"));
    let pods = GroupVersionKind::gvk("", "v1", "Pod");
    let (pod_resource, capabilities) = discovery.resolve_gvk(&pods).expect("pods are served");
    assert_eq!(pod_resource.plural, "pods");
    assert!(capabilities.supports_operation(kube::discovery::verbs::WATCH));

    fake.install_cert_manager();
    let discovery = kube::Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let gvk = GroupVersionKind::gvk("cert-manager.io", "v1", "ClusterIssuer");
    let (resource, capabilities) = discovery
        .resolve_gvk(&gvk)
        .expect("ClusterIssuer is served");
    assert_eq!(resource.plural, "clusterissuers");
    assert_eq!(capabilities.scope, kube::discovery::Scope::Cluster);
    let (_, capabilities) = kube::discovery::pinned_kind(
        &client,
        &GroupVersionKind::gvk("cert-manager.io", "v1", "Certificate"),
    )
    .await
    .expect("pinned discovery of Certificate");
    assert_eq!(capabilities.scope, kube::discovery::Scope::Namespaced);

    fake.apply(json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": "web-tls", "namespace": "prod"},
        "spec": {"secretName": "web-tls", "dnsNames": ["web.example"]},
        "status": {"notAfter": "2027-01-01T00:00:00Z"}
    }));
    let listed = certificates
        .list(&ListParams::default())
        .await
        .expect("list certificates");
    assert_eq!(names(&listed.items), ["web-tls"]);
    let got = certificates.get("web-tls").await.unwrap();
    assert_eq!(got.data["status"]["notAfter"], "2027-01-01T00:00:00Z");
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client);
    crds.get("certificates.cert-manager.io")
        .await
        .expect("the CRD object");

    fake.uninstall_crd("cert-manager.io", "certificates");
    let status = api_error(
        certificates
            .list(&ListParams::default())
            .await
            .expect_err("gone"),
    );
    assert_eq!(status.code, 404);
}

#[tokio::test]
async fn a_raw_watch_streams_added_modified_deleted_and_bookmarks() {
    let fake = FakeKube::start().await;
    // Only the bookmark asked for below, whatever the machine's speed.
    fake.set_bookmark_interval(Duration::from_secs(3600));
    fake.apply(config_map("prod", "before", "0"));
    let api: Api<ConfigMap> = Api::namespaced(fake.client().await, "prod");
    let list = api.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let mut events = api
        .watch(&WatchParams::default().timeout(30), &rv)
        .await
        .expect("start a watch")
        .boxed();
    wait_until("the watch to be open", LIMIT, || async {
        fake.open_watches() == 1
    })
    .await;
    fake.apply(config_map("prod", "cm", "1"));
    fake.apply(config_map("prod", "cm", "2"));
    fake.apply(config_map("other", "elsewhere", "1"));
    fake.delete("v1", "ConfigMap", Some("prod"), "cm");
    fake.send_bookmarks();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let event = events
            .try_next()
            .await
            .expect("an event")
            .expect("the stream goes on");
        seen.push(match event {
            WatchEvent::Added(cm) => {
                format!("ADDED {} {}", cm.name_any(), cm.data.unwrap()["value"])
            }
            WatchEvent::Modified(cm) => {
                format!("MODIFIED {} {}", cm.name_any(), cm.data.unwrap()["value"])
            }
            WatchEvent::Deleted(cm) => format!("DELETED {}", cm.name_any()),
            WatchEvent::Bookmark(bookmark) => {
                assert_eq!(
                    bookmark.metadata.resource_version,
                    fake.resource_version().to_string()
                );
                "BOOKMARK".to_string()
            }
            WatchEvent::Error(status) => panic!("unexpected error event {status:?}"),
        });
    }
    assert_eq!(
        seen,
        ["ADDED cm 1", "MODIFIED cm 2", "DELETED cm", "BOOKMARK"]
    );

    // A watch from a compacted resourceVersion gets a 410 ERROR event.
    fake.compact();
    let mut expired = api
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("the watch starts")
        .boxed();
    match expired.try_next().await.expect("an event") {
        Some(WatchEvent::Error(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
            assert!(
                status.message.starts_with("too old resource version"),
                "{}",
                status.message
            );
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
}

#[tokio::test]
async fn a_watch_ends_after_its_timeout() {
    let fake = FakeKube::start().await;
    let api: Api<ConfigMap> = Api::namespaced(fake.client().await, "prod");
    let mut events = api
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .unwrap()
        .boxed();
    let end = tokio::time::timeout(LIMIT, async {
        loop {
            match events.try_next().await {
                Ok(Some(WatchEvent::Bookmark(_))) => continue,
                other => return other,
            }
        }
    })
    .await;
    assert!(
        matches!(end, Ok(Ok(None))),
        "the stream ends cleanly: {end:?}"
    );
}

/// A reflector on ConfigMaps in `prod`, running until dropped.
struct Reflected {
    store: reflector::Store<ConfigMap>,
    errors: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Reflected {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Reflected {
    fn start(api: Api<ConfigMap>) -> Reflected {
        let (store, writer) = reflector::store();
        let errors = Arc::new(Mutex::new(Vec::new()));
        let seen_errors = errors.clone();
        let stream = reflector(
            writer,
            watcher(api, watcher::Config::default()).default_backoff(),
        );
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(item) = stream.next().await {
                if let Err(error) = item {
                    seen_errors.lock().unwrap().push(error.to_string());
                }
            }
        });
        Reflected {
            store,
            errors,
            task,
        }
    }

    fn value(&self, name: &str) -> Option<String> {
        self.store
            .state()
            .iter()
            .find(|cm| cm.name_any() == name)
            .map(|cm| cm.data.clone().unwrap_or_default()["value"].clone())
    }
}

#[tokio::test]
async fn a_reflector_follows_changes_and_lists_only_once() {
    let fake = FakeKube::start().await;
    fake.apply(config_map("prod", "a", "1"));
    let api: Api<ConfigMap> = Api::namespaced(fake.client().await, "prod");
    let reflected = Reflected::start(api);
    wait_until("the initial sync", LIMIT, || async {
        reflected.value("a").as_deref() == Some("1")
    })
    .await;
    for i in 0..20 {
        fake.apply(config_map("prod", "a", &i.to_string()));
    }
    fake.apply(config_map("prod", "b", "new"));
    wait_until("the watch to deliver", LIMIT, || async {
        reflected.value("a").as_deref() == Some("19") && reflected.value("b").is_some()
    })
    .await;
    fake.delete("v1", "ConfigMap", Some("prod"), "a");
    wait_until("the delete", LIMIT, || async {
        reflected.value("a").is_none()
    })
    .await;
    assert_eq!(fake.count("list", "configmaps", Some("prod")), 1);
    assert_eq!(fake.count("watch", "configmaps", Some("prod")), 1);
    assert!(reflected.errors.lock().unwrap().is_empty());
}

#[tokio::test]
async fn after_compaction_the_watcher_relists_and_converges() {
    let fake = FakeKube::start().await;
    fake.apply(config_map("prod", "a", "1"));
    let reflected = Reflected::start(Api::namespaced(fake.client().await, "prod"));
    wait_until("the initial sync", LIMIT, || async {
        reflected.value("a").is_some()
    })
    .await;
    fake.apply(config_map("prod", "a", "2"));
    wait_until("the change", LIMIT, || async {
        reflected.value("a").as_deref() == Some("2")
    })
    .await;

    fake.compact();
    fake.drop_watches();
    // Written while the watch is down: only a re-list can show it.
    fake.apply(config_map("prod", "a", "3"));
    wait_until("the re-list after 410", LIMIT, || async {
        reflected.value("a").as_deref() == Some("3")
            && fake.count("list", "configmaps", Some("prod")) == 2
    })
    .await;
    let errors = reflected.errors.lock().unwrap().clone();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("too old resource version")),
        "{errors:?}"
    );
    fake.apply(config_map("prod", "a", "4"));
    wait_until("watching again", LIMIT, || async {
        reflected.value("a").as_deref() == Some("4")
    })
    .await;
}

#[tokio::test]
async fn a_dropped_watch_is_resumed_without_a_relist() {
    let fake = FakeKube::start().await;
    fake.apply(config_map("prod", "a", "1"));
    let reflected = Reflected::start(Api::namespaced(fake.client().await, "prod"));
    wait_until("the watch", LIMIT, || async {
        fake.open_watches() == 1 && reflected.value("a").is_some()
    })
    .await;
    fake.drop_watches();
    fake.apply(config_map("prod", "a", "2"));
    wait_until("the resumed watch", LIMIT, || async {
        reflected.value("a").as_deref() == Some("2")
            && fake.count("watch", "configmaps", Some("prod")) >= 2
    })
    .await;
    assert_eq!(fake.count("list", "configmaps", Some("prod")), 1);
}

#[tokio::test]
async fn the_api_going_down_gives_errors_and_the_watcher_recovers() {
    let fake = FakeKube::start().await;
    fake.apply(config_map("prod", "a", "1"));
    let client = fake.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "prod");
    let reflected = Reflected::start(api.clone());
    wait_until("the watch", LIMIT, || async { fake.open_watches() == 1 }).await;

    fake.stop().await;
    let error = api.get("a").await.expect_err("the API is down");
    assert!(
        !matches!(error, kube::Error::Api(_)),
        "a connection error, not a Status: {error:?}"
    );
    wait_until("the watcher to notice", LIMIT, || async {
        !reflected.errors.lock().unwrap().is_empty()
    })
    .await;

    fake.apply(config_map("prod", "a", "2"));
    fake.restart().await;
    assert_eq!(
        api.get("a").await.expect("the API is back").data.unwrap()["value"],
        "2"
    );
    wait_until(
        "the watcher to recover",
        Duration::from_secs(40),
        || async { reflected.value("a").as_deref() == Some("2") },
    )
    .await;
}

#[tokio::test]
async fn rbac_forbids_with_the_real_message() {
    let fake = FakeKube::start().await;
    fake.apply(pod("prod", "web", json!({})));
    fake.set_rules(Some(vec![
        Rule::new(&["get", "list", "watch"], &[""], &["pods"]).in_namespace("prod"),
        Rule::new(&["get"], &["apps"], &["deployments"])
            .in_namespace("prod")
            .names(&["web"]),
    ]));
    let client = fake.client().await;
    let prod: Api<Pod> = Api::namespaced(client.clone(), "prod");
    assert_eq!(
        prod.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );

    let status = api_error(
        Api::<Pod>::namespaced(client.clone(), "staging")
            .list(&ListParams::default())
            .await
            .expect_err("not in staging"),
    );
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        status.message,
        "pods is forbidden: User \"system:serviceaccount:vouch:vouch\" cannot list resource \"pods\" in API group \"\" in the namespace \"staging\""
    );
    let status = api_error(
        Api::<Pod>::all(client.clone())
            .list(&ListParams::default())
            .await
            .expect_err("not cluster-wide"),
    );
    assert_eq!(
        status.message,
        "pods is forbidden: User \"system:serviceaccount:vouch:vouch\" cannot list resource \"pods\" in API group \"\" at the cluster scope"
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "prod");
    let status = api_error(deployments.get("api").await.expect_err("another name"));
    assert_eq!(
        status.message,
        "deployments.apps \"api\" is forbidden: User \"system:serviceaccount:vouch:vouch\" cannot get resource \"deployments\" in API group \"apps\" in the namespace \"prod\""
    );
    // Allowed by name, then simply not there.
    assert_eq!(
        api_error(deployments.get("web").await.expect_err("missing")).code,
        404
    );

    // Rules change at runtime; discovery stays open.
    fake.set_rules(Some(Vec::new()));
    assert_eq!(
        api_error(
            prod.list(&ListParams::default())
                .await
                .expect_err("nothing")
        )
        .code,
        403
    );
    client
        .list_api_groups()
        .await
        .expect("discovery is open to every user");
    fake.set_rules(None);
    prod.list(&ListParams::default())
        .await
        .expect("everything allowed again");
}

#[tokio::test]
async fn rbac_rules_come_from_role_and_binding_manifests() {
    let manifests = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: read
rules:
  - apiGroups: [""]
    resources: [pods, configmaps]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: read
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: read
subjects:
  - kind: ServiceAccount
    name: vouch
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: nodes
rules:
  - apiGroups: [""]
    resources: [nodes]
    verbs: [list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: nodes
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: nodes
subjects:
  - kind: ServiceAccount
    name: someone-else
    namespace: vouch
"#;
    let fake = FakeKube::start().await;
    fake.set_rules_from_manifests(manifests, "vouch");
    let client = fake.client().await;
    Api::<Pod>::namespaced(client.clone(), "vouch")
        .list(&ListParams::default())
        .await
        .expect("pods in vouch are granted");
    let status = api_error(
        Api::<Secret>::namespaced(client.clone(), "vouch")
            .list(&ListParams::default())
            .await
            .expect_err("secrets are not"),
    );
    assert_eq!(
        status.message,
        "secrets is forbidden: User \"system:serviceaccount:vouch:vouch\" cannot list resource \"secrets\" in API group \"\" in the namespace \"vouch\""
    );
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client);
    assert_eq!(
        api_error(
            nodes
                .list(&ListParams::default())
                .await
                .expect_err("bound to another account")
        )
        .code,
        403
    );
    let roles = support::kube_api::rules_of_roles(manifests, "vouch");
    assert_eq!(roles.len(), 2);
}

#[tokio::test]
async fn metadata_only_answers_carry_no_secret_data() {
    let fake = FakeKube::start().await;
    fake.apply(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "prod", "labels": {"app": "db"}},
        "type": "Opaque",
        "data": {"password": "c3VwZXItc2VjcmV0"}
    }));
    let client = fake.client().await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "prod");
    let listed = secrets
        .list_metadata(&ListParams::default())
        .await
        .expect("metadata list");
    assert_eq!(listed.items.len(), 1);
    assert_eq!(
        listed.items[0].metadata.labels.as_ref().unwrap()["app"],
        "db"
    );
    let got = secrets.get_metadata("db").await.expect("metadata get");
    assert_eq!(got.metadata.name.as_deref(), Some("db"));

    // The bytes on the wire, not only what the client kept.
    let raw = hyper::Request::get("/api/v1/namespaces/prod/secrets")
        .header(
            "Accept",
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
        )
        .body(Vec::new())
        .unwrap();
    let body = client.request_text(raw).await.unwrap();
    assert!(body.contains("\"PartialObjectMetadataList\""), "{body}");
    assert!(
        !body.contains("c3VwZXItc2VjcmV0") && !body.contains("\"data\""),
        "{body}"
    );

    // kube-runtime's metadata watcher: Api<PartialObjectMeta<K>>.
    let metadata: Api<PartialObjectMeta<Secret>> = Api::namespaced(client.clone(), "prod");
    let (store, writer) = reflector::store();
    let stream = reflector(writer, watcher(metadata, watcher::Config::default()));
    let task = tokio::spawn(async move { stream.for_each(|_| async {}).await });
    wait_until("the metadata reflector", LIMIT, || async {
        store.state().len() == 1
    })
    .await;
    fake.apply(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "api", "namespace": "prod"},
        "data": {"token": "c2VjcmV0LXRva2Vu"}
    }));
    wait_until("the new secret's metadata", LIMIT, || async {
        store.state().len() == 2
    })
    .await;
    task.abort();

    let requests = fake.requests();
    let on_secrets: Vec<_> = requests.iter().filter(|r| r.plural == "secrets").collect();
    assert!(on_secrets.len() >= 4);
    assert!(
        on_secrets.iter().all(|r| r.metadata_only),
        "every request on secrets was metadata-only: {on_secrets:?}"
    );
    secrets.get("db").await.expect("a full get");
    assert!(!fake.requests().last().unwrap().metadata_only);
}

#[tokio::test]
async fn requests_are_counted_per_verb_resource_and_namespace() {
    let fake = FakeKube::start().await;
    let client = fake.client().await;
    let prod: Api<Pod> = Api::namespaced(client.clone(), "prod");
    prod.list(&ListParams::default()).await.unwrap();
    prod.list(&ListParams::default()).await.unwrap();
    let _ = prod.get("x").await;
    Api::<Pod>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    Api::<ConfigMap>::namespaced(client, "prod")
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(fake.count("list", "pods", Some("prod")), 2);
    assert_eq!(fake.count("list", "pods", None), 1);
    assert_eq!(fake.count_any_namespace("list", "pods"), 3);
    assert_eq!(fake.count("get", "pods", Some("prod")), 1);
    assert_eq!(fake.count("list", "configmaps", Some("prod")), 1);
    assert_eq!(fake.total_requests(), 5);
    fake.reset_requests();
    assert_eq!(fake.total_requests(), 0);
}

#[tokio::test]
async fn aggregated_discovery_lists_installed_crds() {
    let fake = FakeKube::start().await;
    fake.install_external_secrets();
    let client = fake.client().await;
    let discovery = kube::Discovery::new(client)
        .run_aggregated()
        .await
        .expect("aggregated discovery");
    let gvk = GroupVersionKind::gvk("external-secrets.io", "v1", "ClusterSecretStore");
    let (resource, capabilities) = discovery.resolve_gvk(&gvk).expect("served");
    assert_eq!(resource.plural, "clustersecretstores");
    assert_eq!(capabilities.scope, kube::discovery::Scope::Cluster);
    let (resource, _) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("", "v1", "Secret"))
        .expect("core types");
    assert_eq!(resource.plural, "secrets");
    assert!(!discovery.has_group("cert-manager.io"));
}

#[tokio::test]
async fn a_streaming_list_watcher_gets_initial_events_then_changes() {
    let fake = FakeKube::start().await;
    fake.apply(config_map("prod", "a", "1"));
    let api: Api<ConfigMap> = Api::namespaced(fake.client().await, "prod");
    let (store, writer) = reflector::store();
    let stream = reflector(
        writer,
        watcher(api, watcher::Config::default().streaming_lists()),
    );
    let task = tokio::spawn(async move { stream.for_each(|_| async {}).await });
    wait_until("the initial events", LIMIT, || async {
        store.state().len() == 1
    })
    .await;
    fake.apply(config_map("prod", "b", "1"));
    wait_until("the change", LIMIT, || async { store.state().len() == 2 }).await;
    task.abort();
    assert_eq!(fake.count("list", "configmaps", Some("prod")), 0);
    assert_eq!(fake.count("watch", "configmaps", Some("prod")), 1);
}

#[tokio::test]
async fn a_selector_watch_sees_objects_enter_and_leave_the_selection() {
    let fake = FakeKube::start().await;
    let api: Api<Pod> = Api::namespaced(fake.client().await, "prod");
    let mut events = api
        .watch(
            &WatchParams::default().labels("app=web").disable_bookmarks(),
            "0",
        )
        .await
        .unwrap()
        .boxed();
    wait_until("the watch", LIMIT, || async { fake.open_watches() == 1 }).await;
    fake.apply(pod("prod", "p", json!({"app": "db"})));
    fake.apply(pod("prod", "p", json!({"app": "web"})));
    fake.apply(pod("prod", "p", json!({"app": "web", "x": "y"})));
    fake.apply(pod("prod", "p", json!({"app": "db"})));
    let mut seen = Vec::new();
    while seen.len() < 3 {
        seen.push(match events.try_next().await.unwrap().unwrap() {
            WatchEvent::Added(_) => "ADDED",
            WatchEvent::Modified(_) => "MODIFIED",
            WatchEvent::Deleted(_) => "DELETED",
            other => panic!("unexpected {other:?}"),
        });
    }
    assert_eq!(seen, ["ADDED", "MODIFIED", "DELETED"]);
}

#[tokio::test]
async fn a_rollout_moves_step_by_step_until_complete() {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use support::kube_api::objects;

    let fake = FakeKube::start().await;
    fake.apply(objects::deployment("prod", "web", 3, "web:1"));
    fake.settle_deployment("prod", "web");
    let client = fake.client().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "prod");
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client, "prod");

    let web = deployments.get("web").await.unwrap();
    let status = web.status.clone().unwrap();
    assert_eq!(web.metadata.generation, Some(1));
    assert_eq!(status.observed_generation, Some(1));
    let numbers = |s: &k8s_openapi::api::apps::v1::DeploymentStatus| {
        (
            s.replicas,
            s.updated_replicas,
            s.ready_replicas,
            s.available_replicas,
        )
    };
    assert_eq!(numbers(&status), (Some(3), Some(3), Some(3), Some(3)));

    let new_rs = fake.start_rollout("prod", "web", "web:2");
    let web = deployments.get("web").await.unwrap();
    assert_eq!(web.metadata.generation, Some(2));
    let status = web.status.unwrap();
    assert_eq!(status.observed_generation, Some(2));
    assert_eq!(numbers(&status), (Some(3), Some(0), Some(3), Some(3)));
    let sets = replica_sets
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert_eq!(sets.len(), 2);
    let new = sets
        .iter()
        .find(|rs| rs.name_any() == new_rs)
        .expect("the new ReplicaSet");
    assert_eq!(new.annotations()["deployment.kubernetes.io/revision"], "2");
    assert_eq!(new.owner_references()[0].uid, web.metadata.uid.unwrap());
    assert_eq!(
        new.spec
            .as_ref()
            .unwrap()
            .template
            .as_ref()
            .unwrap()
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .image
            .as_deref(),
        Some("web:2")
    );

    let mut steps = 1;
    while !fake.rollout_step("prod", "web") {
        steps += 1;
        assert!(steps <= 3, "a rollout of 3 replicas takes 3 steps");
    }
    assert_eq!(steps, 3);
    let status = deployments.get("web").await.unwrap().status.unwrap();
    assert_eq!(numbers(&status), (Some(3), Some(3), Some(3), Some(3)));
    let progressing = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Progressing")
        .unwrap();
    assert_eq!(
        progressing.reason.as_deref(),
        Some("NewReplicaSetAvailable")
    );
    let old = replica_sets
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|rs| rs.name_any() != new_rs)
        .unwrap();
    assert_eq!(old.status.unwrap().replicas, 0);

    // Scaling is a spec change the controller has not seen yet.
    fake.scale_deployment("prod", "web", 5);
    let web = deployments.get("web").await.unwrap();
    assert_eq!(web.metadata.generation, Some(3));
    assert_eq!(web.status.unwrap().observed_generation, Some(2));
}

#[tokio::test]
async fn a_crash_looping_pod_looks_like_one() {
    use support::kube_api::objects;

    let fake = FakeKube::start().await;
    fake.apply(objects::ready_pod(
        "prod",
        "web-1",
        json!({"app": "web"}),
        "web:1",
    ));
    fake.crash_loop_pod("prod", "web-1", "app");
    fake.crash_loop_pod("prod", "web-1", "app");
    let pods: Api<Pod> = Api::namespaced(fake.client().await, "prod");
    let status = pods.get("web-1").await.unwrap().status.unwrap();
    let container = &status.container_statuses.unwrap()[0];
    assert_eq!(container.restart_count, 2);
    assert!(!container.ready);
    let waiting = container.state.as_ref().unwrap().waiting.as_ref().unwrap();
    assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
    let terminated = container
        .last_state
        .as_ref()
        .unwrap()
        .terminated
        .as_ref()
        .unwrap();
    assert_eq!(
        (terminated.exit_code, terminated.reason.as_deref()),
        (1, Some("Error"))
    );
    let ready = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "False");
}

#[tokio::test]
async fn a_renewed_certificate_has_a_new_not_after() {
    use support::kube_api::objects;

    let fake = FakeKube::start().await;
    fake.install_cert_manager();
    let now = chrono::Utc::now();
    let day = chrono::Duration::days(1);
    fake.apply(objects::certificate(
        "prod",
        "web-tls",
        &["web.example"],
        now - day * 80,
        now + day * 10,
    ));
    let certificates: Api<DynamicObject> =
        Api::namespaced_with(fake.client().await, "prod", &certificate_resource());
    let before = certificates.get("web-tls").await.unwrap();
    fake.renew_certificate("prod", "web-tls", now, now + day * 90);
    let after = certificates.get("web-tls").await.unwrap();
    assert_ne!(
        before.data["status"]["notAfter"],
        after.data["status"]["notAfter"]
    );
    let not_after: chrono::DateTime<chrono::Utc> = after.data["status"]["notAfter"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(not_after > now + day * 89);
    assert_eq!(after.data["status"]["revision"], 2);
    assert_eq!(after.data["status"]["conditions"][0]["status"], "True");
    // Status changes leave the generation alone.
    assert_eq!(after.metadata.generation, before.metadata.generation);
}

#[tokio::test]
async fn over_https_the_kubeconfig_carries_the_ca_and_another_ca_is_refused() {
    let fake = FakeKube::start_tls().await;
    assert!(fake.url().starts_with("https://127.0.0.1:"));
    fake.apply(config_map("prod", "a", "1"));
    let api: Api<ConfigMap> = Api::namespaced(fake.client().await, "prod");
    assert_eq!(
        api.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    fake.restart().await;
    api.get("a").await.expect("HTTPS again after a restart");

    use base64::Engine;
    let other_ca = support::certs::TestCa::new("Some Other CA");
    let yaml = fake.kubeconfig_yaml().replace(
        &base64::engine::general_purpose::STANDARD.encode(fake.ca_pem().unwrap()),
        &base64::engine::general_purpose::STANDARD.encode(other_ca.pem()),
    );
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::from_yaml(&yaml).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    let untrusting: Api<ConfigMap> =
        Api::namespaced(kube::Client::try_from(config).unwrap(), "prod");
    let error = untrusting.get("a").await.expect_err("an unknown issuer");
    assert!(
        !matches!(error, kube::Error::Api(_)),
        "a TLS error, not a Status: {error:?}"
    );
}

#[tokio::test]
async fn injected_failures_answer_real_status_objects() {
    let fake = FakeKube::start().await;
    // kube-client retries 429, 503 and 504 by default (up to 15 times with
    // backoff); without retries the Status itself shows.
    let kubeconfig = kube::config::Kubeconfig::read_from(fake.kubeconfig_path()).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    config.default_retry = false;
    let client = kube::Client::try_from(config).unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "prod");
    let config_maps: Api<ConfigMap> = Api::namespaced(client, "prod");
    for (code, reason) in [
        (503, "ServiceUnavailable"),
        (500, "InternalError"),
        (504, "Timeout"),
        (429, "TooManyRequests"),
    ] {
        fake.fail_requests("pods", code);
        let status = api_error(
            pods.list(&ListParams::default())
                .await
                .expect_err("injected"),
        );
        assert_eq!((status.code, status.reason.as_str()), (code, reason));
        config_maps
            .list(&ListParams::default())
            .await
            .expect("other resources answer");
    }
    fake.clear_failures();
    pods.list(&ListParams::default())
        .await
        .expect("answers again");
    fake.fail_requests("*", 503);
    let status = api_error(
        config_maps
            .get("x")
            .await
            .expect_err("every resource fails"),
    );
    assert_eq!(status.code, 503);
    fake.clear_failures();

    // The default client retries a 503 until the API answers.
    let retrying: Api<Pod> = Api::namespaced(fake.client().await, "prod");
    fake.reset_requests();
    fake.fail_requests("pods", 503);
    let list = tokio::spawn(async move { retrying.list(&ListParams::default()).await });
    wait_until("a retry", LIMIT, || async {
        fake.count("list", "pods", Some("prod")) >= 2
    })
    .await;
    fake.clear_failures();
    list.await.unwrap().expect("the retried list succeeds");
}

#[tokio::test]
async fn a_hanging_api_runs_into_the_client_timeout() {
    let fake = FakeKube::start().await;
    let kubeconfig = kube::config::Kubeconfig::read_from(fake.kubeconfig_path()).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    config.read_timeout = Some(Duration::from_secs(1));
    let pods: Api<Pod> = Api::namespaced(kube::Client::try_from(config).unwrap(), "prod");
    pods.list(&ListParams::default())
        .await
        .expect("answers in time");
    fake.set_delay(Duration::from_secs(30));
    let error = pods.list(&ListParams::default()).await.expect_err("hangs");
    assert!(
        !matches!(error, kube::Error::Api(_)),
        "a timeout, not a Status: {error:?}"
    );
    fake.set_delay(Duration::ZERO);
    pods.list(&ListParams::default())
        .await
        .expect("answers again");
}

#[tokio::test]
async fn settled_workloads_and_events_read_as_typed_objects() {
    use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
    use k8s_openapi::api::core::v1::Event;
    use support::kube_api::objects;

    let fake = FakeKube::start().await;
    fake.apply(objects::statefulset("prod", "db", 3, "db:1"));
    fake.settle_statefulset("prod", "db");
    fake.apply(objects::daemonset("prod", "agent", "agent:1"));
    fake.settle_daemonset("prod", "agent", 4);
    fake.apply(objects::event(
        "prod",
        ("v1", "Pod", "web-1"),
        "Warning",
        "BackOff",
        "Back-off restarting failed container",
    ));
    fake.apply(objects::event(
        "prod",
        ("v1", "Pod", "web-2"),
        "Normal",
        "Pulled",
        "Container image pulled",
    ));
    let client = fake.client().await;

    let db = Api::<StatefulSet>::namespaced(client.clone(), "prod")
        .get("db")
        .await
        .unwrap();
    let status = db.status.unwrap();
    assert_eq!(
        (
            status.replicas,
            status.ready_replicas,
            status.observed_generation
        ),
        (3, Some(3), Some(1))
    );
    assert_eq!(status.current_revision, status.update_revision);
    let agent = Api::<DaemonSet>::namespaced(client.clone(), "prod")
        .get("agent")
        .await
        .unwrap();
    let status = agent.status.unwrap();
    assert_eq!(
        (status.desired_number_scheduled, status.number_ready),
        (4, 4)
    );

    let events: Api<Event> = Api::namespaced(client, "prod");
    let warnings = events
        .list(&ListParams::default().fields("type=Warning,involvedObject.kind=Pod"))
        .await
        .unwrap()
        .items;
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].reason.as_deref(), Some("BackOff"));
    assert_eq!(warnings[0].involved_object.name.as_deref(), Some("web-1"));
    let all = events.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(all.len(), 2, "event names are unique");
}

#[tokio::test]
async fn a_short_history_expires_old_resource_versions() {
    let fake = FakeKube::start().await;
    fake.set_history_limit(2);
    let api: Api<ConfigMap> = Api::namespaced(fake.client().await, "prod");
    let start = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    for i in 0..5 {
        fake.apply(config_map("prod", "a", &i.to_string()));
    }
    let mut events = api
        .watch(&WatchParams::default(), &start)
        .await
        .unwrap()
        .boxed();
    match events.try_next().await.unwrap() {
        Some(WatchEvent::Error(status)) => assert_eq!(status.code, 410),
        other => panic!("expected 410, got {other:?}"),
    }
    // The last two changes are still there to resume from.
    let recent = (fake.resource_version() - 2).to_string();
    let mut events = api
        .watch(&WatchParams::default(), &recent)
        .await
        .unwrap()
        .boxed();
    match events.try_next().await.unwrap() {
        Some(WatchEvent::Modified(cm)) => assert_eq!(cm.data.unwrap()["value"], "3"),
        other => panic!("expected the last change, got {other:?}"),
    }
}

#[tokio::test]
async fn a_watcher_without_permission_fails_with_forbidden() {
    let fake = FakeKube::start().await;
    fake.set_rules(Some(vec![
        Rule::new(&["list"], &[""], &["configmaps"]).in_namespace("prod")
    ]));
    let api: Api<ConfigMap> = Api::namespaced(fake.client().await, "prod");
    api.list(&ListParams::default())
        .await
        .expect("list is granted");
    let mut stream = std::pin::pin!(watcher(api, watcher::Config::default()));
    let error = loop {
        match stream.next().await.expect("the watcher goes on") {
            Ok(_) => continue,
            Err(error) => break error,
        }
    };
    match error {
        watcher::Error::WatchStartFailed(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403);
            assert_eq!(
                status.message,
                "configmaps is forbidden: User \"system:serviceaccount:vouch:vouch\" cannot watch resource \"configmaps\" in API group \"\" in the namespace \"prod\""
            );
        }
        other => panic!("expected a forbidden watch, got {other:?}"),
    }
}

/// A canary Rollout of `image` with `replicas` pods.
fn argo_rollout(name: &str, replicas: i32, image: &str) -> serde_json::Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": "prod", "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": image}]}
            },
            "strategy": {"canary": {"steps": [{"setWeight": 25}]}}
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_a_workload_is_no_rollout_and_a_new_pod_template_is() {
    use support::kube_api::objects::deployment;
    use support::kube_cluster::Cluster;

    let cluster = Cluster::start().await;
    let fake = &cluster.fake;
    fake.install_crd("argoproj.io", "v1alpha1", "Rollout", "rollouts", true);
    fake.apply(deployment("prod", "api", 2, "api:1"));
    fake.apply(argo_rollout("canary", 2, "canary:1"));
    let mut feed = cluster.clients.rollouts.subscribe();
    let workloads =
        ["prod/api", "prod/canary"].map(|w| vouch::plan::WorkloadRef::parse(w).unwrap());
    let _held = cluster.clients.kube.follow_rollouts(&workloads).await;
    wait_until("the three watches to be open", LIMIT, || async {
        fake.open_watches() == 3
    })
    .await;

    // Scaled, as an HPA or `kubectl scale` does: a new generation each,
    // the same pod template.
    fake.scale_deployment("prod", "api", 5);
    fake.patch(
        "argoproj.io/v1alpha1",
        "Rollout",
        Some("prod"),
        "canary",
        json!({"spec": {"replicas": 6}}),
    );
    // Then a new image each (and scaled back with it).
    fake.apply(deployment("prod", "api", 2, "api:2"));
    fake.apply(argo_rollout("canary", 2, "canary:2"));
    let mut seen = Vec::new();
    for _ in 0..2 {
        let rollout = tokio::time::timeout(LIMIT, feed.recv())
            .await
            .unwrap()
            .unwrap();
        seen.push((rollout.workload.to_string(), rollout.generation));
    }
    seen.sort();
    assert_eq!(
        seen,
        [("prod/api".to_string(), 3), ("prod/canary".to_string(), 3)],
        "only the template changes are rollouts"
    );
    assert!(feed.try_recv().is_err(), "{:?}", feed.try_recv());
}
