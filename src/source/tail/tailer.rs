//! The tailer's loop: expand the patterns, look at every followed path (rotation, deletion,
//! problems), read what is new, then wait for a file-system event, a poll or a multi-line
//! timeout; and what a reload of `inputs:` changes.

use crate::source::inbox::{Disconnected, Inbox, Outbox};
use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use tokio::sync::mpsc;

use super::dir_watch::{DirWatcher, fixed_dir};
use super::{
    BLOCKS_PER_TURN, FollowedPath, Input, POLL, RESCAN, ROTATE_GRACE, TailConfig, TailStats,
    TailedFile, Tailer, Wake,
};
use crate::source::Chunk;
use crate::source::checkpoint::{Entry, PositionUpdate};
use crate::source::stdin::BLOCK;

impl Tailer {
    pub(super) fn new(
        cfg: TailConfig,
        chunk_tx: mpsc::Sender<Chunk>,
        updates_tx: mpsc::UnboundedSender<PositionUpdate>,
    ) -> Tailer {
        Tailer {
            cfg,
            chunk_tx,
            updates_tx,
            followed: Vec::new(),
            next_id: 1,
            started: false,
            closed: false,
            buf: vec![0; BLOCK],
            stats: TailStats::default(),
            skipped: HashSet::new(),
            left: VecDeque::new(),
            unreadable: HashMap::new(),
            fresh: HashSet::new(),
            deferred: HashMap::new(),
        }
    }

    /// `--once`: everything to its current end, then finish every file.
    pub(super) fn run_once(&mut self) {
        self.scan();
        for i in 0..self.followed.len() {
            self.check_path(i, usize::MAX);
            let w = &mut self.followed[i];
            let opens: Vec<TailedFile> = w.retired.drain(..).chain(w.current.take()).collect();
            let path = w.path.clone();
            for mut open in opens {
                self.finish(&path, &mut open);
            }
            if self.closed {
                return;
            }
        }
        let _ = self.updates_tx.send(PositionUpdate::Started);
    }

    /// Follows until the chunk channel closes.
    pub(super) fn run(&mut self, wake_tx: Outbox<Wake>, mut wake_rx: Inbox<Wake>) {
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
                let _ = self.updates_tx.send(PositionUpdate::Started);
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
                    Wake::Contents => {}
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
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.followed
            .iter()
            .flat_map(|w| w.current.iter().chain(&w.retired))
            .filter_map(|o| o.reader.deadline())
            .min()
    }

    /// Directories to watch: those of every pattern's fixed prefix and of every followed path.
    pub(super) fn dirs(&self) -> HashSet<PathBuf> {
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
    pub(super) fn scan(&mut self) {
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
                self.followed.push(FollowedPath {
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

    /// Looks at one path: identity, truncation, new data, rotated files. True when it stopped
    /// reading because of `max_blocks` (more is waiting).
    pub(super) fn check_path(&mut self, i: usize, max_blocks: usize) -> bool {
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

    /// Path `i` is read: its problem, if it had one, is over (and said to be, if it was
    /// reported).
    pub(super) fn readable(&mut self, i: usize) {
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
    pub(super) fn check_unreadable(&mut self) {
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
    pub(super) fn set_inputs(&mut self, inputs: Vec<Input>) {
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
                self.stats.cut_lines += open.reader.cut_lines();
            }
            tracing::info!(path = %w.path, "no longer followed (its input was removed)");
            self.unreadable.remove(&w.path);
        }
        self.followed = kept;
        self.cfg.inputs = inputs;
    }

    /// Warns once per distinct problem of a path; a problem that keeps it from being read
    /// (`unreadable`) starts the clock of [`Tailer::check_unreadable`].
    pub(super) fn report(&mut self, i: usize, problem: String, unreadable: bool) {
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
