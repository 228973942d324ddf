//! The benchmark at CI size, through the real binary in both reading modes, on a log generated
//! in Rust (tests/support/corpus.rs: no python needed), once per matcher path:
//!
//! - the 100-rule set (bench/patterns/100.yaml) on 2 MiB: the rules with a literal by their
//!   literals, those without (if any) in one automaton;
//! - the 1000-rule set (bench/patterns/1000.yaml) on 384 KiB: the literal path.
//!
//! Checks counts, never time: every rule's count must equal what that rule's own regex finds
//! line by line, and `run` must read every line and account for every match in its messages.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use dingtail::matcher::{Matcher, Plan};
use support::corpus;
use support::env::{TestEnv, header_counts};

#[test]
fn the_100_rules_on_both_paths_count_what_each_regex_finds() {
    let plan = check("bench/patterns/100.yaml", 2 << 20, 0.01..=0.10);
    // Every rule with a usable literal takes the literal path; the rest share an automaton.
    assert!(plan.literal_rules > plan.automaton_rules, "{plan:?}");
    assert_eq!(plan.literal_rules + plan.automaton_rules, 100, "{plan:?}");
}

#[test]
fn the_1000_rules_on_the_literal_path_count_what_each_regex_finds() {
    let plan = check("bench/patterns/1000.yaml", 384 << 10, 0.01..=0.10);
    assert!(plan.literal_rules >= 950, "{plan:?}");
    assert_eq!(plan.literal_rules + plan.automaton_rules, 1000, "{plan:?}");
}

fn check(config: &str, bytes: usize, hit_rate: std::ops::RangeInclusive<f64>) -> Plan {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let env = TestEnv::new();
    let corpus = env.dir().join("corpus.log");
    let data = corpus::generate(bytes, 1);
    std::fs::write(&corpus, &data).unwrap();
    let config_path = root.join(config);
    let config = dingtail::config::load(&config_path).unwrap();
    let plan = Matcher::new(&config.rules, config.max_line_bytes)
        .unwrap()
        .plan();

    // Reference: each rule's own regex on each line, independently of the matcher.
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    let reference: Vec<_> = config
        .rules
        .iter()
        .map(|r| {
            (
                r.name.clone(),
                dingtail::rules::regex_builder(&r.pattern).build().unwrap(),
            )
        })
        .collect();
    let lines: Vec<&[u8]> = data
        .strip_suffix(b"\n")
        .unwrap_or(&data)
        .split(|&b| b == b'\n')
        .collect();
    let mut matched_lines = 0;
    for line in &lines {
        let mut any = false;
        for (name, re) in &reference {
            if re.is_match(line) {
                *want.entry(name.clone()).or_default() += 1;
                any = true;
            }
        }
        matched_lines += u64::from(any);
    }
    let total: u64 = want.values().sum();
    let rate = matched_lines as f64 / lines.len() as f64;
    assert!(
        hit_rate.contains(&rate),
        "hit rate {rate} outside {hit_rate:?}: {want:?}"
    );

    let config_arg = config_path.to_str().unwrap();
    let corpus_arg = corpus.to_str().unwrap();
    let out = env.run(&["test", "-c", config_arg, corpus_arg], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let summary = format!(
        "{matched_lines} of {} lines matched at least one rule",
        lines.len()
    );
    assert!(out.stdout.contains(&summary), "want {summary}");

    for args in [
        vec![
            "run",
            "--dry-run",
            "-c",
            config_arg,
            "--once",
            "--from-beginning",
            corpus_arg,
        ],
        vec!["run", "--dry-run", "-c", config_arg],
    ] {
        let input: &[u8] = if args.len() == 4 { &data } else { b"" };
        let out = env.run(&args, input);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("read {} lines", lines.len())),
            "{}",
            out.stderr
        );
        let mut got: BTreeMap<String, u64> = BTreeMap::new();
        for l in out.dry_run_lines() {
            for (rule, n) in header_counts(l["body"]["text"]["content"].as_str().unwrap()) {
                *got.entry(rule).or_default() += n;
            }
        }
        assert_eq!(got, want, "{args:?}");
        assert_eq!(got.values().sum::<u64>(), total);
    }
    plan
}
