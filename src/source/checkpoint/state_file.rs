//! The checkpoint file: its format ([`Entry`], [`Saved`]), the state directory ([`Store`],
//! locked by one instance and probed for writing), loading with recovery from a corrupt file,
//! and saving through [`crate::state::atomic`].

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Identity;
use crate::state::atomic;

/// Name of the state file inside the state directory.
pub const STATE_FILE: &str = "checkpoints.json";

/// The last good copy of the state file.
pub const PREV_FILE: &str = "checkpoints.json.prev";

/// Where a state file that cannot be parsed is moved.
pub const CORRUPT_FILE: &str = "checkpoints.json.corrupt";

/// The lock file that keeps a second instance out of the state directory.
pub const LOCK_FILE: &str = "lock";

/// One followed file's checkpoint: which file, where it was followed, and how far it is safely
/// done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The path it was followed at (as the glob produced it); after a rotation the file may
    /// live under another name in the same directory.
    pub path: String,
    /// The file that was at the path.
    #[serde(flatten)]
    pub identity: Identity,
    /// Everything before this byte offset is done with.
    pub offset: u64,
    /// Where this run started reading it: a `copytruncate` copy taken up where its original
    /// was read to starts there, and the original's entry no longer counts for it from then on.
    #[serde(default)]
    pub from: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    files: Vec<Entry>,
    /// The paths and globs followed when this was written.
    #[serde(default)]
    patterns: Vec<String>,
}

/// What the state file says.
#[derive(Debug, Clone, Default)]
pub struct Saved {
    /// One entry per file.
    pub files: Vec<Entry>,
    /// The paths and globs followed then: a file they match now that has no entry is newer.
    pub patterns: Vec<String>,
}

/// Why the state directory or file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No `--state-dir`, no `$STATE_DIRECTORY`, `$XDG_STATE_HOME` or `$HOME`.
    #[error("no state directory: give --state-dir (or set $STATE_DIRECTORY or $HOME)")]
    NoDir,
    /// The directory cannot be created.
    #[error("cannot create the state directory {}: {source}", .dir.display())]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The state file exists but cannot be read (permissions, I/O error).
    #[error("cannot read the checkpoint file {}: {message}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The directory cannot be written: checkpoints would never move.
    #[error("the state directory {} is not writable: {source} (give --state-dir, or fix its owner or mount)", .dir.display())]
    Unwritable {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Another dingtail uses this directory.
    #[error("the state directory {} is in use by another dingtail (it holds {}); give each instance its own --state-dir", .dir.display(), LOCK_FILE)]
    Locked {
        /// The directory.
        dir: PathBuf,
    },
}

/// The state directory: the one given, else `$STATE_DIRECTORY` (systemd's `StateDirectory=`;
/// the first one when it lists several), else `$XDG_STATE_HOME/dingtail`, else
/// `~/.local/state/dingtail`.
pub fn state_dir(given: Option<&Path>) -> Result<PathBuf, StoreError> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(d) = given {
        return Ok(d.to_owned());
    }
    if let Some(d) = var("STATE_DIRECTORY") {
        let first = d
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or("")
            .to_owned();
        if !first.is_empty() {
            return Ok(PathBuf::from(first));
        }
    }
    if let Some(d) = var("XDG_STATE_HOME") {
        return Ok(PathBuf::from(d).join("dingtail"));
    }
    var("HOME")
        .map(|h| PathBuf::from(h).join(".local/state/dingtail"))
        .ok_or(StoreError::NoDir)
}

/// The state file in its directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    /// The followed patterns, written with every save.
    patterns: Arc<Vec<String>>,
    /// Held open while this instance owns the directory (the `flock` goes with it).
    _lock: Option<Arc<File>>,
}

impl Store {
    /// Opens (creating) the state directory, without locking it (a dry run only reads).
    pub fn open(dir: PathBuf) -> Result<Store, StoreError> {
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::CreateDir {
            dir: dir.clone(),
            source,
        })?;
        Ok(Store {
            dir,
            patterns: Arc::default(),
            _lock: None,
        })
    }

    /// Takes the directory for this instance: checks it can be written and locks it.
    pub fn lock(mut self) -> Result<Store, StoreError> {
        let unwritable = |source| StoreError::Unwritable {
            dir: self.dir.clone(),
            source,
        };
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(LOCK_FILE))
            .map_err(unwritable)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked { dir: self.dir });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(unwritable(e)),
        }
        // The lock file may exist from before while the directory no longer takes new files.
        let probe = self.dir.join(format!("{STATE_FILE}.probe"));
        File::create(&probe)
            .and_then(|mut f| f.write_all(b"probe"))
            .map_err(unwritable)?;
        let _ = std::fs::remove_file(&probe);
        self._lock = Some(Arc::new(lock));
        Ok(self)
    }

    /// Records the patterns followed, written with every save.
    pub fn with_patterns(mut self, patterns: Vec<String>) -> Store {
        self.patterns = Arc::new(patterns);
        self
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The state file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// What the state file says; nothing when there is none yet. A state file that cannot be
    /// parsed is moved aside to [`CORRUPT_FILE`] with a warning, and the last good copy
    /// ([`PREV_FILE`]) is used instead (`warn` is told what happened, for the log).
    pub fn load(&self) -> Result<Saved, StoreError> {
        let path = self.path();
        match read_state(&path)? {
            Some(Ok(s)) => return Ok(s),
            Some(Err(why)) => {
                let aside = self.dir.join(CORRUPT_FILE);
                let moved = std::fs::rename(&path, &aside);
                tracing::warn!(
                    "the checkpoint file {} is corrupt ({why}); {}; going on from the last good copy {}",
                    path.display(),
                    match moved {
                        Ok(()) => format!("kept aside as {}", aside.display()),
                        Err(e) => format!("cannot move it aside ({e})"),
                    },
                    self.dir.join(PREV_FILE).display(),
                );
            }
            None => {}
        }
        // No current file: first start, or a crash between the two renames of a save.
        let prev = self.dir.join(PREV_FILE);
        match read_state(&prev)? {
            Some(Ok(s)) => Ok(s),
            Some(Err(why)) => {
                tracing::warn!(
                    "the last good copy {} is corrupt too ({why}): no checkpoints; files present now start at their end",
                    prev.display()
                );
                Ok(Saved::default())
            }
            None => Ok(Saved::default()),
        }
    }

    /// Replaces the state file atomically, keeping the old one as the last good copy (see
    /// [`atomic::replace`]).
    pub fn save(&self, mut entries: Vec<Entry>) -> io::Result<()> {
        entries.sort_by(|a, b| a.path.cmp(&b.path).then(a.offset.cmp(&b.offset)));
        let state = StateFile {
            version: 2,
            files: entries,
            patterns: self.patterns.to_vec(),
        };
        let bytes = serde_json::to_vec_pretty(&state).map_err(io::Error::other)?;
        atomic::replace(&self.dir, STATE_FILE, PREV_FILE, &bytes)
    }
}

/// One state file: `None` when missing, `Some(Err(why))` when it cannot be parsed.
fn read_state(path: &Path) -> Result<Option<Result<Saved, String>>, StoreError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StoreError::Read {
                path: path.to_owned(),
                message: e.to_string(),
            });
        }
    };
    Ok(Some(
        serde_json::from_slice::<StateFile>(&text)
            .map(|s| Saved {
                files: s.files,
                patterns: s.patterns,
            })
            .map_err(|e| e.to_string()),
    ))
}
