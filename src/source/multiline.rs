//! Gathers lines into multi-line events (Java stack traces, Python tracebacks) before matching.
//!
//! An event is a line matching `start` plus every following line that does not. It is presented
//! to the matcher as one "line": its lines joined by [`EVENT_LINE_SEP`] (`\r`) instead of `\n`,
//! ending in one `\n`. This keeps the matcher untouched, and with it the fast path of inputs
//! without `multiline` (their chunks never pass through here): the matcher cuts candidates at
//! `\n`, so the whole event is one candidate, matched as a whole and counted once; and since
//! patterns run in CRLF mode, where `\r` is a line terminator too, `^`, `$` and `.` keep their
//! per-line meaning inside an event (`^\s+at ` matches a stack frame, `.` does not run into the
//! next line). A `\r` from a CRLF file is dropped before joining. Where the lines meet is not
//! left to that byte: the assembler returns the position of every join, which the
//! [`EventBlock`](super::event_reader::EventBlock) carries on, so a bare `\r` inside a line stays
//! part of its line when lines are counted and quoted.
//!
//! Edges: an event ends when the next start line arrives, when `max_lines` lines are gathered,
//! or `timeout` after its last line (the caller asks [`Assembler::deadline`] and calls
//! [`Assembler::flush`]). An event keeps at most `max_bytes` bytes (the matcher would not look
//! further anyway); later lines still count towards `max_lines`. Lines before the first start
//! line form an event of their own.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

/// `multiline:` of an input: a line that does not match `start` continues the event before it.
#[derive(Debug, Clone)]
pub struct Multiline {
    /// A line matching this starts a new event.
    pub start: regex::bytes::Regex,
    /// An event is closed after this many lines (the next line starts a new one).
    pub max_lines: usize,
    /// An event is closed this long after its last line arrived.
    pub timeout: Duration,
}

/// Default `multiline.max_lines`.
pub const DEFAULT_MULTILINE_MAX_LINES: usize = 500;
/// Default `multiline.timeout`.
pub const DEFAULT_MULTILINE_TIMEOUT: Duration = Duration::from_secs(1);

/// The byte that joins the lines of an event as the matcher sees it.
pub const EVENT_LINE_SEP: u8 = b'\r';

/// Gathers the lines of one source into events; see the module docs.
#[derive(Debug)]
pub struct Assembler {
    start: regex::bytes::Regex,
    max_lines: usize,
    timeout: Duration,
    max_bytes: usize,
    /// The event being gathered (lines joined, no final `\n`).
    event: BytesMut,
    /// Where in `event` its lines are joined.
    joins: Vec<u32>,
    lines: usize,
    /// Where the pending event began (its first line's offset; the start of its block when a
    /// line in that block was cut): a checkpoint must not pass it.
    pending_from: u64,
    last_line_at: Option<Instant>,
}

impl Assembler {
    /// An assembler for one source.
    pub fn new(cfg: &Multiline, max_bytes: usize) -> Assembler {
        Assembler {
            start: cfg.start.clone(),
            max_lines: cfg.max_lines,
            timeout: cfg.timeout,
            max_bytes: max_bytes.max(1),
            event: BytesMut::new(),
            joins: Vec::new(),
            lines: 0,
            pending_from: 0,
            last_line_at: None,
        }
    }

    /// Feeds a block of whole lines read from `start` to `end` in the source. Returns the events
    /// completed (each ending in `\n`), where in them lines are joined, and the offset a
    /// checkpoint may move to: the first byte of the pending event, so a busy log's checkpoint
    /// follows its events instead of staying where the first pending event once began.
    pub fn push(
        &mut self,
        block: &[u8],
        start: u64,
        end: u64,
        now: Instant,
    ) -> (Bytes, Vec<u32>, u64) {
        let mut out = BytesMut::new();
        let mut joins = Vec::new();
        // Offsets of lines inside the block are exact when no line in it was cut short.
        let exact = end.checked_sub(start) == Some(block.len() as u64);
        let mut at = start;
        for line in block.split_inclusive(|&b| b == b'\n') {
            let line_at = if exact { at } else { start };
            at += line.len() as u64;
            let mut line = line.strip_suffix(b"\n").unwrap_or(line);
            line = line.strip_suffix(b"\r").unwrap_or(line);
            if self.lines > 0 && (self.lines >= self.max_lines || self.start.is_match(line)) {
                self.finish_into(&mut out, &mut joins);
            }
            if self.lines == 0 {
                self.pending_from = line_at;
            } else if self.event.len() < self.max_bytes {
                self.joins.push(self.event.len() as u32);
                self.event.extend_from_slice(&[EVENT_LINE_SEP]);
            }
            let room = self.max_bytes.saturating_sub(self.event.len());
            self.event.extend_from_slice(&line[..line.len().min(room)]);
            self.lines += 1;
        }
        if !block.is_empty() {
            self.last_line_at = Some(now);
        }
        let safe = if self.lines > 0 {
            self.pending_from
        } else {
            end
        };
        (out.freeze(), joins, safe)
    }

