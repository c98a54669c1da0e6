//! The `secret_age` kind against the fake Azure Key Vault and Entra ID
//! token endpoints of tests/support/key_vault.rs (TLS with a generated CA
//! given as the check's `ca_file`): secrets present and fresh, missing,
//! optional, too old, disabled, expiring; paging with nextLink; the three
//! ways of authenticating (client secret, workload identity, managed
//! identity) and their refusals; the vault unreachable or forbidding;
//! tokens reused, renewed before expiry, renewed after a 401, and shared
//! between checks on one identity. No run may ask for a value.
use crate::support;

use std::path::Path;
use std::sync::Arc;

use support::key_vault::{
    now, FakeKeyVault, FakeSecret, CLIENT_ID, CLIENT_SECRET, FEDERATED_TOKEN, TENANT,
};
use support::kind::{self, expect, CLIENTS};
use vouch::plan::PlannedCheck;
use vouch::result::{Outcome, Reason, Verdict};
use vouch::runner::run_once;

const DAY: i64 = 86_400;

/// The platform's secrets, all fresh.
fn fresh_vault_secrets(vault: &FakeKeyVault) {
    for (name, age) in [
        ("jwt-secret", 10),
        ("database-password", 20),
        ("redis-password", 30),
        ("stripe-secret-key", 40),
    ] {
        vault.put(
            name,
            FakeSecret::aged(&format!("VALUE-of-{name}-s3cr3t"), age),
        );
    }
}

/// How the check authenticates.
enum Login<'a> {
    ClientSecret(&'a str),
    Workload(&'a str),
    Managed,
}

struct Check {
    check: Arc<PlannedCheck>,
    _dir: tempfile::TempDir,
}

impl Check {
    fn new(vault: &FakeKeyVault, vault_url: &str, login: Login, rest: &str) -> Check {
        let dir = tempfile::tempdir().unwrap();
        let yaml = check_yaml(vault, dir.path(), vault_url, login, rest);
        Check {
            check: kind::plan(&yaml, dir.path()),
            _dir: dir,
        }
    }

    async fn run(&self) -> Outcome {
        run_once(self.check.clone(), CLIENTS.clone()).await.outcome
    }
}

fn check_yaml(
    vault: &FakeKeyVault,
    dir: &Path,
    vault_url: &str,
    login: Login,
    rest: &str,
) -> String {
    vault.write_ca(dir);
    let auth = match login {
        Login::ClientSecret(secret) => {
            std::fs::write(dir.join("client-secret"), format!("{secret}\n")).unwrap();
            format!(
                "auth: client_secret\n  tenant_id: {TENANT}\n  client_id: {CLIENT_ID}\n  authority_host: {}\n  client_secret_file: client-secret\n",
                vault.url()
            )
        }
        Login::Workload(token) => {
            std::fs::write(dir.join("azure-identity-token"), token).unwrap();
            format!(
                "auth: workload_identity\n  tenant_id: {TENANT}\n  client_id: {CLIENT_ID}\n  authority_host: {}\n  federated_token_file: azure-identity-token\n",
                vault.url()
            )
        }
        Login::Managed => format!(
            "auth: managed_identity\n  managed_identity_endpoint: {}\n",
            vault.imds_endpoint()
        ),
    };
    kind::one_check_yaml(
        "secret_age",
        "10s",
        &format!("key_vault:\n  url: {vault_url}\n  ca_file: ca.pem\n  {auth}{rest}"),
    )
}

const REQUIRED: &str = "max_age: 180d
min_valid_for: 14d
secrets:
  - { name: jwt-secret, max_age: 90d }
  - { name: database-password, max_age: 90d }
  - { name: redis-password }
  - { name: stripe-secret-key }
";

fn measured(outcome: &Outcome, name: &str, secret: &str) -> Option<f64> {
    outcome
        .measurements
        .iter()
        .find(|m| m.measure.name() == name && m.label_values() == [secret])
        .map(|m| m.value)
}

/// No request for a value, and no value in the outcome.
fn assert_no_value_seen(vault: &FakeKeyVault, outcomes: &[&Outcome]) {
    let requests = vault.requests();
    assert!(
        requests.iter().any(|r| r.starts_with("GET /secrets?")),
        "{requests:?}"
    );
    for request in requests {
        let path = request.split(' ').nth(1).unwrap_or("");
        let path = path.trim_end_matches('?');
        assert!(
            path == "/secrets" || !path.starts_with("/secrets"),
            "vouch asked for a value: {request}"
        );
    }
    for outcome in outcomes {
        let text = serde_json::to_string(outcome).unwrap();
        for value in vault.values() {
            assert!(!text.contains(&value), "a value in {text}");
        }
        assert!(!text.contains(CLIENT_SECRET));
        for token in vault.issued_tokens() {
            assert!(!text.contains(&token), "a token in {text}");
        }
    }
}

#[tokio::test]
async fn present_and_fresh_secrets_pass_and_only_metadata_is_read() {
    let vault = FakeKeyVault::start().await;
    fresh_vault_secrets(&vault);
    let check = Check::new(
        &vault,
        &vault.url(),
        Login::ClientSecret(CLIENT_SECRET),
        REQUIRED,
    );
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Pass,
        Reason::Ok,
        "4 secrets present and enabled in vault localhost:",
    );
    assert!(
        outcome
            .message
            .contains("oldest stripe-secret-key, rotated 40d ago"),
        "{}",
        outcome.message
    );
    assert_eq!(
        measured(&outcome, "vouch_secret_present", "jwt-secret"),
        Some(1.0)
    );
    assert_eq!(
        measured(&outcome, "vouch_secret_enabled", "jwt-secret"),
        Some(1.0)
    );
    let age = measured(&outcome, "vouch_secret_age_seconds", "jwt-secret").unwrap();
    assert!(
        (10.0 * DAY as f64..10.0 * DAY as f64 + 60.0).contains(&age),
        "{age}"
    );
    assert_eq!(
        measured(
            &outcome,
            "vouch_secret_expiry_timestamp_seconds",
            "jwt-secret"
        ),
        None
    );
    let tokens = vault.token_requests();
    assert_eq!(tokens.len(), 1);
    assert_eq!((tokens[0].flow, tokens[0].granted), ("client_secret", true));
    assert_no_value_seen(&vault, &[&outcome]);
}

