//! What a server answered, as the text expectations are written in, and
//! the wording of answers in messages.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, Record, RecordType};
use hickory_resolver::Name;

/// What one server said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Answer {
    pub(super) rcode: ResponseCode,
    pub(super) values: BTreeSet<String>,
    pub(super) min_ttl: Option<u32>,
}

impl Answer {
    pub(super) fn from_records(record_type: RecordType, records: &[Record]) -> Answer {
        let mut values = BTreeSet::new();
        let mut min_ttl: Option<u32> = None;
        for record in records {
            // A CNAME chain followed to the address comes with the lookup;
            // only records of the asked type are answers.
            if record.record_type() != record_type {
                continue;
            }
            if let Some(value) = record_text(record.data()) {
                values.insert(value);
                min_ttl = Some(min_ttl.map_or(record.ttl(), |t| t.min(record.ttl())));
            }
        }
        Answer {
            rcode: ResponseCode::NoError,
            values,
            min_ttl,
        }
    }

    pub(super) fn describe(&self) -> String {
        if self.rcode == ResponseCode::NoError {
            set_text(&self.values)
        } else {
            rcode_text(self.rcode)
        }
    }
}

pub(super) fn majority(answered: &[(&str, Answer, Duration)]) -> Answer {
    let mut best: Option<(&Answer, usize)> = None;
    for (_, answer, _) in answered {
        let count = answered
            .iter()
            .filter(|(_, a, _)| a.rcode == answer.rcode && a.values == answer.values)
            .count();
        if best.is_none_or(|(_, n)| count > n) {
            best = Some((answer, count));
        }
    }
    best.map(|(a, _)| a.clone()).unwrap_or(Answer {
        rcode: ResponseCode::NoError,
        values: BTreeSet::new(),
        min_ttl: None,
    })
}

/// The answers of `record_type` in `records` as text, the form they are
/// compared in (public for the fuzz targets: answers are outside input).
pub fn answer_texts(record_type: RecordType, records: &[Record]) -> BTreeSet<String> {
    Answer::from_records(record_type, records).values
}

/// An answer record as text, in the form expectations are written in.
pub(super) fn record_text(data: &RData) -> Option<String> {
    Some(match data {
        RData::A(a) => a.0.to_string(),
        RData::AAAA(aaaa) => aaaa.0.to_string(),
        RData::CNAME(name) => name_text(&name.0),
        RData::NS(name) => name_text(&name.0),
        RData::MX(mx) => format!("{} {}", mx.preference(), name_text(mx.exchange())),
        RData::TXT(txt) => txt
            .txt_data()
            .iter()
            .map(|part| String::from_utf8_lossy(part).into_owned())
            .collect::<String>(),
        _ => return None,
    })
}

pub(super) fn name_text(name: &Name) -> String {
    name.to_utf8().trim_end_matches('.').to_ascii_lowercase()
}

/// An expected value in the form answers are compared in.
pub(super) fn normalise(record_type: RecordType, value: &str) -> Result<String, String> {
    let text = value.trim();
    match record_type {
        RecordType::A => text
            .parse::<std::net::Ipv4Addr>()
            .map(|ip| ip.to_string())
            .map_err(|_| format!("{value:?} is not an IPv4 address (type A)")),
        RecordType::AAAA => text
            .parse::<std::net::Ipv6Addr>()
            .map(|ip| ip.to_string())
            .map_err(|_| format!("{value:?} is not an IPv6 address (type AAAA)")),
        RecordType::MX => {
            let mut parts = text.split_whitespace();
            match (
                parts.next().and_then(|p| p.parse::<u16>().ok()),
                parts.next(),
                parts.next(),
            ) {
                (Some(preference), Some(host), None) => Ok(format!(
                    "{preference} {}",
                    host.trim_end_matches('.').to_ascii_lowercase()
                )),
                _ => Err(format!(
                    "{value:?} is not an MX answer: expected PREFERENCE HOST (10 mail.example.com)"
                )),
            }
        }
        RecordType::CNAME | RecordType::NS => Ok(text.trim_end_matches('.').to_ascii_lowercase()),
        _ => Ok(value.to_string()),
    }
}

pub(super) fn parse_server(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    text.parse::<SocketAddr>().ok().or_else(|| {
        text.trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

pub(super) fn rcode_text(code: ResponseCode) -> String {
    match code {
        ResponseCode::NoError => "NOERROR".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::Refused => "REFUSED".into(),
        other => other.to_str().to_ascii_uppercase(),
    }
}

pub(super) fn set_text(set: &BTreeSet<String>) -> String {
    if set.is_empty() {
        "{}".into()
    } else {
        format!("{{{}}}", set.iter().cloned().collect::<Vec<_>>().join(", "))
    }
}

pub(super) fn server_text(label: &str) -> String {
    match label {
        "system" => "the system resolver".into(),
        "listed" => "the listed servers".into(),
        address => address.to_string(),
    }
}

/// A lookup time for messages: loopback answers take fractions of a
/// millisecond, so `45µs`, `0.2ms`, `12ms`, `1.5s`.
pub(super) fn format_lookup(duration: Duration) -> String {
    let millis = duration.as_secs_f64() * 1000.0;
    if millis < 0.1 {
        format!("{}µs", duration.as_micros())
    } else if millis < 10.0 {
        format!("{millis:.1}ms")
    } else if millis < 1000.0 {
        format!("{millis:.0}ms")
    } else {
        format!("{:.1}s", duration.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_values_are_normalised_like_answers() {
        assert_eq!(normalise(RecordType::AAAA, "0:0::1").unwrap(), "::1");
        assert_eq!(
            normalise(RecordType::MX, "10  Mail.Example.com.").unwrap(),
            "10 mail.example.com"
        );
        assert_eq!(
            normalise(RecordType::CNAME, "Edge.Example.com.").unwrap(),
            "edge.example.com"
        );
        assert!(normalise(RecordType::A, "::1").is_err());
    }

    #[test]
    fn lookup_times_keep_fractions_of_a_millisecond() {
        assert_eq!(format_lookup(Duration::from_micros(240)), "0.2ms");
        assert_eq!(format_lookup(Duration::from_micros(45)), "45µs");
        assert_eq!(format_lookup(Duration::from_micros(12_400)), "12ms");
        assert_eq!(format_lookup(Duration::from_millis(1_520)), "1.5s");
    }

    #[test]
    fn servers_default_to_port_53() {
        assert_eq!(
            parse_server("10.0.0.2"),
            Some("10.0.0.2:53".parse().unwrap())
        );
        assert_eq!(
            parse_server("[::1]:5353"),
            Some("[::1]:5353".parse().unwrap())
        );
        assert_eq!(parse_server("dns.example.com"), None);
    }
}
