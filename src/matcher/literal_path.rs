//! The literal path: rules found by their required literals first.
//!
//! Every match of a rule contains a literal of each of its required sets ([`Required`]:
//! `word1.*word2` needs `word1` and `word2`). The first (best) set of every rule on this path is
//! searched at once over the whole block with `aho-corasick` (its SIMD "packed" Teddy searcher
//! when the set is small enough, an automaton with a rare-byte prefilter otherwise). Where one
//! occurs, the line around it is searched again for every literal of every set it holds (an
//! overlapping search, so literals that overlap or share a prefix are all seen), and only the
//! rules with a literal of *each* of their sets on the line run their regex, only on that line:
//! a line with `word1` but no `word2` costs no regex. The search then resumes at the next line.
//!
//! Each rule is confirmed by its own small searcher ([`super::confirm`]: a lazy DFA of its
//! pattern on ASCII lines, its full regex on others), built the first time one of its literals
//! occurs: a rule whose literal never shows up costs no compiled regex and no DFA cache. On a
//! short line a pattern with a wide bounded gap (`a[^\n]{0,40}b`) or big Unicode classes costs
//! about what any other pattern costs, where it would bloat one combined automaton over all
//! rules.
//!
//! Literals of `(?i)` pieces are searched with ASCII case folding (see [`super::literals`]):
//! when there are any, the block search runs over a lowercased copy of the block
//! ([`BlockFind`]), and the check on the line tells the case-sensitive ones apart.

use super::MatcherError;
use super::confirm::Confirm;
use super::literals::Required;
use crate::rules::{Rule, RuleId};
use std::collections::BTreeMap;
use std::sync::Mutex;

use aho_corasick::{AhoCorasick, AhoCorasickKind, Input, MatchKind};

/// The rules on the literal path and the searchers over their literals.
#[derive(Debug)]
pub(super) struct LiteralPath {
    /// The rules on this path (ids), by local index.
    rules: Vec<RuleId>,
    /// Each rule's confirmation, built on first use.
    confirms: Vec<Confirm>,
    /// Where is the next candidate line? One pass over the block for every literal, caseless
    /// ones included, whatever the mix.
    find: BlockFind,
    /// On a candidate line: which literals does it hold? One overlapping search for the
    /// case-sensitive literals, one for the caseless ones (each if any).
    checks: Vec<Check>,
    /// Per rule: the bits of all its sets ([`Check::owners`]); a line holding fewer cannot match.
    full: Vec<u8>,
}

/// Most sets of one rule checked on a line (one bit each in a `u8`).
const MAX_SETS: usize = 8;

/// One set of literals searched one way on a candidate line.
#[derive(Debug)]
struct Check {
    all: AhoCorasick,
    /// Per literal: the sets that hold it, as (local index of the rule, bit of the set).
    owners: Vec<Vec<(u32, u8)>>,
}

fn build(
    patterns: &[&[u8]],
    kind: MatchKind,
    engine: Option<AhoCorasickKind>,
    caseless: bool,
) -> Result<AhoCorasick, MatcherError> {
    let engine = match engine {
        Some(AhoCorasickKind::DFA) if dfa_bytes(patterns, caseless) > DFA_BUDGET => {
            Some(AhoCorasickKind::ContiguousNFA)
        }
        other => other,
    };
    AhoCorasick::builder()
        .match_kind(kind)
        .kind(engine)
        .ascii_case_insensitive(caseless)
        .build(patterns)
        .map_err(|e| MatcherError(format!("cannot build the literal search: {e}")))
}

/// Most memory one aho-corasick DFA may take; past it, the compact NFA is used instead (slower
/// per byte, a small fraction of the memory). A thousand rules of one or two words each fit;
/// a thousand rules with a dozen long spellings each would not (tens of MB).
const DFA_BUDGET: usize = 4 << 20;

/// An upper estimate of the DFA's size: a state per pattern byte, a transition per byte class
/// (rounded up to a power of two, as aho-corasick lays them out), four bytes each.
fn dfa_bytes(patterns: &[&[u8]], caseless: bool) -> usize {
    let mut seen = [false; 256];
    let mut states = 1;
    for p in patterns {
        states += p.len();
        for &b in *p {
            seen[usize::from(b)] = true;
            if caseless {
                seen[usize::from(b.to_ascii_uppercase())] = true;
                seen[usize::from(b.to_ascii_lowercase())] = true;
            }
        }
    }
    let classes = seen.iter().filter(|&&s| s).count() + 1;
    states * classes.next_power_of_two() * 4
}

/// Up to this many literals (all case-sensitive), the block search is aho-corasick's own choice:
/// its SIMD Teddy searcher, gigabytes a second.
const PACKED_LIMIT: usize = 64;

/// The search for the next candidate in a block: Teddy for a few dozen literals; past that a
/// full aho-corasick DFA over all literals, measured several times faster than the compact NFA
/// aho-corasick picks by itself for large sets, and far faster than a lazy DFA over the same
/// literals once they number in the thousands (its cache thrashes); the compact NFA only when
/// the DFA would exceed [`DFA_BUDGET`].
///
/// Teddy cannot fold case, and folding case takes aho-corasick off it (and off its other
/// prefilters) for the whole set, a case-folding DFA then stepping through every byte. So when
/// any literal is caseless, the block is first copied ASCII-lowercased (a vectorised pass, a
/// few percent of the search) and every literal, lowercased, is searched in the copy, case-
/// sensitively: where a literal occurs in the block in any spelling, its lowercase form occurs
/// at the same place in the copy. A case-sensitive literal may then find a line where it occurs
/// only in another spelling; the check on the line tells. (An earlier version searched a short
/// piece of each caseless literal in every spelling, `n re` for `connection refused`: short
/// pieces occur on many lines, and checking those lines cost more than the search.)
#[derive(Debug)]
struct BlockFind {
    search: AhoCorasick,
    /// Whether `search` runs over the lowercased copy.
    lower: bool,
    /// The lowercased copy, kept between blocks (the matcher runs on one thread, so the lock is
    /// never contended).
    copy: Mutex<Vec<u8>>,
}

