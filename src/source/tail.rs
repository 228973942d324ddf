//! Followed files as a source: `tail -F` with identity, rotation, truncation and checkpoints.
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
//!   again from 0. So is a file whose first bytes changed under the same inode.
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
//! - Lines are framed by [`LineFramer`]: bounded memory for huge lines, a partial last line
//!   waits for its `\n` (or for rotation, or the end of a `once` run); on a signal it is left
//!   unread, before the checkpoint, so the next run reads it whole.
//! - `once`: every file is read from where it starts to its current end, then the thread ends,
//!   which ends the run. Blocks of 256 KiB go straight into chunks, no per-line work.

use super::inbox::{Disconnected, Inbox, Outbox, inbox};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::checkpoint::{Entry, Event, FINGERPRINT_BYTES, Identity, compressed_file};
use super::multiline::Assembler;
use super::stdin::BLOCK;
use super::{Chunk, FileId, LineFramer, Mark};
use crate::source::multiline::Multiline;

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
        let _ = self.0.send(Wake::Look);
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
    /// Data may have changed.
    Look,
    /// Names in a watched directory changed: expand the globs too.
    Names,
    /// New inputs (a reload).
    Inputs(Vec<Input>),
}

/// Starts the tailer thread. Chunks go to `chunk_tx` (the thread ends when it is closed), file
/// take-ups to `events_tx` (the checkpoint keeper).
pub fn spawn(
    cfg: TailConfig,
    chunk_tx: mpsc::Sender<Chunk>,
    events_tx: mpsc::UnboundedSender<Event>,
) -> io::Result<(JoinHandle<TailStats>, Waker)> {
    let (wake_tx, wake_rx) = inbox()?;
    let waker = Waker(wake_tx.clone());
    let handle = std::thread::Builder::new()
        .name("tail".into())
        .spawn(move || {
            let mut t = Tailer::new(cfg, chunk_tx, events_tx);
            if t.cfg.once {
                t.run_once();
            } else {
                t.run(wake_tx, wake_rx);
            }
            t.stats
        })?;
    Ok((handle, waker))
}

/// An open file being read.
struct OpenFile {
    file: File,
    id: FileId,
    identity: Identity,
    /// Next byte to read.
    pos: u64,
    /// Size seen at the last look (a change triggers the fingerprint check).
    size: u64,
    framer: LineFramer,
    assembler: Option<Assembler>,
    /// Where the next chunk starts (the end of the last one).
    chunk_start: u64,
    /// Last time data arrived (or the file was opened).
    active_at: Instant,
}

/// A followed path.
struct Followed {
    path: Arc<str>,
    multiline: Option<Multiline>,
    /// Named on its own (not only by a glob): kept even while missing.
    explicit: bool,
    /// The file now at the path.
    current: Option<OpenFile>,
    /// Files rotated away from this path, read until quiet.
    retired: Vec<OpenFile>,
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

struct Tailer {
    cfg: TailConfig,
    chunk_tx: mpsc::Sender<Chunk>,
    events_tx: mpsc::UnboundedSender<Event>,
    followed: Vec<Followed>,
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
    left: std::collections::VecDeque<(Identity, u64)>,
    /// Paths with a problem, since when, and whether that was reported to `cfg.trouble`.
    unreadable: std::collections::HashMap<Arc<str>, (Instant, bool)>,
    /// Inputs a reload added, not scanned yet: what they match now starts as at a start.
    fresh: HashSet<String>,
    /// Files that looked like a copy still being written when first seen, and since when: not
    /// taken up until the copy is complete (or [`COPY_WAIT`] passed).
    deferred: HashMap<(u64, u64), Instant>,
}

/// How many left files [`Tailer`] remembers for copies.
const LEFT_KEPT: usize = 64;

/// The longest a file that looks like a `copytruncate` copy in progress waits to be taken up.
/// `cp` and logrotate write the copy in a few milliseconds; waiting for it to be complete is
/// what lets it be recognised (full fingerprint, at least as long as its original was read), so
/// it is read from where its original was read to instead of again from its first byte.
const COPY_WAIT: Duration = Duration::from_secs(2);

impl Tailer {
    fn new(
        cfg: TailConfig,
        chunk_tx: mpsc::Sender<Chunk>,
        events_tx: mpsc::UnboundedSender<Event>,
    ) -> Tailer {
        Tailer {
            cfg,
            chunk_tx,
            events_tx,
            followed: Vec::new(),
            next_id: 1,
            started: false,
            closed: false,
            buf: vec![0; BLOCK],
            stats: TailStats::default(),
            skipped: HashSet::new(),
            left: std::collections::VecDeque::new(),
            unreadable: std::collections::HashMap::new(),
            fresh: HashSet::new(),
            deferred: HashMap::new(),
        }
    }

    /// `--once`: everything to its current end, then finish every file.
    fn run_once(&mut self) {
        self.scan();
        for i in 0..self.followed.len() {
            self.check_path(i, usize::MAX);
            let w = &mut self.followed[i];
            let opens: Vec<OpenFile> = w.retired.drain(..).chain(w.current.take()).collect();
            let path = w.path.clone();
            for mut open in opens {
                self.finish(&path, &mut open);
            }
            if self.closed {
                return;
            }
        }
        let _ = self.events_tx.send(Event::Started);
    }