#[tokio::test]
async fn missing_disabled_old_and_expiring_secrets_fail_by_name() {
    let vault = FakeKeyVault::start().await;
    fresh_vault_secrets(&vault);
    let check = Check::new(
        &vault,
        &vault.url(),
        Login::ClientSecret(CLIENT_SECRET),
        &format!("{REQUIRED}  - {{ name: smtp-password }}\n  - {{ name: openai-api-key }}\n"),
    );

    // Missing: named, with presence 0.
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::SecretMissing,
        "missing from vault localhost:",
    );
    assert!(
        outcome.message.ends_with(": smtp-password, openai-api-key"),
        "{}",
        outcome.message
    );
    assert_eq!(
        measured(&outcome, "vouch_secret_present", "smtp-password"),
        Some(0.0)
    );

    // Disabled counts as missing.
    vault.put(
        "smtp-password",
        FakeSecret {
            enabled: false,
            ..FakeSecret::aged("VALUE-smtp", 1)
        },
    );
    vault.put("openai-api-key", FakeSecret::aged("VALUE-openai", 1));
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::SecretDisabled,
        "disabled (counted as missing): smtp-password",
    );
    assert_eq!(
        measured(&outcome, "vouch_secret_enabled", "smtp-password"),
        Some(0.0)
    );

    // Too old: name, age and limit.
    vault.put("smtp-password", FakeSecret::aged("VALUE-smtp", 1));
    vault.put("jwt-secret", FakeSecret::aged("VALUE-jwt-2", 120));
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::SecretAge,
        "jwt-secret last rotated 120d ago, limit 90d",
    );
    // The global max_age for those without their own.
    vault.put("jwt-secret", FakeSecret::aged("VALUE-jwt-3", 1));
    vault.put("redis-password", FakeSecret::aged("VALUE-redis-2", 200));
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::SecretAge,
        "redis-password last rotated 200d ago, limit 180d",
    );

    // Expiring within min_valid_for, and expired.
    vault.put("redis-password", FakeSecret::aged("VALUE-redis-3", 1));
    let expires = now() + 3 * DAY + 3600;
    vault.put(
        "stripe-secret-key",
        FakeSecret {
            exp: Some(expires),
            ..FakeSecret::aged("VALUE-stripe-2", 1)
        },
    );
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::SecretExpiring,
        "stripe-secret-key expires in 3d, min_valid_for 14d",
    );
    assert_eq!(
        measured(
            &outcome,
            "vouch_secret_expiry_timestamp_seconds",
            "stripe-secret-key"
        ),
        Some(expires as f64)
    );
    vault.put(
        "stripe-secret-key",
        FakeSecret {
            exp: Some(now() - 2 * DAY),
            ..FakeSecret::aged("VALUE-stripe-3", 1)
        },
    );
    expect(
        &check.run().await,
        Verdict::Fail,
        Reason::SecretExpiring,
        "stripe-secret-key expired 2d ago",
    );

    // Far from expiry: all good again.
    vault.put(
        "stripe-secret-key",
        FakeSecret {
            exp: Some(now() + 60 * DAY),
            ..FakeSecret::aged("VALUE-stripe-4", 1)
        },
    );
    let outcome = check.run().await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "6 secrets present");
    assert_no_value_seen(&vault, &[&outcome]);
}

