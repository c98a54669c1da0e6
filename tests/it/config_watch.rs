//! A config mounted from a ConfigMap reloads by itself: the test lays the
//! file out as kubelet does (`vouch.yaml -> ..data/vouch.yaml`, `..data ->
//! ..<timestamp>`) and swaps `..data` as kubelet's atomic writer does. A
//! good config is taken (the reload counter rises, the new check runs); a
//! bad one is rejected while the old config keeps running, and the
//! failure metrics rise.
use crate::support;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

use support::http_server::{Reply, TestServer};
use support::vouch::Daemon;
use support::wait_until;

fn config(server: &TestServer, names: &[&str]) -> String {
    let mut yaml = String::from("defaults: { interval: 1s, timeout: 1s }\nchecks:\n");
    for name in names {
        yaml.push_str(&format!(
            "  - name: {name}\n    section: s\n    http: {{ url: \"{}\" }}\n",
            server.url("/ok")
        ));
    }
    yaml
}

/// Publishes `text` as kubelet does: a new timestamped directory, then an
/// atomic rename of a fresh `..data` symlink over the old one.
fn publish(volume: &Path, version: u32, text: &str) {
    let dir = format!("..2026_12_07_00_00_0{version}.000");
    std::fs::create_dir(volume.join(&dir)).unwrap();
    std::fs::write(volume.join(&dir).join("vouch.yaml"), text).unwrap();
    symlink(&dir, volume.join("..data_tmp")).unwrap();
    std::fs::rename(volume.join("..data_tmp"), volume.join("..data")).unwrap();
    if !volume.join("vouch.yaml").exists() {
        symlink("..data/vouch.yaml", volume.join("vouch.yaml")).unwrap();
    }
}

fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
}

#[tokio::test]
async fn a_swapped_configmap_is_reloaded_and_a_bad_one_keeps_the_old_config() {
    let server = TestServer::http().await;
    server.route("/ok", Reply::text(200, "ok"));
    let volume = tempfile::tempdir().unwrap();
    publish(volume.path(), 1, &config(&server, &["first"]));
    let daemon = Daemon::start(&volume.path().join("vouch.yaml")).await;
    daemon
        .wait_for_result("first", Duration::from_secs(10))
        .await;
    let metrics = daemon.get_ok("/metrics").await;
    let successes = sample(&metrics, "vouch_config_reloads_total{result=\"success\"}");

    publish(volume.path(), 2, &config(&server, &["first", "second"]));
    wait_until("the new check to run", Duration::from_secs(20), || async {
        daemon.check_names().await.iter().any(|n| n == "second")
    })
    .await;
    daemon
        .wait_for_result("second", Duration::from_secs(10))
        .await;
    let metrics = daemon.get_ok("/metrics").await;
    assert_eq!(
        sample(&metrics, "vouch_config_reloads_total{result=\"success\"}"),
        successes + 1.0
    );
    assert_eq!(sample(&metrics, "vouch_config_last_reload_successful"), 1.0);

    publish(
        volume.path(),
        3,
        "checks:\n  - name: broken\n    http: {url: \"http://x\", bogus: 1}\n",
    );
    wait_until(
        "the bad config to be rejected",
        Duration::from_secs(20),
        || async {
            let metrics = daemon.get_ok("/metrics").await;
            sample(&metrics, "vouch_config_last_reload_successful") == 0.0
        },
    )
    .await;
    let metrics = daemon.get_ok("/metrics").await;
    assert_eq!(
        sample(&metrics, "vouch_config_reloads_total{result=\"failure\"}"),
        1.0
    );
    assert!(
        daemon.logs().contains("checks[0].http"),
        "{}",
        daemon.logs()
    );
    // The old config runs on: both checks keep getting new runs.
    let runs = |check: serde_json::Value| check["recent"].as_array().unwrap().len();
    let before = runs(daemon.check("second").await);
    wait_until(
        "another run of the old config",
        Duration::from_secs(10),
        || async { runs(daemon.check("second").await) > before },
    )
    .await;
    assert_eq!(daemon.check_names().await, ["first", "second"]);
}
