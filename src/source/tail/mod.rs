//! FollowedPath files as a source: `tail -F` with identity, rotation, truncation and checkpoints.
//!
//! One thread follows every file. It wakes on file-system events (inotify through `notify`,
//! watching the directories involved) or, where events do not come (some network and overlay
//! file systems), every [`POLL`]; and at least every [`RESCAN`] to re-expand the globs. On each
//! wake it looks at every followed path, which costs a `stat` and an `fstat` per file: an idle
//! dingtail sleeps.
//!
//! What happens at the edges:
//! - A path names a file by name, like `tail -F`. When the name points at another file (rename
//!   rotation, or delete and re-create), the old file is read to its end and kept open, read on
//!   every wake, until it has been quiet for [`ROTATE_GRACE`] (a writer may still append to it
//!   before it reopens its log); its last partial line is then taken as a line. The new file is
//!   read from its first byte. When a glob also matches the rotated name (`app.log*`), the old
//!   file simply goes on under its new name: nothing is read twice.
//! - A file that shrinks below the read offset was truncated in place (copytruncate): it is read
//!   again from 0. So is a file whose first bytes changed under the same inode, compared on
//!   every look (one read of at most 256 bytes), so a truncation the writer has already written
//!   back to the same size, or past the read offset, is seen too. Not seen: a rewrite whose
//!   first bytes (as many as the fingerprint covers, up to 256) are those of the old content
//!   and that reaches the read offset before the next look; it is read on from that offset.
//! - A path that disappears is followed again when it reappears, from its first byte.
//! - A file that cannot be opened gets one warning (again only after it was readable in between)
//!   and is retried on every wake.
//! - Files present at start are read from their checkpoint when one names the same file (by
//!   identity: device, inode, fingerprint; or the full fingerprint of a `copytruncate` copy).
//!   A file that a pattern followed in the last run gained while dingtail was stopped (no
//!   checkpoint, but the pattern was followed) is read from 0: it is newer than the checkpoint.
//!   Other files present at start are read from their end, or from 0 with `from_beginning`.
//!   Files that appear later are read from 0.
//! - A checkpointed file that no followed path leads to any more (renamed while dingtail was
//!   stopped, `app.log` → `app.log.1`) is looked for among the files of its directory by
//!   identity and read from its checkpoint to its end, whether or not its new name is followed.
//! - A file is followed once, whatever paths lead to it (a symlink, `app.log` and
//!   `$PWD/app.log`, `inputs:` and the command line): the second path gets one notice.
//! - Compressed files (gzip, zstd, xz, bzip2, by their magic bytes: logrotate's `app.log.2.gz`
//!   under a glob `app.log*`) are skipped with one notice, not read as text: what they hold
//!   was read before they were compressed.
//! - Lines are framed, and gathered into events, by an [`EventReader`] per file: bounded memory for huge lines, a partial last line
//!   waits for its `\n` (or for rotation, or the end of a `once` run); on a signal it is left
//!   unread, before the checkpoint, so the next run reads it whole.
//! - `once`: every file is read from where it starts to its current end, then the thread ends,
//!   which ends the run. Blocks of 256 KiB go straight into chunks, no per-line work.
//!
//! The parts: this file holds the settings, the thread's handle and the state of what is
//! followed; [`tailer`] the loop (scan, look at each path, wait for a wake); [`start`] where a
//! file starts (checkpoints, rotations, copies, files renamed while stopped); [`reading`] one
//! file read into chunks; [`dir_watch`] the file-system events that wake the loop.

mod dir_watch;
mod reading;
mod start;
mod tailer;
#[cfg(test)]
mod tests;

use super::inbox::{Outbox, inbox};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::checkpoint::{Entry, Identity, PositionUpdate};
use super::multiline::Multiline;
use super::{Chunk, EventReader, FileId};

/// Longest wait between looks when file-system events are not available.
pub const POLL: Duration = Duration::from_millis(250);
/// Globs are expanded again at least this often.
pub const RESCAN: Duration = Duration::from_secs(1);
/// A file rotated away is still read until it has been quiet this long.
pub const ROTATE_GRACE: Duration = Duration::from_secs(5);
/// Blocks read from one file per turn before the others get theirs.
const BLOCKS_PER_TURN: usize = 16;

/// One path or glob to follow.
#[derive(Debug, Clone)]
pub struct Input {
    /// As given on the command line or in `inputs:`.
    pub pattern: String,
    /// How lines gather into events.
    pub multiline: Option<Multiline>,
}

/// Where files present at start begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At their end (or their checkpoint).
    End,
    /// At byte 0, checkpoints ignored.
    Beginning,
}

/// The tailer's settings.
#[derive(Debug, Clone)]
pub struct TailConfig {
    /// What to follow.
    pub inputs: Vec<Input>,
    /// `max_line_bytes`.
    pub max_line: usize,
    /// Where files present at start begin.
    pub start: Start,
    /// Read to the current end and stop.
    pub once: bool,
    /// Checkpoints loaded from the state file, one per file.
    pub checkpoints: Vec<Entry>,
    /// The patterns followed when the checkpoints were written: what they match now without a
    /// checkpoint appeared while dingtail was stopped.
    pub known_patterns: Vec<String>,
    /// Where a path that stays unreadable is reported (`self_alerts:`).
    pub trouble: crate::trouble::Reporter,
    /// How long a path may stay unreadable before it is reported to `trouble`.
    pub unreadable_for: Duration,
}

