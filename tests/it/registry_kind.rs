//! The `registry` kind against Debian's docker-registry (distribution 2.8)
//! started by the test: images pushed through the HTTP API under several
//! tags; the expected tag present and missing, rollback tags counted with
//! and without a pattern, pagination, htpasswd basic auth (right, wrong,
//! missing), the bearer-token challenge flow against the registry's real
//! token auth (JWTs signed by a key the test generates, served from a
//! realm on the test's HTTP server), and the registry down. Azure
//! Container Registry: the Entra ID → ACR token exchange against the fake
//! ACR token service in front of the real registry and the fake Entra ID
//! (workload and managed identity, tokens kept, an expired refresh token,
//! a refused Entra ID token, a refused exchange, an identity without pull
//! rights, Entra ID down).
use crate::support;

use std::sync::Arc;

use support::acr::FakeAcr;
use support::certs::{TestCa, Validity};
use support::http_server::{Reply, TestServer};
use support::key_vault::{
    FakeKeyVault, CLIENT_ID, FEDERATED_TOKEN, MANAGED_IDENTITY_CLIENT_ID, TENANT,
};
use support::kind::{self, expect, CLIENTS};
use support::registry::{Auth, Registry, TokenIssuer};
use vouch::plan::PlannedCheck;
use vouch::result::{Outcome, Reason, Verdict};
use vouch::runner::run_once;

const REPO: &str = "broxiva/api";

struct Check {
    check: Arc<PlannedCheck>,
    _dir: tempfile::TempDir,
}

impl Check {
    /// A check of `url` with the keys of `block`; `password` is written to
    /// the file `password` beside the config.
    fn new(url: &str, block: &str, password: Option<&str>) -> Check {
        let dir = tempfile::tempdir().unwrap();
        if let Some(password) = password {
            std::fs::write(dir.path().join("password"), format!("{password}\n")).unwrap();
        }
        let yaml = kind::one_check_yaml(
            "registry",
            "10s",
            &format!("url: {url}\nrepository: {REPO}\n{block}"),
        );
        Check {
            check: kind::plan(&yaml, dir.path()),
            _dir: dir,
        }
    }

    async fn run(&self) -> Outcome {
        run_once(self.check.clone(), CLIENTS.clone()).await.outcome
    }
}

fn measured(outcome: &Outcome, name: &str) -> Option<f64> {
    outcome
        .measurements
        .iter()
        .find(|m| m.measure.name() == name)
        .map(|m| m.value)
}

const COMMITS: [&str; 4] = ["0a1b2c3", "1b2c3d4", "2c3d4e5", "3d4e5f6"];

fn open_registry() -> Registry {
    let registry = Registry::start_new(Auth::None);
    let mut tags = vec!["v1.2.3", "latest"];
    tags.extend(COMMITS);
    registry.push_image(REPO, &tags);
    registry
}

#[tokio::test]
async fn tag_present_and_rollback_tags_kept_passes() {
    let registry = open_registry();
    let check = Check::new(
        &registry.url(),
        "tag: v1.2.3\nmin_rollback_tags: 4\ntag_pattern: '^[0-9a-f]{7,40}$'\n",
        None,
    );
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Pass,
        Reason::Ok,
        "broxiva/api:v1.2.3 present",
    );
    assert!(
        outcome.message.contains("4 tags matching"),
        "{}",
        outcome.message
    );
    assert_eq!(measured(&outcome, "vouch_registry_tag_present"), Some(1.0));
    assert_eq!(measured(&outcome, "vouch_registry_tags"), Some(6.0));
    assert_eq!(
        measured(&outcome, "vouch_registry_matching_tags"),
        Some(4.0)
    );
}

#[tokio::test]
async fn a_missing_tag_fails() {
    let registry = open_registry();
    let check = Check::new(&registry.url(), "tag: v9.9.9\n", None);
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::TagMissing,
        "broxiva/api:v9.9.9 not found",
    );
    assert_eq!(measured(&outcome, "vouch_registry_tag_present"), Some(0.0));
    // The listing still ran: the tags are measured.
    assert_eq!(measured(&outcome, "vouch_registry_tags"), Some(6.0));
}

