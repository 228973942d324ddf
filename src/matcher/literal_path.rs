//! The literal path: rules found by their required literals first.
//!
//! All literals of all rules on this path are searched at once over the whole block with
//! `aho-corasick` (its SIMD "packed" Teddy searcher when the set is small enough, an automaton
//! with a rare-byte prefilter otherwise). Where one occurs, the line around it is searched again
//! for every literal it holds (an overlapping search, so literals that overlap or share a
//! prefix are all seen), and only the rules owning those literals run their regex, only on that
//! line. The search then resumes at the next line.
//!
//! Each rule's regex is the same `regex::bytes::Regex` the rule means (same dialect as
//! [`crate::rules::regex_builder`]), compiled the first time one of its literals occurs: a rule
//! whose literal never shows up costs no compiled regex and no DFA cache. On a short line the
//! regex engine runs a lazy DFA (or a backtracker), so a pattern with a wide bounded gap
//! (`a[^\n]{0,40}b`) or big Unicode classes costs about what any other pattern costs, where it
//! would bloat one combined automaton over all rules.
//!
//! Literals of `(?i)` pieces are searched with ASCII case folding (see [`super::literals`]); when
//! there are any, the one block search folds case for all literals, and the check on the line
//! tells the case-sensitive ones apart.

use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickKind, Input, MatchKind};
use regex::bytes::Regex;

use super::MatcherError;
use super::literals::Literal;
use crate::rules::{Rule, RuleId};

/// The rules on the literal path and the searchers over their literals.
#[derive(Debug)]
pub(super) struct LiteralPath {
    /// The rules on this path (ids), by local index.
    rules: Vec<RuleId>,
    /// Each rule's regex, compiled on first use.
    regexes: Vec<OnceLock<Regex>>,
    /// Where is the next candidate line? One pass over the block for every literal, caseless
    /// ones included, whatever the mix.
    find: BlockFind,
    /// On a candidate line: which literals does it hold? One overlapping search for the
    /// case-sensitive literals, one for the caseless ones (each if any).
    checks: Vec<Check>,
}

/// One set of literals searched one way on a candidate line.
#[derive(Debug)]
struct Check {
    all: AhoCorasick,
    /// Per literal: the local indexes of the rules that require it.
    owners: Vec<Vec<u32>>,
}

fn build(
    patterns: &[&[u8]],
    kind: MatchKind,
    engine: Option<AhoCorasickKind>,
    caseless: bool,
) -> Result<AhoCorasick, MatcherError> {
    AhoCorasick::builder()
        .match_kind(kind)
        .kind(engine)
        .ascii_case_insensitive(caseless)
        .build(patterns)
        .map_err(|e| MatcherError(format!("cannot build the literal search: {e}")))
}

/// Up to this many literals (all case-sensitive), the block search is aho-corasick's own choice:
/// its SIMD Teddy searcher, gigabytes a second.
const PACKED_LIMIT: usize = 64;

/// The search for the next literal occurrence in a block: Teddy for a few dozen case-sensitive
/// literals; past that (or with caseless ones, which Teddy cannot search) a full aho-corasick
/// DFA over all literals, measured several times faster than the compact NFA aho-corasick picks
/// by itself for large sets, and far faster than a lazy DFA over the same literals once they
/// number in the thousands (its cache thrashes).
#[derive(Debug)]
struct BlockFind(AhoCorasick);

impl BlockFind {
    fn new(
        by_case: &[std::collections::BTreeMap<Vec<u8>, Vec<u32>>; 2],
    ) -> Result<BlockFind, MatcherError> {
        let caseless = !by_case[1].is_empty();
        let patterns: Vec<&[u8]> = by_case
            .iter()
            .flat_map(|m| m.keys().map(Vec::as_slice))
            .collect();
        let engine = (caseless || patterns.len() > PACKED_LIMIT).then_some(AhoCorasickKind::DFA);
        Ok(BlockFind(build(
            &patterns,
            MatchKind::LeftmostFirst,
            engine,
            caseless,
        )?))
    }

    /// Where the first literal occurrence at or after `pos` starts.
    fn next(&self, data: &[u8], pos: usize) -> Option<usize> {
        self.0
            .find(Input::new(data).span(pos..data.len()))
            .map(|m| m.start())
    }
}

impl LiteralPath {
    /// The path for `chosen`: each rule with its required literals.
    pub(super) fn new(chosen: Vec<(RuleId, Vec<Literal>)>) -> Result<LiteralPath, MatcherError> {
        let mut by_case: [std::collections::BTreeMap<Vec<u8>, Vec<u32>>; 2] = Default::default();
        let mut rules = Vec::with_capacity(chosen.len());
        for (local, (rule, literals)) in chosen.into_iter().enumerate() {
            rules.push(rule);
            for lit in literals {
                by_case[usize::from(lit.caseless)]
                    .entry(lit.bytes)
                    .or_default()
                    .push(local as u32);
            }
        }
        let find = BlockFind::new(&by_case)?;
        let mut checks = Vec::new();
        for (caseless, literals) in by_case.into_iter().enumerate() {
            if literals.is_empty() {
                continue;
            }
            let patterns: Vec<&[u8]> = literals.keys().map(Vec::as_slice).collect();
            let all = build(
                &patterns,
                MatchKind::Standard,
                Some(AhoCorasickKind::ContiguousNFA),
                caseless == 1,
            )?;
            checks.push(Check {
                all,
                owners: literals.into_values().collect(),
            });
        }
        Ok(LiteralPath {
            regexes: rules.iter().map(|_| OnceLock::new()).collect(),
            rules,
            find,
            checks,
        })
    }

    /// How many rules are on this path.
    pub(super) fn len(&self) -> usize {
        self.rules.len()
    }

    /// Pushes `(line start, line end, rule)` for every line of `data` that a rule of this path
    /// matches (judged on the line's first `max_line` bytes, exclusions applied).
    pub(super) fn scan(
        &self,
        all_rules: &[Rule],
        data: &[u8],
        max_line: usize,
        found: &mut Vec<(usize, usize, RuleId)>,
    ) {
        let mut candidates: Vec<u32> = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let Some(at) = self.find.next(data, pos) else {
                break;
            };
            let start = memchr::memrchr(b'\n', &data[pos..at]).map_or(pos, |i| pos + i + 1);
            let end = memchr::memchr(b'\n', &data[at..]).map_or(data.len(), |i| at + i);
            let judged_end = super::judged_end(data, start, end, max_line);
            if at < judged_end {
                candidates.clear();
                for check in &self.checks {
                    for lm in check
                        .all
                        .find_overlapping_iter(Input::new(data).span(at..judged_end))
                    {
                        candidates.extend_from_slice(&check.owners[lm.pattern().as_usize()]);
                    }
                }
                candidates.sort_unstable();
                candidates.dedup();
                let judged = &data[start..judged_end];
                for &local in &candidates {
                    let rule = self.rules[local as usize];
                    if self.regex(all_rules, local as usize).is_match(judged)
                        && !all_rules[rule].excludes(judged)
                    {
                        found.push((start, end, rule));
                    }
                }
            }
            pos = end + 1;
        }
    }

    fn regex(&self, all_rules: &[Rule], local: usize) -> &Regex {
        self.regexes[local].get_or_init(|| {
            let rule = &all_rules[self.rules[local]];
            rule.regex.clone().unwrap_or_else(|| {
                crate::rules::regex_builder(&rule.pattern)
                    .build()
                    .expect("a rule's pattern compiled when the rule did")
            })
        })
    }
}