    /// Follows until the chunk channel closes.
    fn run(&mut self, wake_tx: Outbox<Wake>, mut wake_rx: Inbox<Wake>) {
        let mut dir_watcher = DirWatcher::new(wake_tx);
        let mut last_scan = Instant::now() - RESCAN;
        let mut rescan = true;
        let mut first = true;
        loop {
            if rescan || last_scan.elapsed() >= RESCAN {
                self.scan();
                last_scan = Instant::now();
                dir_watcher.watch(self.dirs());
            }
            let mut busy = false;
            for i in 0..self.followed.len() {
                busy |= self.check_path(i, BLOCKS_PER_TURN);
                if self.closed {
                    return;
                }
            }
            if std::mem::take(&mut first) {
                let _ = self.events_tx.send(Event::Started);
                // Said once every file present is taken up and its directory watched: from
                // here on a line appended is seen (tests wait for this line).
                let open = self.followed.iter().filter(|w| w.current.is_some()).count();
                tracing::info!(files = open, "following files");
            }
            self.followed
                .retain(|w| w.explicit || w.current.is_some() || !w.retired.is_empty());
            if self.chunk_tx.is_closed() {
                return;
            }
            if busy {
                continue;
            }
            let now = Instant::now();
            let mut wait = if dir_watcher.working() { RESCAN } else { POLL };
            wait = wait.min(RESCAN.saturating_sub(last_scan.elapsed()));
            if let Some(d) = self.next_deadline() {
                wait = wait.min(d.saturating_duration_since(now));
            }
            self.check_unreadable();
            rescan = false;
            let mut woken = Vec::new();
            match wake_rx.recv_for(wait) {
                Ok(w) => woken.extend(w),
                Err(Disconnected) => return,
            }
            // A burst of events is one look.
            woken.extend(wake_rx.try_iter());
            for w in woken {
                match w {
                    Wake::Look => {}
                    Wake::Names => rescan = true,
                    Wake::Inputs(inputs) => {
                        self.set_inputs(inputs);
                        rescan = true;
                    }
                }
            }
        }
    }

    /// The earliest multi-line timeout.
    fn next_deadline(&self) -> Option<Instant> {
        self.followed
            .iter()
            .flat_map(|w| w.current.iter().chain(&w.retired))
            .filter_map(|o| o.assembler.as_ref()?.deadline())
            .min()
    }

    /// Directories to watch: those of every pattern's fixed prefix and of every followed path.
    fn dirs(&self) -> HashSet<PathBuf> {
        let mut dirs: HashSet<PathBuf> = self
            .cfg
            .inputs
            .iter()
            .filter_map(|i| fixed_dir(&i.pattern))
            .collect();
        dirs.extend(
            self.followed
                .iter()
                .filter_map(|w| Path::new(&*w.path).parent().map(Path::to_owned)),
        );
        dirs
    }

    /// Expands every pattern; adds paths not followed yet.
    fn scan(&mut self) {
        let inputs = self.cfg.inputs.clone();
        for input in &inputs {
            let is_glob = glob::Pattern::escape(&input.pattern) != input.pattern;
            let paths: Vec<String> = if is_glob {
                match glob::glob(&input.pattern) {
                    Ok(paths) => paths
                        .filter_map(Result::ok)
                        .filter(|p| p.is_file())
                        .map(|p| p.to_string_lossy().into_owned())
                        .collect(),
                    Err(e) => {
                        tracing::warn!(pattern = %input.pattern, "invalid glob: {e}");
                        Vec::new()
                    }
                }
            } else {
                vec![input.pattern.clone()]
            };
            for path in paths {
                if self.followed.iter().any(|w| *w.path == *path) {
                    continue;
                }
                let exists = Path::new(&path).exists();
                let fresh = self.fresh.contains(&input.pattern);
                if (!self.started || fresh) && !exists {
                    tracing::warn!(path = %path, "file does not exist (yet); following it when it appears");
                }
                self.followed.push(Followed {
                    path: path.into(),
                    multiline: input.multiline.clone(),
                    explicit: !is_glob,
                    current: None,
                    retired: Vec::new(),
                    problem: None,
                    present_at_start: (!self.started || fresh) && exists,
                    taken_before: false,
                    pattern_known: self.cfg.known_patterns.contains(&input.pattern),
                    orphan: false,
                    pattern: Some(input.pattern.clone()),
                });
            }
        }
        if !self.started {
            self.recover();
        }
        self.started = true;
        self.fresh.clear();
    }

    /// At start: checkpointed files that no followed path leads to any more (renamed while
    /// dingtail was stopped) are found in their directory by identity and read to their end.
    fn recover(&mut self) {
        if self.cfg.start == Start::Beginning {
            return;
        }
        let is = |e: &Entry, f: &File| {
            e.identity.matches(f).unwrap_or(false)
                || e.identity.copied_to(f, e.offset).unwrap_or(false)
        };
        for e in self.cfg.checkpoints.clone() {
            let followed = self
                .followed
                .iter()
                .any(|w| File::open(&*w.path).is_ok_and(|f| is(&e, &f)));
            if followed {
                continue;
            }
            let dir = match Path::new(&e.path).parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
                _ => PathBuf::from("."),
            };
            let Ok(list) = std::fs::read_dir(&dir) else {
                continue;
            };
            for found in list.flatten() {
                let Ok(meta) = found.metadata() else { continue };
                let id = &e.identity;
                let candidate = meta.is_file()
                    && meta.dev() == id.dev
                    && (meta.ino() == id.ino || meta.len() >= e.offset);
                if !candidate {
                    continue;
                }
                let path = found.path();
                let Ok(file) = File::open(&path) else {
                    continue;
                };
                if !is(&e, &file) || compressed_file(&file).ok().flatten().is_some() {
                    continue;
                }
                if e.offset >= meta.len() {
                    break;
                }
                let Ok(identity) = Identity::of(&file) else {
                    break;
                };
                let path: Arc<str> = path.to_string_lossy().into();
                tracing::info!(checkpointed = %e.path, path = %path, offset = e.offset, "reading a file renamed while dingtail was stopped to its end, from its checkpoint");
                self.followed.push(Followed {
                    path: path.clone(),
                    multiline: None,
                    explicit: false,
                    current: None,
                    retired: Vec::new(),
                    problem: None,
                    present_at_start: true,
                    taken_before: true,
                    pattern_known: false,
                    orphan: true,
                    pattern: None,
                });
                let i = self.followed.len() - 1;
                self.followed[i].multiline = self
                    .cfg
                    .inputs
                    .iter()
                    .find(|inp| {
                        inp.pattern == e.path
                            || glob::Pattern::new(&inp.pattern).is_ok_and(|p| p.matches(&e.path))
                    })
                    .and_then(|inp| inp.multiline.clone());
                let mut open = self.new_open(i, file, identity, e.offset, meta.len());
                open.id = self.next_id;
                self.next_id += 1;
                let _ = self.events_tx.send(Event::Opened {
                    file: open.id,
                    path,
                    identity,
                    offset: e.offset,
                });
                self.followed[i].retired.push(open);
                break;
            }
        }
    }

