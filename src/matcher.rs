//! Chunk → hits. Plain synchronous code: no tokio, no I/O, so it can be table-tested and
//! benchmarked on its own.
//!
//! The whole chunk is searched once with every rule's pattern combined (a multi-pattern
//! `regex-automata` search, which uses literal prefilters and a lazy DFA). Only on the lines where
//! that search stops (the candidates) is the full set asked which rules match, and are the
//! exclusions checked. With hit rates of a few percent, almost all bytes see only the combined
//! search, and the common path allocates nothing per line.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use regex_automata::meta::{self, Regex};
use regex_automata::util::syntax;
use regex_automata::{Input, MatchKind, PatternSet};

use crate::rules::{REGEX_SIZE_LIMIT, Rule, RuleId};
use crate::source::{Chunk, Mark};

/// One line that one rule matched.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The rule.
    pub rule: RuleId,
    /// The line, without its `\n` (a slice of the chunk: no copy).
    pub line: Bytes,
}

/// What the matcher found in one chunk, plus the counts the summary needs.
#[derive(Debug, Clone)]
pub struct HitBatch {
    /// Where the chunk came from.
    pub source: Arc<str>,
    /// When it was read.
    pub read_at: SystemTime,
    /// Lines in the chunk.
    pub lines: u64,
    /// Bytes in the chunk.
    pub bytes: u64,
    /// Offset just past the chunk in its source.
    pub end_offset: u64,
    /// Where the chunk starts in a followed file (checkpoints); `None` for stdin.
    pub mark: Option<Mark>,
    /// The hits, in line order.
    pub hits: Vec<Hit>,
}

/// Why the rules could not be combined into one search (in practice: too large once compiled).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the combined search over all rules: {0}")]
pub struct MatcherError(String);

/// Finds which rules match which lines of a chunk.
#[derive(Debug)]
pub struct Matcher {
    rules: Vec<Rule>,
    /// Leftmost-first search for any rule: finds candidate lines.
    any: Option<Regex>,
    /// All-matches search: which rules match a candidate line.
    which: Option<Regex>,
    /// Lines are judged on at most this many leading bytes.
    max_line: usize,
}

impl Matcher {
    /// Compiles the combined search for `rules`; lines are judged on their first `max_line` bytes.
    pub fn new(rules: &[Rule], max_line: usize) -> Result<Matcher, MatcherError> {
        let patterns: Vec<&str> = rules.iter().map(|r| r.pattern.as_str()).collect();
        let build = |kind: MatchKind| -> Result<Option<Regex>, MatcherError> {
            if patterns.is_empty() {
                return Ok(None);
            }
            // The same dialect as `rules::regex_builder` (which `regex::bytes` turns into these
            // settings): bytes, not necessarily UTF-8; ^/$ at line ends; CRLF-aware.
            let syntax = syntax::Config::new()
                .utf8(false)
                .multi_line(true)
                .crlf(true);
            let config = meta::Config::new()
                .match_kind(kind)
                .utf8_empty(false)
                .nfa_size_limit(Some(REGEX_SIZE_LIMIT))
                .dfa_size_limit(Some(REGEX_SIZE_LIMIT))
                .hybrid_cache_capacity(8 * 1024 * 1024);
            Regex::builder()
                .syntax(syntax)
                .configure(config)
                .build_many(&patterns)
                .map(Some)
                .map_err(|e| MatcherError(e.to_string()))
        };
        Ok(Matcher {
            rules: rules.to_vec(),
            any: build(MatchKind::LeftmostFirst)?,
            which: build(MatchKind::All)?,
            max_line: max_line.max(1),
        })
    }

