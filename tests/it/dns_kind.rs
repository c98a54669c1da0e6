//! The `dns` kind against real dnsmasq servers on loopback: every record
//! type, NXDOMAIN expected and not, servers that disagree, a server that
//! never answers, TCP, and the config problems of a `dns:` block. Checks
//! run in-process through the plan and the runner.
use crate::support;

use support::kind::{self, expect, CLIENTS};

use std::path::Path;
use std::time::Duration;

use support::dnsmasq::{Dnsmasq, Relay, RelayMode, Silent};
use vouch::result::{Outcome, Reason, Verdict};
use vouch::runner::run_once;

fn config_yaml(timeout: &str, dns: &str) -> String {
    kind::one_check_yaml("dns", timeout, dns)
}

async fn run_with(timeout: &str, dns: &str) -> Outcome {
    let yaml = config_yaml(timeout, dns);
    let check = kind::plan(&yaml, Path::new("."));
    run_once(check, CLIENTS.clone()).await.outcome
}

async fn run(dns: &str) -> Outcome {
    run_with("10s", dns).await
}

/// The config error of a `dns:` block that must not decode or plan.
fn config_error(dns: &str) -> String {
    kind::config_error(&config_yaml("10s", dns))
}

/// The value of measurement `name` for `server`.
fn measured(outcome: &Outcome, name: &str, server: &str) -> Option<f64> {
    outcome
        .measurements
        .iter()
        .find(|m| m.measure.name() == name && m.label_values() == [server])
        .map(|m| m.value)
}

/// One dnsmasq with a record of every type.
fn zone() -> Dnsmasq {
    Dnsmasq::start(&[
        "--address=/name.test/10.1.2.3",
        "--host-record=dual.test,10.0.0.7,fd00::7",
        "--host-record=multi.test,10.0.0.8",
        "--host-record=multi.test,10.0.0.9",
        "--cname=alias.test,dual.test",
        "--txt-record=txt.test,v=spf1 -all",
        "--mx-host=mail.test,mx1.mail.test,10",
        "--mx-host=mail.test,mx2.mail.test,20",
        // NS records: type 2, data ns1.test in wire format.
        "--dns-rr=zone.test,2,036E7331047465737400",
        "--address=/gone.test/",
        "--local-ttl=300",
    ])
}

#[tokio::test]
async fn every_record_type_is_answered_and_compared() {
    let dns = zone();
    let server = dns.server();
    let cases = [
        ("name.test", "A", "[10.1.2.3]"),
        ("dual.test", "AAAA", "[\"fd00::7\"]"),
        ("alias.test", "CNAME", "[dual.test]"),
        ("txt.test", "TXT", "[\"v=spf1 -all\"]"),
        (
            "mail.test",
            "MX",
            "[\"10 mx1.mail.test\", \"20 mx2.mail.test.\"]",
        ),
        ("zone.test", "NS", "[ns1.test]"),
    ];
    for (name, record_type, answers) in cases {
        let outcome = run(&format!(
            "name: {name}\ntype: {record_type}\nservers: [\"{server}\"]\nexpect:\n  answers: {answers}"
        ))
        .await;
        expect(
            &outcome,
            Verdict::Pass,
            Reason::Ok,
            &format!("{name}. {record_type}"),
        );
        assert!(
            measured(&outcome, "vouch_dns_answers", &server).is_some_and(|n| n >= 1.0),
            "{name} {record_type}: {outcome:?}"
        );
        assert!(
            measured(&outcome, "vouch_dns_lookup_duration_seconds", &server)
                .is_some_and(|d| d > 0.0),
            "{outcome:?}"
        );
    }
    let a = run(&format!(
        "name: name.test\nservers: [\"{server}\"]\nexpect: {{ answers: [10.1.2.3] }}"
    ))
    .await;
    expect(
        &a,
        Verdict::Pass,
        Reason::Ok,
        "name.test. A: {10.1.2.3} in ",
    );
    assert_eq!(measured(&a, "vouch_dns_answers", &server), Some(1.0));
    assert_eq!(
        measured(&a, "vouch_dns_min_ttl_seconds", &server),
        Some(300.0)
    );
    println!(
        "loopback DNS lookup: {:.3} ms",
        measured(&a, "vouch_dns_lookup_duration_seconds", &server).unwrap() * 1000.0
    );
    // A CNAME followed to its address: only the A records are the answer.
    let followed = run(&format!(
        "name: alias.test\nservers: [\"{server}\"]\nexpect: {{ answers: [10.0.0.7] }}"
    ))
    .await;
    expect(&followed, Verdict::Pass, Reason::Ok, "{10.0.0.7}");
}

