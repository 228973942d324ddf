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

/// A rule that matches a JSON field's value, and how its candidate lines are found.
#[derive(Debug)]
struct FieldRule {
    rule: RuleId,
    /// Finds `"leaf"` (the last path segment, quoted as a JSON key) in the data.
    key: memchr::memmem::Finder<'static>,
}

/// Finds which rules match which lines of a chunk.
///
/// Line rules (and absence rules) are searched all at once over the whole chunk. Field rules
/// cannot be: their `match` applies to a field's value, which in the raw line sits between JSON
/// quotes and escapes, so a pattern like `^error$` would never match the line. Their candidates
/// are instead the lines containing the field's key, quoted (`"level"`), found with one
/// `memmem` search per field rule; only those lines are parsed as JSON (once per line, however
/// many field rules want it), and the value at the dotted path is matched. A key written with
/// escapes (`"\u006cevel"`) is not found: no logger writes keys that way.
#[derive(Debug)]
pub struct Matcher {
    rules: Vec<Rule>,
    /// The line rules, in groups of at most [`GROUP_SIZE`], each searched as one.
    groups: Vec<RuleGroup>,
    field_rules: Vec<FieldRule>,
    /// Lines are judged on at most this many leading bytes.
    max_line: usize,
}

/// Rules searched together. Past about a hundred patterns, one combined automaton stops paying:
/// the lazy DFA's cache thrashes, the search falls back to the PikeVM, whose cost grows with the
/// number of patterns at every byte (1000 rules ran at kilobytes a second and grew to gigabytes).
/// Groups keep each automaton small and fast; each group costs one pass over the chunk, so cost
/// grows with the number of groups, not with the number of patterns inside each.
pub const GROUP_SIZE: usize = 100;

/// One group of line rules, compiled twice: to find candidate lines, and to tell which rules
/// match one.
#[derive(Debug)]
struct RuleGroup {
    /// Rule id of each pattern.
    ids: Vec<RuleId>,
    /// Finds where the earliest match in a haystack ends.
    any: Regex,
    /// All-matches search: which patterns match a candidate line.
    which: Regex,
}

impl RuleGroup {
    fn new(rules: &[Rule], ids: &[RuleId]) -> Result<RuleGroup, MatcherError> {
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

    /// Calls `on_line` for each line of `data` that a rule of this group matches, in order.
    ///
    /// Candidates come from a search for where the earliest match *ends* (`earliest`, half a
    /// match: no capture slots per pattern, and the DFA stops as soon as it knows). The line
    /// holding that end is judged alone; then the search resumes on the next line. No line is
    /// skipped: a match inside a line ends before that line's newline, so no match that fits in
    /// a line can end after a candidate yet start in an earlier line. A pattern like `\s` that
    /// runs across a newline only makes a candidate that the per-line judgement rejects.
    fn scan(
        &self,
        matcher: &Matcher,
        data: &[u8],
        mut on_line: impl FnMut(std::ops::Range<usize>, &[RuleId]),
    ) {
        let mut set = PatternSet::new(self.ids.len());
        let mut matched: Vec<RuleId> = Vec::new();
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
            let judged = &data[start..end.min(start + matcher.max_line)];
            set.clear();
            self.which
                .which_overlapping_matches(&Input::new(judged), &mut set);
            matched.clear();
            matched.extend(
                set.iter()
                    .map(|p| self.ids[p.as_usize()])
                    .filter(|&r| !matcher.rules[r].excludes(judged)),
            );
            if !matched.is_empty() {
                on_line(start..end, &matched);
            }
            pos = end + 1;
        }
    }
}

impl Matcher {
    /// Compiles the combined search for `rules`; lines are judged on their first `max_line` bytes.
    pub fn new(rules: &[Rule], max_line: usize) -> Result<Matcher, MatcherError> {
        let line_rules: Vec<RuleId> = (0..rules.len())
            .filter(|&r| rules[r].field.is_none())
            .collect();
        let groups = line_rules
            .chunks(GROUP_SIZE)
            .map(|ids| RuleGroup::new(rules, ids))
            .collect::<Result<Vec<_>, _>>()?;
        let field_rules = rules
            .iter()
            .enumerate()
            .filter_map(|(id, r)| {
                let leaf = r.field.as_ref()?.last()?;
                let quoted = serde_json::to_string(leaf).ok()?;
                Some(FieldRule {
                    rule: id,
                    key: memchr::memmem::Finder::new(quoted.as_bytes()).into_owned(),
                })
            })
            .collect();
        Ok(Matcher {
            rules: rules.to_vec(),
            groups,
            field_rules,
            max_line: max_line.max(1),
        })
    }

