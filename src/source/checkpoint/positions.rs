//! What the keeper last published of the files followed now: read by the metrics at each scrape.

use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

/// A followed file and its checkpoint, as last published by the keeper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The path it is followed at.
    pub path: String,
    /// Its device and inode, to tell whether it is still the file at `path`.
    pub dev: u64,
    /// See `dev`.
    pub ino: u64,
    /// Its checkpoint: everything before is done with.
    pub offset: u64,
}

impl Position {
    /// Whether `meta` (of `path`, now) is this file.
    pub fn is_at_path(&self, meta: &std::fs::Metadata) -> bool {
        (meta.dev(), meta.ino()) == (self.dev, self.ino)
    }
}

/// The files followed now and their checkpoints, shared between the keeper (which publishes
/// them whenever it writes the state, at most once a second) and whoever reads them (the
/// metrics, at each scrape).
#[derive(Debug, Clone, Default)]
pub struct Positions(Arc<std::sync::Mutex<Vec<Position>>>);

impl Positions {
    /// The files followed now, one per path.
    pub fn current(&self) -> Vec<Position> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(super) fn set(&self, now: Vec<Position>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = now;
    }
}
