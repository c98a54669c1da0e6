//! Why the cache cannot answer, as a reason word and a message that says
//! what to do about it.

use std::error::Error as _;
use std::time::Duration;

use thiserror::Error;

use super::resource::ResourceType;
use crate::config::format_duration;
use crate::result::Reason;

/// Where a watch looks: one namespace, or the whole cluster.
pub fn scope_text(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("in namespace {ns}"),
        None => "cluster-wide".to_string(),
    }
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum KubeError {
    /// No client could be built (kubeconfig, in-cluster account).
    #[error("no Kubernetes client: {0}")]
    Client(String),
    /// The watch has not delivered its first full list yet.
    #[error("the watch of {resource} {scope} has not synced within {waited}")]
    NotSynced {
        resource: String,
        scope: String,
        waited: String,
    },
    /// The API server does not serve the type (a CRD is missing).
    #[error("the API server does not serve {resource} (versions tried: {versions}); is its CRD installed?")]
    NotInstalled { resource: String, versions: String },
    /// RBAC refused the watch.
    #[error(
        "forbidden: grant list,watch on {resource} {scope} to vouch's service account ({detail})"
    )]
    Forbidden {
        resource: String,
        scope: String,
        detail: String,
    },
    /// The API server refused the credentials.
    #[error("the API server refused vouch's credentials: {0}")]
    Unauthorized(String),
    /// The API server could not be reached.
    #[error("the Kubernetes API is unreachable: {message}")]
    Unreachable { refused: bool, message: String },
    /// Any other answer of the API server.
    #[error("the Kubernetes API answered {code}: {message}")]
    Api { code: u16, message: String },
    /// The watch brought more objects than it may hold.
    #[error("the watch of {resource} {scope} brought more than {limit} objects, the most one watch holds (kubernetes.max_objects_per_watch); it stopped there instead of growing")]
    TooManyObjects {
        resource: String,
        scope: String,
        limit: usize,
    },
}

impl KubeError {
    pub fn reason(&self) -> Reason {
        match self {
            KubeError::Client(_) => Reason::File,
            KubeError::NotSynced { .. } => Reason::NotSynced,
            KubeError::NotInstalled { .. } => Reason::NotInstalled,
            KubeError::Forbidden { .. } => Reason::Forbidden,
            KubeError::Unauthorized(_) => Reason::Auth,
            KubeError::Unreachable { refused: true, .. } => Reason::ConnectionRefused,
            KubeError::Unreachable { .. } => Reason::Connect,
            KubeError::Api { .. } => Reason::Protocol,
            KubeError::TooManyObjects { .. } => Reason::TooLarge,
        }
    }

    pub fn not_synced(resource: &ResourceType, namespace: Option<&str>, waited: Duration) -> Self {
        KubeError::NotSynced {
            resource: resource.rbac_name(),
            scope: scope_text(namespace),
            waited: format_duration(waited),
        }
    }
}

/// What went wrong in one step of a watch.
pub(crate) enum WatchFailure {
    /// The resource version is too old (410 Gone): list again, at once.
    Gone,
    /// The version tried is not served (404): try the next one.
    NotServed,
    /// Anything else, for the checks to report.
    Failed(KubeError),
}

/// Classifies an error of the watcher for `resource` in `namespace`.
pub(crate) fn classify_watch_error(
    err: &kube::runtime::watcher::Error,
    resource: &ResourceType,
    namespace: Option<&str>,
) -> WatchFailure {
    use kube::runtime::watcher::Error as W;
    match err {
        W::InitialListFailed(client) | W::WatchStartFailed(client) | W::WatchFailed(client) => {
            classify_client_error(client, resource, namespace)
        }
        W::WatchError(status) => status_failure(status.code, &status.message, resource, namespace),
        W::NoResourceVersion => WatchFailure::Failed(KubeError::Api {
            code: 200,
            message: format!("the list of {resource} had no resourceVersion"),
        }),
    }
}

fn status_failure(
    code: u16,
    message: &str,
    resource: &ResourceType,
    namespace: Option<&str>,
) -> WatchFailure {
    match code {
        410 => WatchFailure::Gone,
        404 => WatchFailure::NotServed,
        403 => WatchFailure::Failed(KubeError::Forbidden {
            resource: resource.rbac_name(),
            scope: scope_text(namespace),
            detail: bounded(message),
        }),
        401 => WatchFailure::Failed(KubeError::Unauthorized(bounded(message))),
        _ => WatchFailure::Failed(KubeError::Api {
            code,
            message: bounded(message),
        }),
    }
}

pub(crate) fn classify_client_error(
    err: &kube::Error,
    resource: &ResourceType,
    namespace: Option<&str>,
) -> WatchFailure {
    if let kube::Error::Api(status) = err {
        return status_failure(status.code, &status.message, resource, namespace);
    }
    let text = error_chain(err);
    let refused = {
        let mut source = err.source();
        let mut found = false;
        while let Some(inner) = source {
            if let Some(io) = inner.downcast_ref::<std::io::Error>() {
                found |= io.kind() == std::io::ErrorKind::ConnectionRefused;
            }
            source = inner.source();
        }
        found || text.contains("Connection refused")
    };
    WatchFailure::Failed(KubeError::Unreachable {
        refused,
        message: text,
    })
}

/// The error and its sources, without repeats, bounded in length.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let part = inner.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = inner.source();
    }
    bounded(&text)
}

/// Messages from the server end up on the status page: keep them short.
fn bounded(text: &str) -> String {
    const LIMIT: usize = 300;
    if text.len() <= LIMIT {
        return text.to_string();
    }
    let mut end = LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::resource::DEPLOYMENTS;

    #[test]
    fn forbidden_names_the_verbs_and_resource_to_grant() {
        let WatchFailure::Failed(err) = status_failure(403, "nope", &DEPLOYMENTS, Some("prod"))
        else {
            panic!("403 is a failure")
        };
        assert_eq!(err.reason(), Reason::Forbidden);
        assert!(
            err.to_string()
                .contains("grant list,watch on deployments.apps in namespace prod"),
            "{err}"
        );
        assert!(matches!(
            status_failure(404, "", &DEPLOYMENTS, None),
            WatchFailure::NotServed
        ));
        assert!(matches!(
            status_failure(410, "", &DEPLOYMENTS, None),
            WatchFailure::Gone
        ));
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let text = "é".repeat(400);
        let cut = bounded(&text);
        assert!(cut.len() < 310);
        assert!(cut.ends_with('…'));
    }
}
