//! Chunk → hits. Plain synchronous code: no tokio, no I/O, so it can be table-tested and
//! benchmarked on its own.
//!
//! Rules reach a line two ways, chosen per rule when the matcher is built:
//!
//! - **Literal path** ([`literal_path`]): almost every real rule has a literal that each match
//!   must contain (`Failed password for `, `OutOfMemory`, `" 5`). Those literals, for all such
//!   rules, are searched once per block with `aho-corasick`; only the rules whose literal occurs
//!   run their regex, only on the lines where it occurs. Of a rule's required literals, the one
//!   searched for is the rarest in a sample of the data. Work grows with the number of literal
//!   occurrences, not with the number of rules, and no rule shape (wide bounded gaps, Unicode
//!   classes, `(?i)`) can bloat a shared automaton. A rule is confirmed on an ASCII line by a
//!   small lazy DFA compiled with Unicode off, which means the same there ([`confirm`]).
//! - **Automaton path** ([`group`]): rules with no usable literal (see [`literals`]) are
//!   searched together as multi-pattern automata, in groups of [`GROUP_SIZE`].
//!
//! Every rule with a usable literal takes the literal path, whatever the size of the set
//! ([`Strategy::Auto`]). Sets of up to 100 plain rules used to share one combined automaton;
//! measured again on both benchmark corpora (10, 20 and 100 rules, README "Performance"), the
//! literal path took as much CPU or less in every cell, so it is the default everywhere.
//!
//! Either way a line is judged on its first `max_line` bytes and `exclude` patterns are checked
//! only on lines a rule matched. `field` rules are found by their quoted key, then the line is
//! parsed as JSON (at any depth: [`json_field`]). With hit rates of a few percent, almost all
//! bytes see only the literal search or the combined automaton.

mod confirm;
mod group;
mod json_field;
mod literal_path;
pub mod literals;

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

pub use group::GROUP_SIZE;
use group::RuleGroup;
use literal_path::LiteralPath;

use crate::rules::{Rule, RuleId};
use crate::source::{Chunk, Mark};

/// One line that one rule matched.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The rule.
    pub rule: RuleId,
    /// The line, without its `\n` (a slice of the chunk: no copy).
    pub line: Bytes,
    /// Values of the rule's named captures (aligned with the rule's `style.capture_names`; an
    /// empty value when the group did not take part), only for rules that need them
    /// (`group_by`, templates); empty otherwise, so most hits allocate nothing for it. Slices of
    /// the chunk, except for field rules, whose values are copied out of the parsed JSON.
    pub captures: Vec<Bytes>,
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

/// One matching line, as [`Matcher::scan`] reports it.
#[derive(Debug)]
pub struct LineMatch<'a> {
    /// The line's byte range in the scanned data, without `\n`.
    pub range: std::ops::Range<usize>,
    /// The rules that match it, sorted.
    pub rules: &'a [RuleId],
    /// For field rules among `rules`: the field value their pattern matched.
    pub values: &'a [(RuleId, String)],
}

/// Which path line rules take. The result of a scan is the same whichever is chosen; only
/// speed and memory differ. `Auto` is what the program uses; the others exist so tests and
/// benchmarks can hold each path to the same answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// What the program uses: today the same as [`Strategy::Literals`], measured no slower
    /// than the automaton path at any set size on both benchmark corpora.
    #[default]
    Auto,
    /// The literal path for every rule with a usable literal, whatever the count.
    Literals,
    /// Every line rule on the automaton path (the matcher before the literal path).
    Automata,
}

/// Forces the path of every line rule when set: `auto`, `literals` or `automata` (see
/// [`Strategy`]). For benchmarks; the answers are the same whichever path is taken.
pub const STRATEGY_ENV: &str = "DINGTAIL_MATCHER_PATH";

