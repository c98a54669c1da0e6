//! The one way vouch reads a file it is pointed at while running: secret
//! files, PEM files and CA bundles, kubeconfigs, federated tokens.
//!
//! Such a path may name a FIFO or sit on a hung NFS/FUSE/CSI mount (the
//! read never returns), or name `/dev/zero` or a log file by mistake (it
//! never ends). So every read is capped in size, runs on a thread of its
//! own rather than an async worker, and is waited for only as long as the
//! caller may wait: an async caller is abandoned at its run's timeout; a
//! synchronous caller (building a check) gives up after a set time. A read
//! that has not returned is remembered, and later reads of the same path
//! fail at once instead of piling up more stuck threads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::lock::lock;

/// The largest PEM file (certificate, chain, CA bundle) read: a bundle of
/// every public root is a quarter of this.
pub const MAX_PEM_BYTES: u64 = 1 << 20;

/// The largest kubeconfig read: one with the embedded certificates of a
/// few dozen clusters is a few hundred KiB.
pub const MAX_KUBECONFIG_BYTES: u64 = 4 << 20;

/// How long building a check waits for a file it reads (a `ca_file`, the
/// kubeconfig `vouch validate` looks at). Local files answer in
/// microseconds; one that takes longer is on a mount that hangs.
pub const BUILD_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Error)]
pub enum FileReadError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot read {}: an earlier read has not returned for {seconds} s (a FIFO, or a hung mount?)",
        path.display()
    )]
    Stuck { path: PathBuf, seconds: u64 },
    #[error(
        "cannot read {}: the read did not return within {} s (a FIFO, or a hung mount?)",
        path.display(),
        waited.as_secs_f64()
    )]
    TimedOut { path: PathBuf, waited: Duration },
}

impl FileReadError {
    /// The path that could not be read.
    pub fn path(&self) -> &Path {
        match self {
            FileReadError::Io { path, .. }
            | FileReadError::Stuck { path, .. }
            | FileReadError::TimedOut { path, .. } => path,
        }
    }

    /// What went wrong, without the path (for messages that name the file
    /// their own way).
    pub fn cause(&self) -> String {
        let full = self.to_string();
        let prefix = format!("cannot read {}: ", self.path().display());
        full.strip_prefix(&prefix).unwrap_or(&full).to_string()
    }
}

/// Reads at most `cap` bytes of `path`; a longer file is an error, not an
/// allocation the size of whatever the path holds.
fn read_capped(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(cap + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(std::io::Error::other(format!(
            "larger than {} KiB",
            cap / 1024
        )));
    }
    Ok(bytes)
}

/// Files whose read has not returned yet, and since when. A read that
/// blocks holds its thread until it returns; later reads do not start
/// another one.
static PENDING: LazyLock<Mutex<HashMap<PathBuf, Instant>>> = LazyLock::new(Default::default);

/// Takes a path out of [`PENDING`] when its read returns (or panics).
struct Pending(PathBuf);

impl Drop for Pending {
    fn drop(&mut self) {
        lock(&PENDING).remove(&self.0);
    }
}

/// Marks `path` as being read, unless a read of it is already pending.
fn claim(path: &Path) -> Result<Pending, FileReadError> {
    let mut pending = lock(&PENDING);
    if let Some(since) = pending.get(path) {
        return Err(FileReadError::Stuck {
            path: path.to_path_buf(),
            seconds: since.elapsed().as_secs(),
        });
    }
    pending.insert(path.to_path_buf(), Instant::now());
    Ok(Pending(path.to_path_buf()))
}

/// Reads `path` (at most `cap` bytes) on the calling thread, unless an
/// earlier read of it has not returned. For code already off the async
/// workers; everything else uses [`read_async`] or [`read_within`].
pub fn read(path: &Path, cap: u64) -> Result<Vec<u8>, FileReadError> {
    let _pending = claim(path)?;
    read_capped(path, cap).map_err(|source| FileReadError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// [`read`] for a run: on the blocking pool, so a read that blocks holds
/// neither an async worker nor the run past its timeout (the runner
/// abandons the run; the read finishes, or not, on its own thread).
pub async fn read_async(path: &Path, cap: u64) -> Result<Vec<u8>, FileReadError> {
    let owned = path.to_path_buf();
    match tokio::task::spawn_blocking(move || read(&owned, cap)).await {
        Ok(result) => result,
        Err(_) => Err(FileReadError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other("the read failed"),
        }),
    }
}

/// [`read`] for synchronous callers (building checks, `vouch validate`):
/// on a thread of its own, waited for at most `wait`.
pub fn read_within(path: &Path, cap: u64, wait: Duration) -> Result<Vec<u8>, FileReadError> {
    let (send, receive) = std::sync::mpsc::sync_channel(1);
    let owned = path.to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("vouch-file-read".into())
        .spawn(move || {
            let _ = send.send(read(&owned, cap));
        });
    if let Err(source) = spawned {
        return Err(FileReadError::Io {
            path: path.to_path_buf(),
            source,
        });
    }
    receive.recv_timeout(wait).unwrap_or_else(|_| {
        Err(FileReadError::TimedOut {
            path: path.to_path_buf(),
            waited: wait,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fifo(dir: &Path) -> PathBuf {
        let path = dir.join("blocks");
        assert!(std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap()
            .success());
        path
    }

    /// Opens the FIFO for writing and closes it, so readers still blocked
    /// on it return (end of file) and the test leaves no thread behind.
    fn release(path: &Path) {
        let _ = std::fs::OpenOptions::new().write(true).open(path);
    }

    #[test]
    fn an_endless_file_is_cut_at_the_cap() {
        let err = read(Path::new("/dev/zero"), 4096).unwrap_err();
        assert_eq!(err.to_string(), "cannot read /dev/zero: larger than 4 KiB");
        assert_eq!(err.cause(), "larger than 4 KiB");
    }

    #[test]
    fn a_blocking_file_times_out_and_later_reads_fail_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = fifo(dir.path());
        let err = read_within(&path, 4096, Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, FileReadError::TimedOut { .. }), "{err}");
        assert!(err.to_string().contains(&path.display().to_string()));
        // The first read is still pending: no second thread is started.
        let again = read_within(&path, 4096, Duration::from_secs(60)).unwrap_err();
        assert!(matches!(again, FileReadError::Stuck { .. }), "{again}");
        release(&path);
    }

    #[test]
    fn a_file_that_answers_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("small");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(
            read_within(&path, 3, Duration::from_secs(60)).unwrap(),
            b"abc"
        );
        let err = read(&dir.path().join("absent"), 3).unwrap_err();
        assert!(matches!(err, FileReadError::Io { .. }), "{err}");
    }
}