#[tokio::test]
async fn optional_secrets_may_be_missing_or_disabled() {
    let vault = FakeKeyVault::start().await;
    fresh_vault_secrets(&vault);
    vault.put(
        "sentry-dsn",
        FakeSecret {
            enabled: false,
            ..FakeSecret::aged("VALUE-sentry", 1)
        },
    );
    let check = Check::new(&vault, &vault.url(), Login::ClientSecret(CLIENT_SECRET), &format!(
        "{REQUIRED}  - {{ name: google-client-secret, optional: true }}\n  - {{ name: sentry-dsn, optional: true }}\n"
    ));
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Pass,
        Reason::Ok,
        "optional google-client-secret absent; optional sentry-dsn disabled",
    );
    // An optional secret that is present is judged.
    vault.put(
        "google-client-secret",
        FakeSecret::aged("VALUE-google", 400),
    );
    expect(
        &check.run().await,
        Verdict::Fail,
        Reason::SecretAge,
        "google-client-secret last rotated 400d ago, limit 180d",
    );
}

#[tokio::test]
async fn pages_are_followed_through_next_link() {
    let vault = FakeKeyVault::start().await;
    // 60 secrets: three pages of 25; the wanted ones sort onto pages 1 and 3.
    for i in 0..58 {
        vault.put(
            &format!("filler-{i:02}"),
            FakeSecret::aged("VALUE-filler", 1),
        );
    }
    vault.put("aaa-first", FakeSecret::aged("VALUE-first", 1));
    vault.put("zzz-last", FakeSecret::aged("VALUE-last", 1));
    let check = Check::new(
        &vault,
        &vault.url(),
        Login::ClientSecret(CLIENT_SECRET),
        "secrets:\n  - { name: aaa-first }\n  - { name: zzz-last }\n",
    );
    let outcome = check.run().await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "2 secrets present");
    assert_eq!(vault.listings(), 3, "{:?}", vault.requests());
    assert_no_value_seen(&vault, &[&outcome]);
}

#[tokio::test]
async fn workload_identity_exchanges_the_federated_token() {
    let vault = FakeKeyVault::start().await;
    fresh_vault_secrets(&vault);
    let check = Check::new(
        &vault,
        &vault.url(),
        Login::Workload(FEDERATED_TOKEN),
        REQUIRED,
    );
    expect(
        &check.run().await,
        Verdict::Pass,
        Reason::Ok,
        "4 secrets present",
    );
    let tokens = vault.token_requests();
    assert_eq!((tokens[0].flow, tokens[0].granted), ("federated", true));

    let wrong = Check::new(
        &vault,
        &vault.url(),
        Login::Workload("eyJ.other-cluster.sig"),
        REQUIRED,
    );
    let outcome = wrong.run().await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Auth,
        &format!("refused workload identity {CLIENT_ID} (401 Unauthorized): invalid_client (AADSTS700213)"),
    );
    assert!(!outcome.message.contains("other-cluster"));
}

#[tokio::test]
async fn managed_identity_asks_the_metadata_service() {
    let vault = FakeKeyVault::start().await;
    fresh_vault_secrets(&vault);
    let check = Check::new(&vault, &vault.url(), Login::Managed, REQUIRED);
    expect(
        &check.run().await,
        Verdict::Pass,
        Reason::Ok,
        "4 secrets present",
    );
    let tokens = vault.token_requests();
    assert_eq!(
        (tokens[0].flow, tokens[0].granted),
        ("managed_identity", true)
    );
}

#[tokio::test]
async fn a_wrong_client_secret_is_an_auth_error_without_the_secret() {
    let vault = FakeKeyVault::start().await;
    fresh_vault_secrets(&vault);
    let check = Check::new(
        &vault,
        &vault.url(),
        Login::ClientSecret("wrong-secret-value-123"),
        REQUIRED,
    );
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Auth,
        "invalid_client (AADSTS7000215)",
    );
    assert!(!serde_json::to_string(&outcome)
        .unwrap()
        .contains("wrong-secret-value-123"));
    assert!(outcome.measurements.is_empty());
}

#[tokio::test]
async fn an_unreachable_vault_is_an_error() {
    let vault = FakeKeyVault::start().await;
    let port = support::closed_port();
    let check = Check::new(
        &vault,
        &format!("https://localhost:{port}"),
        Login::ClientSecret(CLIENT_SECRET),
        REQUIRED,
    );
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::ConnectionRefused,
        &format!("vault connection to localhost:{port} refused"),
    );
}