impl Strategy {
    /// The strategy [`STRATEGY_ENV`] names, [`Strategy::Auto`] when it is unset or empty.
    fn from_env() -> Result<Strategy, MatcherError> {
        match std::env::var(STRATEGY_ENV).as_deref() {
            Err(_) | Ok("") | Ok("auto") => Ok(Strategy::Auto),
            Ok("literals") => Ok(Strategy::Literals),
            Ok("automata") => Ok(Strategy::Automata),
            Ok(other) => Err(MatcherError(format!(
                "{STRATEGY_ENV}={other:?}: expected auto, literals or automata"
            ))),
        }
    }
}

/// How the rules were split between the paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Rules on the literal path.
    pub literal_rules: usize,
    /// Rules on the automaton path.
    pub automaton_rules: usize,
    /// `field` rules (their own path: quoted key, then JSON).
    pub field_rules: usize,
}

/// Where the judged part of the line `data[start..end]` ends: at most `max_line` bytes, and
/// without the `\r` of a CRLF ending, so a CRLF log is judged exactly like the same log with LF
/// endings (`[^ ]$` does not match `"abc \r"` by its `\r`).
fn judged_end(data: &[u8], start: usize, end: usize, max_line: usize) -> usize {
    let end = if end > start && data[end - 1] == b'\r' {
        end - 1
    } else {
        end
    };
    end.min(start + max_line)
}

/// A rule that matches a JSON field's value, and how its candidate lines are found.
#[derive(Debug)]
struct FieldRule {
    rule: RuleId,
    /// Index of its path in `Matcher::field_paths`.
    path: usize,
    /// Finds `"leaf"` (the last path segment, quoted as a JSON key) in the data.
    key: memchr::memmem::Finder<'static>,
}

/// Finds which rules match which lines of a chunk.
///
/// Line rules (and absence rules) are searched all at once over the whole chunk, by their
/// literals or by combined automata. Field rules cannot be: their `match` applies to a field's
/// value, which in the raw line sits between JSON quotes and escapes, so a pattern like
/// `^error$` would never match the line. Their candidates are instead the lines containing the
/// field's key, quoted (`"level"`), found with one `memmem` search per field rule; only those
/// lines are parsed as JSON (once per line, however many field rules want it), and the value at
/// the dotted path is matched. A key written with escapes (`"\u006cevel"`) is not found: no
/// logger writes keys that way.
#[derive(Debug)]
pub struct Matcher {
    rules: Vec<Rule>,
    /// Line rules with a usable literal.
    literal: Option<LiteralPath>,
    /// The other line rules, in groups of at most [`GROUP_SIZE`], each searched as one.
    groups: Vec<RuleGroup>,
    field_rules: Vec<FieldRule>,
    /// The distinct paths of the field rules.
    field_paths: Vec<Vec<String>>,
    /// Lines are judged on at most this many leading bytes.
    max_line: usize,
}

impl Matcher {
    /// Compiles the search for `rules` ([`Strategy::Auto`]); lines are judged on their first
    /// `max_line` bytes.
    ///
    /// The environment variable [`STRATEGY_ENV`] (`literals` or `automata`) forces a path, so
    /// `bench/run.sh` can time both paths through the real binary; any other value is an error.
    pub fn new(rules: &[Rule], max_line: usize) -> Result<Matcher, MatcherError> {
        Matcher::with_strategy(rules, max_line, Strategy::from_env()?)
    }

