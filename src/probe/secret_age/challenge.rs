//! Key Vault's authentication challenge: a request without a token gets
//! `401` with `WWW-Authenticate: Bearer authorization="https://login.windows.net/TENANT",
//! resource="https://vault.azure.net"` (newer services write
//! `authorization_uri` and `scope`). The challenge names the tenant the
//! vault belongs to and the audience its tokens must have, which differs
//! by cloud (`https://vault.azure.cn`, `https://vault.usgovcloudapi.net`).
//!
//! As the Azure SDKs do, the audience is only believed when the vault's
//! host lies in its domain (`NAME.vault.azure.net` for
//! `https://vault.azure.net`): otherwise a host that is not a vault could
//! ask for, and be sent, a token for real vaults.

use url::Url;

/// What a vault's challenge says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// The vault's tenant, from the authorization URL's path.
    pub tenant: Option<String>,
    /// The audience, e.g. `https://vault.azure.net`.
    pub resource: String,
}

/// The `key="value"` parameters of a `Bearer` challenge, keys lower-cased.
fn bearer_params(header: &str) -> Option<Vec<(String, String)>> {
    let rest = header.trim_start();
    let scheme_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    if !rest[..scheme_end].eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = Vec::new();
    let mut rest = rest[scheme_end..].trim_start();
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let key = rest[..eq].trim().trim_start_matches(',').trim();
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"')?;
            value = &quoted[..end];
            rest = &quoted[end + 1..];
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim();
            rest = &rest[end..];
        }
        params.push((key.to_ascii_lowercase(), value.to_string()));
        rest = rest.trim_start().trim_start_matches(',').trim_start();
    }
    Some(params)
}

/// Parses a `WWW-Authenticate` value; `Err` says what is wrong with it.
pub fn parse(header: &str) -> Result<Challenge, String> {
    let params = bearer_params(header)
        .ok_or_else(|| "its challenge is not a Bearer challenge".to_string())?;
    let get = |names: &[&str]| {
        params
            .iter()
            .find(|(k, _)| names.contains(&k.as_str()))
            .map(|(_, v)| v.as_str())
    };
    let resource = match (get(&["resource"]), get(&["scope"])) {
        (Some(resource), _) => resource.trim_end_matches('/').to_string(),
        (None, Some(scope)) => scope
            .trim_end_matches("/.default")
            .trim_end_matches('/')
            .to_string(),
        (None, None) => return Err("its challenge names no resource or scope".into()),
    };
    let tenant = match get(&["authorization", "authorization_uri"]) {
        None => None,
        Some(uri) => {
            let url = Url::parse(uri)
                .map_err(|_| "its challenge's authorization is not a URL".to_string())?;
            let tenant = url
                .path_segments()
                .and_then(|mut s| s.next())
                .filter(|t| !t.is_empty())
                .ok_or_else(|| "its challenge's authorization names no tenant".to_string())?;
            if !tenant
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c))
            {
                return Err("its challenge's tenant is not a GUID or domain name".into());
            }
            Some(tenant.to_string())
        }
    };
    Ok(Challenge { tenant, resource })
}

impl Challenge {
    /// `Ok` when the vault at `vault_host` may ask for this audience: its
    /// host is in the audience's domain (or is that host itself, which
    /// only a vault on a test machine's loopback is).
    pub fn verify(&self, vault_host: &str) -> Result<(), String> {
        let url = Url::parse(&self.resource)
            .map_err(|_| format!("its challenge's resource {:?} is not a URL", self.resource))?;
        let domain = url.host_str().unwrap_or("").to_ascii_lowercase();
        let host = vault_host.to_ascii_lowercase();
        let belongs = !domain.is_empty()
            && url.scheme() == "https"
            && (host == domain || host.ends_with(&format!(".{domain}")));
        if belongs {
            Ok(())
        } else {
            Err(format!(
                "its challenge asks for a token for {}, which {host} is not part of; no token was sent",
                self.resource
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_challenges_give_tenant_and_audience() {
        // As Key Vault sends it (recorded by the Azure SDKs).
        let challenge = parse(
            r#"Bearer authorization="https://login.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47", resource="https://vault.azure.net""#,
        )
        .unwrap();
        assert_eq!(
            challenge,
            Challenge {
                tenant: Some("72f988bf-86f1-41af-91ab-2d7cd011db47".into()),
                resource: "https://vault.azure.net".into(),
            }
        );
        let challenge = parse(
            r#"Bearer authorization="https://login.microsoftonline.com/contoso.onmicrosoft.com", resource="https://vault.azure.net""#,
        )
        .unwrap();
        assert_eq!(challenge.tenant.as_deref(), Some("contoso.onmicrosoft.com"));
        // The authorization_uri/scope spelling, unquoted and odd spacing.
        let challenge = parse(
            "bearer authorization_uri=https://login.chinacloudapi.cn/t1 ,scope=\"https://vault.azure.cn/.default\"",
        )
        .unwrap();
        assert_eq!(challenge.tenant.as_deref(), Some("t1"));
        assert_eq!(challenge.resource, "https://vault.azure.cn");
        assert!(parse(r#"Basic realm="x""#).is_err());
        assert!(parse(r#"Bearer authorization="https://login.windows.net/t""#).is_err());
        assert!(parse(r#"Bearer authorization="https://login.windows.net/", resource="https://vault.azure.net""#).is_err());
    }

    #[test]
    fn the_audience_must_be_the_vaults_domain() {
        let challenge = |resource: &str| Challenge {
            tenant: None,
            resource: resource.into(),
        };
        let public = challenge("https://vault.azure.net");
        assert!(public.verify("broxiva-kv.vault.azure.net").is_ok());
        assert!(public.verify("BROXIVA-KV.Vault.Azure.Net").is_ok());
        assert!(challenge("https://vault.azure.cn")
            .verify("kv.vault.azure.cn")
            .is_ok());
        assert!(challenge("https://vault.usgovcloudapi.net")
            .verify("kv.vault.usgovcloudapi.net")
            .is_ok());
        // A host that is not a vault asking for a vault token.
        let err = public.verify("kv.evil.example").unwrap_err();
        assert_eq!(
            err,
            "its challenge asks for a token for https://vault.azure.net, which kv.evil.example is not part of; no token was sent"
        );
        assert!(public.verify("notvault.azure.net").is_err());
        assert!(challenge("https://azure.net")
            .verify("kv.vault.azure.net")
            .is_ok());
        assert!(challenge("http://vault.azure.net")
            .verify("kv.vault.azure.net")
            .is_err());
        assert!(challenge("https://localhost").verify("localhost").is_ok());
    }
}
