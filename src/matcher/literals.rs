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

/// The literals one of which every match of `pattern` contains, in the rules' dialect (bytes,
/// multi-line, CRLF-aware); `None` when there is no such set whose every literal has at least
/// [`MIN_LEN`] bytes (the rule then stays on the automaton path).
pub fn required(pattern: &str) -> Option<Vec<Literal>> {
    let hir = ParserBuilder::new()
        .utf8(false)
        .multi_line(true)
        .crlf(true)
        .build()
        .parse(pattern)
        .ok()?;
    let set = minimal(best(&hir)?);
    (min_len(&set) >= MIN_LEN).then_some(set)
}

/// Drops every literal that contains another of the set: where it occurs, so does the other
/// (`Error:` goes when `Error` is there).
fn minimal(set: Vec<Literal>) -> Vec<Literal> {
    let implied = |x: &Literal, y: &Literal| {
        x != y
            && (y.caseless || !x.caseless)
            && if y.caseless {
                memchr::memmem::find(&x.bytes.to_ascii_lowercase(), &y.bytes).is_some()
            } else {
                memchr::memmem::find(&x.bytes, &y.bytes).is_some()
            }
    };
    set.iter()
        .filter(|x| !set.iter().any(|y| implied(x, y)))
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
    let members: Vec<Vec<u8>> = match class {
        Class::Unicode(c) => {
            let n: u32 = c
                .ranges()
                .iter()
                .map(|r| u32::from(r.end()) - u32::from(r.start()) + 1)
                .sum();
            if n > MAX_CLASS {
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
            let n: u32 = c
                .ranges()
                .iter()
                .map(|r| u32::from(r.end()) - u32::from(r.start()) + 1)
                .sum();
            if n > MAX_CLASS {
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
    let found = match hir.kind() {
        HirKind::Capture(cap) => best(&cap.sub),
        HirKind::Repetition(rep) if rep.min >= 1 => best(&rep.sub),
        HirKind::Alternation(branches) => {
            let mut all = Vec::new();
            for b in branches {
                all.extend(best(b)?);
                if all.len() > MAX_SET {
                    return None;
                }
            }
            Some(normalize(all))
        }
        HirKind::Concat(parts) => best_of_concat(parts),
        _ => exact(hir),
    }?;
    (!found.iter().any(|l| l.bytes.is_empty())).then_some(found)
}

/// Runs of small pieces give cross products; any other piece that must match gives its own
/// set; the best of all these is kept.
fn best_of_concat(parts: &[Hir]) -> Option<Vec<Literal>> {
    let mut candidates: Vec<Vec<Literal>> = Vec::new();
    let mut run = vec![Literal::empty()];
    for part in parts {
        if let Some(set) = exact(part) {
            match product(&run, &set) {
                Some(longer) => run = longer,
                None => candidates.push(std::mem::replace(&mut run, set)),
            }
            continue;
        }
        // `x+`, `x{2,}`: a match holds at least one `x` here, so the run so far can end with
        // it and a new run can start with it.
        if let HirKind::Repetition(rep) = part.kind()
            && rep.min >= 1
            && let Some(set) = exact(&rep.sub)
        {
            candidates.push(product(&run, &set).unwrap_or_else(|| run.clone()));
            run = set;
            continue;
        }
        candidates.push(std::mem::replace(&mut run, vec![Literal::empty()]));
        if let Some(set) = best(part) {
            candidates.push(set);
        }
    }
    candidates.push(run);
    candidates
        .into_iter()
        .filter(|s| !s.is_empty() && !s.iter().any(|l| l.bytes.is_empty()))
        .rev()
        .max_by_key(|s| score(s))
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
