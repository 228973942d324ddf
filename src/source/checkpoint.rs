//! Where dingtail stopped in each followed file: one state file, and the task that keeps it.
//!
//! The promise is "at least once, never lost": a file's checkpoint moves past a line only once
//! that line can no longer cause a lost alert. A line is safe when the aggregator has counted the
//! chunk it came in and either it matched nothing, or every alert counting it is *settled*
//! (delivered, or reported undelivered at exit). So the keeper learns two things:
//!
//! - from the aggregator, for every chunk of a followed file, [`Event::Progress`]: the chunk is
//!   counted, and how many alerts now hold its start ([`Routed::holds`](crate::aggregate::Routed::holds));
//! - from the dispatchers, the holds of every alert they settle.
//!
//! A file's safe offset is the start of the earliest chunk still held, else the end of the last
//! chunk counted. The two arrive on different channels, so a release may be seen before its
//! registration: counts are signed and only a positive count holds.
//!
//! Both channels are unbounded because the keeper must never slow the pipeline down, and they
//! cannot grow without bound: the keeper does nothing but bookkeeping in memory (the file write
//! runs on a blocking thread), at most one `Progress` exists per chunk (≤ 256 KiB of input), and
//! at most one settle message per message sent or reported.
//!
//! ## Why a ledger, not snapshots
//!
//! Two designs give "no line lost": this ledger (Vector's ordered finalizer: positions are
//! registered when counted and released when delivered, and one owner computes each file's safe
//! offset), or snapshots (read offsets and the whole alert state written together, Flink-style).
//! We keep the ledger because the alert state it would have to snapshot includes what each
//! dispatcher holds in flight (merged pending alerts, a message being retried with its
//! `msgUuid`): snapshotting that consistently means stopping every stage at a barrier, and a
//! restored in-flight message can still be sent twice. The ledger needs none of that: it only
//! ever makes the checkpoint *later*, so its failure mode is a re-read (a duplicate after
//! SIGKILL), never a skip. Its memory is bounded by merging: an alert holds at most one position
//! per file (the earliest), and merged alerts release the later ones at once.
//!
//! ## Files by identity
//!
//! Entries are per file, not per path: a file rotated away stays in the state file (under the
//! path it was followed at, with its device, inode and fingerprint) until everything it holds is
//! settled, so a restart finds it among the files of its directory and reads it to its end
//! (see `source::tail`). The state also records the patterns followed, so a file that a followed
//! pattern gained while dingtail was stopped is read from its first byte.
//!
//! ## The state directory
//!
//! It is locked (`flock` on `lock`) by the instance that uses it; a second instance gets
//! [`StoreError::Locked`]. It is probed for writing at start ([`StoreError::Unwritable`]), so a
//! read-only mount fails at once instead of silently never moving the checkpoint.
//!
//! The state file is JSON, written at most once a second when something moved, and once more at
//! the end, atomically: write a temporary file, fsync it, move the current file to
//! `checkpoints.json.prev` (the last good copy), rename the temporary over it, fsync the
//! directory. A crash leaves the old or the new file, never a mix; a file that cannot be parsed
//! (a disk error, a hand edit) is moved aside to `checkpoints.json.corrupt` with a warning and
//! the last good copy is used: never a crash loop under a supervisor.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::{FileId, Mark};

/// Bytes at the head of a file that make up its fingerprint.
pub const FINGERPRINT_BYTES: usize = 256;

/// Name of the state file inside the state directory.
pub const STATE_FILE: &str = "checkpoints.json";

/// The last good copy of the state file.
pub const PREV_FILE: &str = "checkpoints.json.prev";

/// Where a state file that cannot be parsed is moved.
pub const CORRUPT_FILE: &str = "checkpoints.json.corrupt";

/// The lock file that keeps a second instance out of the state directory.
pub const LOCK_FILE: &str = "lock";

/// How often the state file is rewritten while things move.
const WRITE_EVERY: Duration = Duration::from_secs(1);

/// What makes a file the same file: device and inode, plus a hash of its first bytes, so that an
/// inode reused by a new file (after the old one was deleted) is not mistaken for the old file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// How many leading bytes `fingerprint` covers (fewer than [`FINGERPRINT_BYTES`] while the
    /// file is that short; 0 for an empty file, which then matches on dev and inode alone).
    pub fp_len: u32,
    /// FNV-1a of the first `fp_len` bytes.
    pub fp: u64,
}

