//! Where a file starts being read: at its checkpoint (wherever it was followed, by identity),
//! from 0 when it is new, where its original was read to when it is a `copytruncate` copy, and
//! files renamed while dingtail was stopped found again; a rotated file that another path holds
//! is taken over rather than read twice.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{FollowedPath, Start, TailedFile, Tailer};
use crate::source::checkpoint::{
    Entry, FINGERPRINT_BYTES, Identity, PositionUpdate, compressed_file,
};

/// The longest a file that looks like a `copytruncate` copy in progress waits to be taken up.
/// `cp` and logrotate write the copy in a few milliseconds; waiting for it to be complete is
/// what lets it be recognised (full fingerprint, at least as long as its original was read), so
/// it is read from where its original was read to instead of again from its first byte.
const COPY_WAIT: Duration = Duration::from_secs(2);

impl Tailer {
    /// At start: checkpointed files that no followed path leads to any more (renamed while
    /// dingtail was stopped) are found in their directory by identity and read to their end.
    pub(super) fn recover(&mut self) {
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
                self.followed.push(FollowedPath {
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
                let mut open = self.tailed_file(i, file, identity, e.offset, meta.len());
                open.id = self.next_id;
                self.next_id += 1;
                let _ = self.updates_tx.send(PositionUpdate::Opened {
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
    /// A rotated file that another path of ours still holds open: take it over, so a glob that
    /// also matches rotated names does not read it again from 0.
    pub(super) fn adopt(&mut self, meta: &std::fs::Metadata) -> Option<TailedFile> {
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
    pub(super) fn copy_of(&self, file: &File) -> Option<u64> {
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
    pub(super) fn copy_in_progress(&self, file: &File, identity: &Identity, size: u64) -> bool {
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
    pub(super) fn followed_elsewhere(
        &self,
        i: usize,
        meta: &std::fs::Metadata,
    ) -> Option<Arc<str>> {
        let key = (meta.dev(), meta.ino());
        self.followed.iter().enumerate().find_map(|(j, w)| {
            let o = w.current.as_ref()?;
            let there = std::fs::metadata(&*w.path).ok()?;
            (j != i && (o.identity.dev, o.identity.ino) == key && (there.dev(), there.ino()) == key)
                .then(|| w.path.clone())
        })
    }

    /// Opens the file now at path `i`, deciding where to start.
    pub(super) fn open(&mut self, i: usize, meta: &std::fs::Metadata) {
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
        let open = self.tailed_file(i, file, identity, pos, size);
        self.take_up(i, open);
    }

    /// The checkpoint of the file at `path`: the earliest entry naming the same file (wherever
    /// it was followed: it may have been renamed while dingtail was down) or one it is a
    /// `copytruncate` copy of; else 0 when the path had a checkpoint for another
    /// file (the file there is new since); else none.
    pub(super) fn checkpoint_for(&self, path: &str, file: &File) -> Option<u64> {
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
}