#[tokio::test]
async fn a_principal_without_access_is_forbidden() {
    let vault = FakeKeyVault::start().await;
    fresh_vault_secrets(&vault);
    vault.revoke_access(CLIENT_ID);
    let check = Check::new(
        &vault,
        &vault.url(),
        Login::ClientSecret(CLIENT_SECRET),
        REQUIRED,
    );
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Forbidden,
        &format!("denied client {CLIENT_ID} listing secrets (403, ForbiddenByRbac)"),
    );
    // The message names the role, not the vault's message (object IDs).
    assert!(!outcome.message.contains("Caller is not authorized"));
}

#[tokio::test]
async fn tokens_are_reused_renewed_before_expiry_and_after_a_401() {
    let vault = FakeKeyVault::start().await;
    fresh_vault_secrets(&vault);
    let check = Check::new(
        &vault,
        &vault.url(),
        Login::ClientSecret(CLIENT_SECRET),
        REQUIRED,
    );
    expect(&check.run().await, Verdict::Pass, Reason::Ok, "present");
    expect(&check.run().await, Verdict::Pass, Reason::Ok, "present");
    assert_eq!(
        vault.token_requests().len(),
        1,
        "an hour-long token is reused"
    );

    // The vault stops taking the token: one 401, one new token, a pass.
    vault.invalidate_tokens();
    expect(&check.run().await, Verdict::Pass, Reason::Ok, "present");
    assert_eq!(vault.token_requests().len(), 2);

    // Tokens within five minutes of their end are renewed before use.
    vault.set_token_lifetime(240);
    vault.invalidate_tokens();
    expect(&check.run().await, Verdict::Pass, Reason::Ok, "present");
    assert_eq!(vault.token_requests().len(), 3);
    expect(&check.run().await, Verdict::Pass, Reason::Ok, "present");
    assert_eq!(
        vault.token_requests().len(),
        4,
        "a 4-minute token is renewed at the next run"
    );

    // A token endpoint that stops issuing: an auth error, not a pass on a
    // stale token.
    vault.invalidate_tokens();
    vault.set_token_lifetime(3600);
    let wrong = Check::new(
        &vault,
        &vault.url(),
        Login::ClientSecret("rotated-away"),
        REQUIRED,
    );
    expect(
        &wrong.run().await,
        Verdict::Error,
        Reason::Auth,
        "AADSTS7000215",
    );
}

#[tokio::test]
async fn checks_on_one_identity_share_a_token() {
    let vault = FakeKeyVault::start().await;
    fresh_vault_secrets(&vault);
    let dir = tempfile::tempdir().unwrap();
    let first = kind::plan(
        &check_yaml(
            &vault,
            dir.path(),
            &vault.url(),
            Login::ClientSecret(CLIENT_SECRET),
            REQUIRED,
        ),
        dir.path(),
    );
    let second = kind::plan(
        &check_yaml(
            &vault,
            dir.path(),
            &vault.url(),
            Login::ClientSecret(CLIENT_SECRET),
            "secrets:\n  - { name: jwt-secret }\n",
        ),
        dir.path(),
    );
    let (a, b) = tokio::join!(
        run_once(first, CLIENTS.clone()),
        run_once(second, CLIENTS.clone())
    );
    expect(&a.outcome, Verdict::Pass, Reason::Ok, "4 secrets present");
    expect(&b.outcome, Verdict::Pass, Reason::Ok, "1 secrets present");
    assert_eq!(vault.token_requests().len(), 1);
}

#[tokio::test]
async fn a_vault_that_lies_overflows_or_hangs_is_an_error_then_passes_again() {
    let vault = FakeKeyVault::start().await;
    fresh_vault_secrets(&vault);
    let dir = tempfile::tempdir().unwrap();
    let yaml = check_yaml(
        &vault,
        dir.path(),
        &vault.url(),
        Login::ClientSecret(CLIENT_SECRET),
        REQUIRED,
    )
    .replace("timeout: 10s", "timeout: 3s");
    let check = kind::plan(&yaml, dir.path());
    let run = || async { run_once(check.clone(), CLIENTS.clone()).await.outcome };
    expect(&run().await, Verdict::Pass, Reason::Ok, "4 secrets present");

    // A sign-in page where the listing's JSON belongs.
    vault.set_listing_body(Some(b"<html>Sign in to your account</html>".to_vec()));
    expect(
        &run().await,
        Verdict::Error,
        Reason::Json,
        "is not the expected JSON",
    );
    // A next page elsewhere: the token must not follow it.
    let elsewhere =
        br#"{"value": [], "nextLink": "https://vault.example.org/secrets?$skiptoken=x"}"#;
    vault.set_listing_body(Some(elsewhere.to_vec()));
    expect(
        &run().await,
        Verdict::Error,
        Reason::Protocol,
        "nextLink points to another host (vault.example.org)",
    );
    // A page over the 4MiB a page may take.
    let huge = format!("{{\"value\": [], \"pad\": \"{}\"}}", "x".repeat(5 << 20));
    vault.set_listing_body(Some(huge.into_bytes()));
    expect(
        &run().await,
        Verdict::Error,
        Reason::TooLarge,
        "larger than the 4MiB read limit",
    );
    vault.set_listing_body(None);

    // Read and never answered: the run ends at its deadline.
    vault.set_hang(true);
    expect(
        &run().await,
        Verdict::Error,
        Reason::Timeout,
        "no result within 3s (listing the vault's secrets)",
    );
    vault.set_hang(false);
    expect(&run().await, Verdict::Pass, Reason::Ok, "4 secrets present");
}

