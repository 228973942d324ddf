//! The one reader pipeline: bytes in, blocks of whole events out, for every source (stdin,
//! followed files, `dingtail test` and `--replay`), so all of them count the same thing.
//!
//! Two stages: the [`LineFramer`] decides what a line is (bad bytes, huge lines, CRLF, a last
//! line without `\n`: see its "edges by design"), then, for an input with `multiline:`, the
//! [`Assembler`] gathers lines into events. Without `multiline` every line is an event of one
//! line and the framer's blocks pass through untouched (no per-line work).
//!
//! How an event reaches the matcher: as one `\n`-ended item of [`EventBlock::data`], its lines
//! joined by a `\r` (see [`multiline`](super::multiline) for why: the matcher judges the event
//! once, and `^`, `$` and `.` keep their per-line meaning). That `\r` is how the event is
//! *presented to the regex*, nothing more: where its lines meet is carried explicitly in
//! [`EventBlock::line_joins`], so a `\r` that was in a line is never taken for a line break, and
//! line counts and rendered samples come from the joins, not from searching the bytes.
//!
//! Offsets: [`EventBlock::end_offset`] is where a checkpoint may move once the block is settled:
//! the start of the first line not yet ended, or of the pending event when one is being
//! gathered. A restart there reads that line (or event) whole.

use std::io::Read;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::LineFramer;
use super::multiline::{Assembler, Multiline};

/// Bytes asked for per read by [`EventReader::read_all`].
const READ_BYTES: usize = 256 * 1024;

/// Whole events read from one source, ready to become a [`Chunk`](super::Chunk).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventBlock {
    /// Events, each ending in `\n`; the lines of a multi-line event joined by a `\r` at each of
    /// [`EventBlock::line_joins`].
    pub data: Bytes,
    /// Positions in `data` where one line of an event ends and the next begins (the byte there
    /// is the `\r` the matcher sees), ascending; empty when no event has more than one line.
    pub line_joins: Vec<u32>,
    /// Where a checkpoint may move once everything in `data` is settled.
    pub end_offset: u64,
    /// Lines read (before they were gathered into events).
    pub lines: u64,
}

impl EventBlock {
    /// Events in the block.
    pub fn events(&self) -> u64 {
        memchr::memchr_iter(b'\n', &self.data).count() as u64
    }

    /// The lines of each event: one `Vec` of line slices per event, each without `\n`.
    pub fn event_lines(&self) -> Vec<Vec<&[u8]>> {
        let mut joins = self.line_joins.iter().map(|&j| j as usize).peekable();
        let mut out = Vec::new();
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', &self.data) {
            let mut lines = Vec::new();
            let mut line_start = start;
            while let Some(j) = joins.next_if(|&j| j < end) {
                lines.push(&self.data[line_start..j]);
                line_start = j + 1;
            }
            lines.push(&self.data[line_start..end]);
            out.push(lines);
            start = end + 1;
        }
        out
    }

    /// Each event alone, ending in its `\n`, with where its lines meet (from its own start):
    /// how `--replay` moves its clock event by event. A slice of `data`, not a copy.
    pub fn each_event(&self) -> impl Iterator<Item = (Bytes, Vec<u32>)> + '_ {
        let mut start = 0;
        memchr::memchr_iter(b'\n', &self.data).map(move |end| {
            let first = self.line_joins.partition_point(|&j| (j as usize) < start);
            let joins = self.line_joins[first..]
                .iter()
                .take_while(|&&j| (j as usize) < end)
                .map(|&j| j - start as u32)
                .collect();
            let event = self.data.slice(start..=end);
            start = end + 1;
            (event, joins)
        })
    }

    fn append(&mut self, more: EventBlock) {
        if more.data.is_empty() {
            self.end_offset = more.end_offset;
            self.lines += more.lines;
            return;
        }
        let base = self.data.len() as u32;
        let mut data = BytesMut::from(&self.data[..]);
        data.extend_from_slice(&more.data);
        self.data = data.freeze();
        self.line_joins
            .extend(more.line_joins.iter().map(|j| j + base));
        self.end_offset = more.end_offset;
        self.lines += more.lines;
    }
}