#[tokio::test]
async fn answers_that_differ_or_are_too_few_fail_naming_them() {
    let dns = zone();
    let server = dns.server();
    let base = format!("name: multi.test\nservers: [\"{server}\"]\n");
    let equal = run(&format!("{base}expect: {{ answers: [10.0.0.8] }}")).await;
    expect(
        &equal,
        Verdict::Fail,
        Reason::DnsAnswers,
        "answers {10.0.0.8, 10.0.0.9}, expected {10.0.0.8}",
    );
    let contains = run(&format!(
        "{base}expect: {{ contains: [10.0.0.9, 10.0.0.10] }}"
    ))
    .await;
    expect(
        &contains,
        Verdict::Fail,
        Reason::DnsAnswers,
        "answers {10.0.0.8, 10.0.0.9} lack {10.0.0.10}",
    );
    let enough = run(&format!(
        "{base}expect: {{ contains: [10.0.0.9], min_answers: 2 }}"
    ))
    .await;
    expect(&enough, Verdict::Pass, Reason::Ok, "{10.0.0.8, 10.0.0.9}");
    let few = run(&format!("{base}expect: {{ min_answers: 3 }}")).await;
    expect(
        &few,
        Verdict::Fail,
        Reason::DnsAnswers,
        "2 answers, expected at least 3",
    );
    assert_eq!(measured(&few, "vouch_dns_answers", &server), Some(2.0));
}

#[tokio::test]
async fn nxdomain_fails_unless_it_is_expected() {
    let dns = zone();
    let server = dns.server();
    let unexpected = run(&format!("name: old.gone.test\nservers: [\"{server}\"]")).await;
    expect(
        &unexpected,
        Verdict::Fail,
        Reason::DnsRcode,
        "old.gone.test. A answered NXDOMAIN, expected NOERROR",
    );
    assert_eq!(
        measured(&unexpected, "vouch_dns_answers", &server),
        Some(0.0)
    );
    assert_eq!(
        measured(&unexpected, "vouch_dns_min_ttl_seconds", &server),
        None
    );

    let expected = run(&format!(
        "name: old.gone.test\nservers: [\"{server}\"]\nexpect: {{ rcode: NXDOMAIN }}"
    ))
    .await;
    expect(&expected, Verdict::Pass, Reason::Ok, "NXDOMAIN");

    // A name that exists is a failure when it must not.
    let exists = run(&format!(
        "name: name.test\nservers: [\"{server}\"]\nexpect: {{ rcode: NXDOMAIN }}"
    ))
    .await;
    expect(
        &exists,
        Verdict::Fail,
        Reason::DnsRcode,
        "name.test. A answered NOERROR, expected NXDOMAIN",
    );
}

