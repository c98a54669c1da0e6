//! Errors of the object store turned into a reason and a message that
//! holds no secret.

use super::*;

/// The reason and message of an object_store error. The message never
/// holds a response body (an Azure 403 body echoes the request's
/// signature) nor a URL's query (where SAS tokens travel); only the status
/// and the service's error code are kept.
pub(super) fn classify(err: &object_store::Error, request_timeout: Duration) -> Failure {
    let full = error_chain::text(err);
    if let Some(failure) = status_failure(&full) {
        return failure;
    }
    let signs = Signs::of(err);
    let reason = signs.reason(err, &full);
    let message = transport_message(err, &full, reason, signs.tls.is_some(), request_timeout);
    Failure::new(reason, message)
}

/// What the causes of an error say about it, found by type.
struct Signs {
    http_kind: Option<object_store::client::HttpErrorKind>,
    io_kind: Option<std::io::ErrorKind>,
    too_large: bool,
    /// A failed handshake reads as rustls' words ("received corrupt
    /// message"), which name neither a certificate nor TLS: found by type.
    tls: Option<Reason>,
}

impl Signs {
    fn of(err: &object_store::Error) -> Signs {
        let mut signs = Signs {
            http_kind: None,
            io_kind: None,
            too_large: false,
            tls: None,
        };
        for inner in error_chain::walk(err).skip(1) {
            signs.too_large |= inner.downcast_ref::<AnswerTooLarge>().is_some();
            if let Some(io) = inner.downcast_ref::<std::io::Error>() {
                if io
                    .get_ref()
                    .is_some_and(|e| e.downcast_ref::<rustls::Error>().is_some())
                {
                    signs
                        .tls
                        .get_or_insert(crate::clients::tls_configs::handshake_reason(io));
                }
            }
            if inner.downcast_ref::<rustls::Error>().is_some() {
                signs.tls.get_or_insert(Reason::Tls);
            }
            if let Some(http) = inner.downcast_ref::<object_store::client::HttpError>() {
                signs.http_kind.get_or_insert(http.kind());
            }
            if let Some(io) = inner.downcast_ref::<std::io::Error>() {
                signs.io_kind.get_or_insert(io.kind());
            }
        }
        signs
    }

    /// The reason of an error that got no HTTP status.
    fn reason(&self, err: &object_store::Error, full: &str) -> Reason {
        match (self.http_kind, self.io_kind) {
            _ if self.too_large => Reason::TooLarge,
            (_, Some(std::io::ErrorKind::ConnectionRefused)) => Reason::ConnectionRefused,
            (Some(object_store::client::HttpErrorKind::Timeout), _)
            | (_, Some(std::io::ErrorKind::TimedOut)) => Reason::Timeout,
            _ if full.contains("dns error") || full.contains("failed to lookup address") => {
                Reason::Dns
            }
            _ if self.tls.is_some() => self.tls.unwrap_or(Reason::Tls),
            _ if full.contains("certificate") || full.contains("tls handshake") => Reason::Tls,
            (
                Some(
                    object_store::client::HttpErrorKind::Connect
                    | object_store::client::HttpErrorKind::Request
                    | object_store::client::HttpErrorKind::Interrupted,
                ),
                _,
            ) => Reason::Connect,
            _ if matches!(err, object_store::Error::NotFound { .. }) => Reason::BackupMissing,
            _ if matches!(err, object_store::Error::Unauthenticated { .. }) => Reason::Auth,
            _ if matches!(err, object_store::Error::PermissionDenied { .. }) => Reason::Forbidden,
            _ if matches!(
                err,
                object_store::Error::Generic {
                    store: "LocalFileSystem",
                    ..
                }
            ) =>
            {
                Reason::File
            }
            _ => Reason::Protocol,
        }
    }
}

