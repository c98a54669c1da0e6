//! Config validation: every fixture under `tests/fixtures/invalid` is one
//! mistake (or one file of several) whose leading `# expect: ...` comment
//! lines are exactly the lines `vouch validate` prints for it; every
//! shipped example under `config/` loads without problems.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use vouch::plan::Plan;
use vouch::probe::Clients;

const INVALID_DIR: &str = "tests/fixtures/invalid";
const EXAMPLES_DIR: &str = "config";

/// The YAML files of `dir`, sorted, as paths relative to the package root
/// (cargo runs tests there), so messages name them as a user would.
fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("cannot list {dir}: {err}"))
        .map(|entry| entry.expect("read a directory entry").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no YAML files in {dir}");
    files
}

/// The `# expect: ` lines of the comment block a fixture starts with.
fn expected_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    text.lines()
        .take_while(|line| line.starts_with('#'))
        .filter_map(|line| line.strip_prefix("# expect:"))
        .map(|rest| rest.strip_prefix(' ').unwrap_or(rest).to_string())
        .collect()
}

/// What is wrong with one fixture, or None when it reports exactly what it
/// expects.
fn fixture_mismatch(path: &Path, clients: &Clients) -> Option<String> {
    let expected = expected_lines(path);
    if expected.is_empty() || expected.iter().any(|line| line.trim().is_empty()) {
        return Some(format!(
            "{}: every fixture starts with non-empty `# expect: <message>` lines",
            path.display()
        ));
    }
    let actual: Vec<String> = match Plan::load(path, clients) {
        Ok(plan) => {
            return Some(format!(
                "{}: loaded without problems ({} checks), expected:\n  {}",
                path.display(),
                plan.checks.len(),
                expected.join("\n  ")
            ))
        }
        Err(err) => err.to_string().lines().map(str::to_string).collect(),
    };
    (actual != expected).then(|| {
        format!(
            "{}:\n expected:\n  {}\n actual:\n  {}",
            path.display(),
            expected.join("\n  "),
            actual.join("\n  ")
        )
    })
}

#[test]
fn every_invalid_fixture_reports_exactly_its_expected_problems() {
    let clients = Clients::new();
    let fixtures = yaml_files(INVALID_DIR);
    let mismatches: Vec<String> = fixtures
        .iter()
        .filter_map(|path| fixture_mismatch(path, &clients))
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} of {} fixtures do not report what they expect:\n\n{}",
        mismatches.len(),
        fixtures.len(),
        mismatches.join("\n\n")
    );
}

#[test]
fn a_fixture_without_an_expect_line_is_itself_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no_expectation.yaml");
    std::fs::write(&path, "# just a comment\nbogus: 1\n").unwrap();
    let mismatch = fixture_mismatch(&path, &Clients::new()).expect("a mismatch");
    assert!(mismatch.contains("`# expect: <message>`"), "{mismatch}");
}

#[test]
fn expect_lines_are_read_only_from_the_leading_comment_block() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.yaml");
    std::fs::write(
        &path,
        "# expect: first\n# a note\n# expect: second\nchecks: []\n# expect: not this\n",
    )
    .unwrap();
    assert_eq!(expected_lines(&path), ["first", "second"]);
}

#[test]
fn the_shipped_example_configs_load_without_problems() {
    let clients = Clients::new();
    for path in yaml_files(EXAMPLES_DIR) {
        match Plan::load(&path, &clients) {
            Ok(plan) => assert!(
                !plan.checks.is_empty(),
                "{} has no checks; an example should show some",
                path.display()
            ),
            Err(err) => panic!("{} does not load:\n{err}", path.display()),
        }
    }
}

/// `vouch ARGS` with `env` set and every other vouch variable removed, so
/// the developer's environment cannot change the outcome.
fn vouch_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vouch"));
    command.args(args).stdin(Stdio::null());
    for key in [
        "RUST_LOG",
        "VOUCH_TEST_UNSET_TOKEN",
        "VOUCH_CONFIG",
        "VOUCH_LISTEN_ADDRESS",
        "VOUCH_MAX_CONCURRENT_RUNS",
        "VOUCH_SHUTDOWN_GRACE",
    ] {
        command.env_remove(key);
    }
    command.envs(env.iter().copied());
    command.output().expect("run the vouch binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn example() -> String {
    yaml_files(EXAMPLES_DIR)[0].display().to_string()
}

