//! The matcher against the plainest possible reference: one `Regex` per rule, asked line by
//! line. Whatever path a rule takes (literals first, or grouped automata), the set of rules
//! matched on every line must be what the reference says.

mod support;

use std::path::Path;
use std::time::Duration;

use dingtail::matcher::{Matcher, Strategy as MatchPath};
use dingtail::rules::{Rule, RuleSpec, regex_builder};
use proptest::prelude::*;

const STRATEGIES: [MatchPath; 3] = [MatchPath::Auto, MatchPath::Literals, MatchPath::Automata];

fn compile(patterns: &[String]) -> Vec<Rule> {
    patterns
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Rule::compile(RuleSpec {
                name: format!("r{i}"),
                pattern: p.clone(),
                window: Duration::from_secs(60),
                max_lines: 5,
                ..RuleSpec::default()
            })
            .unwrap_or_else(|e| panic!("{p}: {e}"))
        })
        .collect()
}

/// `(line index, rules)` for every line some rule matches, by the matcher.
fn by_matcher(rules: &[Rule], data: &[u8], strategy: MatchPath) -> Vec<(usize, Vec<usize>)> {
    let m = Matcher::with_strategy(rules, 1 << 16, strategy).unwrap();
    let starts: Vec<usize> = std::iter::once(0)
        .chain(memchr_iter(data).map(|i| i + 1))
        .collect();
    let mut out = Vec::new();
    m.scan(data, |lm| {
        let line = starts.partition_point(|&s| s <= lm.range.start) - 1;
        out.push((line, lm.rules.to_vec()));
    });
    out
}

fn memchr_iter(data: &[u8]) -> impl Iterator<Item = usize> + '_ {
    data.iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i)
}

/// The same, by one regex per rule on each line.
fn by_reference(patterns: &[String], data: &[u8]) -> Vec<(usize, Vec<usize>)> {
    let regexes: Vec<_> = patterns
        .iter()
        .map(|p| regex_builder(p).build().unwrap())
        .collect();
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    body.split(|&b| b == b'\n')
        .enumerate()
        .filter_map(|(i, line)| {
            // a CRLF log is judged like the same log with LF endings
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let ids: Vec<usize> = (0..regexes.len())
                .filter(|&r| regexes[r].is_match(line))
                .collect();
            (!ids.is_empty()).then_some((i, ids))
        })
        .collect()
}

fn assert_agree(patterns: &[String], data: &[u8]) {
    let rules = compile(patterns);
    let want = by_reference(patterns, data);
    for strategy in STRATEGIES {
        let got = by_matcher(&rules, data, strategy);
        assert_eq!(got, want, "{strategy:?}");
    }
}

const WORDS: &[&str] = &[
    "error",
    "Error",
    "ERROR",
    "fail",
    "failed",
    "user",
    "kill",
    "pass",
    "Δx",
    "é",
    "\u{212a}ill",
    "pa\u{17f}s",
    "code=500",
    "GET",
    "timeout",
    "  ",
    "=",
    "[",
    "]",
    "7",
    "42",
    "\r",
    "\t",
];

fn atom() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(WORDS).prop_map(regex::escape),
        1 => prop::sample::select(&[
            r"\d", r"\d+", r"[a-c]", r"\w", r"\w+", r"\s", r"\s*", r"[^ ]", r"\S+", r".*",
            r"[^\n]{0,5}", r"\W+", r"\pL", r"[0-9]{2}", r"(?-u:\w)",
        ][..])
        .prop_map(str::to_owned),
        1 => prop::sample::select(&["^", "$", r"\b", r"\B"][..]).prop_map(str::to_owned),
    ]
}

fn pattern() -> impl Strategy<Value = String> {
    let concat = || prop::collection::vec(atom(), 1..5).prop_map(|v| v.concat());
    (
        any::<bool>(),
        concat(),
        prop::option::weighted(0.3, concat()),
        any::<bool>(),
    )
        .prop_map(|(ci, a, b, group)| {
            let body = match b {
                Some(b) if group => format!("(?:{a}|{b})"),
                Some(b) => format!("{a}|{b}"),
                None => a,
            };
            if ci { format!("(?i){body}") } else { body }
        })
}

fn line() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(WORDS).prop_map(str::to_owned),
            1 => "[ -~]{0,6}",
            1 => "\\PC{0,3}",
        ],
        0..10,
    )
    .prop_map(|v| v.join(" ").replace('\n', " "))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn every_path_matches_like_one_regex_per_rule(
        patterns in prop::collection::vec(pattern(), 1..12),
        lines in prop::collection::vec(line(), 1..40),
    ) {
        // Patterns that match the empty string are refused by the rule checks.
        let patterns: Vec<String> = patterns
            .into_iter()
            .filter(|p| regex_builder(p).build().is_ok_and(|re| !re.is_match(b"")))
            .collect();
        let mut data = lines.join("\n").into_bytes();
        data.push(b'\n');
        let rules = compile(&patterns);
        let want = by_reference(&patterns, &data);
        for strategy in STRATEGIES {
            prop_assert_eq!(&by_matcher(&rules, &data, strategy), &want, "{:?} {:?}", strategy, patterns);
        }
    }
}

