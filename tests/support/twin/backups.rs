//! The platform's database backups as the shipped `database-backup` check
//! reads them: blobs `backup-*.sql.gz` in container `database-backups` of
//! storage account `broxivastorage`, served by Azurite over HTTPS under
//! the account's real name (`--connect-to` maps it to loopback).
//!
//! Azurite stamps Last-Modified with its own clock; older backups are
//! uploaded with that clock shifted back (`apps/clock.js`), the way
//! libfaketime would, since the twin cannot wait a day.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::super::azurite::Azurite;
use super::super::certs::{TestCa, Validity};

pub const ACCOUNT: &str = "broxivastorage";
pub const HOST: &str = "broxivastorage.blob.core.windows.net";
pub const CONTAINER: &str = "database-backups";
/// Size of each healthy nightly dump (over the check's 1MB minimum).
pub const DUMP_BYTES: usize = 4_000_000;
/// The healthy history: name and age (hours) of each nightly dump.
pub const HISTORY: &[(&str, u64)] = &[
    ("backup-2026-12-05.sql.gz", 48),
    ("backup-2026-12-06.sql.gz", 30),
    ("backup-2026-12-07.sql.gz", 0),
];

pub struct Backups {
    pub azurite: Azurite,
    client: reqwest::Client,
    clock: PathBuf,
}

impl Backups {
    /// Azurite for the account with the container and the healthy
    /// history; its certificate issued by `issuer` (the twin's CA, whose
    /// root is `roots`).
    pub async fn start(root: &Path, issuer: &TestCa, roots: &Path) -> Backups {
        let dir = root.join("azurite");
        std::fs::create_dir_all(&dir).unwrap();
        let identity = issuer.issue(&[HOST, "127.0.0.1"], Validity::ValidFor { days: 365 });
        let (cert, key) = super::super::pem::write_identity(&identity, &dir);
        let clock = dir.join("clock-offset-ms");
        let azurite = Azurite::start_tls(ACCOUNT, &cert, &key, &clock);
        let ca = reqwest::Certificate::from_pem(&std::fs::read(roots).unwrap()).unwrap();
        // reqwest may be built without a crypto provider of its own
        // (`rustls-no-provider`): ring as the process default, as vouch's
        // clients install it.
        vouch::clients::tls_configs::install_default_provider();
        let client = reqwest::Client::builder()
            .tls_certs_only([ca])
            .build()
            .unwrap();
        let backups = Backups {
            azurite,
            client,
            clock,
        };
        backups.create_container().await;
        for (name, hours) in HISTORY {
            backups
                .upload(name, DUMP_BYTES, Duration::from_secs(hours * 3600))
                .await;
        }
        backups
    }

    fn url(&self, path: &str) -> String {
        format!(
            "https://127.0.0.1:{}/{ACCOUNT}/{path}?{}",
            self.azurite.port,
            self.azurite.account_sas("rwdlac")
        )
    }

    async fn send(&self, request: reqwest::RequestBuilder, what: &str) {
        let response = request
            .header("x-ms-version", "2021-08-06")
            .send()
            .await
            .unwrap_or_else(|err| panic!("{what}: {err}"));
        assert!(
            response.status().is_success(),
            "{what}: {}",
            response.status()
        );
    }

    async fn create_container(&self) {
        let url = self.url(CONTAINER) + "&restype=container";
        self.send(self.client.put(url), "create the container")
            .await;
    }

    /// Uploads `name` with `size` bytes, stamped `age` ago.
    pub async fn upload(&self, name: &str, size: usize, age: Duration) {
        std::fs::write(&self.clock, format!("-{}", age.as_millis())).unwrap();
        let body = super::super::azurite::random_bytes(size);
        let request = self
            .client
            .put(self.url(&format!("{CONTAINER}/{name}")))
            .header("x-ms-blob-type", "BlockBlob")
            .body(body);
        self.send(request, &format!("upload {name}")).await;
        std::fs::write(&self.clock, "0").unwrap();
    }

    pub async fn delete(&self, name: &str) {
        let request = self.client.delete(self.url(&format!("{CONTAINER}/{name}")));
        self.send(request, &format!("delete {name}")).await;
    }
}
