//! Where lines come from, and the unit they travel in.
//!
//! Every source (stdin, followed files, `test` and `--replay`) turns bytes into [`Chunk`]s: blocks of whole
//! lines. Reading in blocks rather than lines is what lets the matcher search at grep speed. The
//! [`LineFramer`] is the one place that decides what a line is, so all sources agree on partial
//! last lines, CRLF and overlong lines.

pub mod checkpoint;
mod framer;
mod inbox;
pub mod multiline;
pub mod stdin;
pub mod tail;

pub use framer::LineFramer;

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

/// A block of whole lines read from one source.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// Where the lines came from (`-` for stdin, else the path), shown in messages.
    pub source: Arc<str>,
    /// Whole lines, each ending in `\n`. A line that outgrew the configured maximum before its
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
    /// Multi-line events: each `\n`-ended item of `data` is an event whose lines are joined
    /// by [`multiline::EVENT_LINE_SEP`], so lines and events are counted apart.
    pub joined: bool,
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
