//! Cross-checks: `dns`, `http`, `tls` and `registry` checks that expect a
//! value the cluster reports (an Ingress's addresses, the image tag a
//! Deployment's container runs, a cert-manager Certificate's notAfter),
//! read from the shared watch cache of the fake Kubernetes API server
//! (tests/support/kube_api) while the real target (dnsmasq, an HTTP or TLS
//! server, a registry) answers. Each passes, fails when the cluster and the
//! target disagree, and is an `error` with the cache's reason word when the
//! cluster's value is unknown.
mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use support::dnsmasq::Dnsmasq;
use support::kind::expect;
use support::kube_api::{objects, FakeKube, Rule};
use vouch::config::SourcedConfig;
use vouch::plan::{Plan, PlannedCheck};
use vouch::probe::Clients;
use vouch::result::{Outcome, Reason, Verdict};
use vouch::runner::run_once;

/// How long a test waits for the cache to see a change.
const WAIT: Duration = Duration::from_secs(20);

/// A fake cluster and clients pointed at it, as `--kubeconfig` would.
struct Cluster {
    fake: FakeKube,
    clients: Arc<Clients>,
}

impl Cluster {
    async fn start() -> Cluster {
        let fake = FakeKube::start().await;
        let clients = Arc::new(Clients::with_kubeconfig(Some(
            fake.kubeconfig_path().to_path_buf(),
        )));
        Cluster { fake, clients }
    }

    /// One check `t` of `kind` with `block` (flow style), `timeout`.
    fn check(&self, kind: &str, timeout: &str, block: &str) -> Arc<PlannedCheck> {
        let yaml = format!("checks:\n  - name: t\n    timeout: {timeout}\n    {kind}: {block}\n");
        let source = SourcedConfig::parse(&yaml, "test.yaml", ".".into())
            .unwrap_or_else(|err| panic!("{err}\n{yaml}"));
        Plan::from_source(&source, &self.clients, |_| None)
            .unwrap_or_else(|err| panic!("{err}\n{yaml}"))
            .checks
            .remove(0)
    }

    async fn run(&self, check: &Arc<PlannedCheck>) -> Outcome {
        run_once(check.clone(), self.clients.clone()).await.outcome
    }

    /// Runs `check` until `done` holds for its outcome (the cache sees a
    /// change some time after the fake makes it); returns that outcome.
    async fn run_until(
        &self,
        check: &Arc<PlannedCheck>,
        what: &str,
        done: impl Fn(&Outcome) -> bool,
    ) -> Outcome {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let outcome = self.run(check).await;
            if done(&outcome) {
                return outcome;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out after {WAIT:?} waiting for {what}; last outcome {}/{}: {}",
                outcome.verdict,
                outcome.reason,
                outcome.message
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn is(verdict: Verdict, reason: Reason) -> impl Fn(&Outcome) -> bool {
    move |o: &Outcome| o.verdict == verdict && o.reason == reason
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
    let check = cluster.check(
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
    let cname = cluster.check(
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
    let missing = cluster.check(
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
    let check = cluster.check("dns", "5s", &block);
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
    let check = hanging.check("dns", "2s", &block);
    expect(
        &hanging.run(&check).await,
        Verdict::Error,
        Reason::NotSynced,
        "the watch of ingresses.networking.k8s.io in namespace prod has not synced within 1s",
    );
}
