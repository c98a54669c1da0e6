//! Serving the router: plain HTTP as before, or — with a web config —
//! an accept loop that applies the config in force when each connection is
//! accepted (TLS, client certificates, basic auth, response headers).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::web_config::{Users, WebConfig, WebConfigWatcher};

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long open connections may take to finish after `stop`.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves `app` on `listener` until `stop` is cancelled. Without a web
/// config this is plain `axum::serve`, exactly as without the flag.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    web: Option<Arc<WebConfigWatcher>>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let Some(web) = web else {
        return axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
    };
    // Bounds concurrent bcrypt verifications, so that a flood of bad
    // credentials cannot take every core.
    let bcrypt_slots = Arc::new(tokio::sync::Semaphore::new(
        std::thread::available_parallelism().map_or(2, |n| n.get()),
    ));
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: back off a little.
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let config = {
            let web = web.clone();
            match tokio::task::spawn_blocking(move || web.current()).await {
                Ok(config) => config,
                Err(err) => {
                    tracing::error!(error = %err, "web config check failed");
                    continue;
                }
            }
        };
        let service = {
            let app = app.clone();
            let config = config.clone();
            let slots = bcrypt_slots.clone();
            hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                handle(
                    app.clone(),
                    config.clone(),
                    slots.clone(),
                    request.map(Body::new),
                )
            })
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        match config.tls.clone() {
            None => {
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(err) = connection.await {
                        tracing::debug!(%peer, error = %err, "connection ended with an error");
                    }
                });
            }
            Some(tls) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(tls);
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let tls_stream = match tokio::time::timeout(
                        HANDSHAKE_TIMEOUT,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(err)) => {
                            tracing::debug!(%peer, error = %err, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let connection = builder.serve_connection(TokioIo::new(tls_stream), service);
                    if let Err(err) = watcher.watch(connection).await {
                        tracing::debug!(%peer, error = %err, "connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("connections still open at shutdown were dropped");
    }
    Ok(())
}

async fn handle(
    app: Router,
    config: Arc<WebConfig>,
    slots: Arc<tokio::sync::Semaphore>,
    request: Request,
) -> Result<Response, Infallible> {
    let allowed = match &config.users {
        Some(users) => authorized(users, basic_credentials(&request), &slots).await,
        None => true,
    };
    let mut response = if allowed {
        app.oneshot(request).await.unwrap_or_else(|e| match e {})
    } else {
        unauthorized()
    };
    for (name, value) in &config.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    Ok(response)
}

/// Whether the request carries the basic-auth credentials of a user. Every
/// request pays one bcrypt verification (known user or not); nothing is
/// cached, so one client's credentials cannot affect another's answer.
async fn authorized(
    users: &Arc<Users>,
    credentials: Option<(String, String)>,
    slots: &tokio::sync::Semaphore,
) -> bool {
    let Some((user, password)) = credentials else {
        return false;
    };
    let Ok(_slot) = slots.acquire().await else {
        return false;
    };
    let users = users.clone();
    tokio::task::spawn_blocking(move || users.verify(&user, &password))
        .await
        .unwrap_or(false)
}

fn basic_credentials(request: &Request) -> Option<(String, String)> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"vouch\", charset=\"UTF-8\""),
        )],
        "Unauthorized\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(authorization: &str) -> Request {
        Request::builder()
            .header(header::AUTHORIZATION, authorization)
            .body(Body::empty())
            .unwrap()
    }

    #[test]
    fn reads_basic_credentials() {
        assert_eq!(
            basic_credentials(&request("Basic YWxpY2U6czNjcjp0")),
            Some(("alice".into(), "s3cr:t".into()))
        );
        assert_eq!(basic_credentials(&request("Bearer YWxpY2U6czNjcjp0")), None);
        assert_eq!(basic_credentials(&request("Basic !!!")), None);
        assert_eq!(basic_credentials(&request("Basic YWxpY2U=")), None);
    }
}
