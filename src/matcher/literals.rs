//! The literals a pattern's every match must contain, found from its syntax tree.
//!
//! For a rule like `Failed password for (?:invalid user )?\S+ from`, every matching line contains
//! `Failed password for `; for `HTTP/1\.[01]" 5\d\d `, one of `HTTP/1.0" 5` and `HTTP/1.1" 5`.
//! The matcher searches a block once for all rules' literals and runs a rule's regex only on the
//! lines where one of its literals occurs (see [`super::literal_path`]).
//!
//! The set found is *required*, not exact: a line may contain the literal and not match, never
//! the reverse. That is the only property the matcher relies on, so every step here may
//! over-approximate what a sub-pattern matches (a look-around counts as matching the empty
//! string, an ASCII case-insensitive literal stands for all its case variants) but must never
//! leave a way of matching out.
//!
//! How: a concatenation is cut into runs of pieces whose matches form a small finite set
//! (literals, small classes, `(?i)` letters, fixed repetitions of those, look-arounds); each run
//! gives the cross product of its pieces, and any one run (or the required set of any other piece
//! that must match at least once) is a valid answer, so the best one is kept: the longest
//! shortest literal, then the fewest literals. An alternation needs a set from every branch and
//! gives their union. This finds prefixes, suffixes and inner literals alike.
//!
//! Case-insensitive rules: under `(?i)` the parser turns `e` into the class `[Ee]`. Such a pair is
//! kept as one ASCII case-insensitive letter, so `(?i)connection refused` gives one literal
//! searched with ASCII case folding, not 2^17 spellings. Letters whose Unicode case class holds
//! more than a pair (`k` also matches U+212A KELVIN SIGN, `s` also U+017F LONG S) are spelled out
//! as small classes, so nothing that Unicode folding matches is lost.

use regex_syntax::ParserBuilder;
use regex_syntax::hir::{Class, Hir, HirKind};

/// One literal a match may contain.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Literal {
    /// The bytes; ASCII-lowercased when `caseless`.
    pub bytes: Vec<u8>,
    /// Whether ASCII letters match in either case.
    pub caseless: bool,
}

impl Literal {
    fn empty() -> Literal {
        Literal {
            bytes: Vec::new(),
            caseless: false,
        }
    }

    fn concat(&self, other: &Literal) -> Literal {
        let caseless = self.caseless || other.caseless;
        let mut bytes = Vec::with_capacity(self.bytes.len() + other.bytes.len());
        bytes.extend_from_slice(&self.bytes);
        bytes.extend_from_slice(&other.bytes);
        if caseless {
            bytes.make_ascii_lowercase();
        }
        Literal { bytes, caseless }
    }
}

/// Most literals one set may hold (cross products grow fast; past this a run is cut).
const MAX_SET: usize = 64;
/// Most characters a class may hold to be spelled out as literals.
const MAX_CLASS: u32 = 4;
/// The shortest literal worth searching for: shorter ones occur on most lines.
pub const MIN_LEN: usize = 3;

/// Most sets one rule keeps: the one searched for and this many minus one checked on the line.
pub const MAX_CLAUSES: usize = 8;

/// What every match of a pattern contains: one literal of each set (`word1.*word2`: `word1`
/// and `word2`). The first set is the one to search for (the best by [`score`]); a line is worth
/// confirming only if it also holds a literal of each of the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Required(pub Vec<Vec<Literal>>);

impl Required {
    /// The set to search for.
    pub fn first(&self) -> &[Literal] {
        &self.0[0]
    }
}

/// The literals one of which every match of `pattern` contains, in the rules' dialect (bytes,
/// multi-line, CRLF-aware); `None` when there is no such set whose every literal has at least
/// [`MIN_LEN`] bytes (the rule then stays on the automaton path).
pub fn required(pattern: &str) -> Option<Vec<Literal>> {
    required_all(pattern).map(|r| r.0.into_iter().next().expect("one set at least"))
}