/// A client-secret check of `vault` in `dir` with the given tenant_id.
fn client_secret_yaml(vault: &FakeKeyVault, dir: &Path, tenant: &str, rest: &str) -> String {
    vault.write_ca(dir);
    std::fs::write(dir.join("client-secret"), CLIENT_SECRET).unwrap();
    kind::one_check_yaml(
        "secret_age",
        "10s",
        &format!(
            "key_vault:\n  url: {}\n  ca_file: ca.pem\n  auth: client_secret\n  tenant_id: {tenant}\n  client_id: {CLIENT_ID}\n  authority_host: {}\n  client_secret_file: client-secret\n{rest}",
            vault.url(),
            vault.url()
        ),
    )
}

#[tokio::test]
async fn names_match_whatever_their_case() {
    let vault = FakeKeyVault::start().await;
    vault.put("JWT-Secret", FakeSecret::aged("VALUE-jwt", 10));
    vault.put("database-PASSWORD", FakeSecret::aged("VALUE-db", 20));
    let check = Check::new(
        &vault,
        &vault.url(),
        Login::ClientSecret(CLIENT_SECRET),
        "secrets:\n  - { name: jwt-secret }\n  - { name: Database-Password }\n",
    );
    let outcome = check.run().await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "2 secrets present");
    assert_eq!(
        measured(&outcome, "vouch_secret_present", "Database-Password"),
        Some(1.0)
    );
    // Two spellings of one name are one secret.
    let text = kind::config_error(&kind::one_check_yaml(
        "secret_age",
        "10s",
        "key_vault: { url: https://v.vault.azure.net }\nsecrets: [{ name: jwt-secret }, { name: JWT-Secret }]\n",
    ));
    assert!(
        text.contains("checks[0].secret_age.secrets[1].name: duplicate secret \"JWT-Secret\""),
        "{text}"
    );
}

