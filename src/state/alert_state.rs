//! `alerts.json` in the state directory: the alert state ([`AlertSnapshot`]) between runs.
//!
//! Beside the checkpoint file, not inside it, because stdin runs have alert state but no
//! checkpoints, and the two are written by different stages. They stay consistent by order:
//! the checkpoint only moves past a hit once the hit is settled — delivered, or (at a stop) saved
//! here first: the aggregator writes its final snapshot and waits for the write before it lets go
//! of the checkpoint holds of the hits the snapshot carries over (see `app::aggregate`). A crash
//! in between re-reads those lines (a duplicate after a crash, never a loss).
//!
//! While running, a snapshot is written at most once a second when it changed, so after a
//! SIGKILL the next run still knows what was cooling down (as of a second before) and which
//! alerts await "recovered".
//!
//! Written like the checkpoints ([`atomic::replace`]), keeping `alerts.json.prev` as the last good
//! copy. A file that cannot be parsed is moved to `alerts.json.corrupt` with one warning and the
//! last good copy is used; a file of another format version is one warning and a fresh start.
//! Alert state never stops dingtail from starting: the worst a lost state does is one repeated
//! alert or one "recovered" not sent.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::atomic;
use super::snapshot::{AlertSnapshot, VERSION};

/// The file's name in the state directory.
pub const ALERTS_FILE: &str = "alerts.json";

/// Its last good copy.
pub const ALERTS_PREV: &str = "alerts.json.prev";

/// Where a file that cannot be parsed is moved.
pub const ALERTS_CORRUPT: &str = "alerts.json.corrupt";

/// How often the state is written while it changes.
pub const SAVE_EVERY: Duration = Duration::from_secs(1);

/// `alerts.json` in a state directory (which the caller has locked for this instance).
#[derive(Debug, Clone)]
pub struct AlertStore {
    dir: PathBuf,
}

impl AlertStore {
    /// The file in `dir`.
    pub fn new(dir: &Path) -> AlertStore {
        AlertStore {
            dir: dir.to_owned(),
        }
    }

    /// The file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(ALERTS_FILE)
    }

    /// The saved state, if any can be used; every problem is one warning, never an error.
    pub fn load(&self) -> Option<AlertSnapshot> {
        let path = self.path();
        match read(&path) {
            Read::Missing => {}
            Read::Good(s) => return Some(s),
            Read::Unusable(why) => {
                tracing::warn!(
                    "the alert state {} cannot be read ({why}); alert state starts fresh",
                    path.display()
                );
                return None;
            }
            Read::Corrupt(why) => {
                let aside = self.dir.join(ALERTS_CORRUPT);
                let moved = std::fs::rename(&path, &aside);
                tracing::warn!(
                    "the alert state {} is corrupt ({why}); {}; going on from the last good copy {}",
                    path.display(),
                    match moved {
                        Ok(()) => format!("kept aside as {}", aside.display()),
                        Err(e) => format!("cannot move it aside ({e})"),
                    },
                    self.dir.join(ALERTS_PREV).display(),
                );
            }
        }
        // No current file: first start, a crash between the two renames, or it was corrupt.
        let prev = self.dir.join(ALERTS_PREV);
        match read(&prev) {
            Read::Good(s) => Some(s),
            Read::Missing => None,
            Read::Unusable(why) | Read::Corrupt(why) => {
                tracing::warn!(
                    "the last good copy {} cannot be used either ({why}); alert state starts fresh",
                    prev.display()
                );
                None
            }
        }
    }

    /// Replaces the file atomically, keeping the previous one as the last good copy.
    pub fn save(&self, snapshot: &AlertSnapshot) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(snapshot).map_err(io::Error::other)?;
        atomic::replace(&self.dir, ALERTS_FILE, ALERTS_PREV, &bytes)
    }
}

enum Read {
    Missing,
    Good(AlertSnapshot),
    /// Cannot be read (permissions, I/O): left where it is.
    Unusable(String),
    /// Read, but not a snapshot of this format: moved aside.
    Corrupt(String),
}

fn read(path: &Path) -> Read {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Read::Missing,
        Err(e) => return Read::Unusable(e.to_string()),
    };
    match serde_json::from_slice::<AlertSnapshot>(&bytes) {
        Ok(s) if s.version == VERSION => Read::Good(s),
        Ok(s) => Read::Unusable(format!(
            "format version {}, this dingtail writes {VERSION}",
            s.version
        )),
        Err(e) => Read::Corrupt(e.to_string()),
    }
}