/// Every set of literals each match of `pattern` must hold one of (see [`Required`]), best
/// first, those with a literal shorter than [`MIN_LEN`] and those implied by another left out;
/// `None` when no set is left.
pub fn required_all(pattern: &str) -> Option<Required> {
    let hir = ParserBuilder::new()
        .utf8(false)
        .multi_line(true)
        .crlf(true)
        .build()
        .parse(pattern)
        .ok()?;
    let mut found = Vec::new();
    sets(&hir, &mut found);
    let mut found: Vec<Vec<Literal>> = found
        .into_iter()
        .map(minimal)
        .filter(|s| min_len(s) >= MIN_LEN)
        .collect();
    // Best first; among equals, the first found (the leftmost).
    found.sort_by_key(|s| std::cmp::Reverse(score(s)));
    let mut kept: Vec<Vec<Literal>> = Vec::new();
    for set in found {
        // A set is redundant when every literal of a kept (better) one contains one of its
        // literals: a line holding the kept set holds this one too.
        let implied = kept.iter().any(|k| {
            k.iter()
                .all(|x| set.iter().any(|y| x == y || contains(x, y)))
        });
        if !implied && kept.len() < MAX_CLAUSES {
            kept.push(set);
        }
    }
    (!kept.is_empty()).then_some(Required(kept))
}

/// Whether every occurrence of `x` is an occurrence of `y` too (`y` lies inside `x`).
fn contains(x: &Literal, y: &Literal) -> bool {
    (y.caseless || !x.caseless)
        && if y.caseless {
            memchr::memmem::find(&x.bytes.to_ascii_lowercase(), &y.bytes).is_some()
        } else {
            memchr::memmem::find(&x.bytes, &y.bytes).is_some()
        }
}

/// Drops every literal that contains another of the set: where it occurs, so does the other
/// (`Error:` goes when `Error` is there).
fn minimal(set: Vec<Literal>) -> Vec<Literal> {
    set.iter()
        .filter(|x| !set.iter().any(|y| *x != y && contains(x, y)))
        .cloned()
        .collect()
}

fn min_len(set: &[Literal]) -> usize {
    set.iter().map(|l| l.bytes.len()).min().unwrap_or(0)
}

/// Which of two valid sets to search for: longer literals are rarer, but only up to about 8
/// bytes; each extra literal costs almost a byte of length. (A set of spellings of a common
/// prefix, `"GET /api/v1/orders/` in five methods, loses to a single `/refund` further on.)
fn score(set: &[Literal]) -> i64 {
    10 * min_len(set).min(8) as i64 - 8 * (set.len() as i64 - 1)
}

fn normalize(mut set: Vec<Literal>) -> Vec<Literal> {
    set.sort();
    set.dedup();
    set
}

fn product(a: &[Literal], b: &[Literal]) -> Option<Vec<Literal>> {
    if a.len() * b.len() > MAX_SET {
        return None;
    }
    Some(normalize(
        a.iter()
            .flat_map(|x| b.iter().map(move |y| x.concat(y)))
            .collect(),
    ))
}

/// A finite set holding every string `hir` can match (and possibly more), if small.
fn exact(hir: &Hir) -> Option<Vec<Literal>> {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => Some(vec![Literal::empty()]),
        HirKind::Literal(lit) => Some(vec![Literal {
            bytes: lit.0.to_vec(),
            caseless: false,
        }]),
        HirKind::Class(class) => class_exact(class),
        HirKind::Capture(cap) => exact(&cap.sub),
        HirKind::Repetition(rep) if Some(rep.min) == rep.max && rep.min <= 16 => {
            let one = exact(&rep.sub)?;
            let mut acc = vec![Literal::empty()];
            for _ in 0..rep.min {
                acc = product(&acc, &one)?;
            }
            Some(acc)
        }
        HirKind::Repetition(_) => None,
        HirKind::Concat(parts) => {
            let mut acc = vec![Literal::empty()];
            for p in parts {
                acc = product(&acc, &exact(p)?)?;
            }
            Some(acc)
        }
        HirKind::Alternation(branches) => {
            let mut all = Vec::new();
            for b in branches {
                all.extend(exact(b)?);
                if all.len() > MAX_SET {
                    return None;
                }
            }
            Some(normalize(all))
        }
    }
}