impl Identity {
    /// The identity of an open file, reading its first bytes.
    pub fn of(file: &File) -> io::Result<Identity> {
        let meta = file.metadata()?;
        let mut head = [0u8; FINGERPRINT_BYTES];
        let n = read_head(file, &mut head)?;
        Ok(Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            fp_len: n as u32,
            fp: fnv1a(&head[..n]),
        })
    }

    /// Whether `file` is this file: same device and inode, and the same first `fp_len` bytes.
    pub fn matches(&self, file: &File) -> io::Result<bool> {
        let meta = file.metadata()?;
        if (meta.dev(), meta.ino()) != (self.dev, self.ino) {
            return Ok(false);
        }
        let mut head = [0u8; FINGERPRINT_BYTES];
        let want = self.fp_len as usize;
        let n = read_head(file, &mut head[..want])?;
        Ok(n == want && fnv1a(&head[..n]) == self.fp)
    }

    /// Whether `file` is a copy of this file that holds at least `offset` bytes: same device,
    /// another inode, the same full fingerprint. That is what `copytruncate` leaves behind
    /// (`app.log.1`), so lines held in the original before it was truncated are found there.
    /// Only a full fingerprint ([`FINGERPRINT_BYTES`]) is trusted for this.
    pub fn copied_to(&self, file: &File, offset: u64) -> io::Result<bool> {
        if self.fp_len as usize != FINGERPRINT_BYTES {
            return Ok(false);
        }
        let meta = file.metadata()?;
        if meta.dev() != self.dev || meta.ino() == self.ino || meta.len() < offset {
            return Ok(false);
        }
        let mut head = [0u8; FINGERPRINT_BYTES];
        let n = read_head(file, &mut head)?;
        Ok(n == FINGERPRINT_BYTES && fnv1a(&head) == self.fp)
    }

    /// Same device and inode (the content may have been truncated since).
    pub fn same_inode(&self, other: &Identity) -> bool {
        (self.dev, self.ino) == (other.dev, other.ino)
    }
}

/// The compression format named by a file's first bytes, if any: such files (logrotate's
/// `app.log.2.gz`) are skipped, not read as text.
pub fn compressed(head: &[u8]) -> Option<&'static str> {
    const MAGICS: [(&[u8], &str); 4] = [
        (&[0x1f, 0x8b], "gzip"),
        (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0x00], "xz"),
        (b"BZh", "bzip2"),
    ];
    MAGICS
        .iter()
        .find(|(m, _)| head.starts_with(m))
        .map(|&(_, name)| name)
}

/// The compression format of an open file, by its magic bytes.
pub fn compressed_file(file: &File) -> io::Result<Option<&'static str>> {
    let mut head = [0u8; 6];
    let n = read_head(file, &mut head)?;
    Ok(compressed(&head[..n]))
}

