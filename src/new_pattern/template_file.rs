//! `new_patterns.json` in the state directory: the templates `new_patterns:` remembers
//! ([`TemplateMemory`]) between runs, so a restart does not announce every known error again.
//!
//! Its own file, beside `alerts.json`, because it has its own life: it changes when a new
//! template is seen (or a known one is seen a minute later than last saved), and can hold
//! thousands of entries a snapshot of the alert state does not need. Written like the other
//! state files ([`atomic::replace`], keeping `new_patterns.json.prev` as the last good copy), at
//! most once a second while it changes and once at the stop. A file that cannot be parsed is
//! moved to `new_patterns.json.corrupt` with one warning and the last good copy is used; a file
//! of another format version is one warning and a fresh start (every template is new once
//! more). It never stops dingtail from starting.

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::memory::{Remembered, TemplateMemory};
use crate::state::atomic;

/// The file's name in the state directory.
pub const TEMPLATES_FILE: &str = "new_patterns.json";

/// Its last good copy.
pub const TEMPLATES_PREV: &str = "new_patterns.json.prev";

/// Where a file that cannot be parsed is moved.
pub const TEMPLATES_CORRUPT: &str = "new_patterns.json.corrupt";

/// The format version this dingtail writes.
pub const VERSION: u32 = 1;

/// The file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateFile {
    /// Format version ([`VERSION`]).
    pub version: u32,
    /// When it was written (Unix seconds).
    pub saved_at: u64,
    /// Every template remembered, sorted by template.
    pub templates: Vec<Remembered>,
}

impl TemplateFile {
    /// What `memory` holds, as of `now`.
    pub fn of(memory: &TemplateMemory, now: SystemTime) -> TemplateFile {
        TemplateFile {
            version: VERSION,
            saved_at: super::memory::unix_secs(now),
            templates: memory.export(),
        }
    }
}

/// `new_patterns.json` in a state directory (which the caller has locked for this instance).
#[derive(Debug, Clone)]
pub struct TemplateStore {
    dir: PathBuf,
}

impl TemplateStore {
    /// The file in `dir`.
    pub fn new(dir: &Path) -> TemplateStore {
        TemplateStore {
            dir: dir.to_owned(),
        }
    }

    /// The file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(TEMPLATES_FILE)
    }

    /// The saved templates, if any can be used; every problem is one warning, never an error.
    pub fn load(&self) -> Option<TemplateFile> {
        let path = self.path();
        match read(&path) {
            Read::Missing => {}
            Read::Good(f) => return Some(f),
            Read::Unusable(why) => {
                tracing::warn!(
                    "the new-pattern memory {} cannot be read ({why}); every template is new once more",
                    path.display()
                );
                return None;
            }
            Read::Corrupt(why) => {
                let aside = self.dir.join(TEMPLATES_CORRUPT);
                let moved = std::fs::rename(&path, &aside);
                tracing::warn!(
                    "the new-pattern memory {} is corrupt ({why}); {}; going on from the last good copy {}",
                    path.display(),
                    match moved {
                        Ok(()) => format!("kept aside as {}", aside.display()),
                        Err(e) => format!("cannot move it aside ({e})"),
                    },
                    self.dir.join(TEMPLATES_PREV).display(),
                );
            }
        }
        // No current file: first start, a crash between the two renames, or it was corrupt.
        let prev = self.dir.join(TEMPLATES_PREV);
        match read(&prev) {
            Read::Good(f) => Some(f),
            Read::Missing => None,
            Read::Unusable(why) | Read::Corrupt(why) => {
                tracing::warn!(
                    "the last good copy {} cannot be used either ({why}); every template is new once more",
                    prev.display()
                );
                None
            }
        }
    }

    /// Replaces the file atomically, keeping the previous one as the last good copy.
    pub fn save(&self, file: &TemplateFile) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(file).map_err(io::Error::other)?;
        atomic::replace(&self.dir, TEMPLATES_FILE, TEMPLATES_PREV, &bytes)
    }
}

enum Read {
    Missing,
    Good(TemplateFile),
    /// Cannot be read (permissions, I/O), or another format version: left where it is.
    Unusable(String),
    /// Read, but not this format: moved aside.
    Corrupt(String),
}

fn read(path: &Path) -> Read {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Read::Missing,
        Err(e) => return Read::Unusable(e.to_string()),
    };
    match serde_json::from_slice::<TemplateFile>(&bytes) {
        Ok(f) if f.version == VERSION => Read::Good(f),
        Ok(f) => Read::Unusable(format!(
            "format version {}, this dingtail writes {VERSION}",
            f.version
        )),
        Err(e) => Read::Corrupt(e.to_string()),
    }
}