    /// Looks at one path: identity, truncation, new data, rotated files. True when it stopped
    /// reading because of `max_blocks` (more is waiting).
    fn check_path(&mut self, i: usize, max_blocks: usize) -> bool {
        let path = self.followed[i].path.clone();
        let mut busy = false;

        // Files rotated away: read what is left; close the quiet ones.
        let mut retired = std::mem::take(&mut self.followed[i].retired);
        let mut keep = Vec::new();
        for mut open in retired.drain(..) {
            busy |= self.read(&path, &mut open, max_blocks);
            if open.active_at.elapsed() >= ROTATE_GRACE || self.cfg.once {
                self.finish(&path, &mut open);
                self.close(&open);
            } else {
                keep.push(open);
            }
        }
        self.followed[i].retired = keep;
        if self.followed[i].orphan {
            return busy;
        }

        match std::fs::metadata(&*path) {
            Ok(meta) if meta.is_file() => {
                let same = self.followed[i]
                    .current
                    .as_ref()
                    .is_some_and(|o| (o.identity.dev, o.identity.ino) == (meta.dev(), meta.ino()));
                if !same {
                    if let Some(mut old) = self.followed[i].current.take() {
                        tracing::info!(path = %path, "file rotated: reading the old one to its end, following the new one from its start");
                        busy |= self.read(&path, &mut old, usize::MAX);
                        old.active_at = Instant::now();
                        self.followed[i].retired.push(old);
                    }
                    if let Some(open) = self.adopt(&meta) {
                        tracing::info!(path = %path, "following a rotated file under its new name");
                        self.take_up(i, open);
                    } else if let Some(other) = self.followed_elsewhere(i, &meta) {
                        self.report(i, format!("is the same file as {other}, which is followed already: followed once"), false);
                    } else {
                        self.open(i, &meta);
                    }
                }
            }
            Ok(_) => self.report(i, "is not a regular file".into(), true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Deleted or renamed away: keep reading what we hold until it is quiet.
                if let Some(open) = &self.followed[i].current
                    && open.active_at.elapsed() >= ROTATE_GRACE
                {
                    let mut open = self.followed[i].current.take().expect("checked");
                    tracing::info!(path = %path, "file gone; following it again when it reappears");
                    self.read(&path, &mut open, usize::MAX);
                    self.finish(&path, &mut open);
                    self.close(&open);
                }
            }
            Err(e) => self.report(i, e.to_string(), true),
        }

        if let Some(mut open) = self.followed[i].current.take() {
            match self.check_in_place(&path, &mut open) {
                Ok(()) => {
                    self.readable(i);
                    busy |= self.read(&path, &mut open, max_blocks);
                }
                Err(e) => {
                    self.followed[i].current = Some(open);
                    self.report(i, e.to_string(), true);
                    return busy;
                }
            }
            self.followed[i].current = Some(open);
        }
        busy
    }

    /// A rotated file that another path of ours still holds open: take it over, so a glob that
    /// also matches rotated names does not read it again from 0.
    fn adopt(&mut self, meta: &std::fs::Metadata) -> Option<OpenFile> {
        let key = (meta.dev(), meta.ino());
        // The current file of another path that was renamed here (logrotate shifting
        // `app.log.1` to `app.log.2` under a glob): it goes on here.
        for w in &mut self.followed {
            let moved = w.current.as_ref().is_some_and(|o| {
                (o.identity.dev, o.identity.ino) == key
                    && std::fs::metadata(&*w.path).map_or(true, |m| (m.dev(), m.ino()) != key)
            });
            if moved {
                return w.current.take();
            }
        }
        for w in &mut self.followed {
            if let Some(k) = w
                .retired
                .iter()
                .position(|o| (o.identity.dev, o.identity.ino) == (meta.dev(), meta.ino()))
            {
                return Some(w.retired.remove(k));
            }
        }
        None
    }

    /// Where a file that is a copy of one this run reads or read (same full fingerprint,
    /// another inode) was read to.
    fn copy_of(&self, file: &File) -> Option<u64> {
        let open = self
            .followed
            .iter()
            .flat_map(|w| w.current.iter().chain(&w.retired))
            .map(|o| (o.identity, o.chunk_start));
        let known = self.cfg.checkpoints.iter().map(|e| (e.identity, e.offset));
        open.chain(self.left.iter().copied())
            .chain(known)
            .filter(|(id, at)| id.copied_to(file, *at).unwrap_or(false))
            .map(|(_, at)| at)
            .max()
    }

    /// Whether a file looks like a `copytruncate` copy still being written: its first bytes
    /// (fewer than a full fingerprint) are the first bytes of a file this run reads, or its full
    /// fingerprint is that of a known file but it is still shorter than where that file was
    /// read to.
    fn copy_in_progress(&self, file: &File, identity: &Identity, size: u64) -> bool {
        let open = || {
            self.followed
                .iter()
                .flat_map(|w| w.current.iter().chain(&w.retired))
        };
        let other = |id: &Identity| id.dev == identity.dev && id.ino != identity.ino;
        if (identity.fp_len as usize) < FINGERPRINT_BYTES {
            let n = identity.fp_len as usize;
            let mut head = vec![0u8; n];
            if file.read_exact_at(&mut head, 0).is_err() {
                return false;
            }
            return open().any(|o| {
                let mut theirs = vec![0u8; n];
                other(&o.identity)
                    && o.identity.fp_len as usize == FINGERPRINT_BYTES
                    && o.file.read_exact_at(&mut theirs, 0).is_ok()
                    && theirs == head
            });
        }
        open()
            .map(|o| (o.identity, o.chunk_start))
            .chain(self.left.iter().copied())
            .chain(self.cfg.checkpoints.iter().map(|e| (e.identity, e.offset)))
            .any(|(id, at)| {
                other(&id) && id.fp_len == identity.fp_len && id.fp == identity.fp && size < at
            })
    }

