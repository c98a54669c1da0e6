//! No secret ever leaks: a unique marker planted in every secret-bearing
//! config value, and in target answers that echo the credential back, is
//! found nowhere vouch writes — trace logs, `/metrics`, the JSON API, the
//! status page, gate reports in every format, config errors. Every kind
//! that takes a secret runs with right and wrong ones.
use crate::support;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use object_store::ObjectStoreExt as _;
use support::azurite::Azurite;
use support::certs::self_signed;
use support::dnsmasq::Dnsmasq;
use support::http_server::{Reply, TestServer};
use support::key_vault::{FakeKeyVault, FakeSecret, CLIENT_ID, TENANT};
use support::postgres::Postgres;
use support::redis::Redis;
use support::registry::{Auth, Registry};
use support::s3::S3;
use support::vouch::{bin, Daemon};
use support::write_config;

/// Secret texts planted in one test, each unique to this run.
struct Markers {
    state: u64,
    planted: Vec<(String, String)>,
}

impl Markers {
    fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Markers {
            state: (nanos as u64) ^ (u64::from(std::process::id()) << 32),
            planted: Vec::new(),
        }
    }

    /// A new random marker for `what` (letters and digits only, so no
    /// encoding between config, wire and message changes it).
    fn plant(&mut self, what: &str) -> String {
        const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        let marker: String = (0..24)
            .map(|_| {
                // xorshift64: random enough that no window is common text.
                self.state ^= self.state << 13;
                self.state ^= self.state >> 7;
                self.state ^= self.state << 17;
                ALPHABET[(self.state % ALPHABET.len() as u64) as usize] as char
            })
            .collect();
        self.planted.push((what.to_string(), marker.clone()));
        marker
    }

    /// Also watch for `text` (an encoding of a marker, e.g. base64).
    fn watch(&mut self, what: &str, text: String) {
        self.planted.push((what.to_string(), text));
    }

    /// Every marker (and every 8-character piece of one, which catches a
    /// truncated quote) found in `text`.
    fn hits(&self, place: &str, text: &str) -> Vec<String> {
        let mut hits = Vec::new();
        for (what, marker) in &self.planted {
            let chars: Vec<char> = marker.chars().collect();
            let piece = chars.len().min(8);
            let found = (0..=chars.len() - piece).find_map(|start| {
                let window: String = chars[start..start + piece].iter().collect();
                text.find(&window).map(|at| (window, at))
            });
            if let Some((window, at)) = found {
                let from = text[..at]
                    .char_indices()
                    .rev()
                    .nth(80)
                    .map_or(0, |(i, _)| i);
                let to = (at + window.len() + 80).min(text.len());
                let to = (to..=text.len())
                    .find(|i| text.is_char_boundary(*i))
                    .unwrap();
                hits.push(format!(
                    "{what} ({marker}) in {place}: ...{}...",
                    &text[from..to]
                ));
            }
        }
        hits
    }
}

/// An answer that echoes a credential into a header and JSON fields a
/// failing expectation quotes.
fn echo(credential: &str, secret: &str) -> Reply {
    Reply::json(
        200,
        serde_json::json!({
            "auth": credential,
            "token": secret,
            // A long value is quoted cut short: the cut must not let part
            // of the secret through.
            "long": format!("{}{secret}", "x".repeat(60)),
        }),
    )
    .header("X-Echo", credential)
}

const EXPECT_ECHO: &str = r#"expect: { json: { "$.auth": "nope", "$.token": "nope", "$.long": "nope" }, headers: { X-Echo: "^nope$" } }"#;