#[tokio::test]
async fn propagation_names_the_server_that_disagrees() {
    let current = Dnsmasq::start(&["--address=/api.test/10.1.2.3"]);
    let also_current = Dnsmasq::start(&["--address=/api.test/10.1.2.3"]);
    let stale = Dnsmasq::start(&["--address=/api.test/10.9.9.9"]);
    let servers = format!(
        "[\"{}\", \"{}\", \"{}\"]",
        current.server(),
        stale.server(),
        also_current.server()
    );

    let majority = run(&format!(
        "name: api.test\nservers: {servers}\npropagation: true"
    ))
    .await;
    expect(
        &majority,
        Verdict::Fail,
        Reason::DnsDisagreement,
        &format!(
            "1 of 3 servers disagree with the majority's {{10.1.2.3}}: {} answered {{10.9.9.9}}",
            stale.server()
        ),
    );
    for (server, agrees) in [
        (current.server(), 1.0),
        (stale.server(), 0.0),
        (also_current.server(), 1.0),
    ] {
        assert_eq!(
            measured(&majority, "vouch_dns_server_agreement_success", &server),
            Some(agrees),
            "{server}: {majority:?}"
        );
        assert_eq!(measured(&majority, "vouch_dns_answers", &server), Some(1.0));
    }

    // Against an expected set, the new address: only the stale one is named.
    let expected = run(&format!(
        "name: api.test\nservers: {servers}\npropagation: true\nexpect: {{ answers: [10.9.9.9] }}"
    ))
    .await;
    expect(
        &expected,
        Verdict::Fail,
        Reason::DnsDisagreement,
        &format!(
            "2 of 3 servers disagree with the expected {{10.9.9.9}}: {} answered {{10.1.2.3}}; {} answered {{10.1.2.3}}",
            current.server(),
            also_current.server()
        ),
    );

    // A server that does not know the name at all disagrees too.
    let unaware = Dnsmasq::start(&["--address=/api.test/"]);
    let nxdomain = run(&format!(
        "name: api.test\nservers: [\"{}\", \"{}\"]\npropagation: true\nexpect: {{ answers: [10.1.2.3] }}",
        current.server(),
        unaware.server()
    ))
    .await;
    expect(
        &nxdomain,
        Verdict::Fail,
        Reason::DnsDisagreement,
        &format!(
            "1 of 2 servers disagree with the expected {{10.1.2.3}}: {} answered NXDOMAIN",
            unaware.server()
        ),
    );
    assert_eq!(
        measured(
            &nxdomain,
            "vouch_dns_server_agreement_success",
            &unaware.server()
        ),
        Some(0.0)
    );

    let agreeing = format!("[\"{}\", \"{}\"]", current.server(), also_current.server());
    let done = run(&format!(
        "name: api.test\nservers: {agreeing}\npropagation: true\nexpect: {{ answers: [10.1.2.3] }}"
    ))
    .await;
    expect(
        &done,
        Verdict::Pass,
        Reason::Ok,
        "{10.1.2.3} from all 2 servers",
    );
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_timeout_naming_it() {
    let silent = Silent::bind();
    let alone = run(&format!(
        "name: name.test\nservers: [\"{}\"]\nquery_timeout: 200ms",
        silent.server()
    ))
    .await;
    expect(
        &alone,
        Verdict::Error,
        Reason::Timeout,
        &format!("{}: no answer (query timed out)", silent.server()),
    );

    // A live server beside the silent one must answer within the query
    // timeout even on a loaded host: 2s, not 200ms (the silent server costs
    // two of them).
    let dns = zone();
    let propagation = run(&format!(
        "name: name.test\nservers: [\"{}\", \"{}\"]\npropagation: true\nquery_timeout: 2s",
        dns.server(),
        silent.server()
    ))
    .await;
    expect(
        &propagation,
        Verdict::Error,
        Reason::Timeout,
        &format!("{}: no answer", silent.server()),
    );
    // The server that answered is still measured.
    assert_eq!(
        measured(&propagation, "vouch_dns_answers", &dns.server()),
        Some(1.0)
    );
    // Nothing listening at all looks the same over UDP: no answer.
    let port = support::closed_port();
    let nobody = run(&format!(
        "name: name.test\nservers: [\"127.0.0.1:{port}\"]\nquery_timeout: 200ms"
    ))
    .await;
    expect(
        &nobody,
        Verdict::Error,
        Reason::Timeout,
        &format!("127.0.0.1:{port}: no answer (query timed out)"),
    );
}

#[tokio::test]
async fn a_slow_answer_fails_max_latency() {
    // Every answer is held 400ms by the relay: slower than 100ms on any
    // host, however loaded.
    let dns = zone();
    let relay = Relay::start(RelayMode::Forward {
        to: dns.addr,
        delay: Duration::from_millis(400),
    })
    .await;
    let outcome = run(&format!(
        "name: name.test\nservers: [\"{}\"]\nquery_timeout: 4s\nexpect: {{ answers: [10.1.2.3], max_latency: 100ms }}",
        relay.server()
    ))
    .await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::Latency,
        "more than max_latency 100ms",
    );
}

#[tokio::test]
async fn a_silent_server_that_answers_again_passes_on_the_next_run() {
    let dns = zone();
    let relay = Relay::start(RelayMode::Drop).await;
    let check = kind::plan(
        &config_yaml(
            "10s",
            &format!(
                "name: name.test\nservers: [\"{}\"]\nquery_timeout: 1s\nexpect: {{ answers: [10.1.2.3] }}",
                relay.server()
            ),
        ),
        Path::new("."),
    );
    let silent = run_once(check.clone(), CLIENTS.clone()).await.outcome;
    expect(
        &silent,
        Verdict::Error,
        Reason::Timeout,
        &format!("{}: no answer (query timed out)", relay.server()),
    );
    relay.set(RelayMode::Forward {
        to: dns.addr,
        delay: Duration::ZERO,
    });
    let back = run_once(check, CLIENTS.clone()).await.outcome;
    expect(&back, Verdict::Pass, Reason::Ok, "10.1.2.3");
}

