//! The literal path: rules found by their required literals first.
//!
//! Every match of a rule contains a literal of each of its required sets ([`Required`]:
//! `word1.*word2` needs `word1` and `word2`). One set of every rule on this path is searched at
//! once over the whole block with `aho-corasick` (its SIMD "packed" Teddy searcher when the set
//! is small enough, an automaton otherwise). Where one occurs, the line around it is searched
//! again for every literal of every set (one overlapping search, so literals that overlap or
//! share a prefix are all seen), and only the rules with a literal of *each* of their sets on the
//! line run their regex, only on that line: a line with `word1` but no `word2` costs no regex.
//! The search then resumes at the next line.
//!
//! **Which set is searched** is learnt from the data. Any set will do (the line check asks for
//! all of them), but the cost is the number of candidate lines, so the rarest set is best: in
//! Loghub lines `error` occurs on 7% of lines and `Timed` on a few, so `Error[^\n]{0,40}Timed`
//! is found by `Timed`. At first each rule's set is the best by length ([`super::literals`]);
//! a sample of the data ([`Tuner`]: the first 256 KiB, then 256 KiB every 16 MiB, so a stream
//! that changes is followed) counts every literal's occurrences with the check's own automaton,
//! and each rule then searches for its set with the fewest. On the Loghub rules this halves the
//! candidate lines at 100 rules (49% to 20% of lines) and quarters them at 20.
//!
//! Each rule is confirmed by its own small searcher ([`super::confirm`]: a lazy DFA of its
//! pattern on ASCII lines, its full regex on others), built the first time one of its literals
//! occurs: a rule whose literal never shows up costs no compiled regex and no DFA cache. On a
//! short line a pattern with a wide bounded gap (`a[^\n]{0,40}b`) or big Unicode classes costs
//! about what any other pattern costs, where it would bloat one combined automaton over all
//! rules.
//!
//! Literals of `(?i)` pieces are searched with ASCII case folding (see [`super::literals`]):
//! when there are any, the block is copied ASCII-lowercased and every literal, lowercased, is
//! searched in the copy; a case-sensitive literal found there is checked against the block's
//! own bytes ([`Owner::exact`]).

use super::MatcherError;
use super::confirm::Confirm;
use super::literals::{Literal, Required};
use crate::rules::{Rule, RuleId};
use std::collections::HashMap;
use std::sync::Mutex;

use aho_corasick::{AhoCorasick, AhoCorasickKind, Input, MatchKind};

/// The rules on the literal path and the searchers over their literals.
#[derive(Debug)]
pub(super) struct LiteralPath {
    /// The rules on this path (ids), by local index.
    rules: Vec<RuleId>,
    /// Each rule's confirmation, built on first use.
    confirms: Vec<Confirm>,
    /// Whether any literal is caseless: then the block is copied ASCII-lowercased and the check
    /// runs over the copy.
    lower: bool,
    /// Every distinct literal of every set.
    literals: Vec<Literal>,
    /// Per literal: its pattern in `check` (its bytes, lowercased when `lower`).
    pattern_of: Vec<u32>,
    /// On a candidate line: which literals does it hold? One overlapping search for all.
    check: AhoCorasick,
    /// Per pattern of `check`: the sets that hold it.
    owners: Vec<Vec<Owner>>,
    /// Per rule: its sets (at most [`MAX_SETS`]), as literal indexes.
    sets: Vec<Vec<Vec<u32>>>,
    /// Per rule: the bits of all its sets ([`Owner::bit`]); a line holding fewer cannot match.
    full: Vec<u8>,
    /// What changes while scanning: the block search, the copy, the tuner. The matcher runs on
    /// one thread, so the lock is never contended; it is taken once per block.
    state: Mutex<State>,
}