/// What the tailer saw, for the summary.
#[derive(Debug, Clone, Copy, Default)]
pub struct TailStats {
    /// Lines cut at `max_line_bytes`.
    pub cut_lines: u64,
}

/// Wakes the tailer thread early (file-system events, shutdown).
#[derive(Debug, Clone)]
pub struct Waker(Outbox<Wake>);

impl Waker {
    /// Makes the tailer look now (used on shutdown, so it notices its channel closed).
    pub fn wake(&self) {
        let _ = self.0.send(Wake::Contents);
    }

    /// A reload changed `inputs:`: follow these from now on. Paths only the old inputs led to
    /// are let go (their checkpoints kept, so adding them back resumes where they were left);
    /// files the new inputs match now start as at a start (at their checkpoint, else at their
    /// end); files that appear later under them are read from their first byte.
    pub fn set_inputs(&self, inputs: Vec<Input>) {
        let _ = self.0.send(Wake::Inputs(inputs));
    }
}

#[derive(Debug, Clone)]
enum Wake {
    /// A file's contents may have changed.
    Contents,
    /// Names in a watched directory changed: expand the globs too.
    Names,
    /// New inputs (a reload).
    Inputs(Vec<Input>),
}

/// Starts the tailer thread. Chunks go to `chunk_tx` (the thread ends when it is closed), file
/// take-ups to `updates_tx` (the checkpoint keeper).
pub fn spawn(
    cfg: TailConfig,
    chunk_tx: mpsc::Sender<Chunk>,
    updates_tx: mpsc::UnboundedSender<PositionUpdate>,
) -> io::Result<(JoinHandle<TailStats>, Waker)> {
    let (wake_tx, wake_rx) = inbox()?;
    let waker = Waker(wake_tx.clone());
    let handle = std::thread::Builder::new()
        .name("tail".into())
        .spawn(move || {
            let mut t = Tailer::new(cfg, chunk_tx, updates_tx);
            if t.cfg.once {
                t.run_once();
            } else {
                t.run(wake_tx, wake_rx);
            }
            t.stats
        })?;
    Ok((handle, waker))
}

/// One file being read: its descriptor, identity and framing state, and what the checkpoint
/// keeper knows of it (its id, where its next chunk starts).
struct TailedFile {
    file: File,
    id: FileId,
    identity: Identity,
    /// Next byte to read.
    pos: u64,
    /// Size seen at the last look (a change refreshes a fingerprint taken while the file was
    /// shorter than one).
    size: u64,
    /// Framing and multi-line events, positioned at `pos`.
    reader: EventReader,
    /// Where the next chunk starts (the end of the last one).
    chunk_start: u64,
    /// Last time data arrived (or the file was opened).
    active_at: Instant,
}

/// A path that is followed, the file now at it and the files rotated away from it.
struct FollowedPath {
    path: Arc<str>,
    multiline: Option<Multiline>,
    /// Named on its own (not only by a glob): kept even while missing.
    explicit: bool,
    /// The file now at the path.
    current: Option<TailedFile>,
    /// Files rotated away from this path, read until quiet.
    retired: Vec<TailedFile>,
    /// The last problem reported, so each is reported once.
    problem: Option<String>,
    /// The path existed when dingtail started: its first file starts at its end or checkpoint.
    present_at_start: bool,
    /// A file was taken up at this path before: any later one is new, read from 0.
    taken_before: bool,
    /// The pattern that produced the path was followed in the last run.
    pattern_known: bool,
    /// A checkpointed file found under a name no pattern follows: only read to its end.
    orphan: bool,
    /// The input that led here (`None` for an orphan).
    pattern: Option<String>,
}

/// The tailer thread's state: every followed path, and what it remembers across them.
struct Tailer {
    cfg: TailConfig,
    chunk_tx: mpsc::Sender<Chunk>,
    updates_tx: mpsc::UnboundedSender<PositionUpdate>,
    followed: Vec<FollowedPath>,
    next_id: FileId,
    /// Set once the first scan is done: files found later are new and read from 0.
    started: bool,
    /// The receiving end is gone: stop.
    closed: bool,
    buf: Vec<u8>,
    stats: TailStats,
    /// Compressed files already reported, so each gets one notice.
    skipped: HashSet<String>,
    /// Files left lately (rotated away, truncated) and where they ended: a `copytruncate` copy
    /// that a glob finds later is read from there, not again from 0.
    left: VecDeque<(Identity, u64)>,
    /// Paths with a problem, since when, and whether that was reported to `cfg.trouble`.
    unreadable: HashMap<Arc<str>, (Instant, bool)>,
    /// Inputs a reload added, not scanned yet: what they match now starts as at a start.
    fresh: HashSet<String>,
    /// Files that looked like a copy still being written when first seen, and since when: not
    /// taken up until the copy is complete (or [`COPY_WAIT`] passed).
    deferred: HashMap<(u64, u64), Instant>,
}

/// How many left files [`Tailer`] remembers for copies.
const LEFT_KEPT: usize = 64;