/// A small class as literals: an ASCII letter pair (`[Ee]`) as one caseless letter, else each
/// member spelled out.
fn class_exact(class: &Class) -> Option<Vec<Literal>> {
    /// Whether the ranges `start..=end` hold at most [`MAX_CLASS`] members in all.
    fn small<T: Into<u32>>(mut ranges: impl Iterator<Item = (T, T)>) -> bool {
        let mut n = 0u32;
        ranges.all(|(s, e)| {
            n += e.into() - s.into() + 1;
            n <= MAX_CLASS
        })
    }
    let members: Vec<Vec<u8>> = match class {
        Class::Unicode(c) => {
            if !small(c.ranges().iter().map(|r| (r.start(), r.end()))) {
                return None;
            }
            c.ranges()
                .iter()
                .flat_map(|r| {
                    (u32::from(r.start())..=u32::from(r.end())).filter_map(char::from_u32)
                })
                .map(|ch| ch.to_string().into_bytes())
                .collect()
        }
        Class::Bytes(c) => {
            if !small(c.ranges().iter().map(|r| (r.start(), r.end()))) {
                return None;
            }
            c.ranges()
                .iter()
                .flat_map(|r| r.start()..=r.end())
                .map(|b| vec![b])
                .collect()
        }
    };
    if let [a, b] = members.as_slice()
        && let ([a], [b]) = (a.as_slice(), b.as_slice())
        && a.is_ascii_alphabetic()
        && a.eq_ignore_ascii_case(b)
        && a != b
    {
        return Some(vec![Literal {
            bytes: vec![a.to_ascii_lowercase()],
            caseless: true,
        }]);
    }
    Some(normalize(
        members
            .into_iter()
            .map(|bytes| Literal {
                bytes,
                caseless: false,
            })
            .collect(),
    ))
}

/// The best set of literals one of which every match of `hir` contains; `None` when none
/// without the empty literal is found.
fn best(hir: &Hir) -> Option<Vec<Literal>> {
    let mut found = Vec::new();
    sets(hir, &mut found);
    found.into_iter().rev().max_by_key(|s| score(s))
}

/// Pushes every set found for `hir` such that each match of `hir` contains a literal of the
/// set: all of them hold at once (a match of `word1.*word2` contains `word1` and `word2`).
/// Runs of small pieces give cross products; any other piece that must match gives its own
/// sets; an alternation gives the union of its branches' best sets.
fn sets(hir: &Hir, out: &mut Vec<Vec<Literal>>) {
    match hir.kind() {
        HirKind::Capture(cap) => sets(&cap.sub, out),
        HirKind::Repetition(rep) if rep.min >= 1 => sets(&rep.sub, out),
        HirKind::Alternation(branches) => {
            let mut all = Vec::new();
            for b in branches {
                let Some(set) = best(b) else { return };
                all.extend(set);
                if all.len() > MAX_SET {
                    return;
                }
            }
            push(normalize(all), out);
        }
        HirKind::Concat(parts) => sets_of_concat(parts, out),
        _ => {
            if let Some(set) = exact(hir) {
                push(set, out);
            }
        }
    }
}

/// Keeps `set` unless it is empty or holds the empty literal (which every string contains).
fn push(set: Vec<Literal>, out: &mut Vec<Vec<Literal>>) {
    if !set.is_empty() && !set.iter().any(|l| l.bytes.is_empty()) {
        out.push(set);
    }
}