#[tokio::test]
async fn a_missing_repository_fails_as_a_missing_tag() {
    let registry = open_registry();
    let dir = tempfile::tempdir().unwrap();
    let yaml = kind::one_check_yaml(
        "registry",
        "10s",
        &format!(
            "url: {}\nrepository: broxiva/gone\nmin_rollback_tags: 1\n",
            registry.url()
        ),
    );
    let check = kind::plan(&yaml, dir.path());
    let outcome = run_once(check, CLIENTS.clone()).await.outcome;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::TagMissing,
        "repository broxiva/gone not found",
    );
}

#[tokio::test]
async fn too_few_rollback_tags_fail_and_the_pattern_filters() {
    let registry = open_registry();
    // Five tags besides v1.2.3, but only the four commit tags match.
    let check = Check::new(
        &registry.url(),
        "tag: v1.2.3\nmin_rollback_tags: 5\ntag_pattern: '^[0-9a-f]{7}$'\n",
        None,
    );
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::RollbackTags,
        "4 tags matching ^[0-9a-f]{7}$ besides v1.2.3 among 6 tags of broxiva/api, at least 5 needed",
    );
    // Without a pattern, every other tag counts: latest and the commits.
    let check = Check::new(&registry.url(), "tag: v1.2.3\nmin_rollback_tags: 5\n", None);
    let outcome = check.run().await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "5 tags besides v1.2.3");
    assert_eq!(
        measured(&outcome, "vouch_registry_matching_tags"),
        Some(5.0)
    );
}

#[tokio::test]
async fn tags_are_read_page_by_page_and_bounded() {
    let registry = Registry::start_new(Auth::None);
    let tags: Vec<String> = (0..25).map(|i| format!("build-{i:03}")).collect();
    let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    registry.push_image(REPO, &tag_refs);
    let check = Check::new(
        &registry.url(),
        "min_rollback_tags: 25\npage_size: 10\n",
        None,
    );
    let outcome = check.run().await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "25 tags in all");
    assert_eq!(measured(&outcome, "vouch_registry_tags"), Some(25.0));

    let check = Check::new(
        &registry.url(),
        "min_rollback_tags: 11\npage_size: 5\nmax_tags: 12\n",
        None,
    );
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Pass,
        Reason::Ok,
        "the first 12 tags (listing cut at max_tags)",
    );
    assert_eq!(measured(&outcome, "vouch_registry_tags"), Some(12.0));
}

#[tokio::test]
async fn basic_auth_right_wrong_and_missing() {
    let password = "reg1stry-pa55word";
    let registry = Registry::start_new(Auth::Basic {
        user: "ci".into(),
        password: password.into(),
    });
    registry.push_image(REPO, &["v1.2.3", "0a1b2c3"]);
    let block = "tag: v1.2.3\nusername: ci\npassword_file: password\n";

    let right = Check::new(&registry.url(), block, Some(password));
    expect(&right.run().await, Verdict::Pass, Reason::Ok, "present");

    let wrong = Check::new(&registry.url(), block, Some("not-the-password"));
    let outcome = wrong.run().await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Auth,
        "refused the credentials of \"ci\"",
    );
    assert!(!outcome.message.contains("not-the-password"));
    assert!(!serde_json::to_string(&outcome)
        .unwrap()
        .contains("not-the-password"));

    let missing = Check::new(&registry.url(), "tag: v1.2.3\n", None);
    expect(
        &missing.run().await,
        Verdict::Error,
        Reason::Auth,
        "wants credentials",
    );
}

#[tokio::test]
async fn a_registry_that_is_down_is_an_error_and_passes_again_once_back() {
    let mut registry = open_registry();
    let check = Check::new(&registry.url(), "tag: v1.2.3\n", None);
    expect(&check.run().await, Verdict::Pass, Reason::Ok, "present");
    registry.stop();
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::ConnectionRefused,
        &format!("connection to 127.0.0.1:{} refused", registry.port),
    );
    assert!(outcome.measurements.is_empty());
    registry.start();
    expect(&check.run().await, Verdict::Pass, Reason::Ok, "present");
}

