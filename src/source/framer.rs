//! Cuts a byte stream into blocks of whole lines, with bounded memory.

use bytes::{Bytes, BytesMut};

/// Turns arbitrary reads into blocks of whole lines.
///
/// Edges, by design rather than by accident:
/// - A partial last line stays buffered until its `\n` arrives, or until [`LineFramer::finish`]
///   (end of input), which emits it with a `\n` added.
/// - A line longer than `max_line` bytes is emitted as its first `max_line` bytes plus `\n`, and
///   the rest of it is skipped as it arrives, without being buffered: a 1 GiB line with no newline
///   costs `max_line` bytes of memory, not 1 GiB.
/// - Bytes are never inspected beyond looking for `\n`: invalid UTF-8, NUL bytes and `\r` pass
///   through unchanged.
#[derive(Debug)]
pub struct LineFramer {
    /// Bytes of the current partial line (never more than `max_line`).
    partial: BytesMut,
    max_line: usize,
    /// Inside an overlong line whose head was already emitted: drop bytes up to the next `\n`.
    skipping: bool,
    /// Bytes consumed from the source so far (including skipped ones).
    offset: u64,
    /// Offset just past the last `\n` consumed: where the first line not yet ended starts.
    complete: u64,
    /// Lines that were cut because they were too long.
    cut_lines: u64,
}

impl LineFramer {
    /// A framer that cuts lines at `max_line` bytes.
    pub fn new(max_line: usize) -> LineFramer {
        LineFramer {
            partial: BytesMut::new(),
            max_line: max_line.max(1),
            skipping: false,
            offset: 0,
            complete: 0,
            cut_lines: 0,
        }
    }

    /// Bytes consumed so far; the end offset of the last emitted block once no partial line is
    /// pending.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// A framer for a source whose bytes before `offset` were already dealt with.
    pub fn starting_at(max_line: usize, offset: u64) -> LineFramer {
        LineFramer {
            offset,
            complete: offset,
            ..LineFramer::new(max_line)
        }
    }

    /// Where the first line that has not ended yet starts (after [`LineFramer::finish`]: the
    /// end of input). A checkpoint may go here, but not to [`LineFramer::offset`]: a restart
    /// there would read the rest of a partial line as a line of its own.
    pub fn complete_offset(&self) -> u64 {
        self.complete
    }

    /// The longest line kept whole.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// How many lines were cut at `max_line`.
    pub fn cut_lines(&self) -> u64 {
        self.cut_lines
    }

    /// Feeds bytes; returns the whole lines now complete, if any.
    pub fn push(&mut self, mut data: &[u8]) -> Option<Bytes> {
        if let Some(i) = memchr::memrchr(b'\n', data) {
            self.complete = self.offset + i as u64 + 1;
        }
        self.offset += data.len() as u64;
        if self.skipping {
            match memchr::memchr(b'\n', data) {
                None => return None,
                Some(i) => {
                    self.skipping = false;
                    data = &data[i + 1..];
                }
            }
        }
        let mut out = BytesMut::new();
        match memchr::memrchr(b'\n', data) {
            Some(last) => {
                // Lines complete up to `last`; the partial line before them, if any, leads.
                let (complete, rest) = data.split_at(last + 1);
                if self.partial.is_empty() {
                    out.extend_from_slice(complete);
                } else {
                    let first_nl = memchr::memchr(b'\n', complete).expect("complete ends in \\n");
                    if self.partial.len() + first_nl > self.max_line {
                        self.cut_lines += 1;
                    }
                    self.append_partial(&complete[..first_nl]);
                    let mut head = std::mem::take(&mut self.partial);
                    head.extend_from_slice(b"\n");
                    out = head;
                    out.extend_from_slice(&complete[first_nl + 1..]);
                }
                self.partial.clear();
                self.append_partial(rest);
            }
            None => self.append_partial(data),
        }
        // An overlong partial line is emitted now, cut, and its tail skipped.
        if self.partial.len() >= self.max_line && !self.skipping {
            self.partial.truncate(self.max_line);
            out.extend_from_slice(&self.partial);
            out.extend_from_slice(b"\n");
            self.partial.clear();
            self.skipping = true;
            self.cut_lines += 1;
        }
        (!out.is_empty()).then(|| out.freeze())
    }

    /// End of input: the pending partial line, with a `\n` added, if there is one.
    pub fn finish(&mut self) -> Option<Bytes> {
        self.skipping = false;
        self.complete = self.offset;
        if self.partial.is_empty() {
            return None;
        }
        let mut line = std::mem::take(&mut self.partial);
        line.extend_from_slice(b"\n");
        Some(line.freeze())
    }

    /// Keeps at most `max_line` bytes of the partial line.
    fn append_partial(&mut self, data: &[u8]) {
        let room = self.max_line.saturating_sub(self.partial.len());
        self.partial
            .extend_from_slice(&data[..data.len().min(room)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(max: usize, pieces: &[&[u8]]) -> Vec<u8> {
        let mut f = LineFramer::new(max);
        let mut out = Vec::new();
        for p in pieces {
            if let Some(b) = f.push(p) {
                assert!(b.ends_with(b"\n"));
                out.extend_from_slice(&b);
            }
        }
        if let Some(b) = f.finish() {
            out.extend_from_slice(&b);
        }
        out
    }

    #[test]
    fn lines_split_across_reads_are_joined() {
        assert_eq!(run(100, &[b"ab", b"c\nde", b"f\n"]), b"abc\ndef\n");
        assert_eq!(run(100, &[b"a\nb\n", b"", b"c"]), b"a\nb\nc\n");
        assert_eq!(run(100, &[b"\r\n\xff\x00\n"]), b"\r\n\xff\x00\n");
    }

    #[test]
    fn a_partial_line_waits_for_its_newline() {
        let mut f = LineFramer::new(100);
        assert_eq!(f.push(b"one\ntw").as_deref(), Some(&b"one\n"[..]));
        assert_eq!(f.push(b"o"), None);
        assert_eq!(f.complete_offset(), 4);
        assert_eq!(f.push(b"\n").as_deref(), Some(&b"two\n"[..]));
        assert_eq!(f.finish(), None);
        assert_eq!(f.offset(), 8);
        assert_eq!(f.complete_offset(), 8);
    }

    #[test]
    fn overlong_lines_are_cut_and_their_tail_skipped() {
        // a long line that arrives whole in one read passes (the matcher judges its head only)
        assert_eq!(run(4, &[b"abcdefgh\nxy\n"]), b"abcdefgh\nxy\n");
        assert_eq!(run(4, &[b"ab", b"cdef", b"gh", b"ij\nk\n"]), b"abcd\nk\n");
        assert_eq!(run(4, &[b"abcdefgh"]), b"abcd\n");
        assert_eq!(run(4, &[b"abcd\n"]), b"abcd\n");
    }

    #[test]
    fn memory_stays_bounded_for_a_huge_line_without_newline() {
        let mut f = LineFramer::new(1024);
        let block = vec![b'x'; 64 * 1024];
        let mut emitted = 0;
        for _ in 0..1024 {
            if let Some(b) = f.push(&block) {
                emitted += b.len();
            }
            assert!(f.partial.capacity() <= 64 * 1024 + 1024);
        }
        assert_eq!(emitted, 1025);
        assert_eq!(f.cut_lines(), 1);
        assert_eq!(f.offset(), 64 * 1024 * 1024);
    }
}