    /// When the pending event times out, if there is one.
    pub fn deadline(&self) -> Option<Instant> {
        (self.lines > 0)
            .then_some(self.last_line_at)
            .flatten()
            .map(|t| t + self.timeout)
    }

    /// Ends the pending event now (timeout, end of input, rotation): returns it, if any, and
    /// where its lines are joined.
    pub fn flush(&mut self) -> (Bytes, Vec<u32>) {
        let mut out = BytesMut::new();
        let mut joins = Vec::new();
        if self.lines > 0 {
            self.finish_into(&mut out, &mut joins);
        }
        (out.freeze(), joins)
    }

    fn finish_into(&mut self, out: &mut BytesMut, joins: &mut Vec<u32>) {
        let base = out.len() as u32;
        joins.extend(self.joins.drain(..).map(|j| j + base));
        out.extend_from_slice(&self.event);
        out.extend_from_slice(b"\n");
        self.event.clear();
        self.lines = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asm(max_lines: usize) -> Assembler {
        let cfg = Multiline {
            start: crate::rules::regex_builder(r"^\d{4}-").build().unwrap(),
            max_lines,
            timeout: Duration::from_millis(100),
        };
        Assembler::new(&cfg, 1024)
    }

    #[test]
    fn a_stack_trace_becomes_one_event() {
        let mut a = asm(500);
        let now = Instant::now();
        let (out, joins, safe) = a.push(
            b"2024-01-01 ERROR boom\r\n\tat a.B(C.java:1)\nCaused by: x\n2024-01-01 INFO ok\n",
            0,
            70,
            now,
        );
        assert_eq!(
            &out[..],
            b"2024-01-01 ERROR boom\r\tat a.B(C.java:1)\rCaused by: x\n"
        );
        assert_eq!(joins, [21, 39], "where the lines meet, explicitly");
        assert_eq!(safe, 0, "the INFO event is still open");
        assert_eq!(a.deadline(), Some(now + Duration::from_millis(100)));
        assert_eq!(&a.flush().0[..], b"2024-01-01 INFO ok\n");
        assert_eq!(a.deadline(), None);
        let (out, _, safe) = a.push(b"", 70, 70, now);
        assert!(out.is_empty());
        assert_eq!(safe, 70);
    }

    #[test]
    fn max_lines_and_max_bytes_bound_an_event() {
        let mut a = asm(2);
        let (out, joins, _) = a.push(b"2024- a\nb\nc\n", 0, 12, Instant::now());
        assert_eq!(&out[..], b"2024- a\rb\n");
        assert_eq!(joins, [7]);
        assert_eq!(&a.flush().0[..], b"c\n");

        let mut a = Assembler::new(
            &Multiline {
                start: crate::rules::regex_builder("^S").build().unwrap(),
                max_lines: 100,
                timeout: Duration::from_secs(1),
            },
            8,
        );
        a.push(b"S123456789\nmore\n", 0, 16, Instant::now());
        assert_eq!(a.flush(), (Bytes::from_static(b"S1234567\n"), vec![]));
    }

    #[test]
    fn the_matcher_sees_an_event_as_one_line_with_per_line_anchors() {
        use crate::matcher::Matcher;
        use crate::rules::{Rule, RuleSpec};
        let rule = Rule::compile(RuleSpec {
            name: "frames".into(),
            pattern: r"^\s+at com\.shop".into(),
            exclude: vec![],
            window: Duration::from_secs(1),
            max_lines: 5,
            ..RuleSpec::default()
        })
        .unwrap();
        let m = Matcher::new(&[rule], 1 << 16).unwrap();
        let mut a = asm(500);
        let (mut out, _, _) = a.push(
            b"2024- ERROR x\n\tat com.shop.A\n\tat com.shop.B\n2024- INFO\n",
            0,
            0,
            Instant::now(),
        );
        out = [out, a.flush().0].concat().into();
        let mut hits = Vec::new();
        m.scan(&out, |l| hits.push(out.slice(l.range.clone())));
        assert_eq!(hits.len(), 1, "one event, counted once");
        assert!(hits[0].starts_with(b"2024- ERROR x\r"));
    }
}