fn sets_of_concat(parts: &[Hir], out: &mut Vec<Vec<Literal>>) {
    let mut run = vec![Literal::empty()];
    for part in parts {
        if let Some(set) = exact(part) {
            match product(&run, &set) {
                Some(longer) => run = longer,
                None => push(std::mem::replace(&mut run, set), out),
            }
            continue;
        }
        // `x+`, `x{2,}`: a match holds at least one `x` here, so the run so far can end with
        // it and a new run can start with it.
        if let HirKind::Repetition(rep) = part.kind()
            && rep.min >= 1
            && let Some(set) = exact(&rep.sub)
        {
            push(product(&run, &set).unwrap_or_else(|| run.clone()), out);
            run = set;
            continue;
        }
        push(std::mem::replace(&mut run, vec![Literal::empty()]), out);
        sets(part, out);
    }
    push(run, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lits(pattern: &str) -> Option<Vec<(String, bool)>> {
        required(pattern).map(|set| {
            set.into_iter()
                .map(|l| (String::from_utf8_lossy(&l.bytes).into_owned(), l.caseless))
                .collect()
        })
    }

    fn cs(items: &[&str]) -> Option<Vec<(String, bool)>> {
        Some(items.iter().map(|s| (s.to_string(), false)).collect())
    }

    #[test]
    fn prefixes_inner_literals_and_suffixes() {
        assert_eq!(
            lits(r"Failed password for (?:invalid user )?\S+ from"),
            cs(&["Failed password for "])
        );
        assert_eq!(
            lits(r#"HTTP/1\.[01]" 5\d\d "#),
            cs(&["HTTP/1.0\" 5", "HTTP/1.1\" 5"])
        );
        assert_eq!(
            lits(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} +ERROR "),
            cs(&[" ERROR "])
        );
        assert_eq!(
            lits(r"^(?:Caused by: )?(?:[a-z]\w*\.)+[A-Z]\w*(?:Exception|Error)(?::|$)"),
            cs(&["Error", "Exception"])
        );
        assert_eq!(lits(r"\b141\.240\.150\.162\b"), cs(&["141.240.150.162"]));
        assert_eq!(lits(r"word1[^\n]{0,40}word2\s*[:=]?\s*\d+"), cs(&["word1"]));
    }

    #[test]
    fn case_insensitive_letters_fold_and_unicode_folds_stay_spelled_out() {
        assert_eq!(
            lits("(?i)connection (?:refused|reset)"),
            Some(vec![
                ("connection refused".into(), true),
                ("connection refuſed".into(), true),
                ("connection reset".into(), true),
                ("connection reſet".into(), true),
            ])
        );
        // `k` folds to U+212A too, so the literal spells it both ways
        let set = lits("(?i)kill").unwrap();
        assert_eq!(
            set,
            vec![("kill".into(), true), ("\u{212a}ill".into(), true)]
        );
    }

    fn all(pattern: &str) -> Option<Vec<Vec<(String, bool)>>> {
        required_all(pattern).map(|r| {
            r.0.into_iter()
                .map(|set| {
                    set.into_iter()
                        .map(|l| (String::from_utf8_lossy(&l.bytes).into_owned(), l.caseless))
                        .collect()
                })
                .collect()
        })
    }

    #[test]
    fn every_required_set_best_first_redundant_and_short_ones_left_out() {
        let one = |s: &str| vec![(s.to_owned(), false)];
        assert_eq!(
            all(r"word1[^\n]{0,40}word22\s*[:=]?\s*\d+"),
            Some(vec![one("word22"), one("word1")])
        );
        assert_eq!(
            all(r"(?i)total.*active"),
            Some(vec![
                vec![("active".into(), true)],
                vec![("total".into(), true)]
            ])
        );
        assert_eq!(
            all(r"\bsetting hostname\b"),
            Some(vec![one("setting hostname")])
        );
        assert_eq!(
            all(r"Failed (?:password|publickey) for \S+ from \d+"),
            Some(vec![
                cs(&["Failed password for ", "Failed publickey for "]).unwrap(),
                one(" from ")
            ]),
        );
        // `ab` is too short to be worth a check; `(x|yy)` is no set (`x` is short)
        assert_eq!(all(r"ab\d+Server\s+(?:x|yy)"), Some(vec![one("Server")]));
        // `Error` is implied by `Error: disk`
        assert_eq!(all(r"Error: disk\w*Error"), Some(vec![one("Error: disk")]));
    }

    #[test]
    fn rules_without_a_usable_literal() {
        for p in [
            r"\d+\.\d+",
            "a|bcd",
            r"[a-z]{3,}",
            "ab",
            r"(?i)x\w+y",
            "a*bc",
        ] {
            assert_eq!(lits(p), None, "{p}");
        }
    }
}