impl BlockFind {
    fn new(literals: &[BTreeMap<Vec<u8>, Vec<u32>>; 2]) -> Result<BlockFind, MatcherError> {
        let lower = !literals[1].is_empty();
        let mut patterns: Vec<Vec<u8>> = literals
            .iter()
            .flat_map(|l| l.keys())
            .map(|l| {
                if lower {
                    l.to_ascii_lowercase()
                } else {
                    l.clone()
                }
            })
            .collect();
        patterns.sort();
        patterns.dedup();
        let engine = (patterns.len() > PACKED_LIMIT).then_some(AhoCorasickKind::DFA);
        let patterns: Vec<&[u8]> = patterns.iter().map(Vec::as_slice).collect();
        Ok(BlockFind {
            search: build(&patterns, MatchKind::LeftmostFirst, engine, false)?,
            lower,
            copy: Mutex::new(Vec::new()),
        })
    }

    /// Calls `at` with where each next literal occurrence starts, from the start of `data`;
    /// `at` says where to search on from.
    fn each(&self, data: &[u8], mut at: impl FnMut(usize) -> usize) {
        let mut copy;
        let haystack = if self.lower {
            copy = self.copy.lock().unwrap_or_else(|e| e.into_inner());
            copy.clear();
            copy.extend(data.iter().map(u8::to_ascii_lowercase));
            &copy[..]
        } else {
            data
        };
        let mut pos = 0;
        while pos < haystack.len() {
            let Some(m) = self
                .search
                .find(Input::new(haystack).span(pos..haystack.len()))
            else {
                break;
            };
            pos = at(m.start());
        }
    }
}

impl LiteralPath {
    /// The path for `chosen`: each rule with the literals its matches require. The block is
    /// searched for each rule's first set; a line is confirmed only for rules it holds a
    /// literal of every set of.
    pub(super) fn new(chosen: Vec<(RuleId, Required)>) -> Result<LiteralPath, MatcherError> {
        type Owners<T> = BTreeMap<Vec<u8>, Vec<T>>;
        let mut first: [Owners<u32>; 2] = Default::default();
        let mut all: [Owners<(u32, u8)>; 2] = Default::default();
        let mut rules = Vec::with_capacity(chosen.len());
        let mut full = Vec::with_capacity(chosen.len());
        for (local, (rule, required)) in chosen.into_iter().enumerate() {
            rules.push(rule);
            let sets = &required.0[..required.0.len().min(MAX_SETS)];
            full.push(((1u16 << sets.len()) - 1) as u8);
            for lit in required.first() {
                first[usize::from(lit.caseless)]
                    .entry(lit.bytes.clone())
                    .or_default()
                    .push(local as u32);
            }
            for (bit, set) in sets.iter().enumerate() {
                for lit in set {
                    let owners = all[usize::from(lit.caseless)]
                        .entry(lit.bytes.clone())
                        .or_default();
                    if !owners.contains(&(local as u32, bit as u8)) {
                        owners.push((local as u32, bit as u8));
                    }
                }
            }
        }
        let find = BlockFind::new(&first)?;
        let mut checks = Vec::new();
        for (caseless, literals) in all.into_iter().enumerate() {
            if literals.is_empty() {
                continue;
            }
            let patterns: Vec<&[u8]> = literals.keys().map(Vec::as_slice).collect();
            let all = build(
                &patterns,
                MatchKind::Standard,
                Some(AhoCorasickKind::DFA),
                caseless == 1,
            )?;
            checks.push(Check {
                all,
                owners: literals.into_values().collect(),
            });
        }
        Ok(LiteralPath {
            confirms: rules.iter().map(|_| Confirm::default()).collect(),
            rules,
            full,
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
        // Per rule: the bits of the sets this line holds a literal of; `touched` lists the rules
        // with any bit, to be reset after the line.
        let mut held = vec![0u8; self.rules.len()];
        let mut touched: Vec<u32> = Vec::new();
        let mut pos = 0;
        self.find.each(data, |at| {
            let start = memchr::memrchr(b'\n', &data[pos..at]).map_or(pos, |i| pos + i + 1);
            let end = memchr::memchr(b'\n', &data[at..]).map_or(data.len(), |i| at + i);
            let judged_end = super::judged_end(data, start, end, max_line);
            if at < judged_end {
                for check in &self.checks {
                    for lm in check
                        .all
                        .find_overlapping_iter(Input::new(data).span(start..judged_end))
                    {
                        for &(local, bit) in &check.owners[lm.pattern().as_usize()] {
                            let h = &mut held[local as usize];
                            if *h == 0 {
                                touched.push(local);
                            }
                            *h |= 1 << bit;
                        }
                    }
                }
                touched.sort_unstable();
                let judged = &data[start..judged_end];
                for &local in &touched {
                    let local = local as usize;
                    let complete = held[local] == self.full[local];
                    held[local] = 0;
                    if !complete {
                        continue;
                    }
                    let rule = self.rules[local];
                    if self.confirms[local].is_match(&all_rules[rule], judged)
                        && !all_rules[rule].excludes(judged)
                    {
                        found.push((start, end, rule));
                    }
                }
                touched.clear();
            }
            pos = end + 1;
            pos
        });
    }
}
