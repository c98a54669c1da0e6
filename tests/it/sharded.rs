//! A sharded install answers for every shard: three `vouch serve --shard
//! I/3 --shard.peers URL` daemons on loopback, each asked for the gate and
//! the JSON API; the answer covers the checks of all three and says which
//! shard runs what; so do one check's JSON and the status page. One shard
//! stopped: the others hold the gate, the page and that shard's checks
//! with its reason. A peer name that does not resolve is a reason too.
use crate::support;

use std::net::TcpListener;
use std::time::Duration;

use support::http_server::{Reply, TestServer};
use support::vouch::Daemon;
use support::{wait_until, write_config};
use vouch::output::peers::Peers;
use vouch::plan::Shard;

const WAIT: Duration = Duration::from_secs(20);

/// A base port `B0` (a multiple of ten) with B0, B0+1, B0+2 free, so the
/// peers' URL can be `http://127.0.0.1:B{shard}`.
fn three_free_ports() -> u16 {
    for _ in 0..200 {
        let base = 20_000 + (rand_u16() % 4_000) * 10;
        let free = (0..3).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no three free ports in a row");
}

fn rand_u16() -> u16 {
    let mut bytes = [0u8; 2];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap();
    u16::from_le_bytes(bytes)
}

fn owner(name: &str) -> u32 {
    (0..3)
        .find(|&index| Shard { index, count: 3 }.owns(name))
        .unwrap()
}

async fn json(daemon: &Daemon, path: &str) -> (u16, serde_json::Value) {
    let (status, body) = daemon.get(path).await.unwrap();
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: {body}")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shard_answers_for_all_and_a_stopped_one_holds_the_gate() {
    let server = TestServer::http().await;
    server.route("/ok", Reply::text(200, "ok"));
    server.route("/broken", Reply::text(503, "down"));
    // Twelve passing checks and one failing, spread over three shards.
    let mut checks = String::new();
    let names: Vec<String> = (0..12).map(|i| format!("api-{i:02}")).collect();
    for name in &names {
        checks.push_str(&format!(
            "  - name: {name}\n    section: post-deploy/api\n    http: {{ url: \"{}\" }}\n",
            server.url("/ok")
        ));
    }
    checks.push_str(&format!(
        "  - name: web-home\n    section: post-deploy/web\n    http: {{ url: \"{}\" }}\n",
        server.url("/broken")
    ));
    let config = write_config(&format!(
        "defaults: {{ interval: 1s, timeout: 1s }}\nchecks:\n{checks}"
    ));
    let owners: Vec<u32> = names.iter().map(|n| owner(n)).collect();
    assert!(
        (0..3).all(|s| owners.contains(&s)),
        "every shard runs a check: {owners:?}"
    );
    let failing_shard = owner("web-home");

    let base = three_free_ports();
    let template = format!("http://127.0.0.1:{}{{shard}}", base / 10);
    let mut daemons = Vec::new();
    for index in 0..3u16 {
        let shard = format!("{index}/3");
        daemons.push(Some(
            Daemon::start_on_port(
                &config.path,
                base + index,
                &[("VOUCH_SHARD", &shard), ("VOUCH_SHARD_PEERS", &template)],
            )
            .await,
        ));
    }
    for daemon in daemons.iter().flatten() {
        wait_until("each shard ran its checks", WAIT, || async {
            let (_, local) = json(daemon, "/api/v1/checks?local=true").await;
            local["summary"]["pending"] == 0
        })
        .await;
    }

    // Any replica lists all thirteen checks, each with the shard that runs it.
    for daemon in daemons.iter().flatten() {
        let (status, all) = json(daemon, "/api/v1/checks").await;
        assert_eq!(status, 200);
        assert_eq!(all["summary"]["total"], 13, "{all}");
        assert_eq!(all["summary"]["fail"], 1, "{all}");
        for check in all["checks"].as_array().unwrap() {
            let name = check["name"].as_str().unwrap();
            assert_eq!(check["shard"], owner(name), "{name}");
        }
        let answered: Vec<bool> = all["shards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["answered"].as_bool().unwrap())
            .collect();
        assert_eq!(answered, [true, true, true]);
    }

    // The gate, asked of a replica that does not run the failing check,
    // is held by it, and says where it runs.
    let asked = daemons[((failing_shard + 1) % 3) as usize]
        .as_ref()
        .unwrap();
    let (status, answer) = json(asked, "/api/v1/gate?section=post-deploy").await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["selected"], 13);
    assert_eq!(answer["holding"][0]["name"], "web-home");
    assert_eq!(answer["holding"][0]["shard"], failing_shard);
    let (status, answer) = json(asked, "/api/v1/gate?section=post-deploy/api").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["passing"].as_array().unwrap().len(), 12);
    // A check of another shard named alone.
    let elsewhere = names
        .iter()
        .find(|n| owner(n) != (failing_shard + 1) % 3)
        .unwrap();
    let (status, _) = json(asked, &format!("/api/v1/gate?check={elsewhere}")).await;
    assert_eq!(status, 200);
    // `local=true` answers for this replica alone.
    let (_, local) = json(asked, "/api/v1/gate?section=post-deploy&local=true").await;
    assert!(local["selected"].as_u64().unwrap() < 13, "{local}");

    // One check's JSON, asked of a replica that does not run it, comes
    // from the shard that does; a name no shard runs is 404.
    let (status, detail) = json(asked, &format!("/api/v1/checks/{elsewhere}")).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["name"], elsewhere.as_str(), "{detail}");
    assert_eq!(detail["shard"], owner(elsewhere));
    assert!(detail["history"].is_array(), "{detail}");
    let (status, _) = asked.get("/api/v1/checks/no-such-check").await.unwrap();
    assert_eq!(status, 404);
    // The status page counts all thirteen, is held by the failing check of
    // another shard, and says which shard runs it.
    let (status, page) = asked.get("/").await.unwrap();
    assert_eq!(status, 200);
    assert!(
        page.contains("Gate failing (warning and above): 1 of 13 checks do not pass"),
        "{page}"
    );
    assert!(page.contains("Shards (3)"), "{page}");
    let web_row = page
        .split("<tr>")
        .find(|row| row.contains(&format!("<b>shard {failing_shard}</b>")))
        .unwrap();
    assert!(
        web_row.contains("web-home") && web_row.contains("FAIL"),
        "{web_row}"
    );
    let (_, local_page) = asked.get("/?local=true").await.unwrap();
    assert!(!local_page.contains("Shards ("), "{local_page}");

    // One shard stopped: the others hold the gate, naming it and why.
    let stopped = (failing_shard + 2) % 3;
    daemons[stopped as usize] = None;
    let stopped_port = base + stopped as u16;
    wait_until("the stopped shard's port to refuse", WAIT, || async {
        tokio::net::TcpStream::connect(("127.0.0.1", stopped_port))
            .await
            .is_err()
    })
    .await;
    let survivor = daemons[failing_shard as usize].as_ref().unwrap();
    let gate = "/api/v1/gate?section=post-deploy/api";
    let (status, answer) = json(survivor, gate).await;
    assert_eq!(status, 503, "{answer}");
    let holdup = &answer["holding"][0];
    assert_eq!(holdup["name"], format!("shard {stopped}"));
    assert_eq!(holdup["state"], "unreachable");
    assert_eq!(holdup["shard"], stopped);
    let why = holdup["why"].as_str().unwrap();
    assert!(
        why.starts_with(&format!(
            "shard {stopped} (http://127.0.0.1:{}) did not answer: ",
            base + stopped as u16
        )) && why.to_lowercase().contains("refused"),
        "{why}"
    );
    // A check that ran on the stopped shard is held, not unknown.
    let lost = names.iter().find(|n| owner(n) == stopped).unwrap();
    let (status, _) = json(survivor, &format!("/api/v1/gate?check={lost}")).await;
    assert_eq!(status, 503);
    // Its check's JSON: not found on the shards that answered, so held
    // with the reason, not 404.
    let (status, detail) = json(survivor, &format!("/api/v1/checks/{lost}")).await;
    assert_eq!(status, 503, "{detail}");
    let error = detail["error"].as_str().unwrap();
    assert!(
        error.contains(&format!(
            "it may run on shard {stopped} (http://127.0.0.1:{stopped_port})"
        )),
        "{error}"
    );
    assert!(detail["unanswered"][0]["error"]
        .as_str()
        .unwrap()
        .to_lowercase()
        .contains("refused"));
    // The page is held by the silent shard and names it with its reason.
    let (_, page) = survivor.get("/").await.unwrap();
    let silent_row = page
        .split("<tr>")
        .find(|row| row.contains(&format!("<b>shard {stopped}</b>")))
        .unwrap();
    assert!(
        silent_row.contains("holds the gate until it answers")
            && silent_row.to_lowercase().contains("refused"),
        "{silent_row}"
    );
    assert!(page.contains("1 shard not answering"), "{page}");
    let (_, all) = json(survivor, "/api/v1/checks").await;
    let shard = &all["shards"][stopped as usize];
    assert_eq!(shard["answered"], false, "{all}");
    assert!(shard["error"]
        .as_str()
        .unwrap()
        .to_lowercase()
        .contains("refused"));
}