    /// The rules, by id.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Calls `on_line(line, rules)` for every line of `data` that at least one rule matches (and
    /// no exclusion of that rule vetoes), in order. `line` excludes the `\n`; `rules` is sorted.
    ///
    /// `data` should end with `\n`; a last line without one is still judged.
    pub fn scan(&self, data: &[u8], mut on_line: impl FnMut(std::ops::Range<usize>, &[RuleId])) {
        let (Some(any), Some(which)) = (&self.any, &self.which) else {
            return;
        };
        let mut set = PatternSet::new(self.rules.len());
        let mut matched: Vec<RuleId> = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let Some(m) = any.search(&Input::new(data).range(pos..)) else {
                break;
            };
            // The line the match starts on. A pattern like `\s` can run across a newline; the
            // candidate is still judged alone, and the search resumes on the next line, so no
            // line is skipped and none is judged twice.
            let start = memchr::memrchr(b'\n', &data[pos..m.start()]).map_or(pos, |i| pos + i + 1);
            let end =
                memchr::memchr(b'\n', &data[m.start()..]).map_or(data.len(), |i| m.start() + i);
            let judged = &data[start..end.min(start + self.max_line)];
            set.clear();
            which.which_overlapping_matches(&Input::new(judged), &mut set);
            matched.clear();
            matched.extend(
                set.iter()
                    .map(|p| p.as_usize())
                    .filter(|&r| !self.rules[r].excludes(judged)),
            );
            if !matched.is_empty() {
                on_line(start..end, &matched);
            }
            pos = end + 1;
        }
    }

    /// Matches a whole chunk into a [`HitBatch`].
    pub fn match_chunk(&self, chunk: &Chunk) -> HitBatch {
        let data = &chunk.data;
        let mut hits = Vec::new();
        self.scan(data, |range, rules| {
            let mut line = data.slice(range);
            if line.ends_with(b"\r") {
                line.truncate(line.len() - 1);
            }
            hits.extend(rules.iter().map(|&rule| Hit {
                rule,
                line: line.clone(),
            }));
        });
        let lines = memchr::memchr_iter(b'\n', data).count() as u64
            + u64::from(!data.is_empty() && !data.ends_with(b"\n"));
        HitBatch {
            source: chunk.source.clone(),
            read_at: chunk.read_at,
            lines,
            bytes: data.len() as u64,
            end_offset: chunk.end_offset,
            mark: chunk.mark,
            hits,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::rules::RuleSpec;

    fn rules(specs: &[(&str, &[&str])]) -> Vec<Rule> {
        specs
            .iter()
            .enumerate()
            .map(|(i, (p, ex))| {
                Rule::compile(RuleSpec {
                    name: format!("r{i}"),
                    pattern: p.to_string(),
                    exclude: ex.iter().map(|s| s.to_string()).collect(),
                    window: Duration::from_secs(1),
                    max_lines: 5,
                    robot: None,
                })
                .unwrap()
            })
            .collect()
    }

    fn scan(specs: &[(&str, &[&str])], data: &[u8]) -> Vec<(String, Vec<RuleId>)> {
        let m = Matcher::new(&rules(specs), 1 << 16).unwrap();
        let mut out = Vec::new();
        m.scan(data, |r, ids| {
            out.push((String::from_utf8_lossy(&data[r]).into_owned(), ids.to_vec()))
        });
        out
    }

    #[test]
    fn table() {
        type Case<'a> = (
            &'a [(&'a str, &'a [&'a str])],
            &'a [u8],
            &'a [(&'a str, &'a [usize])],
        );
        let cases: &[Case] = &[
            // several rules on one line, reported together, in rule order
            (
                &[("ERROR", &[]), ("db", &[])],
                b"ok\nERROR db down\ndb ok\n",
                &[("ERROR db down", &[0, 1]), ("db ok", &[1])],
            ),
            // exclusions veto only their own rule
            (
                &[("5\\d\\d", &["/healthz"]), ("GET", &[])],
                b"GET /healthz 503\nGET /a 500\n",
                &[("GET /healthz 503", &[1]), ("GET /a 500", &[0, 1])],
            ),
            // ^ and $ are line anchors, and $ works before \r\n
            (
                &[("^E", &[]), ("x$", &[])],
                b"aE\nEa\nbx\r\nxb\n",
                &[("Ea", &[0]), ("bx\r", &[1])],
            ),
            // a pattern that could span lines is judged per line, and no line is skipped
            (
                &[("a\\sb", &[]), ("c", &[])],
                b"a\nb c\nxa b\n",
                &[("b c", &[1]), ("xa b", &[0])],
            ),
            // invalid UTF-8 and NUL bytes do not stop matching
            (
                &[("(?-u:\\xff)", &[]), ("boom", &[])],
                b"\xff\xfe\n\x00boom\x00\n",
                &[("\u{fffd}\u{fffd}", &[0]), ("\u{0}boom\u{0}", &[1])],
            ),
            // last line without newline
            (&[("z", &[])], b"a\nz", &[("z", &[0])]),
            // no rules, no hits
            (&[], b"anything\n", &[]),
        ];
        for (specs, data, want) in cases {
            let got = scan(specs, data);
            let want: Vec<(String, Vec<usize>)> = want
                .iter()
                .map(|(l, r)| (l.to_string(), r.to_vec()))
                .collect();
            assert_eq!(got, want, "data {:?}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn long_lines_are_judged_on_their_head_only() {
        let m = Matcher::new(&rules(&[("needle", &[])]), 8).unwrap();
        let mut n = 0;
        m.scan(b"xxxxxxxxxxneedle\nneedle and more\n", |_, _| n += 1);
        assert_eq!(n, 1);
    }

    #[test]
    fn match_chunk_counts_lines_and_strips_cr() {
        let m = Matcher::new(&rules(&[("E", &[])]), 1 << 16).unwrap();
        let chunk = Chunk {
            source: "-".into(),
            data: Bytes::from_static(b"E1\r\nok\nE2\n"),
            end_offset: 10,
            read_at: SystemTime::UNIX_EPOCH,
            mark: None,
        };
        let batch = m.match_chunk(&chunk);
        assert_eq!(batch.lines, 3);
        assert_eq!(batch.bytes, 10);
        let lines: Vec<&[u8]> = batch.hits.iter().map(|h| &h.line[..]).collect();
        assert_eq!(lines, [&b"E1"[..], b"E2"]);
    }
}