/// One set that holds a literal.
#[derive(Debug, Clone, Copy)]
struct Owner {
    /// The rule, by local index.
    local: u32,
    /// The set's bit in the rule's mask.
    bit: u8,
    /// Whether the literal is case-sensitive but was searched lowercased: then the line's own
    /// bytes where it was found must equal the literal's.
    exact: bool,
    /// The literal (index into [`LiteralPath::literals`]).
    literal: u32,
}

/// Most sets of one rule checked on a line (one bit each in a `u8`).
const MAX_SETS: usize = 8;

#[derive(Debug)]
struct State {
    find: BlockFind,
    /// Per rule: the index of the set `find` searches for.
    chosen: Vec<u8>,
    /// The lowercased copy of the block, kept between blocks.
    copy: Vec<u8>,
    /// Per rule: the bits of the sets the current line holds a literal of.
    held: Vec<u8>,
    /// The rules with any bit in `held`, to be reset after the line.
    touched: Vec<u32>,
    tuner: Tuner,
}

/// Counts literal occurrences in samples of the data, to choose each rule's searched set.
#[derive(Debug)]
struct Tuner {
    /// Occurrences per pattern of the check in the current sample.
    counts: Vec<u32>,
    /// Bytes in the current sample.
    sampled: usize,
    /// Bytes scanned since the last sample ended.
    since: usize,
    /// Whether a choice was made from a sample yet.
    tuned: bool,
}

/// Bytes of data a choice of searched sets is made from.
const SAMPLE_BYTES: usize = 256 << 10;
/// After the first choice, a new sample starts once this many bytes were scanned.
const SAMPLE_GAP: usize = 16 << 20;

impl Tuner {
    /// Whether a block of `len` bytes is to be counted.
    fn wants(&mut self, len: usize) -> bool {
        if !self.tuned || self.sampled > 0 {
            return true;
        }
        self.since += len;
        if self.since >= SAMPLE_GAP {
            self.since = 0;
            return true;
        }
        false
    }
}

fn build(
    patterns: &[&[u8]],
    kind: MatchKind,
    engine: Option<AhoCorasickKind>,
) -> Result<AhoCorasick, MatcherError> {
    let engine = match engine {
        Some(AhoCorasickKind::DFA) if dfa_bytes(patterns) > DFA_BUDGET => {
            Some(AhoCorasickKind::ContiguousNFA)
        }
        other => other,
    };
    AhoCorasick::builder()
        .match_kind(kind)
        .kind(engine)
        .build(patterns)
        .map_err(|e| MatcherError(format!("cannot build the literal search: {e}")))
}

/// Most memory one aho-corasick DFA may take; past it, the compact NFA is used instead (slower
/// per byte, a small fraction of the memory). A thousand rules of one or two words each fit;
/// a thousand rules with a dozen long spellings each would not (tens of MB).
const DFA_BUDGET: usize = 4 << 20;

/// An upper estimate of the DFA's size: a state per pattern byte, a transition per byte class
/// (rounded up to a power of two, as aho-corasick lays them out), four bytes each.
fn dfa_bytes(patterns: &[&[u8]]) -> usize {
    let mut seen = [false; 256];
    let mut states = 1;
    for p in patterns {
        states += p.len();
        for &b in *p {
            seen[usize::from(b)] = true;
        }
    }
    let classes = seen.iter().filter(|&&s| s).count() + 1;
    states * classes.next_power_of_two() * 4
}

/// Up to this many literals, the block search is aho-corasick's own choice: its SIMD Teddy
/// searcher, gigabytes a second.
const PACKED_LIMIT: usize = 64;