#[tokio::test]
async fn a_registry_over_tls_is_trusted_through_ca_file() {
    let mut registry = open_registry();
    let ca = TestCa::new("Vouch Test Registry CA");
    registry.set_tls(&ca.issue(&["localhost"], Validity::ValidFor { days: 30 }));
    registry.stop();
    registry.start();
    let dir = tempfile::tempdir().unwrap();
    let ca_path = ca.write_pem(dir.path());
    let trusted = Check::new(
        &registry.url(),
        &format!(
            "tag: v1.2.3\nmin_rollback_tags: 4\ntag_pattern: '^[0-9a-f]{{7}}$'\nca_file: {}\n",
            ca_path.display()
        ),
        None,
    );
    expect(&trusted.run().await, Verdict::Pass, Reason::Ok, "present");
    let untrusted = Check::new(&registry.url(), "tag: v1.2.3\n", None);
    expect(
        &untrusted.run().await,
        Verdict::Error,
        Reason::TlsUnknownIssuer,
        "the server's certificate does not lead to a trusted root (UnknownIssuer)",
    );
}

fn token_requests(realm: &TestServer) -> Vec<support::http_server::SeenRequest> {
    realm
        .seen()
        .into_iter()
        .filter(|r| r.target.starts_with("/token"))
        .collect()
}

#[tokio::test]
async fn bearer_tokens_come_from_the_challenge_realm_and_are_reused() {
    let realm = TestServer::http().await;
    let issuer = TokenIssuer::new();
    let registry = Registry::start_new(Auth::Token {
        realm: realm.url("/token"),
        issuer: Box::new(issuer),
    });
    registry.push_image(REPO, &["v1.2.3", "0a1b2c3", "1b2c3d4"]);
    let Auth::Token { issuer, .. } = registry.auth() else {
        unreachable!()
    };
    realm.route(
        "/token",
        Reply::json(
            200,
            serde_json::json!({ "token": issuer.token(REPO, &["pull"], 600), "expires_in": 600 }),
        ),
    );
    let check = Check::new(
        &registry.url(),
        "tag: v1.2.3\nmin_rollback_tags: 2\nusername: ci\npassword_file: password\n",
        Some("realm-password"),
    );
    let outcome = check.run().await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "present");
    let asked = token_requests(&realm);
    assert_eq!(asked.len(), 1, "one token for the run");
    assert!(
        asked[0].target.contains("service=vouch-test-registry")
            && asked[0]
                .target
                .contains("scope=repository%3Abroxiva%2Fapi%3Apull"),
        "{}",
        asked[0].target
    );
    assert!(
        asked[0]
            .header("authorization")
            .is_some_and(|v| v.starts_with("Basic ")),
        "the realm gets the basic credentials"
    );
    // The token is kept for the next run.
    expect(&check.run().await, Verdict::Pass, Reason::Ok, "present");
    assert_eq!(token_requests(&realm).len(), 1);
}

#[tokio::test]
async fn a_token_the_registry_rejects_is_fetched_again() {
    let realm = TestServer::http().await;
    let mut registry = Registry::start_new(Auth::Token {
        realm: realm.url("/token"),
        issuer: Box::new(TokenIssuer::new()),
    });
    registry.push_image(REPO, &["v1.2.3"]);
    let serve_token = |registry: &Registry| {
        let Auth::Token { issuer, .. } = registry.auth() else {
            unreachable!()
        };
        realm.route(
            "/token",
            Reply::json(
                200,
                serde_json::json!({ "token": issuer.token(REPO, &["pull"], 600), "expires_in": 3600 }),
            ),
        );
    };
    serve_token(&registry);
    let check = Check::new(&registry.url(), "tag: v1.2.3\n", None);
    expect(&check.run().await, Verdict::Pass, Reason::Ok, "present");
    assert_eq!(token_requests(&realm).len(), 1);
    assert!(
        token_requests(&realm)[0].header("authorization").is_none(),
        "anonymous token request without credentials"
    );

    // A new signing key: the cached token (still within its expires_in)
    // is now rejected with a 401, and a new one is fetched.
    registry.stop();
    registry.set_auth(Auth::Token {
        realm: realm.url("/token"),
        issuer: Box::new(TokenIssuer::new()),
    });
    registry.start();
    serve_token(&registry);
    expect(&check.run().await, Verdict::Pass, Reason::Ok, "present");
    assert_eq!(token_requests(&realm).len(), 2);

    // A realm that refuses: an auth error.
    realm.route(
        "/token",
        Reply::json(401, serde_json::json!({ "details": "bad credentials" })),
    );
    registry.stop();
    registry.set_auth(Auth::Token {
        realm: realm.url("/token"),
        issuer: Box::new(TokenIssuer::new()),
    });
    registry.start();
    expect(
        &check.run().await,
        Verdict::Error,
        Reason::Auth,
        "the token realm",
    );
}