    /// Another followed path whose current file is this one and still there: a second way to
    /// the same file, not a rotation.
    fn followed_elsewhere(&self, i: usize, meta: &std::fs::Metadata) -> Option<Arc<str>> {
        let key = (meta.dev(), meta.ino());
        self.followed.iter().enumerate().find_map(|(j, w)| {
            let o = w.current.as_ref()?;
            let there = std::fs::metadata(&*w.path).ok()?;
            (j != i && (o.identity.dev, o.identity.ino) == key && (there.dev(), there.ino()) == key)
                .then(|| w.path.clone())
        })
    }

    /// Tells the keeper this id of a file is done with: nothing past its last chunk will come.
    fn close(&mut self, open: &OpenFile) {
        if self.left.len() == LEFT_KEPT {
            self.left.pop_front();
        }
        self.left.push_back((open.identity, open.chunk_start));
        let _ = self.events_tx.send(Event::Closed {
            file: open.id,
            end: open.chunk_start,
        });
    }

    /// Opens the file now at path `i`, deciding where to start.
    fn open(&mut self, i: usize, meta: &std::fs::Metadata) {
        let path = self.followed[i].path.clone();
        let file = match File::open(&*path) {
            Ok(f) => f,
            Err(e) => {
                self.report(i, format!("cannot open: {e}"), true);
                return;
            }
        };
        match compressed_file(&file) {
            Ok(Some(format)) => {
                if self.skipped.insert(path.to_string()) {
                    tracing::info!(path = %path, "a {format}-compressed file: skipped, not read as text (its lines were read before it was compressed)");
                }
                return;
            }
            Ok(None) => {}
            Err(e) => {
                self.report(i, format!("cannot read: {e}"), true);
                return;
            }
        }
        let identity = match Identity::of(&file) {
            Ok(id) => id,
            Err(e) => {
                self.report(i, format!("cannot read: {e}"), true);
                return;
            }
        };
        let size = meta.len();
        if self.cfg.start != Start::Beginning && self.copy_in_progress(&file, &identity, size) {
            let key = (identity.dev, identity.ino);
            let since = *self.deferred.entry(key).or_insert_with(Instant::now);
            if since.elapsed() < COPY_WAIT {
                return;
            }
        }
        self.deferred.remove(&(identity.dev, identity.ino));
        let w = &self.followed[i];
        let pos = if !w.present_at_start || w.taken_before || self.cfg.start == Start::Beginning {
            // New since start; a `copytruncate` copy of a file already read starts where that
            // file was read to.
            self.copy_of(&file).unwrap_or(0)
        } else {
            match self.checkpoint_for(&path, &file) {
                Some(offset) if offset <= size => offset,
                Some(_) => {
                    tracing::info!(path = %path, "file is shorter than its checkpoint (truncated while dingtail was down): reading it from the start");
                    0
                }
                None if w.pattern_known => {
                    tracing::info!(path = %path, "a file that appeared while dingtail was stopped: reading it from the start");
                    0
                }
                None => size,
            }
        };
        self.readable(i);
        self.followed[i].problem = None;
        let open = self.new_open(i, file, identity, pos, size);
        self.take_up(i, open);
    }

    /// The checkpoint of the file at `path`: the earliest entry naming the same file (wherever
    /// it was followed: it may have been renamed while dingtail was down) or one it is a
    /// `copytruncate` copy of; else 0 when the path had a checkpoint for another
    /// file (the file there is new since); else none.
    fn checkpoint_for(&self, path: &str, file: &File) -> Option<u64> {
        let cps = &self.cfg.checkpoints;
        let own = cps
            .iter()
            .filter(|e| e.identity.matches(file).unwrap_or(false))
            .min_by_key(|e| e.offset);
        // A copy may hold lines that its original still held when it was truncated, before
        // where this copy was taken up (`from`); what lies after that the copy's own entry
        // covers.
        let held_in_original = cps
            .iter()
            .filter(|e| own.is_none_or(|o| e.offset < o.from))
            .filter(|e| e.identity.copied_to(file, e.offset).unwrap_or(false))
            .map(|e| e.offset)
            .min();
        match (own.map(|e| e.offset), held_in_original) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .or_else(|| {
            cps.iter().any(|e| e.path == path).then(|| {
                tracing::info!(path = %path, "a different file than at the checkpoint: reading it from the start");
                0
            })
        })
    }

    fn new_open(&self, i: usize, file: File, identity: Identity, pos: u64, size: u64) -> OpenFile {
        OpenFile {
            file,
            id: 0,
            identity,
            pos,
            size,
            framer: LineFramer::starting_at(self.cfg.max_line, pos),
            assembler: self.followed[i]
                .multiline
                .as_ref()
                .map(|m| Assembler::new(m, self.cfg.max_line)),
            chunk_start: pos,
            active_at: Instant::now(),
        }
    }

    /// Makes `open` the current file of path `i` and tells the checkpoint keeper.
    fn take_up(&mut self, i: usize, mut open: OpenFile) {
        let path = self.followed[i].path.clone();
        // Always a new id, also for an adopted file: the keeper still tracks the holds of its
        // old id under its old path, until they are settled.
        if open.id != 0 {
            self.close(&open);
        }
        open.id = self.next_id;
        self.next_id += 1;
        self.followed[i].taken_before = true;
        let _ = self.events_tx.send(Event::Opened {
            file: open.id,
            path,
            identity: open.identity,
            offset: open.chunk_start,
        });
        self.followed[i].current = Some(open);
    }