    /// Compiles the search for `rules` with line rules split as `strategy` says.
    pub fn with_strategy(
        rules: &[Rule],
        max_line: usize,
        strategy: Strategy,
    ) -> Result<Matcher, MatcherError> {
        let line_rules: Vec<RuleId> = (0..rules.len())
            .filter(|&r| rules[r].field.is_none())
            .collect();
        let mut by_literal = Vec::new();
        let mut by_automaton = Vec::new();
        for r in line_rules {
            let pattern = &rules[r].pattern;
            let use_literals = match strategy {
                Strategy::Auto | Strategy::Literals => true,
                Strategy::Automata => false,
            };
            match use_literals
                .then(|| literals::required_all(pattern))
                .flatten()
            {
                Some(lits) => by_literal.push((r, lits)),
                None => by_automaton.push(r),
            }
        }
        let literal = if by_literal.is_empty() {
            None
        } else {
            Some(LiteralPath::new(by_literal)?)
        };
        let groups = by_automaton
            .chunks(GROUP_SIZE)
            .map(|ids| RuleGroup::new(rules, ids))
            .collect::<Result<Vec<_>, _>>()?;
        let mut field_paths: Vec<Vec<String>> = Vec::new();
        let mut field_rules = Vec::new();
        for (id, r) in rules.iter().enumerate() {
            let Some(path) = &r.field else { continue };
            let Some(quoted) = path.last().and_then(|l| serde_json::to_string(l).ok()) else {
                continue;
            };
            let path = match field_paths.iter().position(|p| p == path) {
                Some(i) => i,
                None => {
                    field_paths.push(path.clone());
                    field_paths.len() - 1
                }
            };
            field_rules.push(FieldRule {
                rule: id,
                path,
                key: memchr::memmem::Finder::new(quoted.as_bytes()).into_owned(),
            });
        }
        Ok(Matcher {
            rules: rules.to_vec(),
            literal,
            groups,
            field_rules,
            field_paths,
            max_line: max_line.max(1),
        })
    }

    /// The rules, by id.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// How the rules were split between the paths.
    pub fn plan(&self) -> Plan {
        let literal_rules = self.literal.as_ref().map_or(0, LiteralPath::len);
        let field_rules = self.field_rules.len();
        Plan {
            literal_rules,
            automaton_rules: self.rules.len() - literal_rules - field_rules,
            field_rules,
        }
    }