#[test]
fn config_problems_name_the_key() {
    let error = |block: &str| kind::config_error(&kind::one_check_yaml("registry", "10s", block));
    let text = error("url: https://r.example/v2/\nrepository: broxiva/api\ntag: v1\n");
    assert!(
        text.contains("checks[0].registry.url: must be the registry's base URL"),
        "{text}"
    );
    let text = error("url: https://r.example\nrepository: Broxiva/API\ntag: v1\n");
    assert!(
        text.contains("checks[0].registry.repository: invalid repository name"),
        "{text}"
    );
    let text = error("url: https://r.example\nrepository: broxiva/api\n");
    assert!(
        text.contains("checks[0].registry: nothing to verify"),
        "{text}"
    );
    let text = error(
        "url: https://r.example\nrepository: broxiva/api\nmin_rollback_tags: 3\ntag_pattern: '('\n",
    );
    assert!(
        text.contains("checks[0].registry.tag_pattern: invalid regex"),
        "{text}"
    );
    let text = error("url: https://r.example\nrepository: broxiva/api\ntag: v1\nusername: ci\n");
    assert!(
        text.contains("checks[0].registry.username: needs password_file or password_env"),
        "{text}"
    );
}

/// A registry (faked, as issue 22 allows for what the real one cannot be
/// made to answer) whose manifest endpoint for v1.2.3 answers `reply`;
/// the outcome of checking that tag.
async fn manifest_answered(reply: Reply, block: &str) -> Outcome {
    let fake = TestServer::http().await;
    fake.route("/v2/broxiva/api/manifests/v1.2.3", reply);
    Check::new(&fake.url(""), &format!("tag: v1.2.3\n{block}"), None)
        .run()
        .await
}

#[tokio::test]
async fn a_denied_repository_is_forbidden() {
    let outcome = manifest_answered(Reply::text(403, "denied"), "").await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Forbidden,
        "denied access to",
    );
}

#[tokio::test]
async fn a_server_error_is_a_status_error_naming_it() {
    let outcome = manifest_answered(Reply::text(500, "oops"), "").await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Status,
        "answered 500 Internal Server Error",
    );
}

#[tokio::test]
async fn a_bearer_challenge_without_a_realm_is_a_protocol_error() {
    let challenge = Reply::text(401, "").header("WWW-Authenticate", "Bearer service=\"registry\"");
    let outcome = manifest_answered(challenge, "").await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Protocol,
        "the registry's bearer challenge names no realm",
    );
}

#[tokio::test]
async fn an_unreadable_password_file_is_a_secret_error() {
    let outcome = manifest_answered(
        Reply::text(200, "{}"),
        "username: ci\npassword_file: absent-password",
    )
    .await;
    expect(&outcome, Verdict::Error, Reason::Secret, "absent-password");
}

#[tokio::test]
async fn a_hanging_or_lying_registry_is_an_error() {
    let fake = TestServer::http().await;
    let base = fake.url("");
    fake.route("/v2/broxiva/api/manifests/v1.2.3", Reply::Hang);
    let dir = tempfile::tempdir().unwrap();
    let yaml = kind::one_check_yaml(
        "registry",
        "3s",
        &format!("url: {base}\nrepository: {REPO}\ntag: v1.2.3\n"),
    );
    let outcome = run_once(kind::plan(&yaml, dir.path()), CLIENTS.clone())
        .await
        .outcome;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Timeout,
        "no result within 3s (asking for the tag's manifest)",
    );

    // A tag list that is not the API's JSON.
    fake.route(
        "/v2/broxiva/api/manifests/v1.2.3",
        Reply::status(200).header("Docker-Content-Digest", "sha256:00"),
    );
    fake.route(
        "/v2/broxiva/api/tags/list",
        Reply::text(200, "<html>login</html>"),
    );
    let outcome = run_once(kind::plan(&yaml, dir.path()), CLIENTS.clone())
        .await
        .outcome;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Json,
        "is not the expected JSON",
    );
    assert_eq!(measured(&outcome, "vouch_registry_tag_present"), Some(1.0));
}

/// An Azure Container Registry as the tests can have one: the fake ACR
/// token service (tests/support/acr.rs) in front of the real
/// docker-registry, which trusts the service's tokens; the fake Entra ID
/// of tests/support/key_vault.rs issuing tokens for ACR's audience.
struct FakeAzureRegistry {
    entra: FakeKeyVault,
    acr: FakeAcr,
    _registry: Registry,
}