    /// The rules, by id.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Calls `on_line` for every line of `data` that at least one rule matches (and no exclusion
    /// of that rule vetoes), in order.
    ///
    /// `data` should end with `\n`; a last line without one is still judged.
    pub fn scan(&self, data: &[u8], mut on_line: impl FnMut(&LineMatch<'_>)) {
        if self.field_rules.is_empty() {
            // The fast path: nothing to merge, nothing allocated per line.
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

    /// The combined search over line rules. One group (up to [`GROUP_SIZE`] rules) is searched
    /// straight into `on_line`; with several groups each searches the chunk on its own and the
    /// candidate lines are merged in line order.
    fn scan_lines(&self, data: &[u8], mut on_line: impl FnMut(std::ops::Range<usize>, &[RuleId])) {
        match self.groups.as_slice() {
            [] => {}
            [group] => group.scan(self, data, on_line),
            groups => {
                let mut found: Vec<(usize, usize, RuleId)> = Vec::new();
                for group in groups {
                    group.scan(self, data, |range, rules| {
                        found.extend(rules.iter().map(|&r| (range.start, range.end, r)));
                    });
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
            let line = &data[start..end];
            let judged = &line[..line.len().min(self.max_line)];
            let body = judged.trim_ascii_start();
            if !body.starts_with(b"{") {
                continue;
            }
            let Ok(json) = serde_json::from_slice::<serde_json::Value>(body.trim_ascii_end())
            else {
                continue;
            };
            let mut hits = Vec::new();
            for f in &self.field_rules {
                let rule = &self.rules[f.rule];
                let path = rule.field.as_deref().unwrap_or_default();
                let Some(value) = field_text(&json, path) else {
                    continue;
                };
                let re = rule.regex.as_ref().expect("field rules keep their regex");
                if re.is_match(value.as_bytes()) && !rule.excludes(judged) {
                    hits.push((f.rule, value));
                }
            }
            if !hits.is_empty() {
                out.push((start..end, hits));
            }
        }
        out
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
                if !crate::where_expr::admits(r, &line, &captures) {
                    continue;
                }
                hits.push(Hit {
                    rule,
                    line: line.clone(),
                    captures,
                });
            }
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

/// The value at a dotted path as text: strings as they are, numbers and booleans as JSON writes
/// them; `None` for a missing field, `null`, objects and arrays.
fn field_text(json: &serde_json::Value, path: &[String]) -> Option<String> {
    let mut v = json;
    for key in path {
        v = v.as_object()?.get(key)?;
    }
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
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
                    ..RuleSpec::default()
                })
                .unwrap()
            })
            .collect()
    }

    fn scan(specs: &[(&str, &[&str])], data: &[u8]) -> Vec<(String, Vec<RuleId>)> {
        let m = Matcher::new(&rules(specs), 1 << 16).unwrap();
        let mut out = Vec::new();
        m.scan(data, |l| {
            out.push((
                String::from_utf8_lossy(&data[l.range.clone()]).into_owned(),
                l.rules.to_vec(),
            ))
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
    fn many_rules_in_several_groups_match_like_one_regex_per_rule() {
        // 2.5 groups of rules; every line is judged against each rule's own regex for reference.
        let patterns: Vec<String> = (0..GROUP_SIZE * 5 / 2)
            .map(|i| match i % 4 {
                0 => format!("code={i}\\b"),
                1 => format!("(?i)user{i} failed"),
                2 => format!("^host-{i} "),
                _ => format!("err(or)?{i}$"),
            })
            .collect();
        let specs: Vec<(&str, &[&str])> = patterns.iter().map(|p| (p.as_str(), &[][..])).collect();
        let m = Matcher::new(&rules(&specs), 1 << 16).unwrap();
        assert!(m.groups.len() >= 3);
        let mut data = String::new();
        for i in 0..2000 {
            let r = (i * 7919) % (GROUP_SIZE * 3);
            data.push_str(&format!(
                "host-{r} code={r} USER{r} FAILED error{r}\nnoise {i}\n"
            ));
        }
        let data = data.into_bytes();
        let mut got = Vec::new();
        m.scan_lines(&data, |range, ids| got.push((range, ids.to_vec())));
        let reference: Vec<regex::bytes::Regex> = patterns
            .iter()
            .map(|p| crate::rules::regex_builder(p).build().unwrap())
            .collect();
        let mut want = Vec::new();
        let mut start = 0;
        for line in data.split(|&b| b == b'\n') {
            let ids: Vec<usize> = (0..reference.len())
                .filter(|&i| reference[i].is_match(line))
                .collect();
            if !ids.is_empty() {
                want.push((start..start + line.len(), ids));
            }
            start += line.len() + 1;
        }
        assert_eq!(got, want);
    }

    #[test]
    fn patterns_that_can_match_empty_inside_a_line_terminate() {
        let m = Matcher::new(&rules(&[("\\b", &[]), ("z", &[])]), 1 << 16).unwrap();
        let mut n = 0;
        m.scan_lines(b"ab cd\n  \nz\n", |_, _| n += 1);
        assert_eq!(n, 2);
    }

    #[test]
    fn long_lines_are_judged_on_their_head_only() {
        let m = Matcher::new(&rules(&[("needle", &[])]), 8).unwrap();
        let mut n = 0;
        m.scan(b"xxxxxxxxxxneedle\nneedle and more\n", |_| n += 1);
        assert_eq!(n, 1);
    }

    fn compiled(specs: Vec<RuleSpec>) -> Matcher {
        let rules: Vec<Rule> = specs
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                Rule::compile(RuleSpec {
                    name: format!("r{i}"),
                    window: Duration::from_secs(1),
                    max_lines: 5,
                    ..s
                })
                .unwrap()
            })
            .collect();
        Matcher::new(&rules, 1 << 16).unwrap()
    }

    fn chunk(data: &'static [u8]) -> Chunk {
        Chunk {
            source: "-".into(),
            data: Bytes::from_static(data),
            end_offset: data.len() as u64,
            read_at: SystemTime::UNIX_EPOCH,
            mark: None,
        }
    }

    #[test]
    fn hits_carry_captures_only_for_rules_that_need_them() {
        let m = compiled(vec![
            RuleSpec {
                pattern: r"from (?P<ip>[\d.]+)(?: port (?P<port>\d+))?".into(),
                group_by: vec!["ip".into()],
                ..RuleSpec::default()
            },
            RuleSpec {
                pattern: "from".into(),
                ..RuleSpec::default()
            },
        ]);
        let batch = m.match_chunk(&chunk(
            b"Failed from 10.0.0.5 port 22\nok\nFailed from 10.0.0.6\n",
        ));
        let got: Vec<(usize, Vec<&[u8]>)> = batch
            .hits
            .iter()
            .map(|h| (h.rule, h.captures.iter().map(|c| &c[..]).collect()))
            .collect();
        assert_eq!(
            got,
            [
                (0, vec![&b"10.0.0.5"[..], b"22"]),
                (1, vec![]),
                (0, vec![&b"10.0.0.6"[..], b""]),
                (1, vec![]),
            ]
        );
    }

    #[test]
    fn field_rules_match_the_value_of_json_lines_only() {
        let m = compiled(vec![
            RuleSpec {
                pattern: "^(?:error|fatal)$".into(),
                field: Some(vec!["level".into()]),
                ..RuleSpec::default()
            },
            RuleSpec {
                pattern: r"^5\d\d$".into(),
                field: Some(vec!["http".into(), "status".into()]),
                ..RuleSpec::default()
            },
            RuleSpec {
                pattern: "timeout".into(),
                ..RuleSpec::default()
            },
        ]);
        let data: &'static [u8] = b"{\"level\":\"error\",\"msg\":\"timeout\"}\n\
            {\"level\":\"info\",\"msg\":\"level error\"}\n\
            level=error not json\n\
            {\"level\":\"fatal\",\"http\":{\"status\":503}}\n\
            {\"level\": \"err\"}\n\
            {\"msg\":\"x\",\"level\":\"error\"\n\
            plain timeout\n";
        let mut got = Vec::new();
        m.scan(data, |l| {
            got.push((
                String::from_utf8_lossy(&data[l.range.clone()]).into_owned(),
                l.rules.to_vec(),
            ))
        });
        let want: Vec<(String, Vec<usize>)> = [
            ("{\"level\":\"error\",\"msg\":\"timeout\"}", vec![0, 2]),
            (
                "{\"level\":\"fatal\",\"http\":{\"status\":503}}",
                vec![0, 1],
            ),
            ("plain timeout", vec![2]),
        ]
        .iter()
        .map(|(l, r)| (l.to_string(), r.clone()))
        .collect();
        assert_eq!(got, want);
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