    /// Truncation (size below our offset, or other first bytes under the same inode) means the
    /// file is read again from 0, as a new file for the checkpoint.
    fn check_in_place(&mut self, path: &Arc<str>, open: &mut OpenFile) -> io::Result<()> {
        let size = open.file.metadata()?.len();
        if size == open.size {
            return Ok(());
        }
        let rewritten = size < open.pos || !open.identity.matches(&open.file)?;
        open.size = size;
        if rewritten {
            tracing::info!(path = %path, "file truncated: reading it again from the start");
            self.emit_tail(path, open);
            self.close(open);
            open.id = self.next_id;
            self.next_id += 1;
            open.pos = 0;
            open.chunk_start = 0;
            open.framer = LineFramer::starting_at(self.cfg.max_line, 0);
            open.identity = Identity::of(&open.file)?;
            let _ = self.events_tx.send(Event::Opened {
                file: open.id,
                path: path.clone(),
                identity: open.identity,
                offset: 0,
            });
        } else if (open.identity.fp_len as usize) < super::checkpoint::FINGERPRINT_BYTES {
            open.identity = Identity::of(&open.file)?;
            let _ = self.events_tx.send(Event::Identified {
                file: open.id,
                identity: open.identity,
            });
        }
        Ok(())
    }

    /// Reads up to `max_blocks` blocks; true when it stopped with more to read.
    fn read(&mut self, path: &Arc<str>, open: &mut OpenFile, max_blocks: usize) -> bool {
        let mut blocks = 0;
        loop {
            if blocks >= max_blocks {
                return true;
            }
            let n = match open.file.read_at(&mut self.buf, open.pos) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(path = %path, "read failed: {e}");
                    break;
                }
            };
            blocks += 1;
            open.pos += n as u64;
            open.active_at = Instant::now();
            tracing::debug!(path = %path, offset = open.pos, "read up to");
            let from = open.framer.complete_offset();
            let lines = open.framer.push(&self.buf[..n]);
            let end = open.framer.complete_offset();
            self.emit(path, open, lines, from, end);
            if self.closed {
                return false;
            }
        }
        // Multi-line events that timed out.
        if let Some(a) = &mut open.assembler
            && a.deadline().is_some_and(|d| d <= Instant::now())
        {
            let events = a.flush();
            let end = open.framer.complete_offset();
            self.send(path, open, events, end);
        }
        false
    }

    /// Passes framed lines (from offset `from` to `end`) through the assembler (if any) and
    /// sends them.
    fn emit(
        &mut self,
        path: &Arc<str>,
        open: &mut OpenFile,
        lines: Option<Bytes>,
        from: u64,
        end: u64,
    ) {
        let (data, end) = match &mut open.assembler {
            None => (lines.unwrap_or_default(), end),
            Some(a) => a.push(
                lines.as_deref().unwrap_or_default(),
                from,
                end,
                Instant::now(),
            ),
        };
        self.send(path, open, data, end);
    }

    /// The file is left for good (rotated away and quiet, gone, truncated, end of `once`): its
    /// partial last line and pending event are taken as they are.
    fn finish(&mut self, path: &Arc<str>, open: &mut OpenFile) {
        self.emit_tail(path, open);
        self.stats.cut_lines += open.framer.cut_lines();
    }

    fn emit_tail(&mut self, path: &Arc<str>, open: &mut OpenFile) {
        let from = open.framer.complete_offset();
        let last = open.framer.finish();
        let end = open.framer.complete_offset();
        self.emit(path, open, last, from, end);
        if let Some(a) = &mut open.assembler {
            let events = a.flush();
            self.send(path, open, events, end);
        }
    }

    fn send(&mut self, path: &Arc<str>, open: &mut OpenFile, data: Bytes, end: u64) {
        if data.is_empty() && end == open.chunk_start {
            return;
        }
        let chunk = Chunk {
            source: path.clone(),
            data,
            end_offset: end,
            read_at: SystemTime::now(),
            mark: Some(Mark {
                file: open.id,
                start: open.chunk_start,
            }),
            joined: open.assembler.is_some(),
        };
        open.chunk_start = end;
        if self.chunk_tx.blocking_send(chunk).is_err() {
            self.closed = true;
        }
    }

    /// Path `i` is read: its problem, if it had one, is over (and said to be, if it was
    /// reported).
    fn readable(&mut self, i: usize) {
        if let Some((_, told)) = self.unreadable.remove(&self.followed[i].path) {
            self.followed[i].problem = None;
            if told {
                tracing::info!(path = %self.followed[i].path, "readable again");
                self.cfg.trouble.report(crate::trouble::Trouble::Readable {
                    path: self.followed[i].path.to_string(),
                });
            }
        }
    }

    /// Reports paths unreadable for `cfg.unreadable_for` (once each, until they are read again).
    fn check_unreadable(&mut self) {
        let followed: HashSet<&str> = self.followed.iter().map(|w| &*w.path).collect();
        self.unreadable.retain(|p, _| followed.contains(&**p));
        for w in &self.followed {
            let Some((since, told)) = self.unreadable.get_mut(&w.path) else {
                continue;
            };
            if !*told && since.elapsed() >= self.cfg.unreadable_for {
                *told = true;
                self.cfg
                    .trouble
                    .report(crate::trouble::Trouble::Unreadable {
                        path: w.path.to_string(),
                        problem: w.problem.clone().unwrap_or_default(),
                        since: since.elapsed(),
                    });
            }
        }
    }

    /// A reload's new inputs (see [`Waker::set_inputs`]).
    fn set_inputs(&mut self, inputs: Vec<Input>) {
        let matches = |input: &Input, path: &str| {
            input.pattern == path
                || glob::Pattern::new(&input.pattern).is_ok_and(|p| p.matches(path))
        };
        let old: Vec<String> = self.cfg.inputs.iter().map(|i| i.pattern.clone()).collect();
        for input in &inputs {
            if !old.contains(&input.pattern) {
                tracing::info!(pattern = %input.pattern, "input added by the reload: following it");
                self.fresh.insert(input.pattern.clone());
            }
        }
        for pattern in old
            .iter()
            .filter(|p| !inputs.iter().any(|i| &i.pattern == *p))
        {
            tracing::info!(pattern = %pattern, "input removed by the reload: letting its files go (their checkpoints are kept)");
        }
        let mut kept = Vec::new();
        for mut w in std::mem::take(&mut self.followed) {
            let gone = w
                .pattern
                .as_ref()
                .is_some_and(|p| !inputs.iter().any(|i| &i.pattern == p));
            if !gone {
                kept.push(w);
                continue;
            }
            // Another input may lead here too: the path stays, under that input.
            if let Some(other) = inputs.iter().find(|i| matches(i, &w.path)) {
                w.pattern = Some(other.pattern.clone());
                kept.push(w);
                continue;
            }
            // Let go: nothing past the last chunk sent is taken (a partial line or a pending
            // event lies after it), so the checkpoint is where reading would resume.
            for open in w.retired.iter().chain(w.current.iter()) {
                self.close(open);
                self.cfg
                    .checkpoints
                    .retain(|e| !e.identity.same_inode(&open.identity));
                self.cfg.checkpoints.push(Entry {
                    path: w.path.to_string(),
                    identity: open.identity,
                    offset: open.chunk_start,
                    from: open.chunk_start,
                });
                self.stats.cut_lines += open.framer.cut_lines();
            }
            tracing::info!(path = %w.path, "no longer followed (its input was removed)");
            self.unreadable.remove(&w.path);
        }
        self.followed = kept;
        self.cfg.inputs = inputs;
    }

    /// Warns once per distinct problem of a path; a problem that keeps it from being read
    /// (`unreadable`) starts the clock of [`Tailer::check_unreadable`].
    fn report(&mut self, i: usize, problem: String, unreadable: bool) {
        if unreadable {
            self.unreadable
                .entry(self.followed[i].path.clone())
                .or_insert((Instant::now(), false));
        }
        let w = &mut self.followed[i];
        if w.problem.as_deref() != Some(problem.as_str()) {
            tracing::warn!(path = %w.path, "{problem}; still following the other files and retrying this one");
            w.problem = Some(problem);
        }
    }
}

