//! Cross-checks: `dns`, `http`, `tls` and `registry` checks that expect a
//! value the cluster reports (an Ingress's addresses, the image tag a
//! Deployment's container runs, a cert-manager Certificate's notAfter),
//! read from the shared watch cache of the fake Kubernetes API server
//! (tests/support/kube_api) while the real target (dnsmasq, an HTTP or TLS
//! server, a registry) answers. Each passes, fails when the cluster and the
//! target disagree, and is an `error` with the cache's reason word when the
//! cluster's value is unknown.
use crate::support;

use std::time::Duration;

use serde_json::json;
use support::certs::{unix_now, TestCa, Validity, DAY};
use support::dnsmasq::Dnsmasq;
use support::http_server::{Reply, TestServer};
use support::kind::expect;
use support::kube_api::{objects, Rule};
use support::kube_cluster::{Cluster, WAIT};
use support::registry::{Auth, Registry};
use vouch::result::{Outcome, Reason, Verdict};

fn is(verdict: Verdict, reason: Reason) -> impl Fn(&Outcome) -> bool {
    move |o: &Outcome| o.verdict == verdict && o.reason == reason
}

// ---- one watch, shared, and no request per run --------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_checks_share_one_watch_and_make_no_request_per_run() {
    let cluster = Cluster::start().await;
    let fake = &cluster.fake;
    fake.apply(objects::deployment("prod", "api", 1, "broxiva/api:3f2a9c1"));
    fake.settle_deployment("prod", "api");
    let server = TestServer::http().await;
    server.route("/v", Reply::text(200, "{\"commit\": \"3f2a9c1\"}"));
    let reference = "{ deployment: prod/api, container: api }";
    let checks = [
        cluster.check_of(
            "http",
            "5s",
            &format!(
                "{{ url: \"{}\", expect: {{ json_image_tag: {{ $.commit: {reference} }} }} }}",
                server.url("/v")
            ),
        ),
        cluster.check_of(
            "http",
            "5s",
            &format!(
                "{{ url: \"{}\", expect: {{ body_contains_image_tag: {reference} }} }}",
                server.url("/v")
            ),
        ),
        cluster.check_of("kubernetes", "5s", "{ deployment: prod/api }"),
    ];
    for check in &checks {
        expect(&cluster.run(check).await, Verdict::Pass, Reason::Ok, "");
    }
    let deployment_requests = || {
        fake.requests()
            .iter()
            .filter(|r| r.plural == "deployments")
            .count()
    };
    let after_first_round = deployment_requests();
    for _ in 0..5 {
        for check in &checks {
            expect(&cluster.run(check).await, Verdict::Pass, Reason::Ok, "");
        }
    }
    assert_eq!(fake.count("list", "deployments", Some("prod")), 1);
    assert_eq!(fake.open_watches(), 1);
    assert_eq!(deployment_requests(), after_first_round);

    // The watch lives as long as a check holds it.
    drop(checks);
    support::wait_until("the watch to stop", WAIT, || async {
        fake.open_watches() == 0
    })
    .await;
}

// ---- dns ---------------------------------------------------------------

fn ingress(name: &str, status: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": "prod"},
        "spec": {"rules": [{"host": "web.test"}]},
        "status": status
    })
}

