//! Expected answers: written in the config, or the addresses an Ingress
//! reports (read from the watch cache at every run).

use std::collections::BTreeSet;
use std::net::IpAddr;

use hickory_resolver::proto::rr::RecordType;

use crate::probe::cross_check::{IngressAddressesOf, Unknown};
use crate::probe::ProbeContext;
use crate::result::Reason;

/// Where an expected set of answers comes from: the config, or the
/// cluster (resolved at every run, so it follows the Ingress).
#[derive(Debug)]
pub enum Expected {
    /// Answers written in the config, normalised.
    Literal(BTreeSet<String>),
    /// The addresses an Ingress reports, of the record type asked.
    Ingress(IngressAddressesOf, RecordType),
}

impl Expected {
    /// The set this run compares against.
    pub async fn resolve(&self, ctx: &ProbeContext) -> Result<BTreeSet<String>, Unknown> {
        match self {
            Expected::Literal(set) => Ok(set.clone()),
            Expected::Ingress(ingress, record_type) => {
                let addresses = ingress.resolve(ctx).await?;
                ingress_answers(*record_type, &addresses).map_err(|message| Unknown {
                    reason: Reason::IngressAddress,
                    message: format!("Ingress {}: {message}", ingress.ingress()),
                })
            }
        }
    }

    /// Where the expected answers come from, for messages.
    pub(super) fn source(&self) -> String {
        match self {
            Expected::Literal(_) => String::new(),
            Expected::Ingress(ingress, _) => {
                format!(" (reported by Ingress {})", ingress.ingress())
            }
        }
    }

    pub(super) fn is_empty_literal(&self) -> bool {
        matches!(self, Expected::Literal(set) if set.is_empty())
    }
}

/// The Ingress addresses of `record_type`, normalised as answers are: a
/// load balancer reports IPs or a host name, and a host name is what a
/// CNAME to it answers. None of the asked kind is an error naming what
/// the Ingress has, never an empty set a lookup could match.
fn ingress_answers(
    record_type: RecordType,
    addresses: &[String],
) -> Result<BTreeSet<String>, String> {
    let ip = |a: &String| a.parse::<IpAddr>().ok();
    let set: BTreeSet<String> = addresses
        .iter()
        .filter_map(|a| match (record_type, ip(a)) {
            (RecordType::A, Some(IpAddr::V4(v4))) => Some(v4.to_string()),
            (RecordType::AAAA, Some(IpAddr::V6(v6))) => Some(v6.to_string()),
            (RecordType::CNAME, None) => Some(a.trim_end_matches('.').to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    if !set.is_empty() {
        return Ok(set);
    }
    let wanted = match record_type {
        RecordType::A => "no IPv4 address",
        RecordType::AAAA => "no IPv6 address",
        _ => "no host name",
    };
    let hint = if addresses.iter().all(|a| ip(a).is_none()) {
        " (a host name is compared with type: CNAME)"
    } else if record_type == RecordType::CNAME {
        " (IP addresses are compared with type: A or AAAA)"
    } else {
        ""
    };
    Err(format!(
        "reports {wanted} to compare {record_type} answers with, only {}{hint}",
        addresses.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingress_addresses_are_split_by_record_type() {
        let addresses: Vec<String> = ["10.0.0.1", "FD00::0:1", "LB.Example.com.", "10.0.0.2"]
            .map(String::from)
            .to_vec();
        let set = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(
            ingress_answers(RecordType::A, &addresses),
            Ok(set(&["10.0.0.1", "10.0.0.2"]))
        );
        assert_eq!(
            ingress_answers(RecordType::AAAA, &addresses),
            Ok(set(&["fd00::1"]))
        );
        assert_eq!(
            ingress_answers(RecordType::CNAME, &addresses),
            Ok(set(&["lb.example.com"]))
        );
        let ips = ["10.0.0.1".to_string()];
        let err = ingress_answers(RecordType::CNAME, &ips).unwrap_err();
        assert!(
            err.contains("no host name") && err.contains("type: A or AAAA"),
            "{err}"
        );
        let err = ingress_answers(RecordType::AAAA, &ips).unwrap_err();
        assert!(
            err.contains("no IPv6 address") && !err.contains("CNAME"),
            "{err}"
        );
    }
}
