//! One JSON file of the state directory ([`JsonFile`]): loaded at start, replaced atomically
//! while running. `alerts.json` (`state::alert_state`) and `new_patterns.json`
//! (`new_pattern::template_file`) are both this, so they behave the same at every edge.
//!
//! Written with [`atomic::replace`], keeping `<file>.prev` as the last good copy. Loading never
//! fails, every problem is one warning:
//! - missing: nothing saved (first start), or a crash between the two renames of a replace: the
//!   last good copy is used when there is one;
//! - unreadable (permissions, I/O) or of another format version: left where it is, a fresh start;
//! - unparsable: moved to `<file>.corrupt` (so the next start does not warn again) and the last
//!   good copy is used;
//! - the last good copy unusable too: a fresh start.
//!
//! What a file holds never stops dingtail from starting; what a fresh start costs is said by the
//! content type's [`JsonState::FRESH`].

use std::io;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::atomic;

/// What a [`JsonFile`] holds: serde data with a format version, and the words its messages use.
pub trait JsonState: Serialize + DeserializeOwned + Send + 'static {
    /// The file's name in the state directory; its last good copy is `FILE.prev` and a copy
    /// that cannot be parsed is moved to `FILE.corrupt`.
    const FILE: &'static str;
    /// What it is, in messages ("the alert state").
    const WHAT: &'static str;
    /// What a fresh start means, in messages ("alert state starts fresh").
    const FRESH: &'static str;
    /// The format version this dingtail writes; a file of another one is not used.
    const VERSION: u32;
    /// When set, the writer task ([`super::writer::StateWriter`]) skips a periodic save for
    /// which this says "unchanged" against the last one written (it then keeps that one).
    const UNCHANGED: Option<fn(&Self, &Self) -> bool> = None;

    /// The format version this content was written with.
    fn version(&self) -> u32;
}

/// The file holding a `T` in a state directory (which the caller has locked for this instance).
#[derive(Debug)]
pub struct JsonFile<T> {
    dir: PathBuf,
    _content: PhantomData<fn() -> T>,
}

impl<T> Clone for JsonFile<T> {
    fn clone(&self) -> Self {
        JsonFile {
            dir: self.dir.clone(),
            _content: PhantomData,
        }
    }
}

impl<T: JsonState> JsonFile<T> {
    /// The file in `dir`.
    pub fn new(dir: &Path) -> JsonFile<T> {
        JsonFile {
            dir: dir.to_owned(),
            _content: PhantomData,
        }
    }

    /// The file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(T::FILE)
    }

    /// Its last good copy's name: `FILE.prev`.
    fn prev_name() -> String {
        format!("{}.prev", T::FILE)
    }

    /// Where a copy that cannot be parsed is moved: `FILE.corrupt`.
    pub fn corrupt_path(&self) -> PathBuf {
        self.dir.join(format!("{}.corrupt", T::FILE))
    }

    /// The saved content, if any can be used; every problem is one warning, never an error.
    pub fn load(&self) -> Option<T> {
        let path = self.path();
        match read::<T>(&path) {
            Read::Missing => {}
            Read::Good(f) => return Some(f),
            Read::Unusable(why) => {
                tracing::warn!(
                    "{} {} cannot be read ({why}); {}",
                    T::WHAT,
                    path.display(),
                    T::FRESH
                );
                return None;
            }
            Read::Corrupt(why) => {
                let aside = self.corrupt_path();
                let moved = std::fs::rename(&path, &aside);
                tracing::warn!(
                    "{} {} is corrupt ({why}); {}; going on from the last good copy {}",
                    T::WHAT,
                    path.display(),
                    match moved {
                        Ok(()) => format!("kept aside as {}", aside.display()),
                        Err(e) => format!("cannot move it aside ({e})"),
                    },
                    self.dir.join(Self::prev_name()).display(),
                );
            }
        }
        // No current file: first start, a crash between the two renames, or it was corrupt.
        let prev = self.dir.join(Self::prev_name());
        match read::<T>(&prev) {
            Read::Good(f) => Some(f),
            Read::Missing => None,
            Read::Unusable(why) | Read::Corrupt(why) => {
                tracing::warn!(
                    "the last good copy {} cannot be used either ({why}); {}",
                    prev.display(),
                    T::FRESH
                );
                None
            }
        }
    }

    /// Replaces the file atomically, keeping the previous one as the last good copy.
    pub fn save(&self, content: &T) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(content).map_err(io::Error::other)?;
        atomic::replace(&self.dir, T::FILE, &Self::prev_name(), &bytes)
    }
}

enum Read<T> {
    Missing,
    Good(T),
    /// Cannot be read (permissions, I/O), or another format version: left where it is.
    Unusable(String),
    /// Read, but not this format: moved aside.
    Corrupt(String),
}

fn read<T: JsonState>(path: &Path) -> Read<T> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Read::Missing,
        Err(e) => return Read::Unusable(e.to_string()),
    };
    match serde_json::from_slice::<T>(&bytes) {
        Ok(f) if f.version() == T::VERSION => Read::Good(f),
        Ok(f) => Read::Unusable(format!(
            "format version {}, this dingtail writes {}",
            f.version(),
            T::VERSION
        )),
        Err(e) => Read::Corrupt(e.to_string()),
    }
}
