//! Opening the session (TLS mode, URL, read-only, statement timeout) and
//! naming the reason of every error tokio-postgres returns.

use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, NoTls, Socket};

use super::{PostgresProbe, Tls, TlsMode};
use crate::config::format_duration;
use crate::error_chain;
use crate::result::{Failure, Reason};
use crate::secret::Secret;

/// The shared client configs announce `http/1.1`; PostgreSQL 17 refuses a
/// TLS connection with an ALPN protocol other than `postgresql`.
pub(super) fn without_alpn(config: &Arc<ClientConfig>) -> Arc<ClientConfig> {
    let mut config = (**config).clone();
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Arc::new(config)
}

/// The reason and message for an error of tokio-postgres.
pub(super) fn classify(err: &tokio_postgres::Error, statement_timeout: Duration) -> Failure {
    if let Some(db) = err.as_db_error() {
        let code = db.code();
        let reason = if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            Reason::Auth
        } else if *code == SqlState::QUERY_CANCELED {
            return Failure::new(
                Reason::Timeout,
                format!(
                    "query cancelled by statement_timeout {} ({})",
                    format_duration(statement_timeout),
                    db.message()
                ),
            );
        } else if *code == SqlState::TOO_MANY_CONNECTIONS {
            Reason::Connections
        } else {
            Reason::Query
        };
        return Failure::new(
            reason,
            format!("{}: {} ({})", db.severity(), db.message(), code.code()),
        );
    }
    for inner in error_chain::walk(err).skip(1) {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            let reason = match io.kind() {
                std::io::ErrorKind::ConnectionRefused => Reason::ConnectionRefused,
                std::io::ErrorKind::TimedOut => Reason::Timeout,
                // rustls reports its errors as InvalidData: first.
                _ if io
                    .get_ref()
                    .is_some_and(|e| e.downcast_ref::<rustls::Error>().is_some()) =>
                {
                    crate::clients::tls_configs::handshake_reason(io)
                }
                // Bytes that are not PostgreSQL's messages: a length that
                // does not parse, or the peer closing mid-message (an HTTP
                // or Redis server answering the startup message).
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput => {
                    Reason::Protocol
                }
                _ if io.to_string() == "bytes remaining on stream" => Reason::Protocol,
                _ => Reason::Connect,
            };
            return Failure::new(reason, crate::clients::tls_configs::chain_text(err));
        }
        if inner.downcast_ref::<rustls::Error>().is_some() {
            return Failure::new(Reason::Tls, crate::clients::tls_configs::chain_text(err));
        }
    }
    let text = crate::clients::tls_configs::chain_text(err);
    let reason = if text.contains("TLS") || text.contains("tls") {
        Reason::Tls
    } else if text.contains("invalid connection string") || text.contains("invalid configuration") {
        Reason::Secret
    } else {
        Reason::Protocol
    };
    Failure::new(reason, text)
}

/// Removes `sslmode=...` from a URL's query (tokio-postgres knows only
/// disable, prefer and require) and returns the mode it asked for.
pub(super) fn take_sslmode(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None);
    };
    let mut mode = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.strip_prefix("sslmode=") {
            Some(value) => {
                mode = Some(value.to_string());
                false
            }
            None => true,
        })
        .collect();
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, mode)
}

impl PostgresProbe {
    fn tls(&self, url_mode: Option<&str>) -> Result<Tls, String> {
        let mode = match (self.tls_mode, url_mode) {
            (Some(mode), _) => mode,
            (None, None) => TlsMode::VerifyFull,
            (None, Some("disable")) => TlsMode::Disable,
            (None, Some("require")) => TlsMode::Require,
            (None, Some("verify-full" | "verify-ca")) => TlsMode::VerifyFull,
            (None, Some(other)) => {
                return Err(format!(
                    "sslmode={other} in the URL is not supported: set tls to disable, require or verify-full"
                ))
            }
        };
        Ok(match mode {
            TlsMode::Disable => Tls::Disable,
            TlsMode::Require => Tls::Encrypt(self.unverified.clone()),
            TlsMode::VerifyFull => Tls::Encrypt(self.verified.clone()),
        })
    }

    pub(super) async fn connect(&self, url: &Secret) -> Result<Client, Failure> {
        let (url, url_mode) = take_sslmode(url.expose());
        let tls = self
            .tls(url_mode.as_deref())
            .map_err(|message| Failure::new(Reason::Secret, message))?;
        let mut config: tokio_postgres::Config = url.parse().map_err(|err| {
            Failure::new(
                Reason::Secret,
                format!(
                    "the connection URL is not valid ({})",
                    crate::clients::tls_configs::chain_text(&err)
                ),
            )
        })?;
        config
            .connect_timeout(self.connect_timeout)
            .application_name("vouch");
        match tls {
            Tls::Disable => {
                config.ssl_mode(SslMode::Disable);
                spawn_connection(&config, NoTls, self.statement_timeout).await
            }
            Tls::Encrypt(client_config) => {
                config.ssl_mode(SslMode::Require);
                let tls = tokio_postgres_rustls::MakeRustlsConnect::new((*client_config).clone());
                spawn_connection(&config, tls, self.statement_timeout).await
            }
        }
    }
}

/// Connects, leaves the connection running in its own task, and makes the
/// session read-only with the statement timeout.
async fn spawn_connection<T>(
    config: &tokio_postgres::Config,
    tls: T,
    statement_timeout: Duration,
) -> Result<Client, Failure>
where
    T: MakeTlsConnect<Socket> + Send,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let (client, connection) = config
        .connect(tls)
        .await
        .map_err(|err| classify(&err, statement_timeout))?;
    // The connection ends when the client is dropped (or the run is
    // aborted by its timeout, which drops both).
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(error = %err, "postgres connection ended");
        }
    });
    client
        .batch_execute(&format!(
            "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY; \
             SET statement_timeout = {}",
            statement_timeout.as_millis().max(1)
        ))
        .await
        .map_err(|err| classify(&err, statement_timeout))?;
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_is_taken_out_of_the_url() {
        let (url, mode) = take_sslmode("postgres://u:p@h/db?sslmode=verify-full&connect_timeout=3");
        assert_eq!(url, "postgres://u:p@h/db?connect_timeout=3");
        assert_eq!(mode.as_deref(), Some("verify-full"));
        let (url, mode) = take_sslmode("postgres://h/db");
        assert_eq!((url.as_str(), mode), ("postgres://h/db", None));
    }
}
