//! Reloads the config when the ConfigMap it is mounted from changes.
//!
//! kubelet updates a ConfigMap volume atomically: it writes the new files
//! into a fresh timestamped directory and swaps the `..data` symlink the
//! file's own symlink goes through. inotify on the path sees nothing of
//! that, so the file is polled: when the path resolves to a new place with
//! new content, the daemon reloads as on SIGHUP (an invalid config is
//! rejected, the old one keeps running and VouchConfigReloadFailed fires).
//! A file edited in place is left to SIGHUP and POST /-/reload: a poll
//! could read it half-written.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc::Sender;
use tokio::task::JoinHandle;

use crate::output::server::ReloadRequest;

/// How often the mounted file is looked at: a read of a small file, while
/// kubelet itself takes up to a minute or more to propagate a change.
pub const POLL: Duration = Duration::from_secs(2);

/// Where the config file resolves to, and a hash of what it holds.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    target: PathBuf,
    content: u64,
}

fn look(path: &Path) -> Option<Seen> {
    let target = std::fs::canonicalize(path).ok()?;
    let bytes = crate::file_read::read(&target, crate::config::MAX_CONFIG_BYTES).ok()?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    Some(Seen {
        target,
        content: hasher.finish(),
    })
}

/// Whether `now` is a swap to a different config (a swap that kept the
/// file's content, for a change to another key, is not).
fn swapped(before: &Option<Seen>, now: &Seen) -> bool {
    match before {
        Some(before) => before.target != now.target && before.content != now.content,
        None => false,
    }
}

/// Watches `path` every [`POLL`], sending a reload request on each swap.
pub fn spawn(path: PathBuf, requests: Sender<ReloadRequest>) -> JoinHandle<()> {
    spawn_every(path, requests, POLL)
}

pub fn spawn_every(
    path: PathBuf,
    requests: Sender<ReloadRequest>,
    every: Duration,
) -> JoinHandle<()> {
    // Each look runs on the blocking pool (a hung mount must not hold an
    // async worker); one that outlives a poll is waited for again at the
    // next, never joined by another.
    let spawn_look = |path: &PathBuf| {
        let path = path.clone();
        tokio::task::spawn_blocking(move || look(&path))
    };
    tokio::spawn(async move {
        let mut seen = spawn_look(&path).await.ok().flatten();
        let mut pending = None;
        loop {
            tokio::time::sleep(every).await;
            let mut task = pending.take().unwrap_or_else(|| spawn_look(&path));
            let now = match tokio::time::timeout(every, &mut task).await {
                Ok(Ok(Some(now))) => now,
                // Unreadable for a moment (between kubelet's steps): look
                // again at the next poll.
                Ok(_) => continue,
                Err(_) => {
                    pending = Some(task);
                    continue;
                }
            };
            if swapped(&seen, &now) {
                tracing::info!(config = %path.display(), "the mounted config changed; reloading it");
                let (answer, result) = tokio::sync::oneshot::channel();
                if requests.send(answer).await.is_err() {
                    return;
                }
                // The daemon logs the outcome; a rejected config is not
                // retried until the file changes again.
                let _ = result.await;
            }
            seen = Some(now);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(target: &str, content: u64) -> Seen {
        Seen {
            target: PathBuf::from(target),
            content,
        }
    }

    #[test]
    fn only_a_swap_to_new_content_counts() {
        let before = Some(seen("/c/..2026_1/vouch.yaml", 1));
        assert!(swapped(&before, &seen("/c/..2026_2/vouch.yaml", 2)));
        // Another key of the ConfigMap changed: same content, no reload.
        assert!(!swapped(&before, &seen("/c/..2026_2/vouch.yaml", 1)));
        // Edited in place: left to SIGHUP.
        assert!(!swapped(&before, &seen("/c/..2026_1/vouch.yaml", 2)));
        assert!(!swapped(&None, &seen("/c/..2026_2/vouch.yaml", 2)));
    }
}
