//! A throwaway PostgreSQL cluster on a random loopback port. The server
//! refuses to run as root, so when the tests run as root (as CI does) the
//! cluster belongs to the `postgres` system user of Debian's package and
//! every server command runs through `runuser`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::certs::Identity;
use super::free_port;
use super::pem::write_identity;

/// The superuser's password (host connections need a password; local
/// socket connections are trusted).
pub const PASSWORD: &str = "pg-test-Secr3t-pw";

fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql (Debian package postgresql)")
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions
        .pop()
        .expect("an initdb under /usr/lib/postgresql/*/bin")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a server program as the user that owns the cluster.
fn as_owner(program: &str, args: &[&str]) -> Output {
    let path = bin_dir().join(program);
    let output = if is_root() {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(&path)
            .args(args)
            .output()
    } else {
        Command::new(&path).args(args).output()
    }
    .unwrap_or_else(|err| panic!("run {}: {err}", path.display()));
    output
}

fn chown_to_owner(path: &Path) {
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .status()
            .expect("run chown");
        assert!(status.success(), "chown {}", path.display());
    }
}

fn check(output: Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A running (or stopped, between [`Postgres::stop`] and
/// [`Postgres::start`]) server; stopped and removed on drop.
pub struct Postgres {
    dir: tempfile::TempDir,
    pub port: u16,
    options: Vec<String>,
    running: bool,
}

impl Postgres {
    /// A server with the default settings.
    pub fn start_new() -> Postgres {
        Self::with_settings(&[])
    }

    /// A server with extra settings, e.g. `("max_connections", "12")`.
    pub fn with_settings(settings: &[(&str, &str)]) -> Postgres {
        Self::create(settings, None)
    }

    /// A server that offers TLS with `identity` (clients may still connect
    /// without it).
    pub fn with_tls(identity: &Identity) -> Postgres {
        Self::create(&[], Some(identity))
    }

    fn create(settings: &[(&str, &str)], identity: Option<&Identity>) -> Postgres {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut settings: Vec<(String, String)> = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Some(identity) = identity {
            let (cert, key) = write_identity(identity, dir.path());
            settings.push(("ssl".into(), "on".into()));
            settings.push(("ssl_cert_file".into(), cert.display().to_string()));
            settings.push(("ssl_key_file".into(), key.display().to_string()));
        }
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        chown_to_owner(dir.path());
        let data = dir.path().join("data");
        check(
            as_owner(
                "initdb",
                &[
                    "-D",
                    data.to_str().unwrap(),
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--pwfile",
                    pwfile.to_str().unwrap(),
                    "--no-sync",
                ],
            ),
            "initdb",
        );
        let mut pg = Postgres {
            dir,
            port: free_port(),
            options: settings
                .iter()
                .map(|(key, value)| format!("-c {key}={value}"))
                .collect(),
            running: false,
        };
        pg.start();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the server on its port; pg_ctl -w polls until it accepts
    /// connections.
    pub fn start(&mut self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off {}",
            self.port,
            self.dir.path().display(),
            self.options.join(" ")
        );
        let log = self.dir.path().join("server.log");
        let output = as_owner(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        if !output.status.success() {
            panic!(
                "pg_ctl start failed:\n{}{}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        self.running = true;
    }

    /// Stops the server at once (sessions are cut); the port stays closed
    /// until [`Self::start`].
    pub fn stop(&mut self) {
        if self.running {
            check(
                as_owner(
                    "pg_ctl",
                    &[
                        "-D",
                        self.data().to_str().unwrap(),
                        "-m",
                        "immediate",
                        "-w",
                        "stop",
                    ],
                ),
                "pg_ctl stop",
            );
            self.running = false;
        }
    }

    /// A URL for the superuser with `password`.
    pub fn url_with_password(&self, password: &str) -> String {
        format!(
            "postgres://postgres:{password}@127.0.0.1:{}/postgres",
            self.port
        )
    }

    /// A URL for the superuser with the right password.
    pub fn url(&self) -> String {
        self.url_with_password(PASSWORD)
    }

    /// A URL for `role` (made by [`Self::create_role`]).
    pub fn url_for(&self, role: &str) -> String {
        format!(
            "postgres://{role}:{PASSWORD}@127.0.0.1:{}/postgres",
            self.port
        )
    }

    /// Creates a login role without special privileges, with the
    /// superuser's password.
    pub async fn create_role(&self, role: &str) {
        self.session()
            .await
            .batch_execute(&format!("CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'"))
            .await
            .unwrap_or_else(|err| panic!("create role {role}: {err}"));
    }

    /// A session of the test's own (not the check's), driven in the
    /// background.
    pub async fn session(&self) -> tokio_postgres::Client {
        self.session_at(&self.url()).await
    }

    /// A session of the test's own as `role`.
    pub async fn session_as(&self, role: &str) -> tokio_postgres::Client {
        self.session_at(&self.url_for(role)).await
    }

    async fn session_at(&self, url: &str) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|err| panic!("connect to the test server: {err}"));
        tokio::spawn(connection);
        client
    }

    /// The server's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            let _ = as_owner(
                "pg_ctl",
                &[
                    "-D",
                    self.data().to_str().unwrap(),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
            );
        }
    }
}