/// A request to the writer task.
#[derive(Debug)]
struct Save {
    file: TemplateFile,
    /// Told the outcome (the final save at a stop waits for it).
    done: Option<oneshot::Sender<io::Result<()>>>,
}

/// The aggregator task's handle on the writer task ([`TemplateSaver::spawn`]).
#[derive(Debug)]
pub struct TemplateSaver {
    tx: mpsc::Sender<Save>,
    task: tokio::task::JoinHandle<()>,
    /// The memory's generation last offered: an unchanged memory is not offered again.
    offered: Option<u64>,
}

impl TemplateSaver {
    /// Starts the writer task for `store`.
    pub fn spawn(store: TemplateStore) -> TemplateSaver {
        // One in flight: an offer that finds the writer busy is skipped (the next one, a
        // second later, carries everything).
        let (tx, rx) = mpsc::channel(1);
        let task = tokio::spawn(write_all(store, rx));
        TemplateSaver {
            tx,
            task,
            offered: None,
        }
    }

    /// Offers the memory as of `now` (call it at most once a second): written when it changed
    /// since the last offer taken, unless the writer is busy.
    pub fn offer(&mut self, memory: &mut TemplateMemory, now: SystemTime) {
        memory.prune(now);
        if self.offered == Some(memory.generation()) {
            return;
        }
        let save = Save {
            file: TemplateFile::of(memory, now),
            done: None,
        };
        if self.tx.try_send(save).is_ok() {
            self.offered = Some(memory.generation());
        }
    }

    /// Writes the memory a last time and waits for the writer to finish.
    pub async fn finish(self, memory: &mut TemplateMemory, now: SystemTime) -> io::Result<()> {
        memory.prune(now);
        let (done_tx, done_rx) = oneshot::channel();
        let sent = self
            .tx
            .send(Save {
                file: TemplateFile::of(memory, now),
                done: Some(done_tx),
            })
            .await;
        drop(self.tx);
        let stopped = || io::Error::other("the new-pattern memory writer stopped");
        let result = match sent {
            Ok(()) => done_rx.await.unwrap_or_else(|_| Err(stopped())),
            Err(_) => Err(stopped()),
        };
        let _ = self.task.await;
        result
    }
}

/// The writer task: writes what it is given, in order (off the async threads).
async fn write_all(store: TemplateStore, mut rx: mpsc::Receiver<Save>) {
    let mut warned = false;
    while let Some(Save { file, done }) = rx.recv().await {
        let store2 = store.clone();
        let result = tokio::task::spawn_blocking(move || store2.save(&file))
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e.to_string())));
        match &result {
            Ok(()) => warned = false,
            Err(e) if !warned && done.is_none() => {
                warned = true;
                tracing::warn!(
                    "cannot write the new-pattern memory {}: {e}; retrying",
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
    use std::time::Duration;

    use super::*;

    fn memory() -> TemplateMemory {
        let mut m = TemplateMemory::new(100, Duration::from_secs(86_400));
        m.see("ERROR db <IP> timeout", SystemTime::now());
        m
    }

    #[test]
    fn a_saved_memory_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = TemplateStore::new(dir.path());
        assert_eq!(store.load(), None);
        let file = TemplateFile::of(&memory(), SystemTime::now());
        store.save(&file).unwrap();
        assert_eq!(store.load(), Some(file));
    }

    #[test]
    fn a_corrupt_file_is_kept_aside_and_the_last_good_copy_used() {
        let dir = tempfile::tempdir().unwrap();
        let store = TemplateStore::new(dir.path());
        let file = TemplateFile::of(&memory(), SystemTime::now());
        store.save(&file).unwrap();
        store.save(&file).unwrap();
        std::fs::write(store.path(), "{\"version\":1,\"templates\":[{").unwrap();
        assert_eq!(store.load(), Some(file));
        assert!(dir.path().join(TEMPLATES_CORRUPT).exists());
        assert!(!store.path().exists());
    }

    #[test]
    fn another_format_version_starts_fresh_without_moving_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = TemplateStore::new(dir.path());
        std::fs::write(
            store.path(),
            r#"{"version":99,"saved_at":0,"templates":[]}"#,
        )
        .unwrap();
        assert_eq!(store.load(), None);
        assert!(store.path().exists());
    }

    #[tokio::test]
    async fn the_saver_writes_changes_and_the_last_state_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let store = TemplateStore::new(dir.path());
        let mut saver = TemplateSaver::spawn(store.clone());
        let mut m = memory();
        saver.offer(&mut m, SystemTime::now());
        m.see("NullPointerException at <HOST>", SystemTime::now());
        saver.finish(&mut m, SystemTime::now()).await.unwrap();
        let back = store.load().unwrap();
        assert_eq!(back.templates.len(), 2);
    }
}
