//! The `tls_server_config` block: the server certificate and key, the
//! protocol versions, and client certificates verified against
//! `client_ca_file`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::{unsupported, ClientAuthType, TlsServerConfig, TlsVersion};
use crate::config::Problem;

/// The server's TLS configuration, reading the files the block names
/// (each added to `files` for change detection); `None` with `problems`
/// added when any part does not load.
pub(super) fn build_tls(
    tls: &TlsServerConfig,
    resolve: &dyn Fn(&Path) -> PathBuf,
    problems: &mut Vec<Problem>,
    files: &mut Vec<PathBuf>,
) -> Option<Arc<rustls::ServerConfig>> {
    let before = problems.len();
    flag_unsupported_tls(tls, problems);
    let versions = protocol_versions(tls, problems);

    let mut read = |key: &str, path: &Option<PathBuf>| -> Option<Vec<u8>> {
        let path = resolve(path.as_deref()?);
        files.push(path.clone());
        // Capped, and on the calling thread like the web config itself
        // (the watcher's refresh runs off the async workers); a read that
        // never returned makes later reads of the file fail at once.
        match crate::file_read::read(&path, crate::file_read::MAX_PEM_BYTES) {
            Ok(bytes) => Some(bytes),
            Err(err) => {
                problems.push(Problem::new(tls_at(key), err.to_string()));
                None
            }
        }
    };
    let cert_pem = read("cert_file", &tls.cert_file);
    let key_pem = read("key_file", &tls.key_file);
    let ca_pem = read("client_ca_file", &tls.client_ca_file);
    if tls.cert_file.is_none() {
        problems.push(Problem::new(
            tls_at("cert_file"),
            "missing: the server certificate chain (PEM)",
        ));
    }
    if tls.key_file.is_none() {
        problems.push(Problem::new(
            tls_at("key_file"),
            "missing: the server's private key (PEM)",
        ));
    }
    let chain = cert_pem.and_then(|pem| parse_chain(&pem, problems));
    let key = key_pem.and_then(|pem| parse_key(&pem, problems));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifying = matches!(
        tls.client_auth_type,
        ClientAuthType::VerifyClientCertIfGiven | ClientAuthType::RequireAndVerifyClientCert
    );
    check_client_auth(tls, verifying, problems);
    let verifier = match (verifying, ca_pem) {
        (true, Some(pem)) => client_verifier(tls, &pem, &provider, problems),
        _ => None,
    };
    if problems.len() > before {
        return None;
    }
    let (chain, key): (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) = (chain?, key?);
    assemble_tls(provider, &versions, verifier, chain, key, problems)
}

/// Where a problem of the `tls_server_config` block is reported.
fn tls_at(key: &str) -> String {
    format!("tls_server_config.{key}")
}

/// Keys of the exporter-toolkit format that vouch rejects rather than ignores.
fn flag_unsupported_tls(tls: &TlsServerConfig, problems: &mut Vec<Problem>) {
    let inline = "give the PEM in a file (cert_file, key_file, client_ca_file) so it can rotate";
    unsupported(problems, &tls_at("cert"), tls.cert.is_some(), inline);
    unsupported(problems, &tls_at("key"), tls.key.is_some(), inline);
    unsupported(
        problems,
        &tls_at("client_ca"),
        tls.client_ca.is_some(),
        inline,
    );
    unsupported(
        problems,
        &tls_at("client_allowed_sans"),
        tls.client_allowed_sans.is_some(),
        "matching client certificate names (any certificate the client CA signed is accepted)",
    );
    let suites = "rustls offers only modern cipher suites and curves, in its own order";
    unsupported(
        problems,
        &tls_at("cipher_suites"),
        tls.cipher_suites.is_some(),
        suites,
    );
    unsupported(
        problems,
        &tls_at("prefer_server_cipher_suites"),
        tls.prefer_server_cipher_suites.is_some(),
        suites,
    );
    unsupported(
        problems,
        &tls_at("curve_preferences"),
        tls.curve_preferences.is_some(),
        suites,
    );
}

/// The protocol versions between `min_version` and `max_version`; TLS 1.0
/// and 1.1 are refused.
fn protocol_versions(
    tls: &TlsServerConfig,
    problems: &mut Vec<Problem>,
) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let mut versions = Vec::new();
    for (key, version) in [
        ("min_version", tls.min_version),
        ("max_version", tls.max_version),
    ] {
        if matches!(version, Some(TlsVersion::TLS10 | TlsVersion::TLS11)) {
            problems.push(Problem::new(
                tls_at(key),
                "not supported by vouch: only TLS12 and TLS13",
            ));
        }
    }
    let min = tls.min_version.unwrap_or(TlsVersion::TLS12);
    let max = tls.max_version.unwrap_or(TlsVersion::TLS13);
    if min > max {
        problems.push(Problem::new(
            tls_at("max_version"),
            format!("{max:?} is below min_version {min:?}"),
        ));
    }
    if min <= TlsVersion::TLS12 && max >= TlsVersion::TLS12 {
        versions.push(&rustls::version::TLS12);
    }
    if max >= TlsVersion::TLS13 {
        versions.push(&rustls::version::TLS13);
    }
    versions
}