    /// Calls `on_line` for every line of `data` that at least one rule matches (and no exclusion
    /// of that rule vetoes), in order.
    ///
    /// `data` should end with `\n`; a last line without one is still judged.
    pub fn scan(&self, data: &[u8], mut on_line: impl FnMut(&LineMatch<'_>)) {
        if self.field_rules.is_empty() {
            self.scan_lines(data, |range, rules| {
                on_line(&LineMatch {
                    range,
                    rules,
                    values: &[],
                })
            });
            return;
        }
        let mut by_line: Vec<(std::ops::Range<usize>, Vec<RuleId>)> = Vec::new();
        self.scan_lines(data, |range, rules| by_line.push((range, rules.to_vec())));
        let fields = self.scan_fields(data);
        // Merge the two ordered lists by line.
        let mut i = 0;
        let mut rules = Vec::new();
        for (range, field_hits) in fields {
            while i < by_line.len() && by_line[i].0.start < range.start {
                on_line(&LineMatch {
                    range: by_line[i].0.clone(),
                    rules: &by_line[i].1,
                    values: &[],
                });
                i += 1;
            }
            rules.clear();
            if i < by_line.len() && by_line[i].0.start == range.start {
                rules.extend_from_slice(&by_line[i].1);
                i += 1;
            }
            rules.extend(field_hits.iter().map(|(r, _)| *r));
            rules.sort_unstable();
            on_line(&LineMatch {
                range,
                rules: &rules,
                values: &field_hits,
            });
        }
        for (range, rules) in &by_line[i..] {
            on_line(&LineMatch {
                range: range.clone(),
                rules,
                values: &[],
            });
        }
    }

    /// Line rules, both paths: each path pushes `(start, end, rule)` for what it confirmed;
    /// sorted, these become one call per line with its rules in order.
    fn scan_lines(&self, data: &[u8], mut on_line: impl FnMut(std::ops::Range<usize>, &[RuleId])) {
        let mut found: Vec<(usize, usize, RuleId)> = Vec::new();
        if let Some(literal) = &self.literal {
            literal.scan(&self.rules, data, self.max_line, &mut found);
        }
        for group in &self.groups {
            group.scan(&self.rules, data, self.max_line, &mut found);
        }
        found.sort_unstable();
        let mut rules = Vec::new();
        let mut i = 0;
        while i < found.len() {
            let (start, end, _) = found[i];
            rules.clear();
            while i < found.len() && found[i].0 == start {
                rules.push(found[i].2);
                i += 1;
            }
            on_line(start..end, &rules);
        }
    }

    /// Field rules: candidate lines (containing a field rule's quoted key) are parsed as JSON
    /// once and each field rule's pattern is run on its value. Returns, in line order, each
    /// matching line with its (rule, value) pairs.
    #[allow(clippy::type_complexity)]
    fn scan_fields(&self, data: &[u8]) -> Vec<(std::ops::Range<usize>, Vec<(RuleId, String)>)> {
        let mut starts: Vec<usize> = Vec::new();
        for f in &self.field_rules {
            for at in f.key.find_iter(data) {
                starts.push(memchr::memrchr(b'\n', &data[..at]).map_or(0, |i| i + 1));
            }
        }
        starts.sort_unstable();
        starts.dedup();
        let mut out = Vec::new();
        for start in starts {
            let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |i| start + i);
            let judged = &data[start..judged_end(data, start, end, self.max_line)];
            let body = judged.trim_ascii();
            if !body.starts_with(b"{") {
                continue;
            }
            // Each distinct path is looked up once per line, however many rules want it.
            let mut values: Vec<Option<Option<String>>> = vec![None; self.field_paths.len()];
            let mut hits = Vec::new();
            for f in &self.field_rules {
                let value = match &mut values[f.path] {
                    Some(v) => v,
                    slot => match json_field::field_text(body, &self.field_paths[f.path]) {
                        Ok(v) => slot.insert(v),
                        // Not JSON (or cut by `max_line`): no field rule can judge it.
                        Err(_) => break,
                    },
                };
                let Some(value) = value else {
                    continue;
                };
                let rule = &self.rules[f.rule];
                let re = rule.regex.as_ref().expect("field rules keep their regex");
                if re.is_match(value.as_bytes()) && !rule.excludes(judged) {
                    hits.push((f.rule, value.clone()));
                }
            }
            if !hits.is_empty() {
                out.push((start..end, hits));
            }
        }
        out
    }
    /// The rules of `m` that make `line` (the line of `m`, without its `\r`) a hit, with their
    /// captures: each rule's `where:` is judged here, on candidate lines only, so `run` and
    /// `test` count the same hits.
    pub fn confirm(
        &self,
        line: &Bytes,
        m: &LineMatch<'_>,
        mut hit: impl FnMut(RuleId, Vec<Bytes>),
    ) {
        for &rule in m.rules {
            let r = &self.rules[rule];
            let captures = if !r.needs_captures {
                Vec::new()
            } else if let Some((_, value)) = m.values.iter().find(|(id, _)| *id == rule) {
                let value = Bytes::copy_from_slice(value.as_bytes());
                captures_of(r, &value)
            } else {
                let judged = line.slice(..line.len().min(self.max_line));
                captures_of(r, &judged)
            };
            if r.admits(line, &captures) {
                hit(rule, captures);
            }
        }
    }

    /// Matches a whole chunk into a [`HitBatch`].
    pub fn match_chunk(&self, chunk: &Chunk) -> HitBatch {
        let data = &chunk.data;
        let mut hits = Vec::new();
        self.scan(data, |m| {
            let mut line = data.slice(m.range.clone());
            if line.ends_with(b"\r") {
                line.truncate(line.len() - 1);
            }
            self.confirm(&line, m, |rule, captures| {
                hits.push(Hit {
                    rule,
                    line: line.clone(),
                    captures,
                })
            });
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

/// The rule's named capture values in `text` (slices of it), aligned with its capture names.
fn captures_of(rule: &Rule, text: &Bytes) -> Vec<Bytes> {
    let Some(re) = &rule.regex else {
        return Vec::new();
    };
    let Some(caps) = re.captures(text) else {
        return vec![Bytes::new(); rule.style.capture_names.len()];
    };
    rule.style
        .capture_names
        .iter()
        .map(|n| {
            caps.name(n)
                .map_or_else(Bytes::new, |m| text.slice(m.start()..m.end()))
        })
        .collect()
}

#[cfg(test)]
mod tests;
