//! The credentials a backup block gives for its store, checked against
//! its scheme when the check is built.

use super::*;

/// The credentials of a block for `scheme`; problems for missing, doubled
/// or conflicting ones.
pub(super) fn credentials(
    config: &BackupConfig,
    scheme: &str,
    secrets: &SecretResolver,
    problems: &mut Vec<Problem>,
) -> Credentials {
    let mut pair = |file: &Option<PathBuf>, env: &Option<String>, name: &str| {
        secrets.source(file.as_ref(), env.as_ref(), name, "", problems)
    };
    let account_key = pair(
        &config.account_key_file,
        &config.account_key_env,
        "account_key",
    );
    let sas = pair(&config.sas_token_file, &config.sas_token_env, "sas_token");
    let key_id = pair(
        &config.access_key_id_file,
        &config.access_key_id_env,
        "access_key_id",
    );
    let secret_key = pair(
        &config.secret_access_key_file,
        &config.secret_access_key_env,
        "secret_access_key",
    );
    let session = pair(
        &config.session_token_file,
        &config.session_token_env,
        "session_token",
    );
    let gcs_key = pair(
        &config.service_account_key_file,
        &config.service_account_key_env,
        "service_account_key",
    );
    let environment = config.identity == Some(Identity::Environment);
    match scheme {
        "az" => azure(config, account_key, sas, environment, problems),
        "s3" => s3(config, key_id, secret_key, session, environment, problems),
        "gs" => gcs(gcs_key, environment, problems),
        _ => Credentials::None,
    }
}

/// An account key, a SAS token or the environment's identity: one of them.
fn azure(
    config: &BackupConfig,
    account_key: Option<SecretSource>,
    sas: Option<SecretSource>,
    environment: bool,
    problems: &mut Vec<Problem>,
) -> Credentials {
    let given: Vec<&str> = [
        (account_key.is_some(), "account_key_file/account_key_env"),
        (sas.is_some(), "sas_token_file/sas_token_env"),
        (environment, "identity"),
    ]
    .into_iter()
    .filter(|(given, _)| *given)
    .map(|(_, name)| name)
    .collect();
    if given.len() > 1 {
        let key = if sas.is_some() {
            sas_key_name(config)
        } else {
            "identity"
        };
        problems.push(Problem::new(
            key,
            format!(
                "give one credential, not {} (an account key, a SAS token or identity: environment)",
                given.join(" and ")
            ),
        ));
    }
    match (account_key, sas, environment) {
        (Some(key), _, _) => Credentials::AzureKey(key),
        (None, Some(sas), _) => Credentials::AzureSas(sas),
        (None, None, true) => Credentials::Environment,
        (None, None, false) => {
            problems.push(Problem::new(
                "",
                "az:// URLs need a credential: account_key_file/account_key_env, sas_token_file/sas_token_env, or identity: environment (workload or managed identity)",
            ));
            Credentials::None
        }
    }
}

/// Access keys (with an optional session token) or the environment's
/// identity.
fn s3(
    config: &BackupConfig,
    key_id: Option<SecretSource>,
    secret_key: Option<SecretSource>,
    session: Option<SecretSource>,
    environment: bool,
    problems: &mut Vec<Problem>,
) -> Credentials {
    match (key_id, secret_key, environment) {
        (Some(_), Some(_), true) => {
            problems.push(Problem::new(
                "identity",
                "give access keys or identity: environment, not both",
            ));
            Credentials::Environment
        }
        (Some(id), Some(secret), false) => Credentials::S3Keys {
            id,
            secret,
            token: session,
        },
        (Some(_), None, _) => {
            problems.push(Problem::new(
                if config.access_key_id_file.is_some() {
                    "access_key_id_file"
                } else {
                    "access_key_id_env"
                },
                "needs secret_access_key_file or secret_access_key_env beside it",
            ));
            Credentials::None
        }
        (None, Some(_), _) => {
            problems.push(Problem::new(
                if config.secret_access_key_file.is_some() {
                    "secret_access_key_file"
                } else {
                    "secret_access_key_env"
                },
                "needs access_key_id_file or access_key_id_env beside it",
            ));
            Credentials::None
        }
        (None, None, true) => {
            if session.is_some() {
                problems.push(Problem::new(
                    if config.session_token_file.is_some() {
                        "session_token_file"
                    } else {
                        "session_token_env"
                    },
                    "only with access_key_id and secret_access_key",
                ));
            }
            Credentials::Environment
        }
        (None, None, false) => {
            problems.push(Problem::new(
                "",
                "s3:// URLs need credentials: access_key_id_file/_env with secret_access_key_file/_env, or identity: environment",
            ));
            Credentials::None
        }
    }
}

/// A service account key or the environment's identity.
fn gcs(
    gcs_key: Option<SecretSource>,
    environment: bool,
    problems: &mut Vec<Problem>,
) -> Credentials {
    match (gcs_key, environment) {
        (Some(_), true) => {
            problems.push(Problem::new(
                "identity",
                "give service_account_key_file/_env or identity: environment, not both",
            ));
            Credentials::Environment
        }
        (Some(key), false) => Credentials::GcsKey(key),
        (None, true) => Credentials::Environment,
        (None, false) => {
            problems.push(Problem::new(
                "",
                "gs:// URLs need credentials: service_account_key_file/_env or identity: environment",
            ));
            Credentials::None
        }
    }
}

pub(super) fn sas_key_name(config: &BackupConfig) -> &'static str {
    if config.sas_token_file.is_some() {
        "sas_token_file"
    } else {
        "sas_token_env"
    }
}
