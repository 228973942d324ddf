//! Where lines come from, and the unit they travel in.
//!
//! Every source (stdin, followed files, `test` and `--replay`) reads through one
//! [`EventReader`] and turns what it gives into [`Chunk`]s: blocks of whole lines, or of
//! multi-line events with their line boundaries carried explicitly. Reading in blocks rather
//! than lines is what lets the matcher search at grep speed. Inside the reader the
//! [`LineFramer`] is the one place that decides what a line is, so all sources agree on partial
//! last lines, CRLF and overlong lines, and the [`multiline`] assembler the one place that
//! gathers lines into events.

pub mod checkpoint;
pub mod event_reader;
mod framer;
mod inbox;
pub mod multiline;
pub mod stdin;
pub mod tail;

pub use event_reader::{EventBlock, EventReader};
pub use framer::LineFramer;

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

/// A block of whole lines read from one source.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// Where the lines came from (`-` for stdin, else the path), shown in messages.
    pub source: Arc<str>,
    /// Whole lines (or multi-line events, see [`Chunk::line_joins`]), each ending in `\n`. A line that outgrew the configured maximum before its
    /// `\n` arrived comes cut to that maximum (plus a `\n`), the rest of it skipped; a long line
    /// that arrived whole in one read may be longer, and the matcher looks only at its head.
    pub data: Bytes,
    /// Byte offset in the source just past `data`: a checkpoint may move here once everything in
    /// the chunk is delivered.
    pub end_offset: u64,
    /// When the chunk was read: the time shown for its lines.
    pub read_at: SystemTime,
    /// Where the chunk starts in a followed file, for checkpoints; `None` for stdin.
    pub mark: Option<Mark>,
    /// Where the lines of multi-line events meet in `data` (see
    /// [`EventBlock::line_joins`]); empty when every event is one line.
    pub line_joins: Vec<u32>,
}

impl Chunk {
    /// The text of the event `line` (a slice of this chunk's data, as the matcher's hits are)
    /// with its lines separated by `\n`, which no line contains: how a sample carries an event's
    /// lines to the renderer. A one-line event, or bytes that are not a slice of `data`, come
    /// back as they are.
    pub fn event_text(&self, line: &Bytes) -> Bytes {
        if self.line_joins.is_empty() {
            return line.clone();
        }
        let base = self.data.as_ptr() as usize;
        let Some(start) = (line.as_ptr() as usize).checked_sub(base) else {
            return line.clone();
        };
        let end = start + line.len();
        if end > self.data.len() {
            return line.clone();
        }
        let first = self.line_joins.partition_point(|&j| (j as usize) < start);
        let inside = self.line_joins[first..]
            .iter()
            .map(|&j| j as usize)
            .take_while(|&j| j < end);
        let mut text: Option<Vec<u8>> = None;
        for j in inside {
            text.get_or_insert_with(|| line.to_vec())[j - start] = b'\n';
        }
        text.map_or_else(|| line.clone(), Bytes::from)
    }

    /// Every hit line in `lines` (slices of this chunk, as the matcher hands them over) given
    /// its event's lines apart, as [`Chunk::event_text`] does: what the samples and the renderer
    /// take, in `run` and in `--replay` alike.
    pub fn set_lines_apart<'a>(&self, lines: impl IntoIterator<Item = &'a mut Bytes>) {
        if self.line_joins.is_empty() {
            return;
        }
        for line in lines {
            *line = self.event_text(line);
        }
    }
}

/// One followed file as this run knows it: a file opened at a path, from one point of its
/// content on. A file truncated in place (copytruncate) gets a new id, because its offsets start
/// again at 0 and must not be compared with the old ones.
pub type FileId = u64;

/// The start of a chunk in a followed file. A hit that an alert counts keeps its chunk's mark
/// (as a [`Hold`](crate::aggregate::Routed::holds)) until the alert is delivered or reported
/// undelivered: the checkpoint may not pass `start` before then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mark {
    /// The file.
    pub file: FileId,
    /// Byte offset of the chunk's first byte.
    pub start: u64,
}
