//! Running a `dns` check: every upstream asked at once, each answer
//! measured and judged, and in propagation mode compared with the others.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::ResolveError;

use super::answer::{format_lookup, majority, rcode_text, server_text, set_text, Answer};
use super::expected::Expected;
use super::{DnsProbe, Upstream};
use crate::config::format_duration;
use crate::probe::ProbeContext;
use crate::result::{Failure, Measure, Measurement, Outcome, Reason};

/// The servers that answered: label, answer, lookup time.
type Answered<'a> = Vec<(&'a str, Answer, Duration)>;

impl DnsProbe {
    pub(super) async fn execute(&self, ctx: &ProbeContext) -> Outcome {
        let (answers, contains) = match self.expected_sets(ctx).await {
            Ok(sets) => sets,
            Err(outcome) => return outcome,
        };
        ctx.progress.set("waiting for DNS answers");
        let lookups = futures::future::join_all(
            self.upstreams
                .iter()
                .map(|upstream| self.lookup(ctx, upstream)),
        )
        .await;
        let mut measurements = Vec::new();
        let mut answered = Vec::new();
        let mut failures = Vec::new();
        for (upstream, (result, elapsed)) in self.upstreams.iter().zip(lookups) {
            let server = upstream.label.as_str();
            match result {
                Ok(answer) => {
                    measure(&mut measurements, server, elapsed, Some(&answer));
                    answered.push((server, answer, elapsed));
                }
                Err(failure) => {
                    measure(&mut measurements, server, elapsed, None);
                    failures.push((server, failure));
                }
            }
        }
        if let Some((_, failure)) = failures.first() {
            let text = failures
                .iter()
                .map(|(server, f)| format!("{}: {}", server_text(server), f.message))
                .collect::<Vec<_>>()
                .join("; ");
            return Outcome::error(failure.reason, text).with_measurements(measurements);
        }
        let mut broken: Vec<(Reason, String)> = Vec::new();
        if self.propagation {
            broken.extend(self.disagreement(&answered, answers.as_ref(), &mut measurements));
        }
        for (server, answer, elapsed) in &answered {
            let prefix = if answered.len() > 1 {
                format!("{server}: ")
            } else {
                String::new()
            };
            for (reason, message) in self.evaluate(answer, *elapsed, answers.as_ref(), &contains) {
                // In propagation mode, the disagreement already names a
                // server with other answers.
                if self.propagation && reason == Reason::DnsAnswers && !broken.is_empty() {
                    continue;
                }
                broken.push((reason, format!("{prefix}{message}")));
            }
        }
        Outcome::from_failures(broken.iter().map(|(r, m)| (*r, m.as_str())))
            .unwrap_or_else(|| self.passed(&answered))
            .with_measurements(measurements)
    }

    /// The expected `answers` and `contains` of this run (an Ingress's
    /// addresses are read now); an `error` when they cannot be known.
    async fn expected_sets(
        &self,
        ctx: &ProbeContext,
    ) -> Result<(Option<BTreeSet<String>>, BTreeSet<String>), Outcome> {
        let answers = match &self.answers {
            Some(expected) => Some(expected.resolve(ctx).await.map_err(|u| u.into_error())?),
            None => None,
        };
        let contains = match &self.contains {
            Some(expected) => expected.resolve(ctx).await.map_err(|u| u.into_error())?,
            None => BTreeSet::new(),
        };
        Ok((answers, contains))
    }

    /// Propagation mode: the servers whose answer differs from the
    /// reference, which is the expected answers if given, else the answer
    /// most servers gave (the first server's on a tie).
    fn disagreement(
        &self,
        answered: &Answered<'_>,
        answers: Option<&BTreeSet<String>>,
        measurements: &mut Vec<Measurement>,
    ) -> Option<(Reason, String)> {
        let reference: Answer = match answers {
            Some(set) => Answer {
                rcode: self.rcode,
                values: set.clone(),
                min_ttl: None,
            },
            None => majority(answered),
        };
        let mut disagreeing = Vec::new();
        for (server, answer, _) in answered {
            let agrees = answer.rcode == reference.rcode && answer.values == reference.values;
            measurements.push(Measurement::labelled(
                Measure::DnsServerAgreementSuccess,
                &[server],
                if agrees { 1.0 } else { 0.0 },
            ));
            if !agrees {
                disagreeing.push(format!("{server} answered {}", answer.describe()));
            }
        }
        if disagreeing.is_empty() {
            return None;
        }
        let against = if answers.is_some() {
            "the expected"
        } else {
            "the majority's"
        };
        Some((
            Reason::DnsDisagreement,
            format!(
                "{} of {} servers disagree with {against} {}: {}",
                disagreeing.len(),
                answered.len(),
                reference.describe(),
                disagreeing.join("; ")
            ),
        ))
    }

