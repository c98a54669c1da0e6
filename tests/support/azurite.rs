//! Azurite, Microsoft's Azure Storage emulator (npm package `azurite`):
//! its Blob service on a random loopback port, in a temporary directory,
//! with an account and key of the test's own; killed on drop.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use object_store::azure::{MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::ClientOptions;

use super::free_port;

/// The API version the test's own requests (and SAS tokens) speak.
const VERSION: &str = "2021-08-06";

pub struct Azurite {
    child: Option<Child>,
    _dir: tempfile::TempDir,
    pub port: u16,
    pub account: String,
    /// The account key (base64), random per server.
    pub key: String,
    /// How long the server took from spawn to accepting connections.
    pub started_in: Duration,
    /// HTTPS and a shifted clock, for the twin (see [`Self::start_tls`]).
    tls: Option<TlsSetup>,
}

/// What [`Azurite::start_tls`] adds to the command, kept for restarts.
struct TlsSetup {
    cert: PathBuf,
    key_file: PathBuf,
    clock_offset_file: PathBuf,
}

impl Azurite {
    /// Starts `azurite-blob` with a random account key and waits until it
    /// accepts connections.
    pub fn start() -> Azurite {
        Self::start_with_key(&base64::engine::general_purpose::STANDARD.encode(random_bytes(32)))
    }

    /// Starts `azurite-blob` with the account key `key` (base64).
    pub fn start_with_key(key: &str) -> Azurite {
        Self::spawn("vouchbackups", key, None)
    }

    /// Azurite as a real account answers: account `account` over HTTPS
    /// with the certificate `cert` and key `key_file` (PEM), so a
    /// production-style URL (`https://ACCOUNT.blob.core.windows.net`)
    /// reaches it through `--connect-to`. Its clock is Node's shifted by
    /// the milliseconds written in `clock_offset_file` (read at every
    /// call; `apps/clock.js`), so the twin can upload objects whose
    /// Last-Modified lies in the past, as libfaketime would.
    pub fn start_tls(
        account: &str,
        cert: &Path,
        key_file: &Path,
        clock_offset_file: &Path,
    ) -> Azurite {
        let key = base64::engine::general_purpose::STANDARD.encode(random_bytes(32));
        let tls = TlsSetup {
            cert: cert.to_path_buf(),
            key_file: key_file.to_path_buf(),
            clock_offset_file: clock_offset_file.to_path_buf(),
        };
        Self::spawn(account, &key, Some(tls))
    }

    fn spawn(account: &str, key: &str, tls: Option<TlsSetup>) -> Azurite {
        let mut azurite = Azurite {
            child: None,
            _dir: tempfile::tempdir().expect("a temporary directory"),
            port: free_port(),
            account: account.to_string(),
            key: key.to_string(),
            started_in: Duration::ZERO,
            tls,
        };
        azurite.restart();
        eprintln!(
            "azurite-blob accepted connections after {:?}",
            azurite.started_in
        );
        azurite
    }

    /// Starts the server (again, after [`Self::stop`]) on its port, with
    /// its data, and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.stop();
        let started = Instant::now();
        let mut command = Command::new(super::node_tools::command("azurite-blob"));
        command
            .args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &self.port.to_string(),
            ])
            .arg("--location")
            .arg(self._dir.path())
            .args(["--skipApiVersionCheck", "--disableTelemetry", "--silent"])
            .env("AZURITE_ACCOUNTS", format!("{}:{}", self.account, self.key));
        if let Some(tls) = &self.tls {
            let clock =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/twin/apps/clock.js");
            command
                .arg("--cert")
                .arg(&tls.cert)
                .arg("--key")
                .arg(&tls.key_file)
                .env("NODE_OPTIONS", format!("--require {}", clock.display()))
                .env("TWIN_CLOCK_OFFSET_FILE", &tls.clock_offset_file);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start azurite-blob");
        super::wait_for_port(&mut child, self.port, "azurite-blob");
        self.started_in = started.elapsed();
        self.child = Some(child);
    }

    /// The Blob endpoint with path-style addressing, as `endpoint:` takes it.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{}", self.port, self.account)
    }

    /// An account SAS token (`sv=...&sig=...`) for the Blob service with
    /// `permissions` (e.g. `rl`), signed with the account key.
    pub fn account_sas(&self, permissions: &str) -> String {
        let expiry = "2099-01-01T00:00:00Z";
        let to_sign = format!(
            "{}\n{permissions}\nb\nsco\n\n{expiry}\n\nhttps,http\n{VERSION}\n\n",
            self.account
        );
        let engine = base64::engine::general_purpose::STANDARD;
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &engine.decode(&self.key).unwrap());
        let signature = engine.encode(ring::hmac::sign(&key, to_sign.as_bytes()).as_ref());
        format!(
            "sv={VERSION}&ss=b&srt=sco&sp={permissions}&se={}&spr=https,http&sig={}",
            expiry.replace(':', "%3A"),
            percent_encode(&signature)
        )
    }

    /// Creates `container` (object_store cannot), authorised by an account SAS.
    pub fn create_container(&self, container: &str) {
        use std::io::{Read, Write};
        let sas = self.account_sas("rwdlac");
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "PUT /{}/{container}?restype=container&{sas} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nx-ms-version: {VERSION}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.account, self.port
        )
        .unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(
            answer.starts_with("HTTP/1.1 201"),
            "creating container {container}: {answer}"
        );
    }

    /// A client of the test's own for `container`, with the account key.
    pub fn store(&self, container: &str) -> Arc<MicrosoftAzure> {
        // object_store's reqwest is built without a crypto provider (as
        // vouch's): install vouch's first, or a test process in which no
        // probe installed it yet panics building the client.
        vouch::clients::tls_configs::install_default_provider();
        Arc::new(
            MicrosoftAzureBuilder::new()
                .with_account(&self.account)
                .with_access_key(&self.key)
                .with_container_name(container)
                .with_endpoint(self.endpoint())
                .with_client_options(ClientOptions::new().with_allow_http(true))
                .build()
                .expect("a client for azurite"),
        )
    }

    /// Kills the server: its port refuses connections from then on.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("random bytes");
    bytes
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
