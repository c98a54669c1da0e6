//! `/metrics` rendering cost, without a network or a scheduler: N http
//! checks, each with a few recorded runs carrying the measurements a real
//! http run reports, then the exposition rendered R times.
//!
//!     cargo bench --bench render -- [N ...]          (default 100 1000 10000)
//!     (under `cargo test --all-targets`: 20 checks, as a smoke run)
//!     RENDER_REPS=20 cargo bench --bench render -- 10000
//!
//! Prints one JSON line per N: render wall time (median, min, max over the
//! repetitions; the process is single-threaded here, so wall ≈ CPU), the
//! exposition's size and line count, and the cost of recording one run.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use vouch::config::SourcedConfig;
use vouch::output::metrics::Metrics;
use vouch::output::server::compress;
use vouch::plan::Plan;
use vouch::probe::Clients;
use vouch::result::{Measure, Measurement, Outcome, Reason};
use vouch::runner::RunRecord;

fn config(checks: usize) -> String {
    let mut yaml = String::from("checks:\n");
    for i in 0..checks {
        yaml.push_str(&format!(
            "  - name: endpoint-{i:05}\n    section: Endpoints\n    severity: critical\n    interval: 10s\n    http: {{ url: \"http://127.0.0.1:9/health\" }}\n"
        ));
    }
    yaml
}

fn http_outcome(i: usize, run: usize) -> Outcome {
    let outcome = if (i + run).is_multiple_of(7) {
        Outcome::fail(Reason::Status, "status 503, expected 200")
    } else {
        Outcome::pass("status 200 in 1.2ms")
    };
    let mut measurements = vec![
        Measurement::new(Measure::HttpStatusCode, 200.0),
        Measurement::new(Measure::HttpContentLengthBytes, 15.0),
        Measurement::new(Measure::HttpRedirects, 0.0),
    ];
    for (phase, seconds) in [
        ("resolve", 0.000_01),
        ("connect", 0.000_12),
        ("processing", 0.000_4),
        ("transfer", 0.000_02),
    ] {
        measurements.push(Measurement::labelled(
            Measure::HttpDurationSeconds,
            &[phase],
            seconds * (1.0 + run as f64 / 10.0),
        ));
    }
    outcome.with_measurements(measurements)
}

fn median(sorted: &[f64]) -> f64 {
    sorted[sorted.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
    // without it, and then a tiny size only shows that it still works.
    let benchmarking = args.iter().any(|a| a == "--bench");
    let sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let sizes = match (sizes.is_empty(), benchmarking) {
        (false, _) => sizes,
        (true, true) => vec![100, 1_000, 10_000],
        (true, false) => vec![20],
    };
    let reps: usize = std::env::var("RENDER_REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(if benchmarking { 10 } else { 2 });
    let clients = Clients::new();
    for n in sizes {
        let source = SourcedConfig::parse(&config(n), "render.yaml", std::path::PathBuf::from("."))
            .expect("the generated config parses");
        let plan =
            Plan::from_source(&source, &clients, |_| None).expect("the generated config is valid");
        let metrics = Metrics::new(&plan.checks);
        let runs = 3;
        let started = Instant::now();
        for run in 0..runs {
            for (i, check) in plan.checks.iter().enumerate() {
                let record = RunRecord {
                    check: Arc::clone(check),
                    outcome: http_outcome(i, run),
                    started_at: SystemTime::now(),
                    duration: Duration::from_micros(700 + (i as u64 % 5000)),
                };
                let reported = record.outcome.verdict;
                metrics.run_started(Duration::from_micros(300));
                metrics.run_finished(&record, reported, true);
            }
        }
        let record_us = started.elapsed().as_secs_f64() * 1e6 / (runs * n) as f64;
        let mut times = Vec::with_capacity(reps);
        let mut size = 0;
        let mut lines = 0;
        for _ in 0..reps {
            let started = Instant::now();
            let text = metrics.encode();
            times.push(started.elapsed().as_secs_f64() * 1e3);
            size = text.len();
            lines = text.lines().filter(|l| !l.starts_with('#')).count();
        }
        assert!(
            lines > 30 * n,
            "{n} checks gave only {lines} series: the rendering lost some"
        );
        times.sort_by(f64::total_cmp);
        // What a scraper that sends `Accept-Encoding: gzip` (Prometheus)
        // costs on top: the compression, and the bytes it saves.
        let text = metrics.encode();
        let mut gzip_times = Vec::with_capacity(reps);
        let mut gzip_size = 0;
        for _ in 0..reps {
            let started = Instant::now();
            gzip_size = compress(text.as_bytes()).expect("gzip").len();
            gzip_times.push(started.elapsed().as_secs_f64() * 1e3);
        }
        gzip_times.sort_by(f64::total_cmp);
        println!(
            "{{\"checks\":{n},\"render_ms_median\":{:.2},\"render_ms_min\":{:.2},\"render_ms_max\":{:.2},\"bytes\":{size},\"series\":{lines},\"record_run_us\":{record_us:.2},\"gzip_ms_median\":{:.2},\"gzip_bytes\":{gzip_size},\"reps\":{reps}}}",
            median(&times),
            times[0],
            times[times.len() - 1],
            median(&gzip_times),
        );
    }
}