#[tokio::test]
async fn a_peer_name_that_does_not_resolve_is_a_reason() {
    let peers = Peers::new(0, 2, "http://vouch-{shard}.vouch-shards.invalid:9847").unwrap();
    let answers = peers.ask_all().await;
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].url, "http://vouch-1.vouch-shards.invalid:9847");
    let why = answers[0].result.as_ref().unwrap_err();
    assert!(
        why.contains("dns") || why.contains("resolve") || why.contains("failed to lookup"),
        "{why}"
    );
    assert!(Peers::new(0, 2, "http://vouch.vouch-shards:9847").is_err());
    assert!(Peers::new(0, 2, "ftp://vouch-{shard}:21").is_err());
}

/// A name `prefix-N` that shard `index` of `count` runs.
fn owned_by(prefix: &str, index: u32, count: u32) -> String {
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .find(|name| Shard { index, count }.owns(name))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_shard_is_an_error_for_argo_even_with_held_status_200() {
    let server = TestServer::http().await;
    server.route("/ok", Reply::text(200, "ok"));
    server.route("/broken", Reply::text(503, "down"));
    let (passing, failing) = (owned_by("api", 0, 2), owned_by("web", 0, 2));
    let config = write_config(&format!(
        "defaults: {{ interval: 2s, timeout: 1s }}\nchecks:\n  - name: {passing}\n    section: post-deploy/api\n    http: {{ url: \"{}\" }}\n  - name: {failing}\n    section: post-deploy/web\n    http: {{ url: \"{}\" }}\n",
        server.url("/ok"),
        server.url("/broken")
    ));
    // Shard 1's port stays free: nothing answers there.
    let base = three_free_ports();
    let template = format!("http://127.0.0.1:{}{{shard}}", base / 10);
    let daemon = Daemon::start_on_port(
        &config.path,
        base,
        &[("VOUCH_SHARD", "0/2"), ("VOUCH_SHARD_PEERS", &template)],
    )
    .await;
    wait_until("the shard ran its checks", WAIT, || async {
        let (_, local) = json(&daemon, "/api/v1/checks?local=true").await;
        local["summary"]["pending"] == 0
    })
    .await;

    // Only the silent shard holds the gate: not a verdict, so 503 (an
    // Error for Argo's web provider), whatever held_status asks.
    for held in ["", "&held_status=200"] {
        let (status, answer) = json(
            &daemon,
            &format!("/api/v1/gate?section=post-deploy/api{held}"),
        )
        .await;
        assert_eq!(status, 503, "{held}: {answer}");
        assert_eq!(answer["passed"], false);
        assert_eq!(answer["passing"][0], passing.as_str());
        assert_eq!(answer["holding"][0]["name"], "shard 1", "{answer}");
        assert_eq!(answer["holding"].as_array().unwrap().len(), 1);
    }
    // A check that answered and fails holds it too: that is a verdict, and
    // held_status=200 applies (a Failed measurement for Argo).
    let (status, answer) = json(
        &daemon,
        "/api/v1/gate?section=post-deploy/web&held_status=200",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["passed"], false);
    let holding: Vec<&str> = answer["holding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(holding, ["shard 1", failing.as_str()]);
}

/// `vouch serve ARGS` with `env`; its exit code and stderr, or a panic if
/// it is still serving after 20 s.
async fn serve_refused(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut command = tokio::process::Command::new(support::vouch::bin());
    command
        .arg("serve")
        .args(args)
        .args(["--web.listen-address", "127.0.0.1:0"])
        .env_remove("VOUCH_SHARD")
        .env_remove("VOUCH_SHARD_PEERS")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(WAIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("vouch serve {args:?} was not refused: it is serving"))
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn peers_that_could_not_be_asked_are_refused_at_start() {
    let config = write_config("checks:\n  - name: a\n    http: { url: \"http://127.0.0.1:1/\" }\n");
    let config_path = config.path.to_str().unwrap();
    let peers = "http://127.0.0.1:1{shard}";
    // --shard.peers without --shard, as a flag or from the environment.
    let (code, stderr) =
        serve_refused(&["--config", config_path, "--shard.peers", peers], &[]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--shard <I/N>"), "{stderr}");
    let (code, stderr) =
        serve_refused(&["--config", config_path], &[("VOUCH_SHARD_PEERS", peers)]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--shard <I/N>"), "{stderr}");

    // A web config that asks every request for basic authentication: the
    // peers, asked without it, would hold every gate.
    let web = config.dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!(
            "basic_auth_users:\n  alice: '{}'\n",
            bcrypt::hash("alice's password", 4).unwrap()
        ),
    )
    .unwrap();
    let web_path = web.to_str().unwrap();
    let (code, stderr) = serve_refused(
        &[
            "--config",
            config_path,
            "--shard",
            "0/2",
            "--shard.peers",
            peers,
            "--web.config.file",
            web_path,
        ],
        &[],
    )
    .await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--shard.peers with --web.config.file")
            && stderr.contains("the web config asks for basic authentication, but shards ask each other over plain HTTP"),
        "{stderr}"
    );
}