    /// The `pass` of a run whose every answer met every expectation.
    fn passed(&self, answered: &Answered<'_>) -> Outcome {
        let (_, answer, _) = &answered[0];
        let slowest = answered
            .iter()
            .map(|(_, _, e)| *e)
            .max()
            .unwrap_or_default();
        let servers = if answered.len() > 1 {
            format!(" from all {} servers", answered.len())
        } else {
            String::new()
        };
        Outcome::pass(format!(
            "{} {}: {}{servers} in {}",
            self.name,
            self.record_type,
            answer.describe(),
            format_lookup(slowest)
        ))
    }

    /// Every broken expectation of one server's answer.
    fn evaluate(
        &self,
        answer: &Answer,
        elapsed: Duration,
        answers: Option<&BTreeSet<String>>,
        contains: &BTreeSet<String>,
    ) -> Vec<(Reason, String)> {
        let mut broken = Vec::new();
        if answer.rcode != self.rcode {
            broken.push((
                Reason::DnsRcode,
                format!(
                    "{} {} answered {}, expected {}",
                    self.name,
                    self.record_type,
                    rcode_text(answer.rcode),
                    rcode_text(self.rcode)
                ),
            ));
        } else {
            if let Some(expected) = answers {
                if &answer.values != expected {
                    broken.push((
                        Reason::DnsAnswers,
                        format!(
                            "answers {}, expected {}{}",
                            set_text(&answer.values),
                            set_text(expected),
                            self.answers
                                .as_ref()
                                .map(Expected::source)
                                .unwrap_or_default()
                        ),
                    ));
                }
            }
            let missing: BTreeSet<String> = contains.difference(&answer.values).cloned().collect();
            if !missing.is_empty() {
                broken.push((
                    Reason::DnsAnswers,
                    format!(
                        "answers {} lack {}",
                        set_text(&answer.values),
                        set_text(&missing)
                    ),
                ));
            }
            if let Some(min) = self.min_answers {
                if answer.values.len() < min {
                    broken.push((
                        Reason::DnsAnswers,
                        format!("{} answers, expected at least {min}", answer.values.len()),
                    ));
                }
            }
        }
        if let Some(max) = self.max_latency {
            if elapsed > max {
                broken.push((
                    Reason::Latency,
                    format!(
                        "lookup took {}, more than max_latency {}",
                        format_lookup(elapsed),
                        format_duration(max)
                    ),
                ));
            }
        }
        broken
    }

    async fn lookup(
        &self,
        ctx: &ProbeContext,
        upstream: &Upstream,
    ) -> (Result<Answer, Failure>, Duration) {
        let resolver = match (&upstream.resolver, &ctx.clients.dns.0) {
            (Some(resolver), _) => resolver,
            (None, Ok(system)) => system,
            (None, Err(message)) => {
                return (
                    Err(Failure {
                        reason: Reason::Dns,
                        message: message.clone(),
                    }),
                    Duration::ZERO,
                )
            }
        };
        let started = Instant::now();
        let result = resolver.lookup(self.name.clone(), self.record_type).await;
        let elapsed = started.elapsed();
        let answer = match result {
            Ok(lookup) => Ok(Answer::from_records(self.record_type, lookup.records())),
            Err(err) => self.failure(&err),
        };
        (answer, elapsed)
    }

    /// A negative answer (NXDOMAIN, no records, SERVFAIL...) is an answer;
    /// anything else is a failure to get one.
    fn failure(&self, err: &ResolveError) -> Result<Answer, Failure> {
        let Some(proto) = err.proto() else {
            return Err(Failure {
                reason: Reason::Dns,
                message: err.to_string(),
            });
        };
        match proto.kind() {
            ProtoErrorKind::NoRecordsFound { response_code, .. } => Ok(Answer {
                rcode: *response_code,
                values: BTreeSet::new(),
                min_ttl: None,
            }),
            ProtoErrorKind::Timeout => Err(Failure {
                reason: Reason::Timeout,
                message: "no answer (query timed out)".into(),
            }),
            ProtoErrorKind::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                Err(Failure {
                    reason: Reason::ConnectionRefused,
                    message: "connection refused".into(),
                })
            }
            _ => Err(Failure {
                reason: Reason::Dns,
                message: proto.to_string(),
            }),
        }
    }
}

/// One server's lookup time, and its answer count and lowest TTL when it
/// answered.
fn measure(
    measurements: &mut Vec<Measurement>,
    server: &str,
    elapsed: Duration,
    answer: Option<&Answer>,
) {
    measurements.push(Measurement::labelled(
        Measure::DnsLookupDurationSeconds,
        &[server],
        elapsed.as_secs_f64(),
    ));
    let Some(answer) = answer else { return };
    measurements.push(Measurement::labelled(
        Measure::DnsAnswers,
        &[server],
        answer.values.len() as f64,
    ));
    if let Some(ttl) = answer.min_ttl {
        measurements.push(Measurement::labelled(
            Measure::DnsMinTtlSeconds,
            &[server],
            f64::from(ttl),
        ));
    }
}
