//! The automaton path: rules searched together as one multi-pattern regex, for rules without a
//! literal worth searching for (`\d+\.\d+ms`, `^[A-Z]{3,} `) or when the whole set is small.

use regex_automata::meta::{self, Regex};
use regex_automata::util::syntax;
use regex_automata::{Input, MatchKind, PatternSet};

use super::MatcherError;
use crate::rules::{REGEX_SIZE_LIMIT, Rule, RuleId};

/// Rules searched together. Past about a hundred patterns, one combined automaton stops paying:
/// the lazy DFA's cache thrashes, the search falls back to the PikeVM, whose cost grows with the
/// number of patterns at every byte (1000 rules ran at kilobytes a second and grew to gigabytes).
/// Groups keep each automaton small and fast; each group costs one pass over the chunk, so cost
/// grows with the number of groups, not with the number of patterns inside each.
pub const GROUP_SIZE: usize = 100;

/// One group of line rules, compiled twice: to find candidate lines, and to tell which rules
/// match one.
#[derive(Debug)]
pub(super) struct RuleGroup {
    /// Rule id of each pattern.
    ids: Vec<RuleId>,
    /// Finds where the earliest match in a haystack ends.
    any: Regex,
    /// All-matches search: which patterns match a candidate line.
    which: Regex,
}

impl RuleGroup {
    pub(super) fn new(rules: &[Rule], ids: &[RuleId]) -> Result<RuleGroup, MatcherError> {
        let patterns: Vec<&str> = ids.iter().map(|&r| rules[r].pattern.as_str()).collect();
        let build = |kind: MatchKind| -> Result<Regex, MatcherError> {
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
                .hybrid_cache_capacity(4 * 1024 * 1024);
            Regex::builder()
                .syntax(syntax)
                .configure(config)
                .build_many(&patterns)
                .map_err(|e| MatcherError(e.to_string()))
        };
        Ok(RuleGroup {
            ids: ids.to_vec(),
            any: build(MatchKind::LeftmostFirst)?,
            which: build(MatchKind::All)?,
        })
    }

    /// Pushes `(line start, line end, rule)` for each line of `data` that a rule of this group
    /// matches (judged on its first `max_line` bytes, exclusions applied), in order.
    ///
    /// Candidates come from a search for where the earliest match *ends* (`earliest`, half a
    /// match: no capture slots per pattern, and the DFA stops as soon as it knows). The line
    /// holding that end is judged alone; then the search resumes on the next line. No line is
    /// skipped: a match inside a line ends before that line's newline, so no match that fits in
    /// a line can end after a candidate yet start in an earlier line. A pattern like `\s` that
    /// runs across a newline only makes a candidate that the per-line judgement rejects.
    pub(super) fn scan(
        &self,
        rules: &[Rule],
        data: &[u8],
        max_line: usize,
        found: &mut Vec<(usize, usize, RuleId)>,
    ) {
        let mut set = PatternSet::new(self.ids.len());
        let mut pos = 0;
        while pos < data.len() {
            let input = Input::new(data).range(pos..).earliest(true);
            let Some(half) = self.any.search_half(&input) else {
                break;
            };
            // The last byte of the match (or, for an empty match, where it stands).
            let at = if half.offset() > pos {
                half.offset() - 1
            } else {
                pos
            };
            let start = memchr::memrchr(b'\n', &data[pos..at]).map_or(pos, |i| pos + i + 1);
            let end = memchr::memchr(b'\n', &data[at..]).map_or(data.len(), |i| at + i);
            let judged = &data[start..super::judged_end(data, start, end, max_line)];
            set.clear();
            self.which
                .which_overlapping_matches(&Input::new(judged), &mut set);
            found.extend(
                set.iter()
                    .map(|p| self.ids[p.as_usize()])
                    .filter(|&r| !rules[r].excludes(judged))
                    .map(|r| (start, end, r)),
            );
            pos = end + 1;
        }
    }
}