/// The search for the next candidate in a block: Teddy for a few dozen literals; past that a
/// full aho-corasick DFA over all literals, measured several times faster than the compact NFA
/// aho-corasick picks by itself for large sets, and far faster than a lazy DFA over the same
/// literals once they number in the thousands (its cache thrashes); the compact NFA only when
/// the DFA would exceed [`DFA_BUDGET`].
///
/// Teddy cannot fold case, and folding case takes aho-corasick off it (and off its other
/// prefilters) for the whole set, a case-folding DFA then stepping through every byte. So when
/// any searched literal is caseless, every searched literal, lowercased, is searched in the
/// lowercased copy of the block: where a literal occurs in the block in any spelling, its
/// lowercase form occurs at the same place in the copy. A case-sensitive literal may then find
/// a line where it occurs only in another spelling; the check on the line tells.
#[derive(Debug)]
struct BlockFind {
    search: AhoCorasick,
    /// Whether `search` runs over the lowercased copy.
    on_copy: bool,
}

impl BlockFind {
    /// A search that finds nothing, for a moment.
    fn empty() -> BlockFind {
        BlockFind {
            search: AhoCorasick::new(Vec::<&[u8]>::new()).expect("no pattern always builds"),
            on_copy: false,
        }
    }

    /// The search for these literals.
    fn new(literals: &[&Literal]) -> Result<BlockFind, MatcherError> {
        let on_copy = literals.iter().any(|l| l.caseless);
        let mut patterns: Vec<Vec<u8>> = literals
            .iter()
            .map(|l| {
                if on_copy {
                    l.bytes.to_ascii_lowercase()
                } else {
                    l.bytes.clone()
                }
            })
            .collect();
        patterns.sort();
        patterns.dedup();
        let engine = (patterns.len() > PACKED_LIMIT).then_some(AhoCorasickKind::DFA);
        let patterns: Vec<&[u8]> = patterns.iter().map(Vec::as_slice).collect();
        Ok(BlockFind {
            search: build(&patterns, MatchKind::LeftmostFirst, engine)?,
            on_copy,
        })
    }
}

impl LiteralPath {
    /// The path for `chosen`: each rule with the literals its matches require. A line is
    /// confirmed only for rules it holds a literal of every set of.
    pub(super) fn new(chosen: Vec<(RuleId, Required)>) -> Result<LiteralPath, MatcherError> {
        let lower = chosen
            .iter()
            .any(|(_, r)| r.0.iter().flatten().any(|l| l.caseless));
        let mut literals: Vec<Literal> = Vec::new();
        let mut literal_ids: HashMap<Literal, u32> = HashMap::new();
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut pattern_ids: HashMap<Vec<u8>, u32> = HashMap::new();
        let mut pattern_of: Vec<u32> = Vec::new();
        let mut owners: Vec<Vec<Owner>> = Vec::new();
        let mut rules = Vec::with_capacity(chosen.len());
        let mut sets = Vec::with_capacity(chosen.len());
        let mut full = Vec::with_capacity(chosen.len());
        for (local, (rule, required)) in chosen.into_iter().enumerate() {
            rules.push(rule);
            let kept = &required.0[..required.0.len().min(MAX_SETS)];
            full.push(((1u16 << kept.len()) - 1) as u8);
            let mut rule_sets = Vec::with_capacity(kept.len());
            for (bit, set) in kept.iter().enumerate() {
                let mut ids = Vec::with_capacity(set.len());
                for lit in set {
                    let id = *literal_ids.entry(lit.clone()).or_insert_with(|| {
                        let form = if lower {
                            lit.bytes.to_ascii_lowercase()
                        } else {
                            lit.bytes.clone()
                        };
                        let pattern = *pattern_ids.entry(form.clone()).or_insert_with(|| {
                            patterns.push(form);
                            owners.push(Vec::new());
                            (patterns.len() - 1) as u32
                        });
                        literals.push(lit.clone());
                        pattern_of.push(pattern);
                        (literals.len() - 1) as u32
                    });
                    let owner = Owner {
                        local: local as u32,
                        bit: bit as u8,
                        exact: lower && !lit.caseless,
                        literal: id,
                    };
                    let list = &mut owners[pattern_of[id as usize] as usize];
                    if !list
                        .iter()
                        .any(|o| o.local == owner.local && o.bit == owner.bit && o.literal == id)
                    {
                        list.push(owner);
                    }
                    ids.push(id);
                }
                rule_sets.push(ids);
            }
            sets.push(rule_sets);
        }
        let pattern_refs: Vec<&[u8]> = patterns.iter().map(Vec::as_slice).collect();
        let check = build(
            &pattern_refs,
            MatchKind::Standard,
            Some(AhoCorasickKind::DFA),
        )?;
        let chosen = vec![0u8; rules.len()];
        let mut path = LiteralPath {
            confirms: rules.iter().map(|_| Confirm::default()).collect(),
            lower,
            literals,
            pattern_of,
            check,
            owners,
            sets,
            full,
            state: Mutex::new(State {
                // replaced below, once the path can name the searched literals
                find: BlockFind::empty(),
                chosen: Vec::new(),
                copy: Vec::new(),
                held: vec![0; rules.len()],
                touched: Vec::new(),
                tuner: Tuner {
                    counts: vec![0; patterns.len()],
                    sampled: 0,
                    since: 0,
                    tuned: false,
                },
            }),
            rules,
        };
        let find = path.find_for(&chosen)?;
        let state = path.state.get_mut().unwrap_or_else(|e| e.into_inner());
        state.find = find;
        state.chosen = chosen;
        Ok(path)
    }