fn load_balancer(entries: serde_json::Value) -> serde_json::Value {
    json!({"loadBalancer": {"ingress": entries}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_answers_follow_the_address_the_ingress_reports() {
    let cluster = Cluster::start().await;
    let dns = Dnsmasq::start(&[
        "--host-record=web.test,10.1.2.3",
        "--cname=alias.test,lb.test",
        "--host-record=lb.test,10.1.2.9",
    ]);
    let server = dns.server();
    let fake = &cluster.fake;
    fake.apply(ingress("web", load_balancer(json!([{"ip": "10.1.2.3"}]))));
    let check = cluster.check_of(
        "dns",
        "5s",
        &format!(
            "{{ name: web.test, servers: [\"{server}\"], expect: {{ answers_from_ingress: prod/web }} }}"
        ),
    );
    let outcome = cluster.run(&check).await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "{10.1.2.3}");

    // The load balancer moved; DNS still points at the old address.
    fake.patch_status(
        "networking.k8s.io/v1",
        "Ingress",
        Some("prod"),
        "web",
        load_balancer(json!([{"ip": "10.7.7.7"}])),
    );
    let outcome = cluster
        .run_until(
            &check,
            "the new address",
            is(Verdict::Fail, Reason::DnsAnswers),
        )
        .await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::DnsAnswers,
        "answers {10.1.2.3}, expected {10.7.7.7} (reported by Ingress prod/web)",
    );

    // No address yet: nothing to compare with.
    fake.patch_status(
        "networking.k8s.io/v1",
        "Ingress",
        Some("prod"),
        "web",
        load_balancer(json!(null)),
    );
    let outcome = cluster
        .run_until(
            &check,
            "no address",
            is(Verdict::Error, Reason::IngressAddress),
        )
        .await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::IngressAddress,
        "Ingress prod/web reports no load-balancer address yet",
    );

    // A host name only: compared with CNAME answers, explained for A.
    fake.patch_status(
        "networking.k8s.io/v1",
        "Ingress",
        Some("prod"),
        "web",
        load_balancer(json!([{"hostname": "LB.test"}])),
    );
    let outcome = cluster
        .run_until(&check, "a host name", |o| o.message.contains("host name"))
        .await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::IngressAddress,
        "reports no IPv4 address to compare A answers with, only LB.test (a host name is compared with type: CNAME)",
    );
    let cname = cluster.check_of(
        "dns",
        "5s",
        &format!(
            "{{ name: alias.test, type: CNAME, servers: [\"{server}\"], expect: {{ answers_from_ingress: prod/web }} }}"
        ),
    );
    expect(
        &cluster.run(&cname).await,
        Verdict::Pass,
        Reason::Ok,
        "{lb.test}",
    );

    // An Ingress that does not exist.
    let missing = cluster.check_of(
        "dns",
        "5s",
        &format!(
            "{{ name: web.test, servers: [\"{server}\"], expect: {{ answers_from_ingress: prod/gone }} }}"
        ),
    );
    expect(
        &cluster.run(&missing).await,
        Verdict::Error,
        Reason::NotFound,
        "cannot read the addresses of Ingress prod/gone: Ingress prod/gone not found",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_is_an_error_while_the_ingress_watch_is_forbidden_or_not_synced() {
    let cluster = Cluster::start().await;
    let dns = Dnsmasq::start(&["--host-record=web.test,10.1.2.3"]);
    let server = dns.server();
    cluster
        .fake
        .apply(ingress("web", load_balancer(json!([{"ip": "10.1.2.3"}]))));
    let block = format!(
        "{{ name: web.test, servers: [\"{server}\"], expect: {{ answers_from_ingress: prod/web }} }}"
    );
    // RBAC grants deployments only.
    cluster.fake.set_rules(Some(vec![Rule::new(
        &["list", "watch"],
        &["apps"],
        &["deployments"],
    )]));
    let check = cluster.check_of("dns", "5s", &block);
    let outcome = cluster
        .run_until(&check, "forbidden", is(Verdict::Error, Reason::Forbidden))
        .await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Forbidden,
        "grant list,watch on ingresses.networking.k8s.io in namespace prod",
    );

    // A hanging API server: the first sync never comes.
    let hanging = Cluster::start().await;
    hanging.fake.set_delay(Duration::from_secs(60));
    let check = hanging.check_of("dns", "2s", &block);
    expect(
        &hanging.run(&check).await,
        Verdict::Error,
        Reason::NotSynced,
        "the watch of ingresses.networking.k8s.io in namespace prod has not synced within 1s",
    );
}

