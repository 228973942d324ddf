//! Which rules are too heavy for a shared automaton.
//!
//! A combined lazy DFA over many rules is fast while each rule's states stay few. Two shapes
//! break it, measured on rules written from the Loghub vocabulary (100 such rules: 14 s where
//! rg took 0.7 s):
//!
//! - a Unicode word boundary (`\b`, `\B`, the default in Rust regexes): the lazy DFA cannot
//!   decide it past ASCII and hands the search to the much slower PikeVM;
//! - a wide gap: an unbounded or long repetition of a class that matches almost any byte (`.*`,
//!   `[^\n]{0,40}`): each one keeps a rule's states alive to the end of the line, and together
//!   they multiply the combined DFA's states until its cache thrashes.
//!
//! A heavy rule with a usable literal takes the literal path even in a small set: its regex then
//! runs alone, on the few lines that hold its literal.

use regex_syntax::ParserBuilder;
use regex_syntax::hir::{Class, Hir, HirKind, Look};

/// A class this wide matches "anything but a newline or two" (`.`, `[^\n]`): all bytes or all
/// of Unicode but at most two members. (`\S+` and `\W+` stop at the next space or word: measured
/// harmless in a shared automaton.)
const WIDE_BYTES: u32 = 256 - 2;
const WIDE_CHARS: u32 = 0x10FFFF + 1 - 0x800 - 2;
/// A bounded repetition this long (`{0,40}`) counts as a gap.
const LONG_REPEAT: u32 = 16;

/// Whether `pattern` (the rules' dialect) has a Unicode word boundary or a wide gap.
pub fn is_heavy(pattern: &str) -> bool {
    ParserBuilder::new()
        .utf8(false)
        .multi_line(true)
        .crlf(true)
        .build()
        .parse(pattern)
        .is_ok_and(|hir| heavy(&hir))
}

fn heavy(hir: &Hir) -> bool {
    match hir.kind() {
        HirKind::Look(look) => matches!(
            look,
            Look::WordUnicode
                | Look::WordUnicodeNegate
                | Look::WordStartUnicode
                | Look::WordEndUnicode
                | Look::WordStartHalfUnicode
                | Look::WordEndHalfUnicode
        ),
        HirKind::Repetition(rep) => {
            let long = rep.max.is_none_or(|max| max - rep.min >= LONG_REPEAT);
            (long && wide(&rep.sub)) || heavy(&rep.sub)
        }
        HirKind::Capture(cap) => heavy(&cap.sub),
        HirKind::Concat(parts) | HirKind::Alternation(parts) => parts.iter().any(heavy),
        HirKind::Empty | HirKind::Literal(_) | HirKind::Class(_) => false,
    }
}

fn wide(hir: &Hir) -> bool {
    match hir.kind() {
        HirKind::Class(Class::Bytes(c)) => {
            c.ranges()
                .iter()
                .map(|r| u32::from(r.end()) - u32::from(r.start()) + 1)
                .sum::<u32>()
                >= WIDE_BYTES
        }
        HirKind::Class(Class::Unicode(c)) => {
            c.ranges()
                .iter()
                .map(|r| {
                    let (start, end) = (u32::from(r.start()), u32::from(r.end()));
                    // a range may span the surrogates, which are no characters
                    let surrogates = end.min(0xDFFF).saturating_sub(start.max(0xD800) - 1);
                    end - start + 1
                        - if start <= 0xDFFF && end >= 0xD800 {
                            surrogates
                        } else {
                            0
                        }
                })
                .sum::<u32>()
                >= WIDE_CHARS
        }
        HirKind::Capture(cap) => wide(&cap.sub),
        HirKind::Alternation(parts) => parts.iter().any(wide),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_and_unicode_boundaries_are_heavy_plain_rules_are_not() {
        for p in [
            r"word1[^\n]{0,40}word2\s*[:=]?\s*\d+",
            r"(?i)word1.*word2",
            r"\bword1 word2\b",
            r"(?s)a.{0,100}b",
        ] {
            assert!(is_heavy(p), "{p}");
        }
        for p in [
            r#"HTTP/1\.[01]" 5\d\d "#,
            r"(?i)connection (?:refused|reset)",
            r"(?-u:\b)141\.240\.150\.162(?-u:\b)",
            r"segfault at [0-9a-f]+ ip",
            r"[^\n]{0,3}x",
            r"word1\W+word2",
            r"Failed password for (?:invalid user )?\S+ from",
        ] {
            assert!(!is_heavy(p), "{p}");
        }
    }
}