    /// How many rules are on this path.
    pub(super) fn len(&self) -> usize {
        self.rules.len()
    }

    /// The block search for rule `r`'s set `chosen[r]`, for every rule.
    fn find_for(&self, chosen: &[u8]) -> Result<BlockFind, MatcherError> {
        let searched: Vec<&Literal> = self
            .sets
            .iter()
            .zip(chosen)
            .flat_map(|(sets, &c)| &sets[usize::from(c)])
            .map(|&l| &self.literals[l as usize])
            .collect();
        BlockFind::new(&searched)
    }

    /// Each rule's set with the fewest occurrences in the sample (`counts`, per pattern); among
    /// equals, the best by length (the first).
    fn choose(&self, counts: &[u32]) -> Vec<u8> {
        self.sets
            .iter()
            .map(|sets| {
                let cost = |set: &Vec<u32>| -> u64 {
                    set.iter()
                        .map(|&l| u64::from(counts[self.pattern_of[l as usize] as usize]))
                        .sum()
                };
                (0..sets.len())
                    .min_by_key(|&i| (cost(&sets[i]), i))
                    .unwrap_or(0) as u8
            })
            .collect()
    }

    /// The literals each rule's block search looks for now (for tests).
    #[cfg(test)]
    fn searched(&self) -> Vec<Vec<Vec<u8>>> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.sets
            .iter()
            .zip(&state.chosen)
            .map(|(sets, &c)| {
                sets[usize::from(c)]
                    .iter()
                    .map(|&l| self.literals[l as usize].bytes.clone())
                    .collect()
            })
            .collect()
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
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let State {
            find,
            chosen,
            copy,
            held,
            touched,
            tuner,
        } = &mut *state;
        if self.lower {
            copy.clear();
            copy.reserve_exact(data.len());
            copy.extend(data.iter().map(u8::to_ascii_lowercase));
        }
        // What the check searches: the copy when literals are lowercased.
        let checked: &[u8] = if self.lower { &copy[..] } else { data };
        if tuner.wants(data.len()) {
            for m in self.check.find_overlapping_iter(checked) {
                let n = &mut tuner.counts[m.pattern().as_usize()];
                *n = n.saturating_add(1);
            }
            tuner.sampled += data.len();
            if tuner.sampled >= SAMPLE_BYTES {
                let better = self.choose(&tuner.counts);
                if better != *chosen {
                    // The old search goes first, so the two never take memory at once (a
                    // megabyte or more each with a thousand rules). Should the new one fail to
                    // build, the old one is built again: it was built once from the same sets.
                    *find = BlockFind::empty();
                    *find = match self.find_for(&better) {
                        Ok(f) => {
                            *chosen = better;
                            f
                        }
                        Err(_) => self
                            .find_for(chosen)
                            .expect("the search built before builds again"),
                    };
                }
                tuner.counts.iter_mut().for_each(|n| *n = 0);
                tuner.sampled = 0;
                tuner.tuned = true;
            }
        }
        let haystack: &[u8] = if find.on_copy { &copy[..] } else { data };
        let mut pos = 0;
        while pos < haystack.len() {
            let Some(m) = find
                .search
                .find(Input::new(haystack).span(pos..haystack.len()))
            else {
                break;
            };
            let at = m.start();
            let start = memchr::memrchr(b'\n', &data[pos..at]).map_or(pos, |i| pos + i + 1);
            let end = memchr::memchr(b'\n', &data[at..]).map_or(data.len(), |i| at + i);
            let judged_end = super::judged_end(data, start, end, max_line);
            if at < judged_end {
                for lm in self
                    .check
                    .find_overlapping_iter(Input::new(checked).span(start..judged_end))
                {
                    for o in &self.owners[lm.pattern().as_usize()] {
                        if o.exact
                            && data[lm.start()..lm.end()]
                                != self.literals[o.literal as usize].bytes[..]
                        {
                            continue;
                        }
                        let h = &mut held[o.local as usize];
                        if *h == 0 {
                            touched.push(o.local);
                        }
                        *h |= 1 << o.bit;
                    }
                }
                touched.sort_unstable();
                let judged = &data[start..judged_end];
                for &local in touched.iter() {
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::literals::required_all;
    use crate::rules::RuleSpec;
    use std::time::Duration;

    fn path(patterns: &[&str]) -> (Vec<Rule>, LiteralPath) {
        let rules: Vec<Rule> = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Rule::compile(RuleSpec {
                    name: format!("r{i}"),
                    pattern: p.to_string(),
                    window: Duration::from_secs(1),
                    max_lines: 5,
                    ..RuleSpec::default()
                })
                .unwrap()
            })
            .collect();
        let chosen = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| (i, required_all(p).unwrap()))
            .collect();
        (rules, LiteralPath::new(chosen).unwrap())
    }

