//! The fuzz smoke run of the normal test suite: every committed corpus file
//! under `fuzz/corpus/TARGET` goes through the same function the libFuzzer
//! target `TARGET` calls (fuzz/src/lib.rs), so `cargo test` exercises the
//! parsers with the inputs fuzzing found interesting, without a fuzzer.

#[path = "../../fuzz/src/lib.rs"]
mod targets;

use std::path::Path;

fn run_corpus(target: &str, body: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|err| panic!("{}: {err}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        // A panic names the input that caused it.
        let outcome = std::panic::catch_unwind(|| body(&data));
        assert!(outcome.is_ok(), "{target} panicked on {}", path.display());
        count += 1;
    }
    assert!(count > 0, "no corpus for {target} in {}", dir.display());
}

#[test]
fn config_corpus() {
    run_corpus("config", targets::config);
}

#[test]
fn units_corpus() {
    run_corpus("units", targets::units);
}

#[test]
fn json_selector_corpus() {
    run_corpus("json_selector", targets::json_selector);
}

#[test]
fn redis_info_corpus() {
    run_corpus("redis_info", targets::redis_info);
}

#[test]
fn registry_headers_corpus() {
    run_corpus("registry_headers", targets::registry_headers);
}

#[test]
fn dns_answer_corpus() {
    run_corpus("dns_answer", targets::dns_answer);
}

#[test]
fn certificate_corpus() {
    run_corpus("certificate", targets::certificate);
}

#[test]
fn registry_answers_corpus() {
    run_corpus("registry_answers", targets::registry_answers);
}

#[test]
fn key_vault_page_corpus() {
    run_corpus("key_vault_page", targets::key_vault_page);
}

#[test]
fn backup_url_corpus() {
    run_corpus("backup_url", targets::backup_url);
}

#[test]
fn web_config_corpus() {
    run_corpus("web_config", targets::web_config);
}

#[test]
fn gate_query_corpus() {
    run_corpus("gate_query", targets::gate_query);
}

#[test]
fn yaml_depth_corpus() {
    run_corpus("yaml_depth", targets::yaml_depth);
}
