//! Backup URLs: the scheme, container or bucket and prefix of `az://`, `s3://`,
//! `gs://` and `file://` locations, and the URL as shown in messages.

use super::*;

/// Scheme, location and prefix of a backup URL.
pub(super) fn parse_location(
    text: &str,
) -> Result<(&'static str, Location, Option<StorePath>), String> {
    let text = text.trim();
    // Messages show the URL without what may be a credential: a query
    // (a pasted SAS token) and user information.
    let shown = shown_url(text);
    let url = url::Url::parse(text).map_err(|err| format!("invalid URL {shown:?}: {err}"))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "invalid URL {shown:?}: must not have a query or fragment (a SAS token belongs in sas_token_file or sas_token_env)"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "invalid URL {shown:?}: must not hold credentials (they belong in *_file or *_env keys)"
        ));
    }
    let text = shown.as_str();
    let scheme: &'static str = match url.scheme() {
        "az" => "az",
        "s3" => "s3",
        "gs" => "gs",
        "file" => "file",
        other => {
            return Err(format!(
                "unsupported scheme {other:?} in {text:?}: expected az://container/prefix, s3://bucket/prefix, gs://bucket/prefix or file:///path"
            ))
        }
    };
    if scheme == "file" {
        if url.host_str().is_some_and(|h| !h.is_empty()) {
            return Err(format!(
                "invalid URL {text:?}: a file URL has no host (file:///backups/db)"
            ));
        }
        let root = url
            .to_file_path()
            .map_err(|()| format!("invalid URL {text:?}: not a local path"))?;
        return Ok(("file", Location::Local { root }, None));
    }
    let bucket = url.host_str().unwrap_or_default().to_string();
    if bucket.is_empty() {
        let what = if scheme == "az" {
            "container"
        } else {
            "bucket"
        };
        return Err(format!(
            "invalid URL {text:?}: no {what} (expected {scheme}://{what}/prefix)"
        ));
    }
    if url.port().is_some() {
        return Err(format!(
            "invalid URL {text:?}: no port here (a server's address goes in `endpoint`)"
        ));
    }
    let path = url.path().trim_matches('/');
    let prefix = if path.is_empty() {
        None
    } else {
        Some(
            StorePath::from_url_path(path)
                .map_err(|err| format!("invalid prefix in {text:?}: {err}"))?,
        )
    };
    let location = match scheme {
        "az" => Location::Azure {
            container: bucket,
            account: String::new(),
        },
        "s3" => Location::S3 { bucket },
        _ => Location::Gcs { bucket },
    };
    Ok((scheme, location, prefix))
}

/// The scheme a backup URL names, or the message a bad one gets (which
/// shows the URL without its query and user information). Public for the
/// fuzz targets.
pub fn url_scheme(text: &str) -> Result<&'static str, String> {
    parse_location(text).map(|(scheme, _, _)| scheme)
}

/// `text` with a query replaced and user information removed. Public for
/// the fuzz targets.
pub fn shown_url(text: &str) -> String {
    // URL parsers drop tabs and line breaks anywhere in a URL (and read
    // `\` as `/`), so `az:/\n/user:pw@c` is `az://user:pw@c` to them:
    // the parts are found in the same text they read.
    let text: String = text
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let (head, query) = match text.split_once(['?', '#']) {
        Some((head, _)) => (head, "?[redacted]"),
        None => (text.as_str(), ""),
    };
    let head = match head.split_once("://") {
        Some((scheme, rest)) => match rest.split_once(['/', '\\']) {
            Some((authority, path)) => match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://{host}/{path}"),
                None => head.to_string(),
            },
            None => match rest.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://{host}"),
                None => head.to_string(),
            },
        },
        None => head.to_string(),
    };
    format!("{head}{query}")
}

/// `%XX` escapes decoded (a SAS token's values); public for the fuzz targets.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