#[test]
fn a_bad_environment_override_is_reported_naming_the_variable() {
    let config = example();
    let out = vouch_with_env(
        &["validate", "--config", &config],
        &[("VOUCH_MAX_CONCURRENT_RUNS", "many")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "environment: $VOUCH_MAX_CONCURRENT_RUNS: expected a whole number of at least 1, got \"many\"\n"
    );
    assert_eq!(text(&out.stdout), "");
}

#[test]
fn every_bad_environment_override_is_listed_with_the_problems_of_the_file() {
    let out = vouch_with_env(
        &[
            "validate",
            "--config",
            "tests/fixtures/invalid/empty_name.yaml",
        ],
        &[
            ("VOUCH_MAX_CONCURRENT_RUNS", "0"),
            ("VOUCH_SHUTDOWN_GRACE", "5"),
            ("VOUCH_LISTEN_ADDRESS", "9847"),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let mut expected = vec![
        "environment: $VOUCH_LISTEN_ADDRESS: invalid listen address \"9847\": expected HOST:PORT (e.g. 0.0.0.0:9847)".to_string(),
        "environment: $VOUCH_MAX_CONCURRENT_RUNS: expected a whole number of at least 1, got \"0\"".to_string(),
        "environment: $VOUCH_SHUTDOWN_GRACE: invalid duration \"5\": expected a number followed by ms, s, m, h or d (e.g. 30s)".to_string(),
    ];
    expected.extend(expected_lines(Path::new(
        "tests/fixtures/invalid/empty_name.yaml",
    )));
    assert_eq!(
        text(&out.stderr).lines().collect::<Vec<_>>(),
        expected,
        "problems with the environment come first, then those of the file"
    );
}

#[test]
fn good_environment_overrides_are_accepted() {
    let config = example();
    let out = vouch_with_env(
        &["validate", "--config", &config],
        &[
            ("VOUCH_MAX_CONCURRENT_RUNS", "4"),
            ("VOUCH_SHUTDOWN_GRACE", "10s"),
            ("VOUCH_LISTEN_ADDRESS", "127.0.0.1:0"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn the_config_path_may_come_from_the_environment() {
    let out = vouch_with_env(
        &["validate"],
        &[("VOUCH_CONFIG", "tests/fixtures/invalid/empty_name.yaml")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr).lines().collect::<Vec<_>>(),
        expected_lines(Path::new("tests/fixtures/invalid/empty_name.yaml"))
    );
}

#[test]
fn validate_refuses_a_config_without_checks() {
    let dir = tempfile::tempdir().unwrap();
    for (config, line) in [("checks: []\n", ":1"), ("# nothing yet\n", "")] {
        let path = dir.path().join("empty.yaml");
        std::fs::write(&path, config).unwrap();
        let path = path.display().to_string();
        let out = vouch_with_env(&["validate", "--config", &path], &[]);
        assert_eq!(out.status.code(), Some(2), "{config:?}: {}", text_of(&out));
        assert_eq!(
            text(&out.stderr),
            format!("{path}{line}: checks: no checks given: add at least one (examples/ has one of each kind)\n"),
        );
        assert_eq!(text(&out.stdout), "", "no \"ok\" for {config:?}");
    }
}

#[test]
fn validate_warns_about_unset_env_variables_by_name_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vouch.yaml");
    std::fs::write(
        &path,
        "checks:\n  - name: api\n    http:\n      url: http://127.0.0.1:1/\n      bearer_token_env: VOUCH_TEST_UNSET_TOKEN\n  - name: cache\n    redis:\n      url_env: VOUCH_TEST_SET_URL\n",
    )
    .unwrap();
    let path = path.display().to_string();
    let secret = "redis://:hunter2@cache:6379";
    let out = vouch_with_env(
        &["validate", "--config", &path],
        &[("VOUCH_TEST_SET_URL", secret)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
    assert_eq!(
        text(&out.stderr),
        format!("{path}:5: checks[0].http.bearer_token_env: warning: $VOUCH_TEST_UNSET_TOKEN is not set here; the check fails until it is set where vouch runs\n")
    );
    assert_eq!(text(&out.stdout), format!("{path}: ok, 2 checks\n"));
    assert!(!text_of(&out).contains("hunter2"));
}

fn text_of(out: &Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}