/// Reads up to `buf.len()` bytes from offset 0 without moving the file position.
fn read_head(file: &File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A stable hash (the state file outlives the binary, so no std hasher with unstable keys).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

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

    /// Replaces the state file atomically: write, fsync, keep the old one as the last good
    /// copy, rename, fsync the directory.
    pub fn save(&self, mut entries: Vec<Entry>) -> io::Result<()> {
        entries.sort_by(|a, b| a.path.cmp(&b.path).then(a.offset.cmp(&b.offset)));
        let state = StateFile {
            version: 2,
            files: entries,
            patterns: self.patterns.to_vec(),
        };
        let tmp = self.dir.join(format!("{STATE_FILE}.tmp"));
        let mut f = File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(&state).map_err(io::Error::other)?)?;
        f.sync_all()?;
        drop(f);
        match std::fs::rename(self.path(), self.dir.join(PREV_FILE)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        std::fs::rename(&tmp, self.path())?;
        File::open(&self.dir)?.sync_all()
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

/// What the tailer and the aggregator tell the keeper.
#[derive(Debug)]
pub enum Event {
    /// A file was taken up at `path`, reading from `offset`; for this path it replaces any
    /// earlier file (rotation, truncation).
    Opened {
        /// This run's id for it.
        file: FileId,
        /// The path followed.
        path: Arc<str>,
        /// Its identity.
        identity: Identity,
        /// Where reading starts: everything before is done with.
        offset: u64,
    },
    /// The file's fingerprint covers more bytes now (it was shorter when opened).
    Identified {
        /// The file.
        file: FileId,
        /// Its identity now.
        identity: Identity,
    },
    /// The aggregator counted the chunk starting at `mark` and ending at `end`; `holds` alerts
    /// hold its start.
    Progress {
        /// The chunk's file and start.
        mark: Mark,
        /// Offset just past the chunk.
        end: u64,
        /// Alerts that took a hold on it.
        holds: u32,
    },
    /// Holds given up without a message (hits below a threshold at the end): as if settled.
    Released(Vec<Mark>),
    /// Holds taken on chunks counted earlier (a pending below its threshold moved its hold on
    /// to its oldest recent hit): one per entry.
    Held(Vec<Mark>),
    /// The tailer is done with this file id (rotated away and quiet, truncated, gone, taken
    /// over under another path): nothing past `end` will come under this id. Its entry stays
    /// until everything up to `end` is counted and settled.
    Closed {
        /// The file.
        file: FileId,
        /// Offset just past its last chunk.
        end: u64,
    },
    /// The tailer's first look is done, including the files it recovered by identity: entries
    /// loaded at start that nothing took up by now may be dropped once their file is gone.
    Started,
}

/// The keeper's view of one file of this run.
#[derive(Debug)]
struct Tracked {
    path: Arc<str>,
    identity: Identity,
    /// End of the last chunk counted (or where reading started).
    counted: u64,
    /// Chunk start → alerts holding it (signed: a release may come before its registration).
    holds: BTreeMap<u64, i64>,
    /// Set by [`Event::Closed`]: nothing is read past this.
    closed_at: Option<u64>,
    /// Where reading started.
    from: u64,
}

impl Tracked {
    fn safe_offset(&self) -> u64 {
        self.holds
            .iter()
            .find(|&(_, &n)| n > 0)
            .map_or(self.counted, |(&start, _)| start.min(self.counted))
    }

    /// Closed, everything read counted, nothing held.
    fn done(&self) -> bool {
        self.closed_at.is_some_and(|end| self.counted >= end)
            && self.holds.values().all(|&n| n <= 0)
    }
}

/// The keeper's state; plain data so it can be tested without tasks.
#[derive(Debug, Default)]
pub struct Keeper {
    files: HashMap<FileId, Tracked>,
    /// The file now followed at each path.
    current: HashMap<Arc<str>, FileId>,
    /// Entries loaded at start that no file of this run took up (yet): kept while their file
    /// is still at its path (missing or unreadable for a while, it keeps its place), and all of
    /// them until the tailer has [`Event::Started`].
    carried: Vec<Entry>,
    started: bool,
    dirty: bool,
    /// Files done with lately (closed, read, settled) and where they ended: written too, so a
    /// rotated copy or renamed file found at the next start is not read again.
    ghosts: std::collections::VecDeque<Entry>,
    /// Where the files followed now and their checkpoints are published (for the metrics).
    positions: Option<Positions>,
}

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

    fn set(&self, now: Vec<Position>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = now;
    }
}

/// How many done files the state keeps.
const GHOSTS_KEPT: usize = 64;

impl Keeper {
    /// A keeper that starts from the entries loaded from the state file.
    pub fn new(loaded: Vec<Entry>) -> Keeper {
        Keeper {
            carried: loaded,
            ..Keeper::default()
        }
    }

    /// Applies one event.
    pub fn event(&mut self, event: Event) {
        self.dirty = true;
        match event {
            Event::Opened {
                file,
                path,
                identity,
                offset,
            } => {
                self.carried.retain(|e| !e.identity.same_inode(&identity));
                self.current.insert(path.clone(), file);
                self.files.insert(
                    file,
                    Tracked {
                        path,
                        identity,
                        counted: offset,
                        holds: BTreeMap::new(),
                        closed_at: None,
                        from: offset,
                    },
                );
            }
            Event::Identified { file, identity } => {
                if let Some(t) = self.files.get_mut(&file) {
                    t.identity = identity;
                }
            }
            Event::Progress { mark, end, holds } => {
                if let Some(t) = self.files.get_mut(&mark.file) {
                    t.counted = t.counted.max(end);
                    if holds > 0 {
                        self.hold(mark, i64::from(holds));
                    }
                    self.forget_if_done(mark.file);
                }
            }
            Event::Released(marks) => self.settled(&marks),
            Event::Held(marks) => {
                for mark in marks {
                    self.hold(mark, 1);
                }
            }
            Event::Closed { file, end } => {
                if let Some(t) = self.files.get_mut(&file) {
                    t.closed_at = Some(end);
                    self.forget_if_done(file);
                }
            }
            Event::Started => self.started = true,
        }
    }

    /// Alerts holding these marks are settled.
    pub fn settled(&mut self, holds: &[Mark]) {
        self.dirty = true;
        for &mark in holds {
            self.hold(mark, -1);
            self.forget_if_done(mark.file);
        }
    }

    fn hold(&mut self, mark: Mark, delta: i64) {
        let Some(t) = self.files.get_mut(&mark.file) else {
            return;
        };
        let n = t.holds.entry(mark.start).or_default();
        *n += delta;
        if *n == 0 {
            t.holds.remove(&mark.start);
        }
    }

    /// A closed file is forgotten once everything it held is counted and settled.
    fn forget_if_done(&mut self, file: FileId) {
        if self.files.get(&file).is_some_and(Tracked::done) {
            let t = self.files.remove(&file).expect("checked");
            if self.ghosts.len() == GHOSTS_KEPT {
                self.ghosts.pop_front();
            }
            self.ghosts.push_back(Entry {
                path: t.path.to_string(),
                identity: t.identity,
                offset: t.counted,
                from: t.from,
            });
            if self.current.get(&t.path) == Some(&file) {
                self.current.remove(&t.path);
            }
        }
    }

    /// The entries to save now: one per file (the earliest offset when a file was followed
    /// under two ids, e.g. before and after a rotation renamed it into a followed glob).
    pub fn entries(&self) -> Vec<Entry> {
        let mut out: Vec<Entry> = Vec::new();
        let tracked = self.files.values().map(|t| Entry {
            path: t.path.to_string(),
            identity: t.identity,
            offset: t.safe_offset(),
            from: t.from,
        });
        let carried = self
            .carried
            .iter()
            .filter(|e| !self.started || still_at_path(e))
            .cloned();
        for e in tracked.chain(carried) {
            match out.iter_mut().find(|o| o.identity == e.identity) {
                Some(o) if e.offset < o.offset => *o = e,
                Some(_) => {}
                None => out.push(e),
            }
        }
        // A file still followed (taken over under another name) is not a ghost.
        for g in &self.ghosts {
            if !out
                .iter()
                .any(|o| o.identity.same_inode(&g.identity) && o.identity.fp == g.identity.fp)
            {
                out.push(g.clone());
            }
        }
        out
    }

    /// Publishes the files followed now to `positions` (see [`Positions`]).
    pub fn with_positions(mut self, positions: Positions) -> Keeper {
        self.positions = Some(positions);
        self
    }

    fn publish(&self) {
        let Some(p) = &self.positions else { return };
        let mut now: Vec<Position> = self
            .current
            .iter()
            .filter_map(|(path, id)| {
                let t = self.files.get(id).filter(|t| t.closed_at.is_none())?;
                Some(Position {
                    path: path.to_string(),
                    dev: t.identity.dev,
                    ino: t.identity.ino,
                    offset: t.safe_offset(),
                })
            })
            .collect();
        now.sort_by(|a, b| a.path.cmp(&b.path));
        p.set(now);
    }

    /// The safe offset of the file now followed at `path` (for tests and logs).
    pub fn safe_offset(&self, path: &str) -> Option<u64> {
        let f = self.current.get(path)?;
        self.files.get(f).map(Tracked::safe_offset)
    }

    /// How many files are tracked (for tests: the bound on memory).
    pub fn tracked(&self) -> usize {
        self.files.len()
    }
}

/// Whether the file of a carried entry is still at its path.
fn still_at_path(e: &Entry) -> bool {
    std::fs::metadata(&e.path).is_ok_and(|m| (m.dev(), m.ino()) == (e.identity.dev, e.identity.ino))
}

/// Runs the keeper until `finish_rx` fires (or is dropped), then applies what is queued, writes
/// once more and returns. Without a store (`--dry-run`), it keeps books and writes nothing.
pub async fn keep(
    store: Option<Store>,
    mut keeper: Keeper,
    mut events_rx: mpsc::UnboundedReceiver<Event>,
    mut settled_rx: mpsc::UnboundedReceiver<Vec<Mark>>,
    mut finish_rx: oneshot::Receiver<()>,
) {
    let mut tick = tokio::time::interval(WRITE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut events_open = true;
    let mut settled_open = true;
    loop {
        tokio::select! {
            e = events_rx.recv(), if events_open => match e {
                Some(e) => {
                    // A file taken up or left is written at once, not within the second: a
                    // crash right after a rotation must find the new file's identity.
                    let structural = matches!(e, Event::Opened { .. } | Event::Closed { .. });
                    keeper.event(e);
                    if structural {
                        while let Ok(e) = events_rx.try_recv() {
                            keeper.event(e);
                        }
                        save(&store, &mut keeper).await;
                    }
                }
                None => events_open = false,
            },
            s = settled_rx.recv(), if settled_open => match s {
                Some(s) => keeper.settled(&s),
                None => settled_open = false,
            },
            _ = tick.tick() => if keeper.dirty { save(&store, &mut keeper).await },
            _ = &mut finish_rx => break,
        }
    }
    // Registrations before releases, so nothing counts as settled before it was held.
    while let Ok(e) = events_rx.try_recv() {
        keeper.event(e);
    }
    while let Ok(s) = settled_rx.try_recv() {
        keeper.settled(&s);
    }
    keeper.dirty = true;
    save(&store, &mut keeper).await;
}

async fn save(store: &Option<Store>, keeper: &mut Keeper) {
    keeper.publish();
    let Some(store) = store.clone() else {
        keeper.dirty = false;
        return;
    };
    keeper.dirty = false;
    let entries = keeper.entries();
    let result = tokio::task::spawn_blocking(move || store.save(entries)).await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            keeper.dirty = true;
            tracing::warn!("cannot write the checkpoint file: {e}; retrying");
        }
        Err(e) => tracing::error!("checkpoint writer panicked: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident() -> Identity {
        Identity {
            dev: 1,
            ino: 2,
            fp_len: 0,
            fp: fnv1a(b""),
        }
    }

    fn opened(k: &mut Keeper, file: FileId, path: &str, offset: u64) {
        k.event(Event::Opened {
            file,
            path: path.into(),
            identity: ident(),
            offset,
        });
    }

    fn progress(k: &mut Keeper, file: FileId, start: u64, end: u64, holds: u32) {
        k.event(Event::Progress {
            mark: Mark { file, start },
            end,
            holds,
        });
    }

    #[test]
    fn the_offset_waits_for_the_earliest_unsettled_hold() {
        let mut k = Keeper::new(Vec::new());
        opened(&mut k, 1, "a", 100);
        assert_eq!(k.safe_offset("a"), Some(100));
        progress(&mut k, 1, 100, 200, 0);
        assert_eq!(k.safe_offset("a"), Some(200));
        progress(&mut k, 1, 200, 300, 2);
        progress(&mut k, 1, 300, 400, 1);
        assert_eq!(k.safe_offset("a"), Some(200));
        k.settled(&[Mark {
            file: 1,
            start: 200,
        }]);
        assert_eq!(k.safe_offset("a"), Some(200), "one of two alerts left");
        k.settled(&[Mark {
            file: 1,
            start: 200,
        }]);
        assert_eq!(k.safe_offset("a"), Some(300));
        k.settled(&[Mark {
            file: 1,
            start: 300,
        }]);
        assert_eq!(k.safe_offset("a"), Some(400));
    }

    #[test]
    fn a_release_seen_before_its_registration_does_not_hold_or_leak() {
        let mut k = Keeper::new(Vec::new());
        opened(&mut k, 1, "a", 0);
        k.settled(&[Mark { file: 1, start: 0 }]);
        progress(&mut k, 1, 0, 50, 1);
        assert_eq!(k.safe_offset("a"), Some(50));
        assert!(k.files[&1].holds.is_empty());
    }

    #[test]
    fn a_replaced_file_is_forgotten_once_settled() {
        let mut k = Keeper::new(Vec::new());
        opened(&mut k, 1, "a", 0);
        progress(&mut k, 1, 0, 10, 1);
        opened(&mut k, 2, "a", 0);
        k.event(Event::Closed { file: 1, end: 10 });
        assert_eq!(k.safe_offset("a"), Some(0));
        assert!(k.files.contains_key(&1));
        k.settled(&[Mark { file: 1, start: 0 }]);
        assert!(!k.files.contains_key(&1));
        assert_eq!(k.entries().len(), 1);
    }

    #[test]
    fn the_state_file_round_trips_and_identity_sees_content() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s")).unwrap();
        assert!(store.load().unwrap().files.is_empty());
        let log = dir.path().join("x.log");
        std::fs::write(&log, b"hello\n").unwrap();
        let id = Identity::of(&File::open(&log).unwrap()).unwrap();
        assert_eq!(id.fp_len, 6);
        assert!(id.matches(&File::open(&log).unwrap()).unwrap());
        let entry = Entry {
            path: "x".into(),
            identity: id,
            offset: 6,
            from: 0,
        };
        store.save(vec![entry.clone()]).unwrap();
        assert_eq!(store.load().unwrap().files, [entry]);
        // same inode, other content: not the same file
        std::fs::write(&log, b"HELLO\n").unwrap();
        assert!(!id.matches(&File::open(&log).unwrap()).unwrap());
    }

    fn entry(path: &str, offset: u64) -> Entry {
        Entry {
            path: path.into(),
            identity: Identity {
                ino: offset,
                ..ident()
            },
            offset,
            from: 0,
        }
    }

    #[test]
    fn a_corrupt_state_file_is_kept_aside_and_the_last_good_copy_used() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_owned()).unwrap().lock().unwrap();
        store.save(vec![entry("a", 1)]).unwrap();
        store.save(vec![entry("a", 2)]).unwrap();
        std::fs::write(store.path(), b"{not json").unwrap();
        let saved = store.load().expect("a corrupt file is not an error");
        assert_eq!(saved.files, [entry("a", 1)], "the last good copy");
        assert_eq!(
            std::fs::read(dir.path().join(CORRUPT_FILE)).unwrap(),
            b"{not json",
            "kept aside for a look"
        );
        // and again on the next start: no crash loop
        assert_eq!(store.load().unwrap().files, [entry("a", 1)]);
        // a crash between the two renames of a save leaves only the last good copy
        std::fs::remove_file(dir.path().join(CORRUPT_FILE)).unwrap();
        assert_eq!(store.load().unwrap().files, [entry("a", 1)]);
    }

    #[test]
    fn a_second_instance_cannot_take_the_state_directory() {
        let dir = tempfile::tempdir().unwrap();
        let first = Store::open(dir.path().to_owned()).unwrap().lock().unwrap();
        let second = Store::open(dir.path().to_owned()).unwrap().lock();
        assert!(
            matches!(second, Err(StoreError::Locked { .. })),
            "{second:?}"
        );
        drop(first);
        Store::open(dir.path().to_owned())
            .unwrap()
            .lock()
            .expect("free again");
    }

    #[test]
    fn an_unwritable_state_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let ro = dir.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::os::unix::fs::PermissionsExt::from_mode(0o555)).unwrap();
        // root writes anywhere; the probe still has to work for other users
        if File::create(ro.join("x")).is_ok() {
            std::fs::remove_file(ro.join("x")).unwrap();
            // a read-only bind would need privileges a test does not have: check the probe's
            // error path with a path under a regular file instead
            let file = dir.path().join("f");
            std::fs::write(&file, b"").unwrap();
            let err = Store::open(file.join("state")).unwrap_err();
            assert!(err.to_string().contains("state"), "{err}");
            return;
        }
        let err = Store::open(ro.clone()).unwrap().lock().unwrap_err();
        assert!(matches!(err, StoreError::Unwritable { .. }));
        assert!(err.to_string().contains(&ro.display().to_string()), "{err}");
    }

    #[test]
    fn a_rotated_file_stays_in_the_state_until_settled_and_closed() {
        let mut k = Keeper::new(Vec::new());
        opened(&mut k, 1, "a", 0);
        progress(&mut k, 1, 0, 10, 1);
        opened(&mut k, 2, "a", 0);
        k.event(Event::Closed { file: 1, end: 10 });
        assert_eq!(
            k.entries().len(),
            1,
            "same identity in this test: one entry"
        );
        assert_eq!(
            k.entries()[0].offset,
            0,
            "the held offset of the rotated file wins"
        );
        k.settled(&[Mark { file: 1, start: 0 }]);
        assert_eq!(k.tracked(), 1, "forgotten once settled");
        // closed before its last chunk was counted: kept until it is
        opened(&mut k, 3, "b", 0);
        k.event(Event::Closed { file: 3, end: 20 });
        assert_eq!(k.tracked(), 2);
        progress(&mut k, 3, 0, 20, 0);
        assert_eq!(k.tracked(), 1);
    }
}
