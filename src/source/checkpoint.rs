//! Where dingtail stopped in each followed file: one state file, and the task that keeps it.
//!
//! The promise is "at least once, never lost": a file's checkpoint moves past a line only once
//! that line can no longer cause a lost alert. A line is safe when the aggregator has counted the
//! chunk it came in and either it matched nothing, or every alert counting it is *settled*
//! (delivered, or reported undelivered at exit). So the keeper learns two things:
//!
//! - from the aggregator, for every chunk of a followed file, [`Event::Progress`]: the chunk is
//!   counted, and how many alerts now hold its start ([`Alert::holds`](crate::aggregate::Alert));
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
//! The state file is JSON, written at most once a second when something moved, and once more at
//! the end, atomically: write a temporary file, fsync it, rename it over the old one, fsync the
//! directory. A crash leaves either the old or the new file, never a mix.

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

/// One followed path's checkpoint: which file was there and how far it is safely done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The path as followed (as the glob produced it).
    pub path: String,
    /// The file that was at the path.
    #[serde(flatten)]
    pub identity: Identity,
    /// Everything before this byte offset is done with.
    pub offset: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    files: Vec<Entry>,
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
    /// The state file exists but cannot be read or parsed.
    #[error("cannot read the checkpoint file {}: {message} (move it away to start afresh)", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
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
}

impl Store {
    /// Opens (creating) the state directory.
    pub fn open(dir: PathBuf) -> Result<Store, StoreError> {
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::CreateDir {
            dir: dir.clone(),
            source,
        })?;
        Ok(Store { dir })
    }

    /// The state file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// The saved entries by path; none when there is no state file yet.
    pub fn load(&self) -> Result<HashMap<String, Entry>, StoreError> {
        let path = self.path();
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HashMap::new()),
            Err(e) => {
                return Err(StoreError::Read {
                    path,
                    message: e.to_string(),
                });
            }
        };
        let state: StateFile = serde_json::from_slice(&text).map_err(|e| StoreError::Read {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Ok(state
            .files
            .into_iter()
            .map(|e| (e.path.clone(), e))
            .collect())
    }

    /// Replaces the state file atomically: write, fsync, rename, fsync the directory.
    pub fn save(&self, mut entries: Vec<Entry>) -> io::Result<()> {
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let state = StateFile {
            version: 1,
            files: entries,
        };
        let tmp = self.dir.join(format!("{STATE_FILE}.tmp"));
        let mut f = File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(&state).map_err(io::Error::other)?)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, self.path())?;
        File::open(&self.dir)?.sync_all()
    }
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
}

impl Tracked {
    fn safe_offset(&self) -> u64 {
        self.holds
            .iter()
            .find(|&(_, &n)| n > 0)
            .map_or(self.counted, |(&start, _)| start.min(self.counted))
    }
}

/// The keeper's state; plain data so it can be tested without tasks.
#[derive(Debug, Default)]
pub struct Keeper {
    files: HashMap<FileId, Tracked>,
    /// The file now followed at each path.
    current: HashMap<Arc<str>, FileId>,
    /// Entries loaded at start for paths not (yet) followed in this run: kept, so a file that is
    /// missing or unreadable for a while keeps its place.
    carried: HashMap<String, Entry>,
    dirty: bool,
}

impl Keeper {
    /// A keeper that starts from the entries loaded from the state file.
    pub fn new(loaded: HashMap<String, Entry>) -> Keeper {
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
                self.carried.remove(&*path);
                if let Some(old) = self.current.insert(path.clone(), file) {
                    self.forget_if_done(old);
                }
                self.files.insert(
                    file,
                    Tracked {
                        path,
                        identity,
                        counted: offset,
                        holds: BTreeMap::new(),
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
                }
            }
            Event::Released(marks) => self.settled(&marks),
        }
    }

    /// Alerts holding these marks are settled.
    pub fn settled(&mut self, holds: &[Mark]) {
        self.dirty = true;
        for &mark in holds {
            self.hold(mark, -1);
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
        if !self.current.values().any(|&f| f == mark.file) {
            self.forget_if_done(mark.file);
        }
    }

    /// A file no longer current at its path is forgotten once nothing holds it.
    fn forget_if_done(&mut self, file: FileId) {
        if self.files.get(&file).is_some_and(|t| t.holds.is_empty()) {
            self.files.remove(&file);
        }
    }

    /// The entries to save now.
    pub fn entries(&self) -> Vec<Entry> {
        let mut out: Vec<Entry> = self
            .current
            .values()
            .filter_map(|f| self.files.get(f))
            .map(|t| Entry {
                path: t.path.to_string(),
                identity: t.identity,
                offset: t.safe_offset(),
            })
            .collect();
        out.extend(
            self.carried
                .values()
                .filter(|e| Path::new(&e.path).exists())
                .cloned(),
        );
        out
    }

    /// The safe offset of the file now followed at `path` (for tests and logs).
    pub fn safe_offset(&self, path: &str) -> Option<u64> {
        let f = self.current.get(path)?;
        self.files.get(f).map(Tracked::safe_offset)
    }
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
                Some(e) => keeper.event(e),
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
        let mut k = Keeper::new(HashMap::new());
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
        let mut k = Keeper::new(HashMap::new());
        opened(&mut k, 1, "a", 0);
        k.settled(&[Mark { file: 1, start: 0 }]);
        progress(&mut k, 1, 0, 50, 1);
        assert_eq!(k.safe_offset("a"), Some(50));
        assert!(k.files[&1].holds.is_empty());
    }

    #[test]
    fn a_replaced_file_is_forgotten_once_settled() {
        let mut k = Keeper::new(HashMap::new());
        opened(&mut k, 1, "a", 0);
        progress(&mut k, 1, 0, 10, 1);
        opened(&mut k, 2, "a", 0);
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
        assert!(store.load().unwrap().is_empty());
        let log = dir.path().join("x.log");
        std::fs::write(&log, b"hello\n").unwrap();
        let id = Identity::of(&File::open(&log).unwrap()).unwrap();
        assert_eq!(id.fp_len, 6);
        assert!(id.matches(&File::open(&log).unwrap()).unwrap());
        let entry = Entry {
            path: "x".into(),
            identity: id,
            offset: 6,
        };
        store.save(vec![entry.clone()]).unwrap();
        assert_eq!(store.load().unwrap()["x"], entry);
        // same inode, other content: not the same file
        std::fs::write(&log, b"HELLO\n").unwrap();
        assert!(!id.matches(&File::open(&log).unwrap()).unwrap());
        std::fs::write(store.path(), b"{not json").unwrap();
        assert!(store.load().is_err());
    }
}