/// Framer, then the optional multi-line assembler, for one source; see the module docs.
#[derive(Debug)]
pub struct EventReader {
    framer: LineFramer,
    assembler: Option<Assembler>,
    /// Lines cut before the last [`EventReader::restart_at`].
    cut_earlier: u64,
}

impl EventReader {
    /// A reader of a source from its first byte; `multiline` gathers lines into events.
    pub fn new(max_line: usize, multiline: Option<&Multiline>) -> EventReader {
        EventReader::starting_at(max_line, multiline, 0)
    }

    /// A reader of a source whose bytes before `offset` were already dealt with.
    pub fn starting_at(max_line: usize, multiline: Option<&Multiline>, offset: u64) -> EventReader {
        EventReader {
            framer: LineFramer::starting_at(max_line, offset),
            assembler: multiline.map(|m| Assembler::new(m, max_line)),
            cut_earlier: 0,
        }
    }

    /// The source starts again at `offset` (a file truncated in place): a partial line is
    /// dropped (call [`EventReader::finish`] first to keep it); a pending event is kept.
    pub fn restart_at(&mut self, offset: u64) {
        self.cut_earlier += self.framer.cut_lines();
        self.framer = LineFramer::starting_at(self.framer.max_line(), offset);
    }

    /// Whether lines are gathered into events (`multiline`).
    pub fn gathers_events(&self) -> bool {
        self.assembler.is_some()
    }

    /// Feeds bytes read at `now`; returns the events now complete (maybe none: then only
    /// `end_offset` may have moved).
    pub fn push(&mut self, data: &[u8], now: Instant) -> EventBlock {
        let from = self.framer.complete_offset();
        let lines = self.framer.push(data);
        self.gather(lines, from, now)
    }

    /// The pending event, if it timed out by `now` (`multiline.timeout` after its last line).
    pub fn flush_due(&mut self, now: Instant) -> Option<EventBlock> {
        let a = self.assembler.as_mut()?;
        if a.deadline().is_none_or(|d| d > now) {
            return None;
        }
        let (data, line_joins) = a.flush();
        Some(EventBlock {
            data,
            line_joins,
            end_offset: self.framer.complete_offset(),
            lines: 0,
        })
    }

    /// When the pending event times out, if there is one.
    pub fn deadline(&self) -> Option<Instant> {
        self.assembler.as_ref()?.deadline()
    }

    /// End of input (or the file is left for good): the partial last line is taken as a line
    /// and the pending event as it is.
    pub fn finish(&mut self) -> EventBlock {
        let from = self.framer.complete_offset();
        let last = self.framer.finish();
        let mut block = self.gather(last, from, Instant::now());
        if let Some(a) = &mut self.assembler {
            let (data, line_joins) = a.flush();
            block.append(EventBlock {
                data,
                line_joins,
                end_offset: self.framer.complete_offset(),
                lines: 0,
            });
        }
        block
    }

    /// Bytes consumed from the source so far (its offset, for a file), skipped ones included.
    pub fn offset(&self) -> u64 {
        self.framer.offset()
    }

    /// How many lines were cut at `max_line_bytes`.
    pub fn cut_lines(&self) -> u64 {
        self.cut_earlier + self.framer.cut_lines()
    }

