//! The `secret_age` kind against the fake Azure Key Vault and Entra ID
//! token endpoints of tests/support/key_vault.rs (TLS with a generated CA
//! given as the check's `ca_file`): secrets present and fresh, missing,
//! optional, too old, disabled, expiring; paging with nextLink; the three
//! ways of authenticating (client secret, workload identity, managed
//! identity) and their refusals; the vault unreachable or forbidding;
//! tokens reused, renewed before expiry, renewed after a 401, and shared
//! between checks on one identity. No run may ask for a value.
mod support;

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
