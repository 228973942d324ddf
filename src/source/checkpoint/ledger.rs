//! The ledger: which chunk starts of each followed file alerts still hold, and so how far each
//! file is safely done ([`Keeper`]); plain data, told [`PositionUpdate`]s and settled holds, so it is
//! tested without tasks.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use super::{Entry, Identity, Position, Positions};
use crate::source::{FileId, Mark};

/// What the tailer and the aggregator tell the keeper of read positions: a file taken up,
/// identified or left, a chunk counted, holds on it released or moved, the first look done.
#[derive(Debug)]
pub enum PositionUpdate {
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
pub(super) struct Tracked {
    path: Arc<str>,
    identity: Identity,
    /// End of the last chunk counted (or where reading started).
    counted: u64,
    /// Chunk start → alerts holding it (signed: a release may come before its registration).
    pub(super) holds: BTreeMap<u64, i64>,
    /// Set by [`PositionUpdate::Closed`]: nothing is read past this.
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
    pub(super) files: HashMap<FileId, Tracked>,
    /// The file now followed at each path.
    current: HashMap<Arc<str>, FileId>,
    /// Entries loaded at start that no file of this run took up (yet): kept while their file
    /// is still at its path with the same first bytes (unreadable for a while, it keeps its
    /// place), and all of them until the tailer has [`PositionUpdate::Started`]. An entry for content
    /// that a `copytruncate` replaced under the same inode is not taken up by the new content:
    /// it stays until the tailer's first look is done (the copy, if followed or found, is taken
    /// up by then from that entry's offset), then goes, as its file no longer starts with its
    /// first bytes.
    carried: Vec<Entry>,
    started: bool,
    /// Something changed since the state was last written.
    pub(super) dirty: bool,
    /// Files done with lately (closed, read, settled) and where they ended: written too, so a
    /// rotated copy or renamed file found at the next start is not read again.
    ghosts: std::collections::VecDeque<Entry>,
    /// Where the files followed now and their checkpoints are published (for the metrics).
    positions: Option<Positions>,
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
    pub fn apply(&mut self, update: PositionUpdate) {
        self.dirty = true;
        match update {
            PositionUpdate::Opened {
                file,
                path,
                identity,
                offset,
            } => {
                // The entry of this very file gives way to what this run tracks. One for other
                // content under the same inode (truncated by `copytruncate` while dingtail was
                // stopped) stays: its lines are in the copy, which may be taken up next, from
                // that entry's offset; a kill between the two must not lose where that was.
                self.carried.retain(|e| {
                    !e.identity.same_inode(&identity) || e.identity.rewritten_as(&identity)
                });
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
            PositionUpdate::Identified { file, identity } => {
                if let Some(t) = self.files.get_mut(&file) {
                    t.identity = identity;
                }
            }
            PositionUpdate::Progress { mark, end, holds } => {
                if let Some(t) = self.files.get_mut(&mark.file) {
                    t.counted = t.counted.max(end);
                    if holds > 0 {
                        self.hold(mark, i64::from(holds));
                    }
                    self.forget_if_done(mark.file);
                }
            }
            PositionUpdate::Released(marks) => self.settled(&marks),
            PositionUpdate::Held(marks) => {
                for mark in marks {
                    self.hold(mark, 1);
                }
            }
            PositionUpdate::Closed { file, end } => {
                if let Some(t) = self.files.get_mut(&file) {
                    t.closed_at = Some(end);
                    self.forget_if_done(file);
                }
            }
            PositionUpdate::Started => self.started = true,
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

    /// Tells [`Positions`] what is followed now and how far.
    pub(super) fn publish(&self) {
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

/// Whether the file of a carried entry is still at its path: the same inode, with the same
/// first bytes when they can be read (a file truncated and written again since holds other
/// lines; those of the entry, if anywhere, are in a copy that was taken up by now).
fn still_at_path(e: &Entry) -> bool {
    let inode = std::fs::metadata(&e.path)
        .is_ok_and(|m| (m.dev(), m.ino()) == (e.identity.dev, e.identity.ino));
    inode
        && std::fs::File::open(&e.path)
            .and_then(|f| e.identity.matches(&f))
            .unwrap_or(true)
}