// ---- http --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_expects_the_commit_the_deployment_runs_until_the_service_catches_up() {
    let cluster = Cluster::start().await;
    let fake = &cluster.fake;
    fake.apply(objects::deployment(
        "prod",
        "api",
        2,
        "registry.example.com:5000/broxiva/api:3f2a9c1",
    ));
    fake.settle_deployment("prod", "api");
    let server = TestServer::http().await;
    let version = |commit: &str| Reply::json(200, json!({"commit": commit, "status": "ok"}));
    server.route("/api/version", version("3f2a9c1"));
    server.route("/", Reply::text(200, "<footer>build 3f2a9c1</footer>"));
    let check = cluster.check_of(
        "http",
        "5s",
        &format!(
            "{{ url: \"{}\", expect: {{ json: {{ $.status: ok }}, json_image_tag: {{ $.commit: {{ deployment: prod/api, container: api }} }} }} }}",
            server.url("/api/version")
        ),
    );
    let footer = cluster.check_of(
        "http",
        "5s",
        &format!(
            "{{ url: \"{}\", expect: {{ body_contains_image_tag: {{ deployment: prod/api, container: api }} }} }}",
            server.url("/")
        ),
    );
    expect(
        &cluster.run(&check).await,
        Verdict::Pass,
        Reason::Ok,
        "status 200",
    );
    expect(
        &cluster.run(&footer).await,
        Verdict::Pass,
        Reason::Ok,
        "status 200",
    );

    // A rollout to a new image: the service still answers the old commit.
    fake.start_rollout(
        "prod",
        "api",
        "registry.example.com:5000/broxiva/api:8d41e07",
    );
    let outcome = cluster
        .run_until(&check, "the new image", is(Verdict::Fail, Reason::Json))
        .await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::Json,
        "$.commit is \"3f2a9c1\", expected \"8d41e07\" (the image tag of container api of Deployment prod/api)",
    );
    expect(
        &cluster.run(&footer).await,
        Verdict::Fail,
        Reason::Body,
        "body does not contain \"8d41e07\" (the image tag of container api of Deployment prod/api)",
    );

    // The new pods serve; both pass again.
    server.route("/api/version", version("8d41e07"));
    server.route("/", Reply::text(200, "<footer>build 8d41e07</footer>"));
    expect(
        &cluster.run(&check).await,
        Verdict::Pass,
        Reason::Ok,
        "status 200",
    );
    expect(
        &cluster.run(&footer).await,
        Verdict::Pass,
        Reason::Ok,
        "status 200",
    );

    // A container the Deployment does not have, a Deployment that does not
    // exist, an image without a tag: errors, and no request is made.
    let requests = server.seen().len();
    for (block, part) in [
        (
            "{ deployment: prod/api, container: web }",
            "cannot read the image tag of container web of Deployment prod/api: Deployment prod/api has no container \"web\" (it has: api)",
        ),
        (
            "{ deployment: prod/gone, container: api }",
            "Deployment prod/gone not found",
        ),
    ] {
        let check = cluster.check_of(
            "http",
            "5s",
            &format!(
                "{{ url: \"{}\", expect: {{ json_image_tag: {{ $.commit: {block} }} }} }}",
                server.url("/api/version")
            ),
        );
        expect(&cluster.run(&check).await, Verdict::Error, Reason::NotFound, part);
    }
    fake.apply(objects::deployment(
        "prod",
        "pinned",
        1,
        "broxiva/api@sha256:0123",
    ));
    let pinned = cluster.check_of(
        "http",
        "5s",
        &format!(
            "{{ url: \"{}\", expect: {{ body_contains_image_tag: {{ deployment: prod/pinned, container: pinned }} }} }}",
            server.url("/")
        ),
    );
    let outcome = cluster
        .run_until(&pinned, "the pinned Deployment", |o| {
            o.message.contains("without a tag")
        })
        .await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::NotFound,
        "it runs broxiva/api@sha256:0123 without a tag",
    );
    assert_eq!(
        server.seen().len(),
        requests,
        "no request without an expected value"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_is_an_error_while_the_deployment_watch_has_not_synced() {
    let cluster = Cluster::start().await;
    cluster.fake.set_delay(Duration::from_secs(60));
    let server = TestServer::http().await;
    server.route(
        "/api/version",
        Reply::json(200, json!({"commit": "3f2a9c1"})),
    );
    let check = cluster.check_of(
        "http",
        "2s",
        &format!(
            "{{ url: \"{}\", expect: {{ json_image_tag: {{ /commit: {{ deployment: prod/api, container: api }} }} }} }}",
            server.url("/api/version")
        ),
    );
    expect(
        &cluster.run(&check).await,
        Verdict::Error,
        Reason::NotSynced,
        "cannot read the image tag of container api of Deployment prod/api: the watch of deployments.apps in namespace prod has not synced within 1s",
    );
    assert!(server.seen().is_empty());
}

// ---- tls ---------------------------------------------------------------

fn utc(unix: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(unix, 0).unwrap()
}

/// A `tls` block for the server at `port` (a certificate for localhost from
/// the CA in `ca_file`), compared with Certificate `certificate`.
fn tls_block(port: u16, ca_file: &std::path::Path, certificate: &str) -> String {
    format!(
        "{{ host: localhost, port: {port}, connect_to: \"127.0.0.1\", ca_file: \"{}\", cert_manager_certificate: {certificate} }}",
        ca_file.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_fails_while_a_server_presents_the_certificate_before_its_renewal() {
    let cluster = Cluster::start().await;
    let fake = &cluster.fake;
    fake.install_cert_manager();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("vouch cross-check CA");
    let ca_file = ca.write_pem(dir.path());
    let now = unix_now();
    let (first_from, first_until) = (now - DAY, now + 90 * DAY);
    fake.apply(objects::certificate(
        "prod",
        "web-tls",
        &["localhost"],
        utc(first_from),
        utc(first_until),
    ));
    let old = TestServer::https(ca.issue(
        &["localhost"],
        Validity::Between {
            not_before: first_from,
            not_after: first_until,
        },
    ))
    .await;
    let check = cluster.check_of(
        "tls",
        "5s",
        &tls_block(old.addr.port(), &ca_file, "prod/web-tls"),
    );
    expect(
        &cluster.run(&check).await,
        Verdict::Pass,
        Reason::Ok,
        "certificate valid until",
    );

    // cert-manager renews; the old pod keeps presenting what it loaded.
    let (renewed_from, renewed_until) = (now, now + 120 * DAY);
    fake.renew_certificate("prod", "web-tls", utc(renewed_from), utc(renewed_until));
    let outcome = cluster
        .run_until(&check, "the renewal", is(Verdict::Fail, Reason::TlsStale))
        .await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::TlsStale,
        "older than the one cert-manager Certificate prod/web-tls was renewed to",
    );

    // A server presenting the renewed certificate passes.
    let renewed = TestServer::https(ca.issue(
        &["localhost"],
        Validity::Between {
            not_before: renewed_from,
            not_after: renewed_until,
        },
    ))
    .await;
    let check = cluster.check_of(
        "tls",
        "5s",
        &tls_block(renewed.addr.port(), &ca_file, "prod/web-tls"),
    );
    expect(
        &cluster.run(&check).await,
        Verdict::Pass,
        Reason::Ok,
        "certificate valid until",
    );

    // One that presents a certificate cert-manager did not issue fails too.
    let unrelated = TestServer::https(ca.issue(
        &["localhost"],
        Validity::Between {
            not_before: now,
            not_after: now + 365 * DAY,
        },
    ))
    .await;
    let check = cluster.check_of(
        "tls",
        "5s",
        &tls_block(unrelated.addr.port(), &ca_file, "prod/web-tls"),
    );
    expect(
        &cluster.run(&check).await,
        Verdict::Fail,
        Reason::TlsStale,
        "not the one cert-manager Certificate prod/web-tls reports",
    );

    // A Certificate that does not exist: error, before connecting.
    let check = cluster.check_of(
        "tls",
        "5s",
        &tls_block(renewed.addr.port(), &ca_file, "prod/gone"),
    );
    expect(
        &cluster.run(&check).await,
        Verdict::Error,
        Reason::NotFound,
        "cannot read status.notAfter of Certificate prod/gone: Certificate prod/gone not found",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_an_error_without_cert_manager() {
    let cluster = Cluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("vouch cross-check CA");
    let ca_file = ca.write_pem(dir.path());
    let server = TestServer::https(ca.issue(&["localhost"], Validity::ValidFor { days: 90 })).await;
    let check = cluster.check_of(
        "tls",
        "5s",
        &tls_block(server.addr.port(), &ca_file, "prod/web-tls"),
    );
    expect(
        &cluster.run(&check).await,
        Verdict::Error,
        Reason::NotInstalled,
        "does not serve certificates.cert-manager.io",
    );
}

// ---- registry ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_looks_for_the_tag_the_deployment_runs() {
    let cluster = Cluster::start().await;
    let fake = &cluster.fake;
    let registry = Registry::start_new(Auth::None);
    registry.push_image("broxiva/api", &["0a1b2c3", "1b2c3d4"]);
    fake.apply(objects::deployment(
        "prod",
        "api",
        2,
        "registry.example.com/broxiva/api:1b2c3d4",
    ));
    fake.settle_deployment("prod", "api");
    let check = cluster.check_of(
        "registry",
        "10s",
        &format!(
            "{{ url: \"{}\", repository: broxiva/api, tag_of: {{ deployment: prod/api, container: api }}, min_rollback_tags: 1 }}",
            registry.url()
        ),
    );
    let outcome = cluster.run(&check).await;
    expect(
        &outcome,
        Verdict::Pass,
        Reason::Ok,
        "broxiva/api:1b2c3d4 present",
    );

    // A rollout to an image that was never pushed.
    fake.start_rollout("prod", "api", "registry.example.com/broxiva/api:2c3d4e5");
    let outcome = cluster
        .run_until(
            &check,
            "the new image",
            is(Verdict::Fail, Reason::TagMissing),
        )
        .await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::TagMissing,
        "broxiva/api:2c3d4e5 not found",
    );
    registry.push_image("broxiva/api", &["2c3d4e5"]);
    expect(
        &cluster.run(&check).await,
        Verdict::Pass,
        Reason::Ok,
        "broxiva/api:2c3d4e5 present",
    );

    // The Deployment is deleted: unknown, not a pass on the last tag seen.
    fake.delete("apps/v1", "Deployment", Some("prod"), "api");
    let outcome = cluster
        .run_until(&check, "the deletion", is(Verdict::Error, Reason::NotFound))
        .await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::NotFound,
        "cannot read the image tag of container api of Deployment prod/api: Deployment prod/api not found",
    );
}

// ---- the kubeconfig given only in the config file ----------------------
//
// A config whose only cluster reads are cross-checks must use its own
// `kubernetes:` block, as a new user writes it: no --kubeconfig, no
// KUBECONFIG, no ~/.kube/config, not in a cluster. These run the real
// binary, as `vouch check` and `vouch validate` are run.

/// `vouch ARGS` with no way to find a cluster but the config file.
async fn vouch_without_ambient_kubeconfig(args: &[&str]) -> std::process::Output {
    let home = tempfile::tempdir().unwrap();
    tokio::process::Command::new(support::vouch::bin())
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("HOME", home.path())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run the vouch binary")
}

/// A config file beside a copy of `fake`'s kubeconfig, which its
/// `kubernetes:` block names by a path relative to the config.
fn config_naming_the_kubeconfig(
    fake: &support::kube_api::FakeKube,
    checks: &str,
) -> support::ConfigDir {
    let config = support::write_config(&format!(
        "kubernetes: {{ kubeconfig: cluster/kubeconfig.yaml }}\nchecks:\n{checks}"
    ));
    let cluster_dir = config.dir.path().join("cluster");
    std::fs::create_dir(&cluster_dir).unwrap();
    std::fs::write(cluster_dir.join("kubeconfig.yaml"), fake.kubeconfig_yaml()).unwrap();
    config
}

/// `vouch check --format json` of `config`: every check must pass.
async fn assert_every_check_passes(config: &support::ConfigDir) {
    let out = vouch_without_ambient_kubeconfig(&[
        "check",
        "--config",
        config.path.to_str().unwrap(),
        "--format",
        "json",
    ])
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|err| {
        panic!(
            "not JSON ({err}):\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let checks = report["checks"].as_array().expect("checks");
    assert!(!checks.is_empty(), "{report:#}");
    for check in checks {
        assert_eq!(
            (&check["state"], &check["last_run"]["reason"]),
            (&json!("pass"), &json!("ok")),
            "{check:#}"
        );
    }
    assert_eq!(out.status.code(), Some(0), "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_cross_check_uses_the_kubeconfig_of_the_config_file() {
    let fake = support::kube_api::FakeKube::start().await;
    let dns = Dnsmasq::start(&["--host-record=web.test,10.1.2.3"]);
    fake.apply(ingress("web", load_balancer(json!([{"ip": "10.1.2.3"}]))));
    let config = config_naming_the_kubeconfig(
        &fake,
        &format!(
            "  - name: web-dns\n    timeout: 10s\n    dns: {{ name: web.test, servers: [\"{}\"], expect: {{ answers_from_ingress: prod/web }} }}\n",
            dns.server()
        ),
    );
    assert_every_check_passes(&config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_cross_checks_use_the_kubeconfig_of_the_config_file() {
    let fake = support::kube_api::FakeKube::start().await;
    fake.apply(objects::deployment("prod", "api", 1, "broxiva/api:3f2a9c1"));
    fake.settle_deployment("prod", "api");
    let server = TestServer::http().await;
    server.route("/v", Reply::text(200, "{\"commit\": \"3f2a9c1\"}"));
    let reference = "{ deployment: prod/api, container: api }";
    let config = config_naming_the_kubeconfig(
        &fake,
        &format!(
            "  - name: json-tag\n    timeout: 10s\n    http: {{ url: \"{url}\", expect: {{ json_image_tag: {{ $.commit: {reference} }} }} }}\n\
             \x20 - name: body-tag\n    timeout: 10s\n    http: {{ url: \"{url}\", expect: {{ body_contains_image_tag: {reference} }} }}\n",
            url = server.url("/v")
        ),
    );
    assert_every_check_passes(&config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_cross_check_uses_the_kubeconfig_of_the_config_file() {
    let fake = support::kube_api::FakeKube::start().await;
    fake.install_cert_manager();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("vouch cross-check CA");
    let ca_file = ca.write_pem(dir.path());
    let now = unix_now();
    let (from, until) = (now - DAY, now + 90 * DAY);
    fake.apply(objects::certificate(
        "prod",
        "web-tls",
        &["localhost"],
        utc(from),
        utc(until),
    ));
    let server = TestServer::https(ca.issue(
        &["localhost"],
        Validity::Between {
            not_before: from,
            not_after: until,
        },
    ))
    .await;
    let config = config_naming_the_kubeconfig(
        &fake,
        &format!(
            "  - name: web-tls\n    timeout: 10s\n    tls: {}\n",
            tls_block(server.addr.port(), &ca_file, "prod/web-tls")
        ),
    );
    assert_every_check_passes(&config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_cross_check_uses_the_kubeconfig_of_the_config_file() {
    let fake = support::kube_api::FakeKube::start().await;
    let registry = Registry::start_new(Auth::None);
    registry.push_image("broxiva/api", &["1b2c3d4"]);
    fake.apply(objects::deployment(
        "prod",
        "api",
        1,
        "registry.example.com/broxiva/api:1b2c3d4",
    ));
    fake.settle_deployment("prod", "api");
    let config = config_naming_the_kubeconfig(
        &fake,
        &format!(
            "  - name: api-image\n    timeout: 10s\n    registry: {{ url: \"{}\", repository: broxiva/api, tag_of: {{ deployment: prod/api, container: api }} }}\n",
            registry.url()
        ),
    );
    assert_every_check_passes(&config).await;
}

#[tokio::test]
async fn validate_checks_the_kubernetes_block_of_a_config_with_only_cross_checks() {
    let config = support::write_config(
        "kubernetes: { kubeconfig: missing/kubeconfig.yaml }\nchecks:\n  - name: web-dns\n    dns: { name: web.test, servers: [\"127.0.0.1\"], expect: { answers_from_ingress: prod/web } }\n",
    );
    let out =
        vouch_without_ambient_kubeconfig(&["validate", "--config", config.path.to_str().unwrap()])
            .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(": kubernetes.kubeconfig: cannot read kubeconfig ")
            && stderr.contains("missing/kubeconfig.yaml"),
        "{stderr}"
    );
}
