//! s3rver (npm package `s3rver`), an S3-compatible server that checks
//! signatures: on a random loopback port with one bucket, storing objects
//! as files in a temporary directory (an object's Last-Modified is its
//! file's modification time, which tests can set); killed on drop.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::ClientOptions;

use super::free_port;

/// s3rver's one account: access key id and secret access key.
pub const ACCESS_KEY_ID: &str = "S3RVER";
pub const SECRET_ACCESS_KEY: &str = "S3RVER";

pub struct S3 {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub port: u16,
    pub bucket: String,
    /// How long the server took from spawn to accepting connections.
    pub started_in: Duration,
}

impl S3 {
    /// Starts s3rver with the bucket `backups` and waits until it accepts
    /// connections.
    pub fn start() -> S3 {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = free_port();
        let bucket = "backups".to_string();
        let started = Instant::now();
        let mut child = Command::new(super::node_tools::command("s3rver"))
            .arg("--directory")
            .arg(dir.path())
            .args(["--address", "127.0.0.1", "--port", &port.to_string()])
            .args(["--silent", "--no-vhost-buckets"])
            .args(["--configure-bucket", &bucket])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3rver");
        super::wait_for_port(&mut child, port, "s3rver");
        let started_in = started.elapsed();
        eprintln!("s3rver accepted connections after {started_in:?}");
        S3 {
            child: Some(child),
            dir,
            port,
            bucket,
            started_in,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A client of the test's own for the bucket.
    pub fn store(&self) -> Arc<AmazonS3> {
        // object_store's reqwest is built without a crypto provider (as
        // vouch's): install vouch's first, or a test process in which no
        // probe installed it yet panics building the client.
        vouch::clients::tls_configs::install_default_provider();
        Arc::new(
            AmazonS3Builder::new()
                .with_bucket_name(&self.bucket)
                .with_region("us-east-1")
                .with_endpoint(self.endpoint())
                .with_access_key_id(ACCESS_KEY_ID)
                .with_secret_access_key(SECRET_ACCESS_KEY)
                .with_client_options(ClientOptions::new().with_allow_http(true))
                .build()
                .expect("a client for s3rver"),
        )
    }

    /// The file holding the object `key`, whose modification time is the
    /// object's Last-Modified.
    pub fn object_file(&self, key: &str) -> PathBuf {
        self.dir
            .path()
            .join(&self.bucket)
            .join(format!("{key}._S3rver_object"))
    }

    /// PUTs the empty "folder" object `key` (ending in `/`), as S3
    /// consoles create them; object_store cannot name such a key. s3rver
    /// checks the access key id, not the signature, so none is computed.
    pub fn put_folder_marker(&self, key: &str) {
        use std::io::{Read, Write};
        assert!(key.ends_with('/'), "{key}");
        let now = chrono::Utc::now();
        let stamp = now.format("%Y%m%dT%H%M%SZ");
        let day = now.format("%Y%m%d");
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "PUT /{}/{key} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nx-amz-date: {stamp}\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\nAuthorization: AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/{day}/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.bucket, self.port
        )
        .unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "PUT {key}: {answer}");
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        self.stop();
    }
}