/// Every line rule of the bundled packs and every benchmark rule set, over the bundled sample,
/// the packs' own kinds of lines and a generated corpus.
#[test]
fn bundled_packs_and_bench_patterns_match_like_one_regex_per_rule() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut data = std::fs::read(root.join("examples/sample.log")).unwrap();
    data.extend(support::corpus::generate(96 << 10, 7));
    let mut sets: Vec<(String, Vec<String>)> = Vec::new();
    for dir in ["rules", "bench/patterns"] {
        let mut paths: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            // needs robot secrets in the environment; its rules are the sample's
            .filter(|p| !p.ends_with("rules/example.yaml"))
            .collect();
        paths.sort();
        for path in paths {
            let config =
                dingtail::config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let patterns: Vec<String> = config
                .rules
                .iter()
                .filter(|r| r.field.is_none())
                .map(|r| r.pattern.clone())
                .collect();
            sets.push((path.display().to_string(), patterns));
        }
    }
    assert!(sets.len() >= 10, "{sets:?}");
    for (name, patterns) in sets {
        if patterns.is_empty() {
            continue;
        }
        eprintln!("{name}: {} rules", patterns.len());
        assert_agree(&patterns, &data);
    }
}

/// Caseless rules (`(?i)`, searched as lowercased literals in a lowercased copy of the block)
/// mixed with case-sensitive ones, in a set of 9 (Teddy) and one of 600 (an automaton), with
/// letters that fold to ASCII ones only under Unicode (`ſ`, the Kelvin sign), over lines in many
/// case spellings, ASCII and not (an ASCII line is confirmed by a lazy DFA compiled with Unicode
/// off, any other by the rule's own regex).
#[test]
fn caseless_rules_small_and_large_sets_on_mixed_case_and_non_ascii_lines_match_like_one_regex_per_rule()
 {
    let small: Vec<String> = [
        r"(?i)connection (?:refused|reset)",
        r"(?i)out of memory|oom-killer",
        r"(?i)kill\W+\w+",
        r"(?i)pa[sſ]s(?:word)?[^\n]{0,10}fail",
        r"\bdisk \w+ full\b",
        r"Failed password for",
        // non-ASCII letters that fold to ASCII ones: `ſ` is `s`, the Kelvin sign is `k`
        "(?i)ſtop now",
        "(?i)\u{212a}eep\\W+alive",
        r"(?i)\x{17F}top now",
    ]
    .map(str::to_owned)
    .to_vec();
    let big: Vec<String> = (0..600)
        .map(|i| match i % 3 {
            0 => format!("(?i)service{i}.*(?:stopped|crashed|restarting|degraded|unhealthy)"),
            1 => format!(r"node-{i}[^\n]{{0,40}}(?:latency|queue|backlog)\s*[:=]?\s*\d+"),
            _ => format!(r"\bjob{i} (?:failed|killed|evicted|preempted|lost)\b"),
        })
        .collect();
    let mut data = String::new();
    for i in 0..3000 {
        let n = (i * 7919) % 700;
        let line = match i % 9 {
            0 => "Connection REFUSED by peer".to_owned(),
            1 => "kernel: Out Of Memory: oom-KILLER invoked; KILL -- proc".to_owned(),
            2 => format!("SERVICE{n} is now Crashed"),
            3 => format!("node-{n} queue = {i}"),
            4 => format!("job{n} evicted from pool é"),
            5 => "PAſS check fail; Failed password for root".to_owned(),
            6 => format!("Δ service{n} DEGRADED ünïcode"),
            7 => "disk sda1 full; STOP NOW, keep-alive".to_owned(),
            _ => format!("noise {i} connection ok, memory fine"),
        };
        data.push_str(&line);
        data.push('\n');
    }
    let mut both = small.clone();
    both.extend(big.iter().cloned());
    for patterns in [&small, &big, &both] {
        assert_agree(patterns, data.as_bytes());
    }
}

/// Rules whose matches need several literals (`alpha.*beta`: both words) are confirmed only on
/// lines holding one literal of each required set: over lines with every mix of those words, in
/// either order, in other spellings, overlapping and cut short, the answers are the reference's.
#[test]
fn rules_needing_several_literals_match_like_one_regex_per_rule() {
    let patterns: Vec<String> = [
        r"(?i)alpha.*beta",
        r"gamma[^\n]{0,10}delta\s*[:=]?\s*\d+",
        r"\bepsilon zeta\b",
        r"eta\W+theta",
        r"Failed (?:password|publickey) for \S+ from \d+",
        r"iota(?:kappa|lambda)+mu.*nu",
        r"(?i)Sigma(?:tau|upsilon)\w*Sigma",
        r"omega.*omega",
    ]
    .map(str::to_owned)
    .to_vec();
    let words = [
        "alpha",
        "ALPHA",
        "Beta",
        "bet",
        "gamma",
        "delta",
        "delta=",
        "7",
        "epsilon zeta",
        "epsilon",
        "zeta",
        "eta",
        "theta",
        ",,",
        "Failed password for",
        "Failed publickey for",
        "root",
        "from",
        "22",
        "iota",
        "kappa",
        "lambda",
        "mu",
        "nu",
        "iotakappalambdamu",
        "SIGMATAU",
        "sigma",
        "upsilon",
        "omega",
        "é",
        "gammadelta",
    ];
    let mut data = String::new();
    let mut x: u64 = 12345;
    for _ in 0..4000 {
        let mut line = Vec::new();
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        for k in 0..(x >> 60) + 1 {
            let pick = (x >> (k * 5 % 55)) as usize % words.len();
            line.push(words[pick]);
        }
        let sep = if x & 1 == 0 { " " } else { "" };
        data.push_str(&line.join(sep));
        data.push('\n');
    }
    assert_agree(&patterns, data.as_bytes());
}