async fn azure_registry() -> FakeAzureRegistry {
    let entra = FakeKeyVault::start().await;
    // Entra ID issues tokens for ACR's audience only: the default must be it.
    entra.set_challenge("login.windows.net", "https://containerregistry.azure.net");
    let acr = FakeAcr::start(entra.token_principals()).await;
    let registry = Registry::start_new(Auth::Token {
        realm: acr.realm(),
        issuer: Box::new(TokenIssuer::new()),
    });
    registry.push_image(REPO, &["v1.2.3", "0a1b2c3", "1b2c3d4"]);
    acr.front(&registry);
    acr.grant_pull(CLIENT_ID, REPO);
    FakeAzureRegistry {
        entra,
        acr,
        _registry: registry,
    }
}

/// A check of the fake ACR with the workload identity (the fake Entra
/// ID), or with `identity` as the `azure_identity` block.
fn azure_check(azure: &FakeAzureRegistry, identity: Option<&str>) -> Check {
    let dir = tempfile::tempdir().unwrap();
    azure.entra.write_ca(dir.path());
    std::fs::write(dir.path().join("azure-identity-token"), FEDERATED_TOKEN).unwrap();
    Check {
        check: kind::plan(&azure_yaml(azure, identity), dir.path()),
        _dir: dir,
    }
}

/// Another check of the same config beside `other` (the same files, so
/// the same identity): it shares the refresh token, not the access token.
fn azure_check_beside(azure: &FakeAzureRegistry, other: &Check) -> Check {
    Check {
        check: kind::plan(&azure_yaml(azure, None), other._dir.path()),
        _dir: tempfile::tempdir().unwrap(),
    }
}

fn azure_yaml(azure: &FakeAzureRegistry, identity: Option<&str>) -> String {
    let workload = format!(
        "auth: workload_identity\n  tenant_id: {TENANT}\n  client_id: {CLIENT_ID}\n  authority_host: {}\n  federated_token_file: azure-identity-token\n",
        azure.entra.url()
    );
    kind::one_check_yaml(
        "registry",
        "10s",
        &format!(
            "url: {}\nrepository: {REPO}\ntag: v1.2.3\nmin_rollback_tags: 2\nca_file: ca.pem\nazure_identity:\n  {}",
            azure.acr.url(),
            identity.unwrap_or(&workload)
        ),
    )
}

/// No Entra ID token and no registry token in what a run reports.
fn assert_no_token_in(azure: &FakeAzureRegistry, outcome: &Outcome) {
    let json = serde_json::to_string(outcome).unwrap();
    for token in azure.entra.issued_tokens() {
        assert!(!json.contains(&token), "an Entra ID token leaked");
    }
    assert!(!json.contains("eyJ"), "a token leaked: {json}");
}

#[tokio::test]
async fn acr_tokens_are_exchanged_for_the_workload_identity_and_kept() {
    let azure = azure_registry().await;
    let check = azure_check(&azure, None);
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Pass,
        Reason::Ok,
        "broxiva/api:v1.2.3 present",
    );
    assert_eq!(
        measured(&outcome, "vouch_registry_matching_tags"),
        Some(2.0)
    );
    assert_no_token_in(&azure, &outcome);
    // One Entra ID token, one exchange, one access token, as ACR documents.
    assert_eq!(azure.entra.token_requests().len(), 1);
    let exchange = azure.acr.forms("/oauth2/exchange");
    assert_eq!(exchange.len(), 1);
    assert_eq!(exchange[0]["grant_type"], "access_token");
    assert_eq!(exchange[0]["service"], support::registry::SERVICE);
    assert_eq!(exchange[0]["tenant"], TENANT);
    assert!(exchange[0]["access_token"].starts_with('<'));
    let token = azure.acr.forms("/oauth2/token");
    assert_eq!(token.len(), 1);
    assert_eq!(token[0]["grant_type"], "refresh_token");
    assert_eq!(token[0]["scope"], "repository:broxiva/api:pull");
    // The access token lives 75 minutes: the next run asks nobody.
    expect(&check.run().await, Verdict::Pass, Reason::Ok, "present");
    assert_eq!(azure.acr.calls("/oauth2/exchange"), 1);
    assert_eq!(azure.acr.calls("/oauth2/token"), 1);
    assert_eq!(azure.entra.token_requests().len(), 1);
}

