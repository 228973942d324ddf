//! The literal path: rules found by their required literals first.
//!
//! All literals of all rules on this path are searched at once over the whole block with
//! `aho-corasick` (its SIMD "packed" Teddy searcher when the set is small enough, an automaton
//! with a rare-byte prefilter otherwise). Where one occurs, the line around it is searched again
//! for every literal it holds (an overlapping search, so literals that overlap or share a
//! prefix are all seen), and only the rules owning those literals run their regex, only on that
//! line. The search then resumes at the next line.
//!
//! Each rule is confirmed by its own small searcher ([`super::confirm`]: a lazy DFA of its
//! pattern on ASCII lines, its full regex on others), built the first time one of its literals
//! occurs: a rule whose literal never shows up costs no compiled regex and no DFA cache. On a
//! short line a pattern with a wide bounded gap (`a[^\n]{0,40}b`) or big Unicode classes costs
//! about what any other pattern costs, where it would bloat one combined automaton over all
//! rules.
//!
//! Literals of `(?i)` pieces are searched with ASCII case folding (see [`super::literals`]); when
//! there are any, the one block search folds case for all literals, and the check on the line
//! tells the case-sensitive ones apart.

use super::MatcherError;
use super::confirm::Confirm;
use super::literals::Literal;
use crate::rules::{Rule, RuleId};
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

/// Most ASCII letters of a caseless literal's window (see [`case_window`]): 2^3 spellings.
const WINDOW_LETTERS: u32 = 3;

/// The search for the next candidate in a block: Teddy for a few dozen case-sensitive literals;
/// past that a full aho-corasick DFA over all literals, measured several times faster than the
/// compact NFA aho-corasick picks by itself for large sets, and far faster than a lazy DFA over
/// the same literals once they number in the thousands (its cache thrashes); the compact NFA
/// only when the DFA would exceed [`DFA_BUDGET`].
///
/// Teddy cannot fold case, and folding case takes aho-corasick off it (and off its other SIMD
/// prefilters) for the whole set. So a caseless literal is not searched whole: a window of it
/// with at most [`WINDOW_LETTERS`] letters (`(?i)connection refused` → `n re`) is searched in
/// every spelling (8 case-sensitive literals). Every line holding the literal holds one of them;
/// the check on the line (over the whole line, as the window may start inside the literal)
/// tells which literals really occur. When the windows would be too short or too many for
/// Teddy, the block search folds case for all literals instead.
#[derive(Debug)]
struct BlockFind(AhoCorasick);

/// The longest piece of the ASCII-lowercased caseless `literal` with at most [`WINDOW_LETTERS`]
/// ASCII letters (the fewest letters among equally long ones), in all its ASCII spellings;
/// `None` when no such piece has [`super::literals::MIN_LEN`] bytes.
fn case_window(literal: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut best: Option<(usize, usize, u32)> = None;
    for i in 0..literal.len() {
        let mut letters = 0;
        let mut j = i;
        while j < literal.len() {
            let l = u32::from(literal[j].is_ascii_alphabetic());
            if letters + l > WINDOW_LETTERS {
                break;
            }
            letters += l;
            j += 1;
        }
        let better = best.is_none_or(|(bi, bj, bl)| {
            (j - i).min(8) > (bj - bi).min(8)
                || ((j - i).min(8) == (bj - bi).min(8) && letters < bl)
        });
        if better {
            best = Some((i, j, letters));
        }
    }
    let (i, j, _) = best?;
    if j - i < super::literals::MIN_LEN {
        return None;
    }
    let window = &literal[i..j];
    let at: Vec<usize> = (0..window.len())
        .filter(|&k| window[k].is_ascii_alphabetic())
        .collect();
    Some(
        (0u32..1 << at.len())
            .map(|mask| {
                let mut w = window.to_vec();
                for (bit, &k) in at.iter().enumerate() {
                    if mask & (1 << bit) != 0 {
                        w[k] = w[k].to_ascii_uppercase();
                    }
                }
                w
            })
            .collect(),
    )
}

impl BlockFind {
    fn new(
        by_case: &[std::collections::BTreeMap<Vec<u8>, Vec<u32>>; 2],
    ) -> Result<BlockFind, MatcherError> {
        let mut patterns: Vec<Vec<u8>> = by_case[0].keys().cloned().collect();
        let windows: Option<Vec<Vec<u8>>> = by_case[1]
            .keys()
            .map(|l| case_window(l))
            .collect::<Option<Vec<_>>>()
            .map(|w| w.into_iter().flatten().collect());
        let (caseless, engine) = match windows {
            Some(w) if patterns.len() + w.len() <= PACKED_LIMIT => {
                patterns.extend(w);
                (false, None)
            }
            _ => {
                patterns.extend(by_case[1].keys().cloned());
                let caseless = !by_case[1].is_empty();
                let engine =
                    (caseless || patterns.len() > PACKED_LIMIT).then_some(AhoCorasickKind::DFA);
                (caseless, engine)
            }
        };
        patterns.sort();
        patterns.dedup();
        let patterns: Vec<&[u8]> = patterns.iter().map(Vec::as_slice).collect();
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
                        .find_overlapping_iter(Input::new(data).span(start..judged_end))
                    {
                        candidates.extend_from_slice(&check.owners[lm.pattern().as_usize()]);
                    }
                }
                candidates.sort_unstable();
                candidates.dedup();
                let judged = &data[start..judged_end];
                for &local in &candidates {
                    let rule = self.rules[local as usize];
                    if self.confirms[local as usize].is_match(&all_rules[rule], judged)
                        && !all_rules[rule].excludes(judged)
                    {
                        found.push((start, end, rule));
                    }
                }
            }
            pos = end + 1;
        }
    }
}
