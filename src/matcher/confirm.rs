//! Confirming one rule on one candidate line: does the rule's regex match it?
//!
//! The literal path asks this question for each rule whose literal occurred, on that line only,
//! so what matters is the cost of a short search and the memory a rule holds once it was asked.
//! A full `regex::bytes::Regex` per rule answers it, but in the rules' Unicode dialect its
//! compiled form and caches are large (`[^\n]{0,40}` is forty copies of a UTF-8 automaton, and a
//! meta regex keeps reverse automata and capture engines besides): 1,000 rules in the shapes users
//! write held about 45 MB, most of the matcher's memory.
//!
//! Almost every log line is ASCII, and on an ASCII line an ASCII pattern means the same with
//! Unicode off: `\w`, `\d`, `\s`, `\b`, `.`, negated classes and `(?i)` then differ only on bytes
//! ≥ 0x80, which such a line does not hold (and a `(?u)` inside the pattern keeps its own meaning
//! either way). The pattern itself must be ASCII: under `(?i)`, `ſ` and the Kelvin sign `K` match
//! `s` and `k` with Unicode and only themselves without (a proptest find). So a pattern with a
//! non-ASCII character, or an escape that can write one (`\x{17F}`, `\u`, `\U`), always uses the
//! full regex. So an ASCII line is judged by a forward lazy DFA of the pattern compiled with Unicode
//! off and without capture groups (a tenth of the memory, and an ASCII `\b` that the lazy DFA can
//! search), and only a non-ASCII line, or a pattern that needs Unicode to compile at all
//! (`\p{Greek}`), takes the full regex. Both are built the first time they are needed.

use std::sync::{Mutex, OnceLock};

use regex::bytes::Regex;
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson;
use regex_automata::util::syntax;
use regex_automata::{Input, MatchKind};

use crate::rules::Rule;

/// Transition cache each rule's lazy DFA may fill before it starts over: small, because a rule is
/// searched on short lines only, and there may be thousands of rules.
const CACHE_BYTES: usize = 64 * 1024;

/// One rule's confirmation, built lazily.
#[derive(Debug, Default)]
pub(super) struct Confirm {
    /// The ASCII form: `None` inside when the pattern does not compile with Unicode off. Boxed:
    /// a lazy DFA and its cache take about a kilobyte inline, and most rules of a big set never
    /// build theirs (1,000 unboxed cost a megabyte of peak RSS before any line was read).
    ascii: OnceLock<Option<Box<Ascii>>>,
    /// The rule's own regex, for non-ASCII lines and for patterns with no ASCII form.
    full: OnceLock<Regex>,
}

#[derive(Debug)]
struct Ascii {
    dfa: DFA,
    /// The lazy DFA's cache; the matcher runs on one thread, so the lock is never contended.
    cache: Mutex<Cache>,
}

impl Confirm {
    /// Whether `rule`'s pattern matches `line` (already cut to the judged part).
    pub(super) fn is_match(&self, rule: &Rule, line: &[u8]) -> bool {
        if line.is_ascii()
            && let Some(ascii) = self
                .ascii
                .get_or_init(|| Ascii::new(&rule.pattern).map(Box::new))
        {
            let mut cache = ascii.cache.lock().unwrap_or_else(|e| e.into_inner());
            // An error means the DFA gave up on this search (it never does with these
            // settings, but the answer must not depend on it): the full regex decides.
            if let Ok(found) = ascii
                .dfa
                .try_search_fwd(&mut cache, &Input::new(line).earliest(true))
            {
                return found.is_some();
            }
        }
        self.full(rule).is_match(line)
    }

    fn full(&self, rule: &Rule) -> &Regex {
        self.full.get_or_init(|| {
            rule.regex.clone().unwrap_or_else(|| {
                crate::rules::regex_builder(&rule.pattern)
                    .build()
                    .expect("a rule's pattern compiled when the rule did")
            })
        })
    }
}

impl Ascii {
    fn new(pattern: &str) -> Option<Ascii> {
        // A non-ASCII character, written out or as an escape, may fold to an ASCII one.
        if !pattern.is_ascii() || ["\\x", "\\u", "\\U"].iter().any(|e| pattern.contains(e)) {
            return None;
        }
        // The rules' dialect (`rules::regex_builder`), Unicode off: bytes, ^/$ at line ends,
        // CRLF-aware.
        let nfa = thompson::Compiler::new()
            .syntax(
                syntax::Config::new()
                    .utf8(false)
                    .unicode(false)
                    .multi_line(true)
                    .crlf(true),
            )
            .configure(
                thompson::Config::new()
                    .which_captures(thompson::WhichCaptures::None)
                    .nfa_size_limit(Some(crate::rules::REGEX_SIZE_LIMIT)),
            )
            .build(pattern)
            .ok()?;
        let dfa = DFA::builder()
            .configure(
                DFA::config()
                    .match_kind(MatchKind::LeftmostFirst)
                    .cache_capacity(CACHE_BYTES)
                    .skip_cache_capacity_check(false),
            )
            .build_from_nfa(nfa)
            .ok()?;
        let cache = Mutex::new(dfa.create_cache());
        Some(Ascii { dfa, cache })
    }
}