async fn gate(config: &Path, format: &str, env: &[(String, String)]) -> String {
    let mut command = tokio::process::Command::new(bin());
    command
        .args(["check", "--format", format, "--config"])
        .arg(config)
        .env("RUST_LOG", "trace")
        .stdin(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().await.expect("run vouch check");
    assert!(
        !output.status.success(),
        "the gate should fail (echo checks fail)"
    );
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The status of one GET sending `authorization`.
async fn get_with_authorization(
    addr: std::net::SocketAddr,
    path: &str,
    authorization: &str,
) -> u16 {
    use http_body_util::{BodyExt, Empty};
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    let driver = tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header("Host", addr.to_string())
        .header("Authorization", authorization)
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    driver.abort();
    status
}

#[tokio::test(flavor = "multi_thread")]
async fn no_planted_secret_appears_in_anything_vouch_writes() {
    let mut markers = Markers::new();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{text}\n")).unwrap();
        path.display().to_string()
    };
    let mut env: Vec<(String, String)> = Vec::new();

    // HTTP targets echoing the credential they were sent.
    let server = TestServer::http().await;
    let bearer_file = markers.plant("http bearer_token_file");
    let bearer_env = markers.plant("http bearer_token_env");
    let basic_file = markers.plant("http basic_auth password_file");
    let basic_env = markers.plant("http basic_auth password_env");
    let header_env = markers.plant("http secret_headers value_env");
    let basic = |password: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("leakuser:{password}"))
        )
    };
    markers.watch("basic credential (file)", basic(&basic_file));
    markers.watch("basic credential (env)", basic(&basic_env));
    server.route(
        "/bearer-file",
        echo(&format!("Bearer {bearer_file}"), &bearer_file),
    );
    server.route(
        "/bearer-env",
        echo(&format!("Bearer {bearer_env}"), &bearer_env),
    );
    server.route("/basic-file", echo(&basic(&basic_file), &basic_file));
    server.route("/basic-env", echo(&basic(&basic_env), &basic_env));
    server.route("/secret-header", echo(&header_env, &header_env));
    let bearer_path = write("bearer", &bearer_file);
    let basic_path = write("basic", &basic_file);
    env.push(("LEAK_BEARER".into(), bearer_env.clone()));
    env.push(("LEAK_BASIC".into(), basic_env.clone()));
    env.push(("LEAK_HEADER".into(), header_env.clone()));

    // TLS and DNS carry no secrets but run under the same trace logging.
    let identity = self_signed(&["localhost"]);
    let ca_path = identity.write_chain_pem(dir.path(), "ca.pem");
    let tls_server = TestServer::https(identity).await;
    let dns = Dnsmasq::start(&["--address=/name.test/10.1.2.3"]);

    // PostgreSQL: a role whose password is a marker; a wrong password too.
    let postgres = Postgres::start_new();
    let pg_right = markers.plant("postgres url password");
    let pg_wrong = markers.plant("postgres wrong url password");
    postgres
        .session()
        .await
        .batch_execute(&format!(
            "CREATE ROLE leakrole LOGIN PASSWORD '{pg_right}'; GRANT pg_monitor TO leakrole"
        ))
        .await
        .unwrap();
    let pg_url = |password: &str| {
        format!(
            "postgres://leakrole:{password}@127.0.0.1:{}/postgres?sslmode=disable",
            postgres.port
        )
    };
    let pg_right_path = write("pg-url", &pg_url(&pg_right));
    env.push(("LEAK_PG_URL".into(), pg_url(&pg_wrong)));

    // Redis: an ACL user with two right passwords; wrong ones beside.
    let redis = Redis::start_new();
    let redis_url_pw = markers.plant("redis url password");
    let redis_file_pw = markers.plant("redis password_file");
    let redis_wrong_url = markers.plant("redis wrong url password");
    let redis_wrong_env = markers.plant("redis wrong password_env");
    let mut admin = redis.connection(None).await;
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "leakuser",
            "on",
            &format!(">{redis_url_pw}"),
            &format!(">{redis_file_pw}"),
            "+@all",
            "~*",
        ])
        .query_async(&mut admin)
        .await
        .unwrap();
    let redis_url =
        |password: &str| format!("redis://leakuser:{password}@127.0.0.1:{}/", redis.port);
    let redis_right_path = write("redis-url", &redis_url(&redis_url_pw));
    let redis_plain_path = write("redis-plain-url", &redis.url());
    let redis_pw_path = write("redis-password", &redis_file_pw);
    env.push(("LEAK_REDIS_URL".into(), redis_url(&redis_wrong_url)));
    env.push(("LEAK_REDIS_PW".into(), redis_wrong_env.clone()));

    // Backups: Azurite with an account key that is a marker (letters and
    // digits are base64), a wrong key, a SAS token right (its signature
    // watched) and wrong (its signature a marker); s3rver (which checks
    // the key id, not signatures) with a secret key that is a marker and a
    // wrong key id.
    let azure_key = markers.plant("backup account_key_file");
    let azure_wrong_key = markers.plant("backup wrong account_key_env");
    let azurite = Azurite::start_with_key(&azure_key);
    azurite.create_container("backups");
    azurite
        .store("backups")
        .put(&"pg.sql.gz".into(), vec![0u8; 2048].into())
        .await
        .unwrap();
    let sas = azurite.account_sas("rl");
    let signature = sas.split("sig=").nth(1).unwrap().to_string();
    markers.watch("backup SAS signature", signature.clone());
    let wrong_signature = markers.plant("backup wrong SAS signature");
    let azure_key_path = write("azure-key", &azure_key);
    let azure_sas_path = write("azure-sas", &sas);
    env.push(("LEAK_AZURE_KEY".into(), azure_wrong_key.clone()));
    env.push((
        "LEAK_AZURE_SAS".into(),
        sas.replace(&signature, &wrong_signature),
    ));
    let s3 = S3::start();
    s3.store()
        .put(&"pg.sql.gz".into(), vec![0u8; 2048].into())
        .await
        .unwrap();
    let s3_secret = markers.plant("backup secret_access_key_file");
    let s3_wrong_id = markers.plant("backup wrong access_key_id_env");
    let s3_id_path = write("s3-id", support::s3::ACCESS_KEY_ID);
    let s3_secret_path = write("s3-secret", &s3_secret);
    env.push(("LEAK_S3_ID".into(), s3_wrong_id.clone()));
    env.push(("LEAK_S3_SECRET".into(), s3_secret.clone()));
    let azure = format!(
        "url: az://backups, account: {}, endpoint: \"{}\"",
        azurite.account,
        azurite.endpoint()
    );
    let s3_block = format!("url: s3://backups, endpoint: \"{}\"", s3.endpoint());
    // A registry behind htpasswd: a right password from a file, a wrong
    // one from the environment.
    let registry_right = markers.plant("registry password_file");
    let registry_wrong = markers.plant("registry wrong password_env");
    markers.watch(
        "registry basic credential",
        base64::engine::general_purpose::STANDARD.encode(format!("leakuser:{registry_right}")),
    );
    let registry = Registry::start_new(Auth::Basic {
        user: "leakuser".into(),
        password: registry_right.clone(),
    });
    registry.push_image("leak/app", &["v1", "0a1b2c3"]);
    let registry_pw_path = write("registry-password", &registry_right);
    env.push(("LEAK_REGISTRY_PW".into(), registry_wrong.clone()));

    // Key Vault: secret values and the client secret are markers; a wrong
    // client secret beside.
    let vault = FakeKeyVault::start().await;
    let vault_client_secret = markers.plant("key vault client_secret_file");
    let vault_wrong_secret = markers.plant("key vault wrong client_secret_env");
    vault.set_client_secret(&vault_client_secret);
    for name in ["jwt-access-secret", "postgres-password"] {
        let value = markers.plant(&format!("key vault value of {name}"));
        vault.put(name, FakeSecret::aged(&value, 5));
    }
    let vault_dir = dir.path().join("vault");
    std::fs::create_dir(&vault_dir).unwrap();
    let vault_ca = vault.write_ca(&vault_dir);
    let vault_secret_path = write("vault-client-secret", &vault_client_secret);
    env.push(("LEAK_VAULT_SECRET".into(), vault_wrong_secret.clone()));
    let key_vault = |secret: &str| {
        format!(
            "{{ url: \"{}\", auth: client_secret, tenant_id: {TENANT}, client_id: {CLIENT_ID}, authority_host: \"{}\", {secret}, ca_file: \"{}\" }}",
            vault.url(),
            vault.url(),
            vault_ca.display()
        )
    };

    let url = |path: &str| server.url(path);
    let yaml = format!(
        r#"defaults: {{ interval: 2s, timeout: 1900ms }}
checks:
  - name: http-bearer-file
    http: {{ url: "{}", bearer_token_file: "{bearer_path}", {EXPECT_ECHO} }}
  - name: http-bearer-env
    http: {{ url: "{}", bearer_token_env: LEAK_BEARER, {EXPECT_ECHO} }}
  - name: http-basic-file
    http: {{ url: "{}", basic_auth: {{ username: leakuser, password_file: "{basic_path}" }}, {EXPECT_ECHO} }}
  - name: http-basic-env
    http: {{ url: "{}", basic_auth: {{ username: leakuser, password_env: LEAK_BASIC }}, {EXPECT_ECHO} }}
  - name: http-secret-header-env
    http: {{ url: "{}", secret_headers: {{ X-Api-Key: {{ value_env: LEAK_HEADER }} }}, {EXPECT_ECHO} }}
  - name: tls-kind
    tls: {{ host: localhost, connect_to: 127.0.0.1, port: {}, ca_file: "{}" }}
  - name: dns-kind
    dns: {{ name: name.test, servers: ["{}"], expect: {{ answers: [10.1.2.3] }} }}
  - name: postgres-right
    postgres: {{ url_file: "{pg_right_path}", tls: disable }}
  - name: postgres-wrong
    postgres: {{ url_env: LEAK_PG_URL, tls: disable }}
  - name: redis-url-right
    redis: {{ url_file: "{redis_right_path}" }}
  - name: redis-password-file-right
    redis: {{ url_file: "{redis_plain_path}", username: leakuser, password_file: "{redis_pw_path}" }}
  - name: redis-url-wrong
    redis: {{ url_env: LEAK_REDIS_URL }}
  - name: redis-password-env-wrong
    redis: {{ url_file: "{redis_plain_path}", username: leakuser, password_env: LEAK_REDIS_PW }}
  - name: backup-azure-key-right
    backup: {{ {azure}, account_key_file: "{azure_key_path}" }}
  - name: backup-azure-key-wrong
    backup: {{ {azure}, account_key_env: LEAK_AZURE_KEY }}
  - name: backup-azure-sas-right
    backup: {{ {azure}, sas_token_file: "{azure_sas_path}" }}
  - name: backup-azure-sas-wrong
    backup: {{ {azure}, sas_token_env: LEAK_AZURE_SAS }}
  - name: backup-s3-right
    backup: {{ {s3_block}, access_key_id_file: "{s3_id_path}", secret_access_key_file: "{s3_secret_path}" }}
  - name: backup-s3-wrong
    backup: {{ {s3_block}, access_key_id_env: LEAK_S3_ID, secret_access_key_env: LEAK_S3_SECRET }}
  - name: registry-right
    registry: {{ url: "{}", repository: leak/app, tag: v1, username: leakuser, password_file: "{registry_pw_path}" }}
  - name: registry-wrong
    registry: {{ url: "{}", repository: leak/app, tag: v1, username: leakuser, password_env: LEAK_REGISTRY_PW }}
  - name: key-vault-right
    secret_age: {{ key_vault: {}, secrets: [{{ name: jwt-access-secret }}, {{ name: postgres-password }}] }}
  - name: key-vault-wrong
    secret_age: {{ key_vault: {}, secrets: [{{ name: jwt-access-secret }}] }}
"#,
        url("/bearer-file"),
        url("/bearer-env"),
        url("/basic-file"),
        url("/basic-env"),
        url("/secret-header"),
        tls_server.addr.port(),
        ca_path.display(),
        dns.server(),
        registry.url(),
        registry.url(),
        key_vault(&format!("client_secret_file: \"{vault_secret_path}\"")),
        key_vault("client_secret_env: LEAK_VAULT_SECRET"),
    );
    let config = write_config(&yaml);
    let names: Vec<&str> = yaml
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- name: "))
        .collect();

    let mut outputs: Vec<(String, String)> = Vec::new();

    // The daemon, tracing everything.
    let mut daemon_env: Vec<(&str, &str)> = vec![("RUST_LOG", "trace")];
    daemon_env.extend(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let daemon = Daemon::start_with_env(&config.path, &daemon_env).await;
    for name in &names {
        daemon.wait_for_result(name, Duration::from_secs(30)).await;
    }
    // The right credentials pass, the wrong ones and the echoes do not:
    // every path a secret could take was taken. Awaited, not read once: on
    // a loaded machine one run of a passing check may time out.
    for (name, verdict) in [
        ("http-bearer-file", "fail"),
        ("http-basic-env", "fail"),
        ("tls-kind", "pass"),
        ("dns-kind", "pass"),
        ("postgres-right", "pass"),
        ("postgres-wrong", "error"),
        ("redis-url-right", "pass"),
        ("redis-password-file-right", "pass"),
        ("redis-url-wrong", "error"),
        ("redis-password-env-wrong", "error"),
        ("backup-azure-key-right", "pass"),
        ("backup-azure-key-wrong", "error"),
        ("backup-azure-sas-right", "pass"),
        ("backup-azure-sas-wrong", "error"),
        ("backup-s3-right", "pass"),
        ("backup-s3-wrong", "error"),
        ("registry-right", "pass"),
        ("registry-wrong", "error"),
        ("key-vault-right", "pass"),
        ("key-vault-wrong", "error"),
    ] {
        support::wait_until(
            &format!("{name} to be {verdict}"),
            Duration::from_secs(60),
            || async { daemon.check(name).await["last_run"]["verdict"] == verdict },
        )
        .await;
    }
    for path in ["/metrics", "/api/v1/checks", "/"] {
        outputs.push((path.to_string(), daemon.get_ok(path).await));
    }
    // The new kinds' measurements reach the exposition, names as labels.
    let metrics = &outputs[0].1;
    for series in [
        r#"vouch_secret_age_seconds{check="key-vault-right",secret="jwt-access-secret"}"#,
        r#"vouch_secret_present{check="key-vault-right",secret="postgres-password"} 1"#,
        r#"vouch_registry_tag_present{check="registry-right"} 1"#,
    ] {
        assert!(
            metrics.contains(series),
            "{series} not in /metrics:\n{metrics}"
        );
    }
    // The gate endpoint answers 503 while checks fail: its body all the same.
    let (_, gate_body) = daemon.get("/api/v1/gate").await.expect("an answer");
    outputs.push(("/api/v1/gate".into(), gate_body));
    for name in &names {
        for path in [format!("/api/v1/checks/{name}"), format!("/checks/{name}")] {
            outputs.push((path.clone(), daemon.get_ok(&path).await));
        }
    }
    let logs = daemon.logs();
    assert!(
        logs.contains("TRACE"),
        "the daemon should log at trace level"
    );
    outputs.push(("vouch serve logs".into(), logs));
    drop(daemon);

    // The gate, in every format.
    for format in ["table", "json", "junit"] {
        outputs.push((
            format!("vouch check --format {format}"),
            gate(&config.path, format, &env).await,
        ));
    }

    // A config error about a credential put where it does not belong.
    let header_marker = markers.plant("Authorization header in config");
    let bad = write_config(&format!(
        "checks:\n  - name: bad\n    http:\n      url: {}\n      headers: {{ Authorization: \"Bearer {header_marker}\" }}\n",
        url("/")
    ));
    let output = tokio::process::Command::new(bin())
        .args(["validate", "--config"])
        .arg(&bad.path)
        .env("RUST_LOG", "trace")
        .output()
        .await
        .unwrap();
    assert!(
        !output.status.success(),
        "an Authorization header is refused"
    );
    outputs.push((
        "vouch validate".into(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    ));

    // Scrapers' passwords (the web config holds only a bcrypt hash): wrong
    // and right ones sent to a protected daemon tracing everything.
    let scrape_right = markers.plant("scrape password (right)");
    let scrape_wrong = markers.plant("scrape password (wrong)");
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!(
            "basic_auth_users:\n  prometheus: '{}'\n",
            bcrypt::hash(&scrape_right, 4).unwrap()
        ),
    )
    .unwrap();
    let protected = Daemon::start_with_args_env(
        &config.path,
        &["--web.config.file", web.to_str().unwrap()],
        &daemon_env,
    )
    .await;
    for (password, expected) in [(&scrape_wrong, 401), (&scrape_right, 200)] {
        let credential = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("prometheus:{password}"))
        );
        markers.watch("scrape credential", credential.clone());
        for path in ["/metrics", "/api/v1/checks", "/"] {
            let status = get_with_authorization(protected.addr, path, &credential).await;
            assert_eq!(status, expected, "{path} with the {expected} password");
        }
    }
    outputs.push(("protected vouch serve logs".into(), protected.logs()));
    drop(protected);

    // The vault's access tokens, issued while the daemon and the gate ran.
    for token in vault.issued_tokens() {
        markers.watch("key vault access token", token);
    }
    assert!(
        !vault
            .requests()
            .iter()
            .any(|r| r.starts_with("GET /secrets/")),
        "a secret value was asked for: {:?}",
        vault.requests()
    );

    let hits: Vec<String> = outputs
        .iter()
        .flat_map(|(place, text)| markers.hits(place, text))
        .collect();
    assert!(
        hits.is_empty(),
        "{} leaks:\n{}",
        hits.len(),
        hits.join("\n")
    );
}