    #[test]
    fn each_rule_searches_for_its_rarest_set_once_the_data_was_sampled() {
        // By length, `connection` and `Exception` are the best sets; in this data they are on
        // every line, and `dropped` and `timeout` on a few.
        let (rules, path) = path(&[
            r"(?i)dropped.*connection",
            r"timeout[^\n]{0,40}Exception\s*[:=]?\s*\d+",
        ]);
        let lits = |v: &[&str]| -> Vec<Vec<Vec<u8>>> {
            v.iter().map(|s| vec![s.as_bytes().to_vec()]).collect()
        };
        assert_eq!(path.searched(), lits(&["connection", "Exception"]));
        let mut data = Vec::new();
        let mut want = Vec::new();
        let mut i = 0;
        while data.len() < SAMPLE_BYTES + 4096 {
            let start = data.len();
            let line: &[u8] = match i % 50 {
                7 => b"DROPPED the Connection; timeout Exception: 42",
                8 => b"timeout in Exception = 7, connection dropped",
                _ => b"connection ok, Exception logged",
            };
            data.extend_from_slice(line);
            match i % 50 {
                7 => want.extend([
                    (start, start + line.len(), 0),
                    (start, start + line.len(), 1),
                ]),
                8 => want.push((start, start + line.len(), 1)),
                _ => {}
            }
            data.push(b'\n');
            i += 1;
        }
        let mut found = Vec::new();
        path.scan(&rules, &data, 1 << 16, &mut found);
        found.sort_unstable();
        assert_eq!(found, want);
        assert_eq!(path.searched(), lits(&["dropped", "timeout"]));
        // The same answers with the new choice.
        let mut again = Vec::new();
        path.scan(&rules, &data, 1 << 16, &mut again);
        again.sort_unstable();
        assert_eq!(again, want);
    }
}