#[tokio::test]
async fn certificate_backed_and_not_yet_valid_secrets_are_judged() {
    let vault = FakeKeyVault::start().await;
    // A certificate's secret: managed, PKCS#12, nbf = issue time (past).
    vault.put("api-tls", FakeSecret::certificate(30, 60));
    vault.put(
        "next-signing-key",
        FakeSecret {
            nbf: Some(now() + 3 * DAY + 3600),
            ..FakeSecret::aged("VALUE-next", 1)
        },
    );
    let check = Check::new(
        &vault,
        &vault.url(),
        Login::ClientSecret(CLIENT_SECRET),
        "min_valid_for: 14d\nsecrets:\n  - { name: api-tls }\n  - { name: next-signing-key }\n",
    );
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::SecretNotYetValid,
        "not valid yet (counted as missing): next-signing-key (valid in 3d)",
    );
    let expiry = measured(&outcome, "vouch_secret_expiry_timestamp_seconds", "api-tls").unwrap();
    assert!(
        (expiry - (now() + 60 * DAY) as f64).abs() < 60.0,
        "{expiry}"
    );

    // The certificate near its end fails like any expiring secret.
    vault.put("api-tls", FakeSecret::certificate(80, 5));
    vault.put("next-signing-key", FakeSecret::aged("VALUE-next", 1));
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::SecretExpiring,
        "api-tls expires in ",
    );
    assert!(
        outcome.message.ends_with("d, min_valid_for 14d"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn empty_pages_and_next_links_of_another_api_version_are_followed() {
    let vault = FakeKeyVault::start().await;
    for i in 0..49 {
        vault.put(&format!("filler-{i:02}"), FakeSecret::aged("VALUE-f", 1));
    }
    vault.put("zzz-last", FakeSecret::aged("VALUE-last", 1));
    vault.set_empty_pages(2);
    vault.set_next_link_api_version("7.4");
    let check = Check::new(
        &vault,
        &vault.url(),
        Login::ClientSecret(CLIENT_SECRET),
        "secrets:\n  - { name: zzz-last }\n  - { name: filler-00 }\n",
    );
    expect(
        &check.run().await,
        Verdict::Pass,
        Reason::Ok,
        "2 secrets present",
    );
    // Two pages of secrets, each after two empty pages.
    assert_eq!(vault.listings(), 6, "{:?}", vault.requests());

    // Empty pages do not count towards the 400-page limit.
    let vault = FakeKeyVault::start().await;
    vault.put("only-one", FakeSecret::aged("VALUE-one", 1));
    vault.set_empty_pages(450);
    let check = Check::new(
        &vault,
        &vault.url(),
        Login::ClientSecret(CLIENT_SECRET),
        "secrets:\n  - { name: only-one }\n",
    );
    expect(
        &check.run().await,
        Verdict::Pass,
        Reason::Ok,
        "1 secrets present",
    );
    assert_eq!(vault.listings(), 451);
}

#[tokio::test]
async fn throttling_is_retried_after_the_wait_the_vault_asks_for() {
    let vault = FakeKeyVault::start().await;
    fresh_vault_secrets(&vault);
    let check = Check::new(
        &vault,
        &vault.url(),
        Login::ClientSecret(CLIENT_SECRET),
        REQUIRED,
    );
    expect(
        &check.run().await,
        Verdict::Pass,
        Reason::Ok,
        "4 secrets present",
    );
    let before = vault.vault_request_times().len();
    vault.fail_vault(1, 429, Some(1));
    expect(
        &check.run().await,
        Verdict::Pass,
        Reason::Ok,
        "4 secrets present",
    );
    let times = vault.vault_request_times();
    assert_eq!(times.len(), before + 2, "one throttled request, one retry");
    let waited = times[before + 1] - times[before];
    assert!(waited >= std::time::Duration::from_secs(1), "{waited:?}");

    // Passing trouble without Retry-After: backed off and retried.
    vault.fail_vault(2, 503, None);
    expect(
        &check.run().await,
        Verdict::Pass,
        Reason::Ok,
        "4 secrets present",
    );

    // A wait beyond the run's deadline is not waited for: a clear error
    // at once, not a timeout.
    vault.fail_vault(1, 429, Some(60));
    let started = std::time::Instant::now();
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Status,
        "answered 429 Too Many Requests, Throttled to the secret listing; 1 tries, and the next wait (1m, as Retry-After asks) would pass the run's deadline",
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[tokio::test]
async fn managed_identity_endpoint_trouble_is_retried() {
    let vault = FakeKeyVault::start().await;
    fresh_vault_secrets(&vault);
    vault.fail_imds(2, 503);
    let check = Check::new(&vault, &vault.url(), Login::Managed, REQUIRED);
    expect(
        &check.run().await,
        Verdict::Pass,
        Reason::Ok,
        "4 secrets present",
    );
    let granted: Vec<bool> = vault.token_requests().iter().map(|t| t.granted).collect();
    assert_eq!(granted, [false, false, true]);
}

#[tokio::test]
async fn the_checks_of_a_vault_share_one_listing_per_round() {
    let vault = FakeKeyVault::start().await;
    fresh_vault_secrets(&vault);
    let dir = tempfile::tempdir().unwrap();
    let plan = |secret: &str| {
        kind::plan(
            &client_secret_yaml(
                &vault,
                dir.path(),
                TENANT,
                &format!("secrets:\n  - {{ name: {secret} }}\n"),
            ),
            dir.path(),
        )
    };
    let checks = [
        plan("jwt-secret"),
        plan("redis-password"),
        plan("stripe-secret-key"),
    ];
    let round =
        || futures::future::join_all(checks.iter().map(|c| run_once(c.clone(), CLIENTS.clone())));
    for record in round().await {
        expect(
            &record.outcome,
            Verdict::Pass,
            Reason::Ok,
            "1 secrets present",
        );
    }
    assert_eq!(vault.listings(), 1, "three concurrent checks, one listing");
    // The next round (each check again, one after the other): one listing.
    for check in &checks {
        let record = run_once(check.clone(), CLIENTS.clone()).await;
        expect(
            &record.outcome,
            Verdict::Pass,
            Reason::Ok,
            "1 secrets present",
        );
    }
    assert_eq!(vault.listings(), 2);
    // What the next round reads is new: a disabled secret shows.
    vault.put(
        "redis-password",
        FakeSecret {
            enabled: false,
            ..FakeSecret::aged("VALUE-r", 1)
        },
    );
    let outcomes: Vec<_> = round().await.into_iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes[1].reason,
        Reason::SecretDisabled,
        "{}",
        outcomes[1].message
    );
    assert_eq!(vault.listings(), 3);
    // Another identity lists for itself.
    let managed = Check::new(&vault, &vault.url(), Login::Managed, REQUIRED);
    managed.run().await;
    assert_eq!(vault.listings(), 4);
}

#[tokio::test]
async fn tenant_and_audience_come_from_the_vaults_challenge() {
    let vault = FakeKeyVault::start().await;
    fresh_vault_secrets(&vault);
    // The configured tenant is not the vault's: the challenge names the
    // right one (login.windows.net, as real vaults write it).
    let dir = tempfile::tempdir().unwrap();
    let check = kind::plan(
        &client_secret_yaml(&vault, dir.path(), "00000000-wrong-tenant", REQUIRED),
        dir.path(),
    );
    let outcome = run_once(check.clone(), CLIENTS.clone()).await.outcome;
    expect(&outcome, Verdict::Pass, Reason::Ok, "4 secrets present");
    assert_eq!(vault.token_requests().len(), 1);
    assert!(vault
        .requests()
        .contains(&format!("POST /{TENANT}/oauth2/v2.0/token")));

    // The other authority host and a new audience: a 401, the new
    // challenge, a token for its audience.
    vault.set_challenge("login.microsoftonline.com", "https://localhost:443");
    vault.invalidate_tokens();
    expect(
        &check_run(&check).await,
        Verdict::Pass,
        Reason::Ok,
        "4 secrets present",
    );

    // A challenge for an audience the vault's host is not part of: no
    // token is asked for or sent.
    let vault = FakeKeyVault::start().await;
    fresh_vault_secrets(&vault);
    vault.set_challenge("login.windows.net", "https://vault.azure.net");
    let check = Check::new(
        &vault,
        &vault.url(),
        Login::ClientSecret(CLIENT_SECRET),
        REQUIRED,
    );
    expect(
        &check.run().await,
        Verdict::Error,
        Reason::Auth,
        "its challenge asks for a token for https://vault.azure.net, which localhost is not part of; no token was sent",
    );
    assert!(vault.token_requests().is_empty());
    assert_eq!(vault.listings(), 0);
}

async fn check_run(check: &std::sync::Arc<PlannedCheck>) -> Outcome {
    run_once(check.clone(), CLIENTS.clone()).await.outcome
}

#[tokio::test]
async fn forbidden_answers_quote_the_inner_code() {
    for (code, says) in [
        (
            "ForbiddenByFirewall",
            "(403, ForbiddenByFirewall): the vault's firewall does not admit",
        ),
        (
            "ForbiddenByPolicy",
            "(403, ForbiddenByPolicy): the vault's access policies give it no List permission",
        ),
        (
            "ForbiddenByRbac",
            "(403, ForbiddenByRbac): no role assignment allows it",
        ),
    ] {
        let vault = FakeKeyVault::start().await;
        fresh_vault_secrets(&vault);
        vault.revoke_access(CLIENT_ID);
        vault.set_forbidden_code(code);
        let check = Check::new(
            &vault,
            &vault.url(),
            Login::ClientSecret(CLIENT_SECRET),
            REQUIRED,
        );
        let outcome = check.run().await;
        expect(&outcome, Verdict::Error, Reason::Forbidden, says);
        assert!(
            !outcome.message.contains("Client address"),
            "{}",
            outcome.message
        );
    }
}

#[test]
fn config_problems_name_the_key() {
    let error = |block: &str| kind::config_error(&kind::one_check_yaml("secret_age", "10s", block));
    let text = error("key_vault: { url: http://v.vault.azure.net }\nsecrets: [{ name: a }]\n");
    assert!(
        text.contains("checks[0].secret_age.key_vault.url: a vault is reached over https://"),
        "{text}"
    );
    let text = error("key_vault: { url: https://v.vault.azure.net }\nsecrets: [{ name: a_b }]\n");
    assert!(
        text.contains(
            "checks[0].secret_age.secrets[0].name: invalid Key Vault secret name \"a_b\""
        ),
        "{text}"
    );
    let text = error("secrets: [{ name: a }]\n");
    assert!(
        text.contains("checks[0].secret_age: needs a source: key_vault or kubernetes"),
        "{text}"
    );
    let text = error("key_vault: { url: https://v.vault.azure.net, auth: client_secret }\nsecrets: [{ name: a }, { name: a }]\n");
    assert!(text.contains("checks[0].secret_age.key_vault.auth: client_secret needs client_secret_file or client_secret_env"), "{text}");
    assert!(
        text.contains("checks[0].secret_age.secrets[1].name: duplicate secret \"a\""),
        "{text}"
    );
}

/// A check of `login` whose run may take `timeout`.
fn check_with_timeout(vault: &FakeKeyVault, login: Login, timeout: &str) -> Check {
    let dir = tempfile::tempdir().unwrap();
    let yaml = check_yaml(vault, dir.path(), &vault.url(), login, REQUIRED)
        .replace("timeout: 10s", &format!("timeout: {timeout}"));
    Check {
        check: kind::plan(&yaml, dir.path()),
        _dir: dir,
    }
}

#[tokio::test]
async fn a_hanging_token_endpoint_of_one_identity_stalls_no_other() {
    let vault = FakeKeyVault::start().await;
    fresh_vault_secrets(&vault);
    let granted = || -> Vec<&str> {
        vault
            .token_requests()
            .into_iter()
            .filter(|t| t.granted)
            .map(|t| t.flow)
            .collect()
    };
    // The managed identity's endpoint reads the request and never answers.
    vault.set_imds_hang(true);
    let first = tokio::spawn({
        let check = check_with_timeout(&vault, Login::Managed, "10s");
        async move { check.run().await }
    });
    vault.imds_request_hung().await;
    // A check of the same identity that may take 2 s waits for that fetch
    // and gives up at its own deadline.
    let short = check_with_timeout(&vault, Login::Managed, "2s");
    expect(
        &short.run().await,
        Verdict::Error,
        Reason::Timeout,
        "within 2s",
    );
    assert!(!first.is_finished());
    // Another one, with more time, waits too.
    let second = tokio::spawn({
        let check = check_with_timeout(&vault, Login::Managed, "25s");
        async move { check.run().await }
    });
    // Another identity's check, on the same vault, passes meanwhile: its
    // token is not queued behind the hanging one.
    let other = Check::new(
        &vault,
        &vault.url(),
        Login::ClientSecret(CLIENT_SECRET),
        REQUIRED,
    );
    expect(
        &other.run().await,
        Verdict::Pass,
        Reason::Ok,
        "4 secrets present",
    );
    assert!(
        !first.is_finished(),
        "the managed identity's request is still unanswered"
    );
    assert!(!second.is_finished());
    assert_eq!(granted(), ["client_secret"]);
    assert_eq!(vault.imds_hung(), 1, "the waiting checks asked nothing");

    // The fetching check ends at its deadline; the one still waiting,
    // with time left, asks itself and is answered.
    vault.set_imds_hang(false);
    expect(
        &first.await.unwrap(),
        Verdict::Error,
        Reason::Timeout,
        "within 10s",
    );
    expect(
        &second.await.unwrap(),
        Verdict::Pass,
        Reason::Ok,
        "4 secrets present",
    );
    assert_eq!(granted(), ["client_secret", "managed_identity"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_links_with_an_explicit_443_are_followed_end_to_end() {
    const VAULT: &str = "myvault.vault.azure.net";
    let vault = FakeKeyVault::start_as(
        &[VAULT, "login.windows.net", "localhost"],
        Some(&format!("https://{VAULT}")),
    )
    .await;
    vault.set_challenge("login.windows.net", "https://vault.azure.net");
    // More than a page (25), so vouch follows `https://VAULT:443/...`.
    for i in 0..30 {
        vault.put(&format!("secret-{i:02}"), FakeSecret::aged("VALUE", 10));
    }
    let dir = tempfile::tempdir().unwrap();
    vault.write_ca(dir.path());
    std::fs::write(dir.path().join("client-secret"), CLIENT_SECRET).unwrap();
    let config = dir.path().join("vouch.yaml");
    std::fs::write(
        &config,
        kind::one_check_yaml(
            "secret_age",
            "10s",
            &format!(
                "key_vault:\n  url: https://{VAULT}\n  ca_file: ca.pem\n  auth: client_secret\n  tenant_id: {TENANT}\n  client_id: {CLIENT_ID}\n  authority_host: https://login.windows.net\n  client_secret_file: client-secret\nsecrets:\n  - {{ name: secret-29 }}\n"
            ),
        ),
    )
    .unwrap();
    let port = vault.addr.port();
    let out = tokio::process::Command::new(support::vouch::bin())
        .arg("check")
        .arg("--config")
        .arg(&config)
        .arg("--connect-to")
        .arg(format!("{VAULT}:443:127.0.0.1:{port}"))
        .arg("--connect-to")
        .arg(format!("login.windows.net:443:127.0.0.1:{port}"))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("1 secrets present"), "{stdout}");
    let pages = vault
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("GET /secrets?"))
        .count();
    assert!(pages >= 2, "{:?}", vault.requests());
}
