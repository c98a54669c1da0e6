//! A small pooled HTTPS client for the JSON APIs that kinds call on every
//! run (OCI registries, Azure Key Vault and its token endpoints).
//!
//! The `http` kind has its own client (`http::client`) that opens a fresh
//! connection per request, because timing each phase of a new connection
//! is its point. API calls want the opposite: connections kept between
//! runs, bodies read to a limit, and errors reduced to a few typed cases.
//! This is hyper-util's pooled client over hyper-rustls, with the trust
//! roots of [`crate::clients::tls_configs::TlsClients`] (system roots, or a `ca_file`).
//!
//! Errors name the host, never the URL's path or query (which may carry a
//! token or a signature) and never a header value.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use hyper::{Method, Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::ClientConfig;
use thiserror::Error;
use url::Url;

use crate::config::ByteSize;
use crate::error_chain;
use crate::result::Reason;

/// Bodies larger than this are refused unless a call says otherwise.
pub const DEFAULT_BODY_LIMIT: ByteSize = ByteSize(4 * 1024 * 1024);

/// How long an idle pooled connection is kept for the next run.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// One pooled client; cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct ApiClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    connect_timeout: Duration,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient").finish_non_exhaustive()
    }
}

/// One request.
pub struct ApiRequest<'a> {
    pub method: Method,
    pub url: &'a Url,
    pub headers: HeaderMap,
    pub body: Option<Bytes>,
    /// Longest the whole exchange (connect, headers, body) may take.
    pub timeout: Duration,
    pub body_limit: ByteSize,
}

impl<'a> ApiRequest<'a> {
    pub fn new(method: Method, url: &'a Url, timeout: Duration) -> Self {
        ApiRequest {
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
            timeout,
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }

    pub fn get(url: &'a Url, timeout: Duration) -> Self {
        Self::new(Method::GET, url, timeout)
    }

    /// Adds a header; a value that is not a valid header value (a secret
    /// with a newline) is an error that does not show the value.
    pub fn header(mut self, name: HeaderName, value: &str) -> Result<Self, ApiError> {
        let mut value = HeaderValue::from_str(value).map_err(|_| ApiError::BadHeader {
            name: name.to_string(),
        })?;
        if name == hyper::header::AUTHORIZATION {
            value.set_sensitive(true);
        }
        self.headers.insert(name, value);
        Ok(self)
    }

    /// A form-encoded POST body.
    pub fn form(mut self, pairs: &[(&str, &str)]) -> Self {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        self.method = Method::POST;
        self.headers.insert(
            hyper::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        self.body = Some(Bytes::from(body));
        self
    }
}

/// An answer, its body read completely (within the limit).
#[derive(Debug)]
pub struct ApiResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl ApiResponse {
    /// The body as JSON of type `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self, host: &str) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body).map_err(|err| ApiError::BadJson {
            host: host.to_string(),
            detail: err.to_string(),
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Debug, Error)]
pub enum ApiError {
    #[error("cannot resolve {host}: {detail}")]
    Resolve { host: String, detail: String },
    #[error("connection to {host} refused")]
    Refused { host: String },
    #[error("cannot connect to {host}: {detail}")]
    Connect { host: String, detail: String },
    #[error("no answer from {host} within {}", crate::config::format_duration(*limit))]
    Timeout { host: String, limit: Duration },
    #[error("TLS handshake with {host} failed: {detail}")]
    Tls {
        reason: Reason,
        host: String,
        detail: String,
    },
    #[error("{host} broke the protocol: {detail}")]
    Protocol { host: String, detail: String },
    #[error("answer from {host} is larger than the {limit} read limit")]
    TooLarge { host: String, limit: ByteSize },
    #[error("answer from {host} is not the expected JSON: {detail}")]
    BadJson { host: String, detail: String },
    #[error("the {name} header value is not valid")]
    BadHeader { name: String },
}

impl ApiError {
    pub fn reason(&self) -> Reason {
        match self {
            ApiError::Resolve { .. } => Reason::Dns,
            ApiError::Refused { .. } => Reason::ConnectionRefused,
            ApiError::Connect { .. } => Reason::Connect,
            ApiError::Timeout { .. } => Reason::Timeout,
            ApiError::Tls { reason, .. } => *reason,
            ApiError::Protocol { .. } => Reason::Protocol,
            ApiError::TooLarge { .. } => Reason::TooLarge,
            ApiError::BadJson { .. } => Reason::Json,
            ApiError::BadHeader { .. } => Reason::Secret,
        }
    }
}

impl ApiClient {
    /// A client trusting the roots of `tls` (its ALPN is set here).
    pub fn new(tls: &ClientConfig, connect_timeout: Duration) -> Self {
        crate::clients::tls_configs::install_default_provider();
        let mut tls = tls.clone();
        tls.alpn_protocols.clear();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(4)
            .build(connector);
        ApiClient {
            client,
            connect_timeout,
        }
    }

