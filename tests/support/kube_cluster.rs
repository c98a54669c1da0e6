//! A fake cluster (tests/support/kube_api) with vouch's clients pointed at
//! it, as `--kubeconfig` would: for tests that plan checks and run them
//! in-process against the shared watch cache.

use std::sync::Arc;
use std::time::Duration;

use vouch::config::SourcedConfig;
use vouch::plan::{Plan, PlannedCheck};
use vouch::probe::Clients;
use vouch::result::Outcome;
use vouch::runner::run_once;

use super::kube_api::FakeKube;

/// How long a test waits for the cache to see a change the fake made.
pub const WAIT: Duration = Duration::from_secs(20);

pub struct Cluster {
    pub fake: FakeKube,
    pub clients: Arc<Clients>,
    /// The kind whose block [`Cluster::check`] fills in.
    kind: &'static str,
}

impl Cluster {
    pub async fn start() -> Cluster {
        Self::with(FakeKube::start().await)
    }

    pub fn with(fake: FakeKube) -> Cluster {
        Self::with_kind(fake, "kubernetes")
    }

    /// The fake, with vouch's clients reading `kubeconfig` (which the
    /// caller keeps) instead of the fake's own.
    pub fn with_kubeconfig(fake: FakeKube, kubeconfig: std::path::PathBuf) -> Cluster {
        Cluster {
            fake,
            clients: Arc::new(Clients::with_kubeconfig(Some(kubeconfig))),
            kind: "kubernetes",
        }
    }

    pub fn with_kind(fake: FakeKube, kind: &'static str) -> Cluster {
        let clients = Arc::new(Clients::with_kubeconfig(Some(
            fake.kubeconfig_path().to_path_buf(),
        )));
        Cluster {
            fake,
            clients,
            kind,
        }
    }

    /// Plans every check of `checks_yaml` (the items of `checks:`).
    pub fn plan(&self, checks_yaml: &str) -> Vec<Arc<PlannedCheck>> {
        let yaml = format!("checks:\n{checks_yaml}");
        let source = SourcedConfig::parse(&yaml, "test.yaml", ".".into())
            .unwrap_or_else(|err| panic!("{err}\n{yaml}"));
        Plan::from_source(&source, &self.clients, |_| None)
            .unwrap_or_else(|err| panic!("{err}\n{yaml}"))
            .checks
    }

    /// One check `t` with `block` (flow style) as its block of the
    /// cluster's kind, timeout 5s.
    pub fn check(&self, block: &str) -> Arc<PlannedCheck> {
        self.check_with_timeout(block, "5s")
    }

    pub fn check_with_timeout(&self, block: &str, timeout: &str) -> Arc<PlannedCheck> {
        self.check_of(self.kind, timeout, block)
    }

    /// One check `t` of `kind` with `block` (flow style).
    pub fn check_of(&self, kind: &str, timeout: &str, block: &str) -> Arc<PlannedCheck> {
        self.plan(&format!(
            "  - name: t\n    timeout: {timeout}\n    {kind}: {block}\n"
        ))
        .remove(0)
    }

    pub async fn run(&self, check: &Arc<PlannedCheck>) -> Outcome {
        run_once(check.clone(), self.clients.clone()).await.outcome
    }

    /// Runs `check` until `done` holds for its outcome (the cache sees a
    /// change some time after the fake makes it); returns that outcome.
    pub async fn run_until(
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