/// The server certificate chain in `cert_file`.
fn parse_chain(pem: &[u8], problems: &mut Vec<Problem>) -> Option<Vec<CertificateDer<'static>>> {
    let certs: Result<Vec<CertificateDer<'static>>, _> =
        rustls_pemfile::certs(&mut &pem[..]).collect();
    match certs {
        Ok(certs) if !certs.is_empty() => Some(certs),
        Ok(_) => {
            problems.push(Problem::new(
                tls_at("cert_file"),
                "no PEM certificate in the file",
            ));
            None
        }
        Err(err) => {
            problems.push(Problem::new(tls_at("cert_file"), format!("not PEM: {err}")));
            None
        }
    }
}

/// The server's private key in `key_file`.
fn parse_key(pem: &[u8], problems: &mut Vec<Problem>) -> Option<PrivateKeyDer<'static>> {
    match rustls_pemfile::private_key(&mut &pem[..]) {
        Ok(Some(key)) => Some(key),
        Ok(None) => {
            problems.push(Problem::new(
                tls_at("key_file"),
                "no PEM private key in the file",
            ));
            None
        }
        Err(err) => {
            problems.push(Problem::new(tls_at("key_file"), format!("not PEM: {err}")));
            None
        }
    }
}

/// `client_auth_type` and `client_ca_file` must agree; the modes that accept
/// certificates nobody verified are refused.
fn check_client_auth(tls: &TlsServerConfig, verifying: bool, problems: &mut Vec<Problem>) {
    match tls.client_auth_type {
        ClientAuthType::RequestClientCert | ClientAuthType::RequireAnyClientCert => {
            problems.push(Problem::new(
                tls_at("client_auth_type"),
                format!(
                    "not supported by vouch: {:?} accepts certificates nobody verified; \
                     use RequireAndVerifyClientCert (or VerifyClientCertIfGiven) with client_ca_file",
                    tls.client_auth_type
                ),
            ))
        }
        _ if verifying && tls.client_ca_file.is_none() => problems.push(Problem::new(
            tls_at("client_auth_type"),
            format!(
                "{:?} needs client_ca_file, the CA that signs client certificates",
                tls.client_auth_type
            ),
        )),
        ClientAuthType::NoClientCert if tls.client_ca_file.is_some() => problems.push(Problem::new(
            tls_at("client_ca_file"),
            "given, but client_auth_type is NoClientCert: set RequireAndVerifyClientCert to check client certificates",
        )),
        _ => {}
    }
}

/// The verifier of client certificates signed by the CAs in `client_ca_file`.
fn client_verifier(
    tls: &TlsServerConfig,
    pem: &[u8],
    provider: &Arc<rustls::crypto::CryptoProvider>,
    problems: &mut Vec<Problem>,
) -> Option<Arc<dyn rustls::server::danger::ClientCertVerifier>> {
    let mut roots = rustls::RootCertStore::empty();
    let mut count = 0;
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        match cert
            .map_err(|e| e.to_string())
            .and_then(|c| roots.add(c).map_err(|e| e.to_string()))
        {
            Ok(()) => count += 1,
            Err(err) => problems.push(Problem::new(
                tls_at("client_ca_file"),
                format!("not a usable CA certificate: {err}"),
            )),
        }
    }
    if count == 0 {
        problems.push(Problem::new(
            tls_at("client_ca_file"),
            "no PEM certificate in the file",
        ));
        return None;
    }
    let builder = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    );
    let builder = if tls.client_auth_type == ClientAuthType::VerifyClientCertIfGiven {
        builder.allow_unauthenticated()
    } else {
        builder
    };
    match builder.build() {
        Ok(verifier) => Some(verifier),
        Err(err) => {
            problems.push(Problem::new(tls_at("client_ca_file"), err.to_string()));
            None
        }
    }
}

/// The server configuration from parts that each loaded without a problem.
fn assemble_tls(
    provider: Arc<rustls::crypto::CryptoProvider>,
    versions: &[&'static rustls::SupportedProtocolVersion],
    verifier: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    problems: &mut Vec<Problem>,
) -> Option<Arc<rustls::ServerConfig>> {
    let builder = match rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
    {
        Ok(builder) => builder,
        Err(err) => {
            problems.push(Problem::new(tls_at("min_version"), err.to_string()));
            return None;
        }
    };
    let builder = match verifier {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    match builder.with_single_cert(chain, key) {
        Ok(mut config) => {
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Some(Arc::new(config))
        }
        Err(err) => {
            problems.push(Problem::new(
                tls_at("key_file"),
                format!("does not go with cert_file: {err}"),
            ));
            None
        }
    }
}