    /// Sends `request` and reads the answer's body within its limit.
    pub async fn send(&self, request: ApiRequest<'_>) -> Result<ApiResponse, ApiError> {
        let host = host_of(request.url);
        let limit = request.timeout;
        let attempts = async {
            match self.exchange(&request, &host).await {
                // A pooled connection the server closed while idle (it
                // restarted, or its keep-alive ran out) fails on first
                // write; one retry goes out on a fresh connection.
                Err(Retry::Stale(_)) => match self.exchange(&request, &host).await {
                    Err(Retry::Stale(err)) | Err(Retry::Final(err)) => Err(err),
                    Ok(response) => Ok(response),
                },
                Err(Retry::Final(err)) => Err(err),
                Ok(response) => Ok(response),
            }
        };
        match tokio::time::timeout(limit, attempts).await {
            Ok(result) => result,
            Err(_) => Err(ApiError::Timeout { host, limit }),
        }
    }

    async fn exchange(&self, request: &ApiRequest<'_>, host: &str) -> Result<ApiResponse, Retry> {
        let mut builder = Request::builder()
            .method(request.method.clone())
            .uri(request.url.as_str());
        let headers = builder.headers_mut().expect("a fresh builder has headers");
        *headers = request.headers.clone();
        if !headers.contains_key(USER_AGENT) {
            headers.insert(
                USER_AGENT,
                HeaderValue::from_static(concat!("vouch/", env!("CARGO_PKG_VERSION"))),
            );
        }
        let http_request = builder
            .body(Full::new(request.body.clone().unwrap_or_default()))
            .map_err(|err| {
                Retry::Final(ApiError::Protocol {
                    host: host.to_string(),
                    detail: format!("cannot build the request: {}", scrub(&err.to_string())),
                })
            })?;
        let response = self.client.request(http_request).await.map_err(|err| {
            let stale = std::error::Error::source(&err)
                .and_then(|e| e.downcast_ref::<hyper::Error>())
                .is_some_and(|e| e.is_incomplete_message() || e.is_canceled());
            let classified = self.classify(&err, host);
            if stale {
                Retry::Stale(classified)
            } else {
                Retry::Final(classified)
            }
        })?;
        let (parts, body) = response.into_parts();
        let limit = request.body_limit;
        let body = Limited::new(body, limit.0 as usize)
            .collect()
            .await
            .map_err(|err| {
                Retry::Final(
                    if err
                        .downcast_ref::<http_body_util::LengthLimitError>()
                        .is_some()
                    {
                        ApiError::TooLarge {
                            host: host.to_string(),
                            limit,
                        }
                    } else {
                        ApiError::Protocol {
                            host: host.to_string(),
                            detail: format!("the body broke off: {err}"),
                        }
                    },
                )
            })?
            .to_bytes();
        Ok(ApiResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    fn classify(&self, err: &hyper_util::client::legacy::Error, host: &str) -> ApiError {
        let host = host.to_string();
        let mut tls = None;
        let mut refused = false;
        let mut dns = false;
        let mut timed_out = false;
        for e in error_chain::walk(err) {
            if let Some(rustls_error) = e.downcast_ref::<rustls::Error>() {
                tls = Some(crate::clients::tls_configs::certificate_reason(
                    rustls_error,
                ));
            }
            dns |= e.to_string() == "dns error";
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                refused |= io.kind() == std::io::ErrorKind::ConnectionRefused;
                timed_out |= io.kind() == std::io::ErrorKind::TimedOut;
            }
        }
        let detail = scrub(&crate::clients::tls_configs::chain_text(err));
        if let Some(reason) = tls {
            return ApiError::Tls {
                reason,
                host,
                detail,
            };
        }
        if refused {
            return ApiError::Refused { host };
        }
        if dns {
            return ApiError::Resolve { host, detail };
        }
        if timed_out && err.is_connect() {
            return ApiError::Timeout {
                host,
                limit: self.connect_timeout,
            };
        }
        if err.is_connect() {
            return ApiError::Connect { host, detail };
        }
        ApiError::Protocol { host, detail }
    }
}

/// A failed exchange, and whether it may be tried once more.
enum Retry {
    /// The request died on a reused connection before an answer began.
    Stale(ApiError),
    Final(ApiError),
}

/// `host[:port]` of a URL, for messages.
pub fn host_of(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_string(),
        _ => "(no host)".to_string(),
    }
}

/// Client errors may quote the request URI; anything after a `?` (a query
/// with a signature or token) is cut.
fn scrub(text: &str) -> String {
    static QUERY: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"\?[^\s)]*").expect("valid regex"));
    QUERY.replace_all(text, "?[query]").into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_cut_from_messages() {
        assert_eq!(
            scrub("error sending request for url (https://v/x?sig=abc&se=1)"),
            "error sending request for url (https://v/x?[query])"
        );
    }

    #[tokio::test]
    async fn a_closed_port_is_refused_and_names_only_the_host() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let tls =
            crate::clients::tls_configs::TlsClients::with_roots(rustls::RootCertStore::empty());
        let client = ApiClient::new(&tls.verified(), Duration::from_secs(2));
        let url = Url::parse(&format!("http://127.0.0.1:{port}/v2/?token=hunter2")).unwrap();
        let err = client
            .send(ApiRequest::get(&url, Duration::from_secs(5)))
            .await
            .unwrap_err();
        assert_eq!(err.reason(), Reason::ConnectionRefused, "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
