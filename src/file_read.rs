//! The one way vouch reads a file it is pointed at while running: secret
//! files, PEM files and CA bundles, kubeconfigs, federated tokens.
//!
//! Such a path may name a FIFO or sit on a hung NFS/FUSE/CSI mount (the
//! read never returns), or name `/dev/zero` or a log file by mistake (it
//! never ends). So every read is capped in size, runs on a thread of its
//! own rather than an async worker, and is waited for only as long as the
//! caller may wait: an async caller is abandoned at its run's timeout; a
//! synchronous caller (building a check) gives up after a set time. Reads of
//! one path at the same moment are all served (two checks naming one CA
//! bundle); once a read of a path hangs (its caller gave up on it, or it
//! has been outstanding for a second), later reads of that path fail at
//! once instead of piling up more stuck threads.

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

/// How long a read may be outstanding before later reads of the same path
/// stop starting threads of their own. Local files answer in microseconds;
/// two checks reading one CA bundle or secret at the same moment must both
/// be served, but a read pending this long is on a mount that hangs.
const STUCK_AFTER: Duration = Duration::from_secs(1);

/// One read that has not returned yet.
struct Outstanding {
    id: u64,
    since: Instant,
    /// Its caller stopped waiting (a build wait or a run's timeout ran out).
    abandoned: bool,
}

/// Reads that have not returned yet, by path. A read that blocks holds its
/// thread until it returns; once one is known to hang, later reads of the
/// same path fail at once instead of piling up more stuck threads.
static PENDING: LazyLock<Mutex<HashMap<PathBuf, Vec<Outstanding>>>> =
    LazyLock::new(Default::default);

/// Takes its read out of [`PENDING`] when the read returns (or panics).
struct Pending {
    path: PathBuf,
    id: u64,
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut pending = lock(&PENDING);
        if let Some(reads) = pending.get_mut(&self.path) {
            reads.retain(|read| read.id != self.id);
            if reads.is_empty() {
                pending.remove(&self.path);
            }
        }
    }
}

/// Marks a read of `path` as started, unless an earlier one hangs: its
/// caller gave up on it, or it has been outstanding for [`STUCK_AFTER`].
fn claim(path: &Path) -> Result<Pending, FileReadError> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut pending = lock(&PENDING);
    let reads = pending.entry(path.to_path_buf()).or_default();
    let hung = reads
        .iter()
        .filter(|read| read.abandoned || read.since.elapsed() >= STUCK_AFTER)
        .map(|read| read.since.elapsed())
        .max();
    if let Some(age) = hung {
        return Err(FileReadError::Stuck {
            path: path.to_path_buf(),
            seconds: age.as_secs(),
        });
    }
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    reads.push(Outstanding {
        id,
        since: Instant::now(),
        abandoned: false,
    });
    Ok(Pending {
        path: path.to_path_buf(),
        id,
    })
}

/// Records that the caller of read `id` stopped waiting for it. A no-op
/// when the read has returned meanwhile.
fn abandon(path: &Path, id: u64) {
    let mut pending = lock(&PENDING);
    if let Some(read) = pending
        .get_mut(path)
        .and_then(|reads| reads.iter_mut().find(|read| read.id == id))
    {
        read.abandoned = true;
    }
}

fn read_claimed(pending: &Pending, cap: u64) -> Result<Vec<u8>, FileReadError> {
    read_capped(&pending.path, cap).map_err(|source| FileReadError::Io {
        path: pending.path.clone(),
        source,
    })
}

/// Reads `path` (at most `cap` bytes) on the calling thread, unless an
/// earlier read of it hangs. For code already off the async workers;
/// everything else uses [`read_async`] or [`read_within`].
pub fn read(path: &Path, cap: u64) -> Result<Vec<u8>, FileReadError> {
    read_claimed(&claim(path)?, cap)
}

/// Marks its read abandoned if dropped before the read returned: the
/// runner dropped the run's future at its timeout.
struct AbandonOnDrop {
    path: PathBuf,
    id: u64,
    returned: bool,
}

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        if !self.returned {
            abandon(&self.path, self.id);
        }
    }
}

/// [`read`] for a run: on the blocking pool, so a read that blocks holds
/// neither an async worker nor the run past its timeout (the runner
/// abandons the run; the read finishes, or not, on its own thread).
pub async fn read_async(path: &Path, cap: u64) -> Result<Vec<u8>, FileReadError> {
    let pending = claim(path)?;
    let mut watch = AbandonOnDrop {
        path: path.to_path_buf(),
        id: pending.id,
        returned: false,
    };
    let joined = tokio::task::spawn_blocking(move || read_claimed(&pending, cap)).await;
    watch.returned = true;
    joined.unwrap_or_else(|_| {
        Err(FileReadError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other("the read failed"),
        })
    })
}

/// [`read`] for synchronous callers (building checks, `vouch validate`):
/// on a thread of its own, waited for at most `wait`.
pub fn read_within(path: &Path, cap: u64, wait: Duration) -> Result<Vec<u8>, FileReadError> {
    let pending = claim(path)?;
    let id = pending.id;
    let (send, receive) = std::sync::mpsc::sync_channel(1);
    let spawned = std::thread::Builder::new()
        .name("vouch-file-read".into())
        .spawn(move || {
            let _ = send.send(read_claimed(&pending, cap));
        });
    if let Err(source) = spawned {
        return Err(FileReadError::Io {
            path: path.to_path_buf(),
            source,
        });
    }
    receive.recv_timeout(wait).unwrap_or_else(|_| {
        abandon(path, id);
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

    /// [`release`] without blocking when no reader has the FIFO open.
    fn release_if_read(path: &Path) {
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path);
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

    /// Waits until `count` reads of `path` are outstanding.
    fn await_outstanding(path: &Path, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while lock(&PENDING).get(path).map_or(0, Vec::len) < count {
            assert!(Instant::now() < deadline, "the reads never started");
            std::thread::yield_now();
        }
    }

    #[test]
    fn reads_of_one_path_at_the_same_moment_are_all_served() {
        let dir = tempfile::tempdir().unwrap();
        let path = fifo(dir.path());
        // Two readers block on the FIFO at once, as two checks naming one
        // CA bundle do when built together: the second is not refused.
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || read_within(&path, 4096, Duration::from_secs(60)))
            })
            .collect();
        await_outstanding(&path, 2);
        // A reader counted as outstanding may not have opened the FIFO yet;
        // keep opening and closing the writing end until both returned.
        while !readers.iter().all(|reader| reader.is_finished()) {
            release_if_read(&path);
            std::thread::yield_now();
        }
        for reader in readers {
            assert_eq!(reader.join().unwrap().unwrap(), b"");
        }
        assert!(
            lock(&PENDING).get(&path).is_none(),
            "no read is left outstanding"
        );
    }

    #[tokio::test]
    async fn a_run_that_gives_up_on_a_read_makes_later_reads_fail_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = fifo(dir.path());
        let gave_up =
            tokio::time::timeout(Duration::from_millis(200), read_async(&path, 4096)).await;
        assert!(gave_up.is_err(), "the FIFO read cannot have returned");
        let err = read(&path, 4096).unwrap_err();
        assert!(matches!(err, FileReadError::Stuck { .. }), "{err}");
        // Once the hung read returns, the path is no longer refused.
        let deadline = Instant::now() + Duration::from_secs(30);
        while lock(&PENDING).contains_key(&path) {
            assert!(
                Instant::now() < deadline,
                "the released read never returned"
            );
            release_if_read(&path);
            tokio::task::yield_now().await;
        }
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