#[tokio::test]
async fn acr_tokens_for_a_managed_identity() {
    let azure = azure_registry().await;
    azure.acr.grant_pull(MANAGED_IDENTITY_CLIENT_ID, REPO);
    let identity = format!(
        "auth: managed_identity\n  managed_identity_endpoint: {}\n",
        azure.entra.imds_endpoint()
    );
    let outcome = azure_check(&azure, Some(&identity)).run().await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "present");
    let requests = azure.entra.token_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].flow, "managed_identity");
    // No tenant is known without tenant_id; the exchange goes without.
    let exchange = azure.acr.forms("/oauth2/exchange");
    assert_eq!(exchange.len(), 1);
    assert!(!exchange[0].contains_key("tenant"), "{:?}", exchange[0]);
}

#[tokio::test]
async fn an_expired_acr_refresh_token_is_exchanged_anew() {
    let azure = azure_registry().await;
    let first = azure_check(&azure, None);
    expect(&first.run().await, Verdict::Pass, Reason::Ok, "present");
    // Another check of the registry with the same identity shares the
    // refresh token; the service now refuses it before its exp.
    azure.acr.expire_refresh_tokens();
    let outcome = azure_check_beside(&azure, &first).run().await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "present");
    assert_eq!(azure.acr.calls("/oauth2/exchange"), 2);
    assert_eq!(
        azure.acr.calls("/oauth2/token"),
        3,
        "refused once, then granted"
    );
    // The Entra ID token was still good.
    assert_eq!(azure.entra.token_requests().len(), 1);
}

#[tokio::test]
async fn an_entra_token_the_exchange_refuses_is_fetched_anew_once() {
    let azure = azure_registry().await;
    let first = azure_check(&azure, None);
    expect(&first.run().await, Verdict::Pass, Reason::Ok, "present");
    // A rotated Entra ID signing key: the cached token is refused by the
    // exchange, and so is the refresh token it gave.
    azure.entra.invalidate_tokens();
    azure.acr.expire_refresh_tokens();
    let outcome = azure_check_beside(&azure, &first).run().await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "present");
    assert_eq!(azure.entra.token_requests().len(), 2);
    assert_eq!(
        azure.acr.calls("/oauth2/exchange"),
        3,
        "1, then refused and retried"
    );
}

#[tokio::test]
async fn an_exchange_acr_refuses_is_an_auth_error_with_its_text() {
    let azure = azure_registry().await;
    azure.acr.refuse_exchanges(
        401,
        "UNAUTHORIZED",
        "The identity is not allowed to use this registry.",
    );
    let outcome = azure_check(&azure, None).run().await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Auth,
        &format!(
            "127.0.0.1:{} refused to exchange the Entra ID token of workload identity {CLIENT_ID} for a registry token (401 Unauthorized): UNAUTHORIZED: The identity is not allowed to use this registry.",
            azure.acr.port
        ),
    );
    assert_no_token_in(&azure, &outcome);
    // Refused, a new Entra ID token, refused again: then the verdict.
    assert_eq!(azure.acr.calls("/oauth2/exchange"), 2);
    assert_eq!(azure.entra.token_requests().len(), 2);
}

#[tokio::test]
async fn an_identity_without_pull_rights_on_the_repository_is_forbidden() {
    let azure = azure_registry().await;
    let identity = format!(
        "auth: managed_identity\n  managed_identity_endpoint: {}\n",
        azure.entra.imds_endpoint()
    );
    // The managed identity may use the registry but holds no AcrPull: the
    // token it gets does not grant the scope, and the registry says so.
    let outcome = azure_check(&azure, Some(&identity)).run().await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Forbidden,
        "refused the realm's token for repository:broxiva/api:pull (401, insufficient_scope): it does not grant that scope; the identity needs pull rights on the repository (AcrPull)",
    );
}

#[tokio::test]
async fn acr_with_entra_id_down_is_an_error_naming_the_identity() {
    let azure = azure_registry().await;
    // Held closed for the test binary's life: no other test can start
    // listening there meanwhile (a port bound and released could be).
    let closed = support::closed_port();
    let identity = format!(
        "auth: workload_identity\n  tenant_id: {TENANT}\n  client_id: {CLIENT_ID}\n  authority_host: https://127.0.0.1:{closed}\n  federated_token_file: azure-identity-token\n"
    );
    let outcome = azure_check(&azure, Some(&identity)).run().await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::ConnectionRefused,
        &format!("getting a token for workload identity {CLIENT_ID}"),
    );
    assert_eq!(azure.acr.calls("/oauth2/exchange"), 0);
}