/// The directory part of a pattern before its first glob character (`/var/log/app/*.log` →
/// `/var/log/app`); for a plain path, its directory.
fn fixed_dir(pattern: &str) -> Option<PathBuf> {
    let cut = pattern.find(['*', '?', '[']).unwrap_or(pattern.len());
    let fixed = &pattern[..cut];
    let dir = if cut == pattern.len() {
        Path::new(fixed).parent()?
    } else {
        match fixed.rfind('/') {
            Some(i) => Path::new(&fixed[..i.max(1)]),
            None => Path::new("."),
        }
    };
    Some(if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir.to_owned()
    })
}

/// Directory watches through `notify`; when they cannot be set up, the tailer polls.
struct DirWatcher {
    inner: Option<notify::RecommendedWatcher>,
    watching: HashSet<PathBuf>,
    failed: bool,
}

impl DirWatcher {
    fn new(wake_tx: Outbox<Wake>) -> DirWatcher {
        use notify::event::{EventKind, ModifyKind};
        let handler = move |res: notify::Result<notify::Event>| {
            let wake = match res {
                Ok(e) => match e.kind {
                    EventKind::Access(_) => return,
                    EventKind::Create(_)
                    | EventKind::Remove(_)
                    | EventKind::Modify(ModifyKind::Name(_)) => Wake::Names,
                    _ => Wake::Look,
                },
                Err(_) => Wake::Names,
            };
            let _ = wake_tx.send(wake);
        };
        let inner = match notify::recommended_watcher(handler) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(
                    "file-system events unavailable ({e}); polling every {}ms",
                    POLL.as_millis()
                );
                None
            }
        };
        DirWatcher {
            inner,
            watching: HashSet::new(),
            failed: false,
        }
    }

    /// Whether events can be relied on for every directory of interest.
    fn working(&self) -> bool {
        self.inner.is_some() && !self.failed
    }

    fn watch(&mut self, dirs: HashSet<PathBuf>) {
        use notify::Watcher as _;
        let Some(inner) = &mut self.inner else {
            return;
        };
        self.failed = false;
        for dir in dirs {
            if self.watching.contains(&dir) {
                continue;
            }
            match inner.watch(&dir, notify::RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.watching.insert(dir);
                }
                Err(e) => {
                    tracing::debug!(dir = %dir.display(), "cannot watch ({e}); polling");
                    self.failed = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::checkpoint::Keeper;
    use std::collections::BTreeMap;
    use std::io::Write;

    #[test]
    fn fixed_dirs_of_patterns() {
        assert_eq!(fixed_dir("/var/log/app/*.log"), Some("/var/log/app".into()));
        assert_eq!(
            fixed_dir("/var/log/nginx/error.log"),
            Some("/var/log/nginx".into())
        );
        assert_eq!(fixed_dir("app.log"), Some(".".into()));
        assert_eq!(fixed_dir("*.log"), Some(".".into()));
        assert_eq!(fixed_dir("/x*"), Some("/".into()));
    }

    /// One run of the tailer driven by hand: each [`Run::step`] is one look at every path, no
    /// threads, no sleeps. Every chunk is "counted" at once; `hold` makes the next chunks stay
    /// held (an alert in its window) until [`Run::settle`].
    struct Run {
        tailer: Tailer,
        chunk_rx: mpsc::Receiver<Chunk>,
        events_rx: mpsc::UnboundedReceiver<Event>,
        keeper: Keeper,
        /// Lines read, in order.
        lines: Vec<String>,
        hold: bool,
        held: Vec<Mark>,
    }

    /// The state that survives between runs (what the state file would hold).
    #[derive(Default, Clone)]
    struct State {
        entries: Vec<Entry>,
        patterns: Vec<String>,
    }

    impl Run {
        fn start(patterns: &[&Path], state: &State) -> Run {
            Run::start_with(patterns, state, None)
        }

        fn start_with(patterns: &[&Path], state: &State, multiline: Option<Multiline>) -> Run {
            let (chunk_tx, chunk_rx) = mpsc::channel(100_000);
            let (events_tx, events_rx) = mpsc::unbounded_channel();
            let cfg = TailConfig {
                inputs: patterns
                    .iter()
                    .map(|p| Input {
                        pattern: p.to_string_lossy().into_owned(),
                        multiline: multiline.clone(),
                    })
                    .collect(),
                max_line: 1 << 20,
                start: Start::End,
                once: false,
                checkpoints: state.entries.clone(),
                known_patterns: state.patterns.clone(),
                trouble: crate::trouble::Reporter::default(),
                unreadable_for: Duration::from_secs(300),
            };
            let mut run = Run {
                tailer: Tailer::new(cfg, chunk_tx, events_tx),
                chunk_rx,
                events_rx,
                keeper: Keeper::new(state.entries.clone()),
                lines: Vec::new(),
                hold: false,
                held: Vec::new(),
            };
            run.step();
            let _ = run.tailer.events_tx.send(Event::Started);
            run.drain();
            run
        }

        /// One look at everything (a rescan included), then the pipeline catches up.
        fn step(&mut self) {
            self.tailer.scan();
            for i in 0..self.tailer.followed.len() {
                self.tailer.check_path(i, usize::MAX);
            }
            self.drain();
        }

        /// Retired files are finished now, as after their quiet time.
        fn quiet(&mut self) {
            for w in &mut self.tailer.followed {
                for o in &mut w.retired {
                    o.active_at = Instant::now() - ROTATE_GRACE;
                }
            }
            self.step();
        }

        fn drain(&mut self) {
            // Events first: Opened before the chunks of that file are counted.
            while let Ok(e) = self.events_rx.try_recv() {
                self.keeper.event(e);
            }
            while let Ok(c) = self.chunk_rx.try_recv() {
                let text = String::from_utf8(c.data.to_vec()).unwrap();
                self.lines.extend(text.lines().map(str::to_owned));
                let mark = c.mark.unwrap();
                let holds = u32::from(self.hold && !c.data.is_empty());
                if holds > 0 {
                    self.held.push(mark);
                }
                self.keeper.event(Event::Progress {
                    mark,
                    end: c.end_offset,
                    holds,
                });
                while let Ok(e) = self.events_rx.try_recv() {
                    self.keeper.event(e);
                }
            }
        }

        fn settle(&mut self) {
            let held = std::mem::take(&mut self.held);
            self.keeper.settled(&held);
        }

        /// SIGTERM: everything read is settled (delivered or reported), the state written.
        fn stop(mut self, patterns: &[&Path]) -> (State, Vec<String>) {
            self.settle();
            self.crash(patterns)
        }

        /// SIGKILL: the state as last written, holds and all.
        fn crash(self, patterns: &[&Path]) -> (State, Vec<String>) {
            let state = State {
                entries: self.keeper.entries(),
                patterns: patterns
                    .iter()
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect(),
            };
            (state, self.lines)
        }
    }

    fn append(path: &Path, from: usize, to: usize) {
        let mut f = File::options()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        for n in from..to {
            writeln!(f, "line {n:06} {}", "x".repeat(40)).unwrap();
        }
    }

    fn numbered(lines: &[String]) -> BTreeMap<usize, usize> {
        let mut seen = BTreeMap::new();
        for l in lines {
            let n: usize = l[5..11].parse().unwrap();
            *seen.entry(n).or_default() += 1;
        }
        seen
    }

    /// Every line of `range` seen exactly once.
    fn exactly_once(lines: &[String], range: std::ops::Range<usize>) {
        let seen = numbered(lines);
        let missing: Vec<usize> = range.clone().filter(|n| !seen.contains_key(n)).collect();
        let twice: Vec<usize> = seen
            .iter()
            .filter(|&(_, &c)| c > 1)
            .map(|(&n, _)| n)
            .collect();
        assert!(missing.is_empty(), "lost: {missing:?}");
        assert!(twice.is_empty(), "duplicated: {twice:?}");
        assert_eq!(seen.len(), range.len(), "only the lines written");
    }

    /// Every line of `range` seen at least once (after a crash, duplicates are allowed).
    fn at_least_once(lines: &[String], range: std::ops::Range<usize>) {
        let seen = numbered(lines);
        let missing: Vec<usize> = range.filter(|n| !seen.contains_key(n)).collect();
        assert!(missing.is_empty(), "lost: {missing:?}");
    }

    #[test]
    fn a_copytruncate_copy_seen_while_it_is_being_written_is_not_read_twice() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        let copy = dir.path().join("app.log.1");
        append(&log, 0, 10);
        let pattern = dir.path().join("app.log*");
        let pats = [pattern.as_path()];
        let mut run = Run::start(&pats, &State::default());
        append(&log, 10, 30);
        run.step();
        // `cp` has created the copy and written part of it when the tailer looks: less than a
        // fingerprint, then more than a fingerprint but less than the original was read to
        let content = std::fs::read(&log).unwrap();
        for part in [0, 100, 600] {
            std::fs::write(&copy, &content[..part]).unwrap();
            run.step();
        }
        std::fs::write(&copy, &content).unwrap();
        File::options()
            .write(true)
            .open(&log)
            .unwrap()
            .set_len(0)
            .unwrap();
        append(&log, 30, 40);
        run.step();
        let (_, lines) = run.stop(&pats);
        exactly_once(&lines, 10..40);
    }

    #[test]
    fn a_file_renamed_while_stopped_is_read_to_its_end_under_its_new_name() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        append(&log, 0, 10);
        let pats = [log.as_path()];
        let mut run = Run::start(&pats, &State::default());
        append(&log, 10, 20);
        run.step();
        let (state, mut lines) = run.stop(&pats);
        // stopped: more lines to the old file, then it is renamed and a new one created
        append(&log, 20, 30);
        std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
        append(&log, 30, 40);
        let mut run = Run::start(&pats, &state);
        append(&log, 40, 50);
        run.step();
        let (_, more) = run.stop(&pats);
        lines.extend(more);
        exactly_once(&lines, 10..50);
    }

    fn crash_after_rotation(glob: bool, copytruncate: bool) {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        let old = dir.path().join("app.log.1");
        append(&log, 0, 10);
        let pattern = dir.path().join("app.log*");
        let pats = if glob {
            [pattern.as_path()]
        } else {
            [log.as_path()]
        };
        let mut run = Run::start(&pats, &State::default());
        // an alert gathers these lines: held
        run.hold = true;
        append(&log, 10, 30);
        run.step();
        if copytruncate {
            std::fs::copy(&log, &old).unwrap();
            File::options()
                .write(true)
                .open(&log)
                .unwrap()
                .set_len(0)
                .unwrap();
        } else {
            std::fs::rename(&log, &old).unwrap();
        }
        append(&log, 30, 40);
        run.step();
        run.quiet(); // the old file read to its end and closed
        let (state, mut lines) = run.crash(&pats);
        let mut run = Run::start(&pats, &state);
        append(&log, 40, 50);
        run.step();
        let (_, more) = run.stop(&pats);
        lines.extend(more);
        at_least_once(&lines, 10..50);
    }

    #[test]
    fn a_crash_while_an_alert_holds_lines_of_a_renamed_file_loses_nothing() {
        crash_after_rotation(false, false);
    }

    #[test]
    fn a_crash_while_an_alert_holds_lines_of_a_renamed_file_loses_nothing_under_a_glob() {
        crash_after_rotation(true, false);
    }

    #[test]
    fn a_crash_while_an_alert_holds_lines_of_a_copytruncated_file_loses_nothing() {
        crash_after_rotation(false, true);
    }

    #[test]
    fn a_crash_while_an_alert_holds_lines_of_a_copytruncated_file_loses_nothing_under_a_glob() {
        crash_after_rotation(true, true);
    }

    #[test]
    fn a_stop_during_a_rotation_neither_loses_nor_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        append(&log, 0, 10);
        let pats = [log.as_path()];
        let mut run = Run::start(&pats, &State::default());
        append(&log, 10, 20);
        run.step();
        std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
        append(&log, 20, 30);
        run.step(); // the old file is retired, not yet quiet
        let (state, mut lines) = run.stop(&pats);
        // the writer had not reopened yet: more lines went to the old file
        let mut f = File::options()
            .append(true)
            .open(dir.path().join("app.log.1"))
            .unwrap();
        writeln!(f, "line {:06} {}", 30, "x".repeat(40)).unwrap();
        let mut run = Run::start(&pats, &state);
        append(&log, 31, 40);
        run.step();
        let (_, more) = run.stop(&pats);
        lines.extend(more);
        exactly_once(&lines, 10..40);
    }

    #[test]
    fn a_file_a_glob_gains_while_stopped_is_read_from_its_first_byte() {
        let dir = tempfile::tempdir().unwrap();
        let pattern = dir.path().join("*.log");
        let pats = [pattern.as_path()];
        append(&dir.path().join("a.log"), 0, 10);
        let run = Run::start(&pats, &State::default());
        let (state, mut lines) = run.stop(&pats);
        append(&dir.path().join("b.log"), 10, 20);
        let mut run = Run::start(&pats, &state);
        run.step();
        let (_, more) = run.stop(&pats);
        lines.extend(more);
        exactly_once(&lines, 10..20);
    }

    #[test]
    fn a_file_reached_by_two_paths_is_followed_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        let link = dir.path().join("link.log");
        append(&log, 0, 1);
        std::os::unix::fs::symlink(&log, &link).unwrap();
        let dotted = dir.path().join(".").join("app.log");
        let pats = [log.as_path(), link.as_path(), dotted.as_path()];
        let mut run = Run::start(&pats, &State::default());
        append(&log, 1, 20);
        run.step();
        run.step();
        let (_, lines) = run.stop(&pats);
        exactly_once(&lines, 1..20);
    }

    #[test]
    fn compressed_files_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let pattern = dir.path().join("app.log*");
        let pats = [pattern.as_path()];
        let mut run = Run::start(&pats, &State::default());
        for (name, magic) in [
            ("app.log.2.gz", &[0x1f, 0x8b, 8, 0][..]),
            ("app.log.3.zst", &[0x28, 0xb5, 0x2f, 0xfd]),
            ("app.log.4.xz", &[0xfd, b'7', b'z', b'X', b'Z', 0]),
            ("app.log.5.bz2", b"BZh9"),
        ] {
            let mut bytes = magic.to_vec();
            bytes.extend_from_slice(b"line 999999 binary\n");
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        append(&dir.path().join("app.log"), 0, 5);
        run.step();
        run.step();
        let (_, lines) = run.stop(&pats);
        exactly_once(&lines, 0..5);
    }

    #[test]
    fn a_multiline_checkpoint_follows_a_busy_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        let pats = [log.as_path()];
        let ml = Multiline {
            start: regex::bytes::Regex::new("^line 0000[0-9]0").unwrap(),
            max_lines: 500,
            timeout: Duration::from_secs(3600),
        };
        let mut run = Run::start_with(&pats, &State::default(), Some(ml));
        let mut last = 0;
        for round in 0..5 {
            append(&log, round * 10, round * 10 + 10);
            run.step();
            let now = run.keeper.safe_offset(&log.to_string_lossy()).unwrap();
            // round 0: its event is pending at offset 0; later rounds end the one before
            assert!(
                round == 0 || now > last,
                "round {round}: the checkpoint moved ({last} → {now})"
            );
            last = now;
        }
    }
}
