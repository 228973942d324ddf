//! The benchmark at CI size: a 2 MiB generated corpus (bench/gen_corpus.py) and the 100-rule set
//! (bench/patterns/100.yaml), run through the real binary in both reading modes. Checks counts,
//! never time: every rule's count must equal what that rule's own regex finds line by line, and
//! `run` must read every line and account for every match in its messages.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use support::env::{TestEnv, header_counts};

#[test]
fn the_benchmark_rules_count_what_each_regex_finds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let env = TestEnv::new();
    let corpus = env.dir().join("corpus.log");
    let status = Command::new("python3")
        .arg(root.join("bench/gen_corpus.py"))
        .arg(&corpus)
        .arg("2")
        .status()
        .expect("python3 runs bench/gen_corpus.py");
    assert!(status.success());
    let data = std::fs::read(&corpus).unwrap();
    let config_path = root.join("bench/patterns/100.yaml");
    let config = dingtail::config::load(&config_path).unwrap();

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
        (0.005..=0.03).contains(&rate),
        "hit rate {rate} outside 0.5–3%"
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
}