#[tokio::test]
async fn a_changed_answer_is_seen_on_the_next_run() {
    // Both answers carry a one-hour TTL: a resolver that cached would give
    // the old address on the second run. vouch asks again every run.
    let old = Dnsmasq::start(&["--address=/moved.test/10.1.1.1", "--local-ttl=3600"]);
    let new = Dnsmasq::start(&["--address=/moved.test/10.2.2.2", "--local-ttl=3600"]);
    let relay = Relay::start(RelayMode::Forward {
        to: old.addr,
        delay: Duration::ZERO,
    })
    .await;
    let check = kind::plan(
        &config_yaml(
            "10s",
            &format!(
                "name: moved.test\nservers: [\"{}\"]\nexpect: {{ answers: [10.1.1.1] }}",
                relay.server()
            ),
        ),
        Path::new("."),
    );
    let before = run_once(check.clone(), CLIENTS.clone()).await.outcome;
    expect(&before, Verdict::Pass, Reason::Ok, "10.1.1.1");
    relay.set(RelayMode::Forward {
        to: new.addr,
        delay: Duration::ZERO,
    });
    let after = run_once(check, CLIENTS.clone()).await.outcome;
    expect(&after, Verdict::Fail, Reason::DnsAnswers, "10.2.2.2");
}

#[tokio::test]
async fn a_refused_tcp_connection_is_connection_refused() {
    let port = support::closed_port();
    let outcome = run(&format!(
        "name: name.test\nservers: [\"127.0.0.1:{port}\"]\nprotocol: tcp"
    ))
    .await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::ConnectionRefused,
        &format!("127.0.0.1:{port}: connection refused"),
    );
}

#[tokio::test]
async fn a_server_that_hangs_up_without_answering_is_a_dns_error() {
    // Over TCP the kernel accepts, and the server closes at once: no
    // timeout, no refusal, a broken exchange.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    let outcome = run(&format!(
        "name: name.test\nservers: [\"{addr}\"]\nprotocol: tcp"
    ))
    .await;
    expect(&outcome, Verdict::Error, Reason::Dns, &format!("{addr}: "));
    server.abort();
}

#[tokio::test]
async fn tcp_queries_are_answered() {
    let dns = zone();
    let outcome = run(&format!(
        "name: dual.test\ntype: AAAA\nservers: [\"{}\"]\nprotocol: tcp\nexpect: {{ answers: [\"fd00::7\"] }}",
        dns.server()
    ))
    .await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "{fd00::7}");
}

#[tokio::test]
async fn the_system_resolver_answers_localhost_from_the_hosts_file() {
    let outcome = run("name: localhost\nexpect: { contains: [127.0.0.1] }").await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "127.0.0.1");
    assert!(measured(&outcome, "vouch_dns_answers", "system").is_some_and(|n| n >= 1.0));
}

#[test]
fn config_problems_name_the_key() {
    assert_eq!(
        config_error("name: a.test\ntype: SRV"),
        "test.yaml:6: checks[0].dns.type: unsupported record type \"SRV\": expected A, AAAA, CNAME, TXT, MX or NS"
    );
    assert_eq!(
        config_error("name: a.test\nservers: [\"ns1.example.com\"]"),
        "test.yaml:6: checks[0].dns.servers[0]: invalid server \"ns1.example.com\": expected an IP address or IP:port"
    );
    assert_eq!(
        config_error("name: a.test\nservers: [\"10.0.0.1\"]\npropagation: true"),
        "test.yaml:7: checks[0].dns.propagation: needs at least two servers to compare"
    );
    assert_eq!(
        config_error("name: a.test\nexpect:\n  answers: [\"::1\"]"),
        "test.yaml:7: checks[0].dns.expect.answers[0]: \"::1\" is not an IPv4 address (type A)"
    );
    assert_eq!(
        config_error("name: a.test\nexpect:\n  rcode: NXDOMAIN\n  min_answers: 1"),
        "test.yaml:7: checks[0].dns.expect.rcode: a NXDOMAIN answer has no records; answers, contains and min_answers cannot hold"
    );
    assert_eq!(
        config_error("name: a.test\nservers: [\"10.0.0.1\"]\nquery_timeout: 5s"),
        "test.yaml:7: checks[0].dns.query_timeout: 5s, asked twice, does not fit in the check's timeout 10s"
    );
    assert_eq!(
        config_error("name: a.test\nprotocol: quic\nservers: [\"10.0.0.1\"]"),
        "test.yaml:6: checks[0].dns.protocol: invalid protocol \"quic\": expected udp or tcp"
    );
}