#[test]
fn azure_identity_problems_name_the_key() {
    let error = |block: &str| kind::config_error(&kind::one_check_yaml("registry", "10s", block));
    let base = "url: https://broxiva.azurecr.io\nrepository: broxiva/api\ntag: v1\n";
    let text = error(&format!(
        "{base}username: ci\npassword_file: p\nazure_identity:\n  auth: workload_identity\n"
    ));
    assert!(
        text.contains("checks[0].registry.azure_identity: give username and a password, or azure_identity, not both"),
        "{text}"
    );
    let text = error(&format!(
        "{base}azure_identity:\n  audience: http://containerregistry.azure.net\n"
    ));
    assert!(
        text.contains("checks[0].registry.azure_identity.audience: must be an https:// URL"),
        "{text}"
    );
    let text = error(&format!(
        "{base}azure_identity:\n  auth: managed_identity\n  client_secret_env: X\n"
    ));
    assert!(
        text.contains("checks[0].registry.azure_identity.client_secret_env: only used with auth: client_secret"),
        "{text}"
    );
    let text = error(&format!("{base}azure_identity:\n  tenant: x\n"));
    assert!(text.contains("unknown field `tenant`"), "{text}");
}

#[tokio::test]
async fn the_audience_asked_of_entra_id_is_the_configured_one() {
    let azure = azure_registry().await;
    // This Entra ID issues for ACR's audience only; asking for ARM's is
    // refused, naming Entra ID's error word and code.
    let identity = format!(
        "auth: workload_identity\n  tenant_id: {TENANT}\n  client_id: {CLIENT_ID}\n  authority_host: {}\n  federated_token_file: azure-identity-token\n  audience: https://management.azure.com\n",
        azure.entra.url()
    );
    let outcome = azure_check(&azure, Some(&identity)).run().await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Auth,
        "invalid_scope (AADSTS70011)",
    );
    assert_eq!(azure.acr.calls("/oauth2/exchange"), 0);
}

#[tokio::test]
async fn tls_to_a_plain_registry_and_an_unreachable_address_are_errors() {
    // The real registry speaks plain HTTP: a TLS hello gets an HTTP 400.
    let registry = open_registry();
    let https = registry.url().replace("http://", "https://");
    let outcome = Check::new(&https, "tag: v1.2.3\n", None).run().await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Tls,
        "TLS handshake with 127.0.0.1",
    );
    // The kernel refuses TCP to a multicast address (ENETUNREACH).
    let outcome = Check::new("http://224.0.0.1:5000", "tag: v1.2.3\n", None)
        .run()
        .await;
    expect(&outcome, Verdict::Error, Reason::Connect, "224.0.0.1:5000");
}

#[tokio::test]
async fn an_endless_tag_list_is_cut_off_as_too_large() {
    let fake = TestServer::http().await;
    fake.route(
        "/v2/broxiva/api/manifests/v1.2.3",
        Reply::status(200).header("Docker-Content-Digest", "sha256:00"),
    );
    fake.route("/v2/broxiva/api/tags/list", Reply::Endless);
    let outcome = Check::new(&fake.url(""), "tag: v1.2.3\n", None).run().await;
    expect(&outcome, Verdict::Error, Reason::TooLarge, "larger than");
}

#[tokio::test]
async fn an_unresolvable_registry_is_a_dns_error() {
    // Through the binary, with a resolver that gives up after a second.
    let check = support::vouch::check_one(
        "checks:\n  - name: t\n    timeout: 10s\n    registry: { url: \"http://vouch-test.invalid\", repository: broxiva/api, tag: v1 }\n",
        &[support::vouch::QUICK_RESOLVER],
    )
    .await;
    assert_eq!(
        (&check["last_run"]["verdict"], &check["last_run"]["reason"]),
        (&"error".into(), &Reason::Dns.as_str().into()),
        "{check:#}"
    );
    let message = check["last_run"]["message"].as_str().unwrap();
    assert!(
        message.contains("cannot resolve vouch-test.invalid"),
        "{message}"
    );
}