    /// Reads `input` to its end in 256 KiB reads, handing each block to `on_block` (the last
    /// line and event, finished, at the end). For the synchronous readers (`dingtail test`,
    /// `--replay`); read errors go through `read_error`. A pending event does not time out here:
    /// the input is read to its end, and its last event ends there.
    pub fn read_all<E>(
        &mut self,
        mut input: impl Read,
        read_error: impl Fn(std::io::Error) -> E,
        mut on_block: impl FnMut(&EventBlock, &EventReader) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut buf = vec![0u8; READ_BYTES];
        let now = Instant::now();
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_error(e)),
            };
            let block = self.push(&buf[..n], now);
            on_block(&block, self)?;
        }
        let block = self.finish();
        on_block(&block, self)
    }

    /// Lines framed from offset `from` through the assembler, if there is one.
    fn gather(&mut self, lines: Option<Bytes>, from: u64, now: Instant) -> EventBlock {
        let lines_data = lines.unwrap_or_default();
        let count = memchr::memchr_iter(b'\n', &lines_data).count() as u64;
        let end = self.framer.complete_offset();
        match &mut self.assembler {
            None => EventBlock {
                data: lines_data,
                line_joins: Vec::new(),
                end_offset: end,
                lines: count,
            },
            Some(a) => {
                let (data, line_joins, safe) = a.push(&lines_data, from, end, now);
                EventBlock {
                    data,
                    line_joins,
                    end_offset: safe,
                    lines: count,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn multiline(start: &str) -> Multiline {
        Multiline {
            start: crate::rules::regex_builder(start).build().unwrap(),
            max_lines: 500,
            timeout: Duration::from_secs(1),
        }
    }

    /// Everything `pieces` make, as events of lines (lossy text), with the last block's offset.
    fn read(reader: &mut EventReader, pieces: &[&[u8]]) -> (Vec<Vec<String>>, u64) {
        let now = Instant::now();
        let mut events = Vec::new();
        let mut take = |b: &EventBlock| {
            for e in b.event_lines() {
                events.push(
                    e.iter()
                        .map(|l| String::from_utf8_lossy(l).into_owned())
                        .collect(),
                );
            }
        };
        for p in pieces {
            take(&reader.push(p, now));
        }
        let last = reader.finish();
        take(&last);
        (events, last.end_offset)
    }

    #[test]
    fn an_event_split_across_reads_arrives_whole_with_its_lines() {
        let ml = multiline(r"^\d{4}-");
        let mut r = EventReader::new(1024, Some(&ml));
        let (events, end) = read(
            &mut r,
            &[
                b"2024-01-01 ERROR bo",
                b"om\n\tat a.B(C.j",
                b"ava:1)\n2024-01-02 INFO ok\n",
            ],
        );
        assert_eq!(
            events,
            vec![
                vec!["2024-01-01 ERROR boom", "\tat a.B(C.java:1)"],
                vec!["2024-01-02 INFO ok"]
            ]
        );
        assert_eq!(end, 59);
    }

    #[test]
    fn the_checkpoint_offset_stays_at_a_pending_event_until_it_ends() {
        let ml = multiline("^S");
        let mut r = EventReader::new(1024, Some(&ml));
        let now = Instant::now();
        let b = r.push(b"S one\nmore\nS two\nmo", now);
        assert_eq!(b.event_lines(), vec![vec![&b"S one"[..], b"more"]]);
        assert_eq!(b.end_offset, 11, "the pending event starts at `S two`");
        assert_eq!(b.lines, 3);
        assert!(r.flush_due(now).is_none(), "not yet timed out");
        let due = r.flush_due(now + Duration::from_secs(1)).unwrap();
        assert_eq!(due.event_lines(), vec![vec![&b"S two"[..]]]);
        assert_eq!(due.end_offset, 17, "the partial `mo` is not passed");
    }

    #[test]
    fn a_multiline_event_at_the_end_of_input_is_taken_with_its_partial_last_line() {
        let ml = multiline("^S");
        let mut r = EventReader::new(1024, Some(&ml));
        let (events, end) = read(&mut r, &[b"S a\nb\nc without newline"]);
        assert_eq!(events, vec![vec!["S a", "b", "c without newline"]]);
        assert_eq!(end, 23);
        assert_eq!(r.offset(), 23);
    }

    #[test]
    fn a_huge_line_inside_an_event_is_cut_and_the_event_goes_on() {
        let ml = multiline("^S");
        let mut r = EventReader::new(16, Some(&ml));
        let huge = [b'x'; 100];
        let (events, _) = read(
            &mut r,
            &[b"S head\n", &huge[..40], &huge[40..], b"\ntail\nS next\n"],
        );
        assert_eq!(events.len(), 2);
        // the line is cut at 16 bytes by the framer, the event kept to 16 bytes by the
        // assembler (its separator included); `tail` still counts as a line of it
        assert_eq!(events[0], vec!["S head", "xxxxxxxxx"]);
        assert_eq!(events[1], vec!["S next"]);
        assert_eq!(r.cut_lines(), 1);
    }

    #[test]
    fn bad_utf8_and_a_bare_cr_inside_a_line_are_not_line_breaks() {
        let ml = multiline("^S");
        let mut r = EventReader::new(1024, Some(&ml));
        let (events, _) = read(&mut r, &[b"S \xff\xfe\r half\r\n\x00 next\r\n"]);
        // the CRLF's `\r` is dropped; the bare `\r` stays inside its line
        assert_eq!(
            events,
            vec![vec![
                "S \u{fffd}\u{fffd}\r half".to_owned(),
                "\0 next".to_owned()
            ]]
        );
        let mut plain = EventReader::new(1024, None);
        let (events, _) = read(&mut plain, &[b"a\rb\nc"]);
        assert_eq!(events, vec![vec!["a\rb"], vec!["c"]]);
    }

    #[test]
    fn a_hit_on_an_event_carries_its_lines_apart() {
        let ml = multiline("^S");
        let mut r = EventReader::new(1024, Some(&ml));
        let b = r.push(b"S a\rx\nb\nS c\n", Instant::now());
        assert_eq!(
            (&b.data[..], &b.line_joins[..]),
            (&b"S a\rx\rb\n"[..], &[5][..])
        );
        let chunk = crate::source::Chunk {
            source: "-".into(),
            data: b.data.clone(),
            end_offset: b.end_offset,
            read_at: std::time::SystemTime::now(),
            mark: None,
            line_joins: b.line_joins.clone(),
        };
        // as the matcher hands a hit over: a slice of the chunk, without its `\n`
        let hit = chunk.data.slice(..7);
        assert_eq!(&chunk.event_text(&hit)[..], b"S a\rx\nb");
        let copy = Bytes::copy_from_slice(&hit);
        assert_eq!(
            chunk.event_text(&copy),
            copy,
            "not a slice of the chunk: as it is"
        );
    }

    #[test]
    fn each_event_stands_alone_with_its_own_joins() {
        let ml = multiline("^S");
        let mut r = EventReader::new(1024, Some(&ml));
        let b = r.push(b"S a\nb\nS c\nS d\ne\nf\nS pending\n", Instant::now());
        let events: Vec<(Bytes, Vec<u32>)> = b.each_event().collect();
        assert_eq!(
            events,
            [
                (Bytes::from_static(b"S a\rb\n"), vec![3]),
                (Bytes::from_static(b"S c\n"), vec![]),
                (Bytes::from_static(b"S d\re\rf\n"), vec![3, 5]),
            ]
        );
        assert_eq!(EventBlock::default().each_event().count(), 0);
    }

    #[test]
    fn without_multiline_blocks_pass_through_as_framed() {
        let mut r = EventReader::new(1024, None);
        let now = Instant::now();
        let b = r.push(b"one\ntwo\nthr", now);
        assert_eq!(&b.data[..], b"one\ntwo\n");
        assert!(b.line_joins.is_empty());
        assert_eq!((b.lines, b.events(), b.end_offset), (2, 2, 8));
        let b = r.finish();
        assert_eq!(&b.data[..], b"thr\n");
        assert_eq!(b.end_offset, 11);
    }
}
