//! One file read into chunks: blocks read at its offset, framed into lines (and gathered into
//! events with `multiline`), sent with the offsets the checkpoint keeper needs; truncation in
//! place noticed; the keeper told when a file is taken up and when it is done with.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::{LEFT_KEPT, TailedFile, Tailer};
use crate::source::checkpoint::{FINGERPRINT_BYTES, Identity, PositionUpdate};
use crate::source::{Chunk, EventBlock, EventReader, Mark};

impl Tailer {
    /// A file of path `i` about to be read from `pos`, with its reader (gathering events when
    /// the path's input has `multiline`).
    pub(super) fn tailed_file(
        &self,
        i: usize,
        file: File,
        identity: Identity,
        pos: u64,
        size: u64,
    ) -> TailedFile {
        TailedFile {
            file,
            id: 0,
            identity,
            pos,
            size,
            reader: EventReader::starting_at(
                self.cfg.max_line,
                self.followed[i].multiline.as_ref(),
                pos,
            ),
            chunk_start: pos,
            active_at: Instant::now(),
        }
    }

    /// Makes `open` the current file of path `i` and tells the checkpoint keeper.
    pub(super) fn take_up(&mut self, i: usize, mut open: TailedFile) {
        let path = self.followed[i].path.clone();
        // Always a new id, also for an adopted file: the keeper still tracks the holds of its
        // old id under its old path, until they are settled.
        if open.id != 0 {
            self.close(&open);
        }
        open.id = self.next_id;
        self.next_id += 1;
        self.followed[i].taken_before = true;
        let _ = self.updates_tx.send(PositionUpdate::Opened {
            file: open.id,
            path,
            identity: open.identity,
            offset: open.chunk_start,
        });
        self.followed[i].current = Some(open);
    }

    /// Truncation (size below our offset, or other first bytes under the same inode) means the
    /// file is read again from 0, as a new file for the checkpoint.
    ///
    /// The first bytes are compared on every look (one read of at most
    /// [`FINGERPRINT_BYTES`], from the page cache), not only when the size changed: a
    /// `copytruncate` after which the writer brought the file back to the size of the last
    /// look, or past the offset read to, shows nowhere else. What cannot be seen: a rewrite
    /// that starts with the same bytes as the old content (as far as the fingerprint goes)
    /// and reaches the offset read to before the next look.
    pub(super) fn check_in_place(
        &mut self,
        path: &Arc<str>,
        open: &mut TailedFile,
    ) -> io::Result<()> {
        let size = open.file.metadata()?.len();
        let grew = size != open.size;
        let rewritten = size < open.pos || !open.identity.head_matches(&open.file)?;
        open.size = size;
        if rewritten {
            tracing::info!(path = %path, "file truncated: reading it again from the start");
            self.send_tail(path, open);
            self.close(open);
            open.id = self.next_id;
            self.next_id += 1;
            open.pos = 0;
            open.chunk_start = 0;
            open.reader.restart_at(0);
            open.identity = Identity::of(&open.file)?;
            let _ = self.updates_tx.send(PositionUpdate::Opened {
                file: open.id,
                path: path.clone(),
                identity: open.identity,
                offset: 0,
            });
        } else if grew && (open.identity.fp_len as usize) < FINGERPRINT_BYTES {
            open.identity = Identity::of(&open.file)?;
            let _ = self.updates_tx.send(PositionUpdate::Identified {
                file: open.id,
                identity: open.identity,
            });
        }
        Ok(())
    }

    /// Reads up to `max_blocks` blocks; true when it stopped with more to read.
    pub(super) fn read(
        &mut self,
        path: &Arc<str>,
        open: &mut TailedFile,
        max_blocks: usize,
    ) -> bool {
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
            let block = open.reader.push(&self.buf[..n], Instant::now());
            self.send(path, open, block);
            if self.closed {
                return false;
            }
        }
        // A multi-line event that timed out.
        if let Some(block) = open.reader.flush_due(Instant::now()) {
            self.send(path, open, block);
        }
        false
    }

    /// The file is left for good (rotated away and quiet, gone, truncated, end of `once`): its
    /// partial last line and pending event are taken as they are.
    pub(super) fn finish(&mut self, path: &Arc<str>, open: &mut TailedFile) {
        self.send_tail(path, open);
        self.stats.cut_lines += open.reader.cut_lines();
    }

    /// Sends the partial last line and the pending event as they are.
    pub(super) fn send_tail(&mut self, path: &Arc<str>, open: &mut TailedFile) {
        let block = open.reader.finish();
        self.send(path, open, block);
    }

    /// Sends a block as the next chunk of the file (nothing when it holds no event and its end
    /// did not move).
    pub(super) fn send(&mut self, path: &Arc<str>, open: &mut TailedFile, block: EventBlock) {
        if block.data.is_empty() && block.end_offset == open.chunk_start {
            return;
        }
        let end = block.end_offset;
        let chunk = Chunk {
            source: path.clone(),
            data: block.data,
            end_offset: end,
            read_at: SystemTime::now(),
            mark: Some(Mark {
                file: open.id,
                start: open.chunk_start,
            }),
            line_joins: block.line_joins,
        };
        open.chunk_start = end;
        if self.chunk_tx.blocking_send(chunk).is_err() {
            self.closed = true;
        }
    }

    /// Tells the keeper this id of a file is done with: nothing past its last chunk will come.
    pub(super) fn close(&mut self, open: &TailedFile) {
        if self.left.len() == LEFT_KEPT {
            self.left.pop_front();
        }
        self.left.push_back((open.identity, open.chunk_start));
        let _ = self.updates_tx.send(PositionUpdate::Closed {
            file: open.id,
            end: open.chunk_start,
        });
    }
}