/// A request to the writer task.
#[derive(Debug)]
struct Save {
    snapshot: AlertSnapshot,
    /// Told the outcome (the final save at a stop waits for it).
    done: Option<oneshot::Sender<io::Result<()>>>,
}

/// The aggregator's handle on the writer task ([`AlertSaver::spawn`]).
#[derive(Debug)]
pub struct AlertSaver {
    tx: mpsc::Sender<Save>,
    task: tokio::task::JoinHandle<()>,
}

impl AlertSaver {
    /// Starts the writer task for `store`.
    pub fn spawn(store: AlertStore) -> AlertSaver {
        // One in flight: a periodic snapshot that finds the writer busy is skipped (the next
        // one a second later carries everything).
        let (tx, rx) = mpsc::channel(1);
        let task = tokio::spawn(write_all(store, rx));
        AlertSaver { tx, task }
    }

    /// Offers a periodic snapshot: written unless the writer is busy or nothing changed.
    pub fn offer(&self, snapshot: AlertSnapshot) {
        let _ = self.tx.try_send(Save {
            snapshot,
            done: None,
        });
    }

    /// Writes the final snapshot and waits for the writer to finish.
    pub async fn finish(self, snapshot: AlertSnapshot) -> io::Result<()> {
        let (done_tx, done_rx) = oneshot::channel();
        let sent = self
            .tx
            .send(Save {
                snapshot,
                done: Some(done_tx),
            })
            .await;
        drop(self.tx);
        let result = match sent {
            Ok(()) => done_rx
                .await
                .unwrap_or_else(|_| Err(io::Error::other("the alert state writer stopped"))),
            Err(_) => Err(io::Error::other("the alert state writer stopped")),
        };
        let _ = self.task.await;
        result
    }
}

/// The writer task: writes what it is given, in order, skipping a periodic snapshot equal to the
/// last one written (the time it was taken aside).
async fn write_all(store: AlertStore, mut rx: mpsc::Receiver<Save>) {
    let mut last: Option<AlertSnapshot> = None;
    let mut warned = false;
    while let Some(Save { snapshot, done }) = rx.recv().await {
        let same = last
            .as_ref()
            .is_some_and(|l| l.rules == snapshot.rules && l.version == snapshot.version);
        if same && done.is_none() {
            continue;
        }
        let (store2, snap2) = (store.clone(), snapshot.clone());
        let result = tokio::task::spawn_blocking(move || store2.save(&snap2))
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e.to_string())));
        match &result {
            Ok(()) => {
                last = Some(snapshot);
                warned = false;
            }
            Err(e) if !warned && done.is_none() => {
                warned = true;
                tracing::warn!(
                    "cannot write the alert state {}: {e}; retrying",
                    store.path().display()
                );
            }
            Err(_) => {}
        }
        if let Some(done) = done {
            let _ = done.send(result);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::state::snapshot::{GroupState, RuleState};

    fn snap() -> AlertSnapshot {
        let mut s = AlertSnapshot::new(SystemTime::UNIX_EPOCH);
        s.rules.insert(
            "err".into(),
            RuleState {
                shape: "hits".into(),
                groups: [(
                    String::new(),
                    GroupState {
                        alerted: true,
                        ..GroupState::default()
                    },
                )]
                .into(),
                ..RuleState::default()
            },
        );
        s
    }

    #[test]
    fn a_corrupt_file_is_kept_aside_and_the_last_good_copy_used() {
        let dir = tempfile::tempdir().unwrap();
        let store = AlertStore::new(dir.path());
        assert_eq!(store.load(), None);
        store.save(&snap()).unwrap();
        store.save(&snap()).unwrap();
        std::fs::write(store.path(), "{\"version\":1,").unwrap();
        assert_eq!(store.load(), Some(snap()));
        assert!(dir.path().join(ALERTS_CORRUPT).exists());
    }

    #[test]
    fn another_format_version_starts_fresh_without_moving_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = AlertStore::new(dir.path());
        std::fs::write(
            store.path(),
            r#"{"version":99,"saved_at":"2027-01-15T08:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(store.load(), None);
        assert!(store.path().exists());
    }
}