/// The failure of an answer with an HTTP status: the status and the
/// service's error code, never the body.
fn status_failure(full: &str) -> Option<Failure> {
    static STATUS: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"status code: (\d{3})(?: ([A-Za-z ]+))?").expect("valid regex")
    });
    static CODE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"<Code>\s*([A-Za-z0-9.]+)\s*</Code>").expect("valid regex"));
    let (status, text) = STATUS
        .captures(full)
        .and_then(|c| Some((c.get(1)?.as_str().parse::<u16>().ok()?, c.get(2))))?;
    let code = CODE
        .captures(full)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().to_string());
    let mut message = format!("the store answered {status}");
    if let Some(text) = text {
        message.push(' ');
        message.push_str(text.as_str().trim());
    }
    if let Some(code) = &code {
        message.push_str(&format!(" ({code})"));
    }
    let reason = match (status, code.as_deref()) {
        (
            403,
            Some(
                "AccessDenied"
                | "AuthorizationPermissionMismatch"
                | "AuthorizationResourceTypeMismatch"
                | "AuthorizationSourceIPMismatch"
                | "AuthorizationProtocolMismatch"
                | "AllAccessDisabled"
                | "AccountIsDisabled",
            ),
        ) => Reason::Forbidden,
        // Azure's AuthenticationFailed, S3's SignatureDoesNotMatch and
        // InvalidAccessKeyId; Azurite answers a wrong key with
        // AuthorizationFailure, which Azure also gives for network
        // rules: the credentials were not accepted either way.
        (401 | 403, _) => Reason::Auth,
        (404, _) => Reason::BackupMissing,
        _ => Reason::Status,
    };
    Some(Failure::new(reason, message))
}

/// Transport failures read as what happened and where: the retry layer's
/// text repeats the request line, which says nothing more.
fn transport_message(
    err: &object_store::Error,
    full: &str,
    reason: Reason,
    tls: bool,
    request_timeout: Duration,
) -> String {
    static HOST: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"https?://([^/\s?]+)").expect("valid regex"));
    static RETRIES: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"after (\d+) retries").expect("valid regex"));
    let at = HOST
        .captures(full)
        .map(|c| format!(" ({})", &c[1]))
        .unwrap_or_default();
    let retried = match RETRIES.captures(full).map(|c| c[1].to_string()) {
        Some(n) if n == "1" => ", tried twice".to_string(),
        Some(n) => format!(", tried {} times", n.parse::<u32>().unwrap_or(0) + 1),
        None => String::new(),
    };
    let deepest = error_chain::walk(err)
        .last()
        .map(|e| e.to_string())
        .unwrap_or_default();
    match reason {
        Reason::ConnectionRefused => format!("connection refused{at}{retried}"),
        Reason::Timeout => format!(
            "no answer within {}{at}{retried}",
            format_duration(request_timeout)
        ),
        Reason::TooLarge => format!("{}{at}", AnswerTooLarge(MAX_RESPONSE_BYTES)),
        Reason::Dns | Reason::Tls | Reason::Connect => {
            format!("{}{at}{retried}", scrub_urls(&deepest))
        }
        _ if tls => format!("{}{at}{retried}", scrub_urls(&deepest)),
        _ => scrub_urls(&shorten(full)),
    }
}

/// The error chain cut to a readable length.
pub(super) fn shorten(text: &str) -> String {
    if text.chars().count() > 400 {
        text.chars().take(400).collect::<String>() + "…"
    } else {
        text.to_string()
    }
}

/// Query strings of URLs in `text` replaced: they may carry SAS tokens or
/// presigned signatures. Public for the fuzz targets.
pub fn scrub_urls(text: &str) -> String {
    static QUERY: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(https?://[^\s?#]*)\?[^\s]*").expect("valid regex"));
    static SIGNED: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\b(sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature|x-goog-credential)=[^&\s]*")
            .expect("valid regex")
    });
    let text = QUERY.replace_all(text, "$1?[redacted]");
    SIGNED.replace_all(&text, "$1=[redacted]").into_owned()
}

/// The outcome with every secret value read for the run replaced.
pub(super) fn scrub_outcome(mut outcome: Outcome, secrets: &[String]) -> Outcome {
    outcome.message = scrub(&scrub_urls(&outcome.message), secrets);
    outcome
}
