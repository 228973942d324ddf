//! Careless hands: configs mutated from the bundled rule packs never make dingtail panic. Every
//! mutation is either refused (exit 2, each problem located) or accepted, and an accepted one
//! then runs `test` and `test --replay` on a sample without panicking. Command-line durations
//! are range-checked like config ones.
//!
//! The fuzzing runs in process (the library's `parse_str`, `tester::run` and `replay`, which are
//! what `check` and `test` call), so hundreds of configs take a second; a few mutations also go
//! through the real binary to pin the exit statuses.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::support::env::TestEnv;
use dingtail::config::{ConfigError, limits, parse_str};

/// Values a careless hand (or a paste from the wrong window) puts where another was expected.
const HOSTILE: &[&str] = &[
    "0",
    "-1",
    "0s",
    "1ns",
    "18446744073709551615s",
    "18446744073709551615",
    "99999999999999999999h",
    "30days",
    "31days",
    "1day",
    "25h",
    "SECf00dfeedbeefcafe0123456789abcdef0123456789abcdef0123456789",
    "${NOPE}",
    "$${X}",
    "[]",
    "{}",
    "~",
    "''",
    "'(unclosed'",
    "'^$'",
    "'(?P<x>a)(?P<x>b)'",
    "\"\\u202e\"",
    "\"a\\rb\"",
    "'【x】×9'",
    "1e400",
    "true",
    "'{nope}'",
    "'{lines}{lines}'",
    "[a, b, a]",
    "{ count: 0, within: 1s }",
    "{ count: 99999999999, within: 999d }",
    "{ match: x, for: 0s }",
    "{ start: '(', timeout: 1y }",
    "99999/1ns",
    "1/31d",
    "\"\\0\"",
];

/// Keys that go anywhere, known and unknown.
const KEYS: &[&str] = &[
    "window",
    "cooldown",
    "resolve_after",
    "threshold",
    "absent",
    "rate",
    "retry",
    "timeout",
    "throttle_pause",
    "max_lines",
    "max_groups",
    "group_by",
    "template",
    "severity",
    "field",
    "widnow",
    "multiline",
    "robot",
    "match",
    "exclude",
    "mention",
    "msgtype",
    "name",
];

fn mutate(text: &str, rng: &mut fastrand::Rng) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    if lines.is_empty() {
        return String::new();
    }
    let n = lines.len();
    for _ in 0..rng.usize(1..4) {
        let i = rng.usize(0..n.min(lines.len()).max(1));
        if i >= lines.len() {
            continue;
        }
        match rng.u8(0..8) {
            0 => {
                lines.remove(i);
            }
            1 => {
                let l = lines[i].clone();
                lines.insert(i, l);
            }
            2 => {
                let j = rng.usize(0..lines.len());
                lines.swap(i, j);
            }
            3 | 4 => {
                // a value replaced
                if let Some(k) = lines[i].find(": ") {
                    let v = HOSTILE[rng.usize(0..HOSTILE.len())];
                    lines[i] = format!("{}: {v}", &lines[i][..k]);
                }
            }
            5 => {
                // a key added at this line's indentation
                let indent: String = lines[i].chars().take_while(|c| *c == ' ').collect();
                let indent = indent.replace("- ", "  ");
                let k = KEYS[rng.usize(0..KEYS.len())];
                let v = HOSTILE[rng.usize(0..HOSTILE.len())];
                lines.insert(i + 1, format!("{indent}{k}: {v}"));
            }
            6 => {
                // indentation off by two
                if rng.bool() {
                    lines[i] = format!("  {}", lines[i]);
                } else if let Some(rest) = lines[i].strip_prefix("  ") {
                    lines[i] = rest.to_owned();
                }
            }
            _ => {
                // a character dropped or a byte pasted
                let mut chars: Vec<char> = lines[i].chars().collect();
                if !chars.is_empty() {
                    let at = rng.usize(0..chars.len());
                    if rng.bool() {
                        chars.remove(at);
                    } else {
                        chars.insert(
                            at,
                            ['\t', '"', '\'', '{', '[', ':', '#', '\u{202e}'][rng.usize(0..8)],
                        );
                    }
                }
                lines[i] = chars.into_iter().collect();
            }
        }
    }
    lines.join("\n") + "\n"
}

/// Duration fields, and values around and far past their ranges.
const DURATION_KEYS: &[&str] = &[
    "window",
    "cooldown",
    "resolve_after",
    "within",
    "for",
    "timeout",
    "throttle_pause",
];
const DURATION_VALUES: &[&str] = &["30days", "31days", "18446744073709551615s"];

/// Every duration a pack sets, set to each of [`DURATION_VALUES`]; and every rule given a
/// window or a cooldown of each of them.
fn directed(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start().trim_start_matches("- ");
        let key = trimmed.split(':').next().unwrap_or("");
        for value in DURATION_VALUES {
            let mut edited: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            if DURATION_KEYS.contains(&key) && line.contains(": ") {
                let k = line.find(": ").expect("checked");
                edited[i] = format!("{}: {value}", &line[..k]);
                out.push(edited.join("\n") + "\n");
            } else if line.trim_start().starts_with("- name:") {
                let indent = " ".repeat(line.len() - line.trim_start().len() + 2);
                for k in ["window", "cooldown"] {
                    let mut e = edited.clone();
                    e.insert(i + 1, format!("{indent}{k}: {value}"));
                    out.push(e.join("\n") + "\n");
                }
            }
        }
    }
    out
}

fn packs() -> Vec<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .expect("rules/")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read pack");
            (p.display().to_string(), text)
        })
        .collect();
    out.sort();
    assert!(out.len() >= 5, "the bundled packs: {out:?}");
    out
}

fn env(name: &str) -> Option<String> {
    match name {
        "DINGTALK_TOKEN" => Some("tok".into()),
        "DINGTALK_SECRET" => Some("SECx".into()),
        _ => None,
    }
}

/// A sample: the bundled log plus lines made to hit windows, captures and JSON fields oddly.
fn sample() -> Vec<u8> {
    let full = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/sample.log"))
        .expect("examples/sample.log");
    // Its first 80 lines are enough variety and keep hundreds of runs quick.
    let end = full
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(79)
        .map_or(full.len(), |(i, _)| i + 1);
    let mut s = full[..end].to_vec();
    s.extend_from_slice(
        b"9999-12-31 23:59:59 ERROR far future\n1970-01-01 00:00:00 ERROR epoch\n\
          {\"log\":{\"level\":\"error\"},\"msg\":\"\xff\"}\n\
          Failed password for root from 10.0.0.1 port 22\n\
          \r\x1b[31mERROR\x1b[0m \xe2\x80\xae reversed\n",
    );
    s
}

#[test]
fn mutated_rule_packs_never_panic_and_accepted_ones_run_test() {
    let sample = sample();
    let mut rng = fastrand::Rng::with_seed(0xd1a6_7a11);
    let (mut accepted, mut refused) = (0, 0);
    for (origin, text) in packs() {
        let mut cases: Vec<String> = (0..60).map(|_| mutate(&text, &mut rng)).collect();
        cases.extend(directed(&text));
        for (round, mutated) in cases.into_iter().enumerate() {
            let result = catch_unwind(AssertUnwindSafe(|| parse_str(&mutated, &origin, &env)));
            let config = match result {
                Err(_) => panic!("check panicked on mutation {round} of {origin}:\n{mutated}"),
                Ok(Err(ConfigError::Invalid(problems))) => {
                    assert!(!problems.is_empty());
                    for p in &problems {
                        assert!(
                            p.line > 0 || p.message.contains("environment"),
                            "{origin} mutation {round}: an unlocated problem {p}:\n{mutated}"
                        );
                    }
                    refused += 1;
                    continue;
                }
                Ok(Err(other)) => panic!("{other}"),
                Ok(Ok(c)) => c,
            };
            accepted += 1;
            let ran = catch_unwind(AssertUnwindSafe(|| {
                let mut out = Vec::new();
                let _ = dingtail::tester::run(&config, &sample[..], &mut out);
                let mut out = Vec::new();
                let _ = dingtail::replay::replay(
                    &config,
                    &sample[..],
                    &mut out,
                    "host",
                    limits::LINE_INTERVAL,
                );
            }));
            assert!(
                ran.is_ok(),
                "test panicked on an accepted config (mutation {round} of {origin}):\n{mutated}"
            );
        }
    }
    assert!(
        accepted > 20 && refused > 20,
        "the mutations should land on both sides: {accepted} accepted, {refused} refused"
    );
}

#[test]
fn check_exits_0_or_2_on_mutated_packs() {
    let mut rng = fastrand::Rng::with_seed(7);
    let packs = packs();
    for round in 0..6 {
        let (_, text) = &packs[round % packs.len()];
        let mutated = mutate(text, &mut rng);
        let out = TestEnv::new().config(&mutated).run(&["check"], b"");
        assert!(
            out.code == 0 || out.code == 2,
            "exit {} on:\n{mutated}\n{}",
            out.code,
            out.stderr
        );
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    }
}

#[test]
fn every_duration_at_its_maximum_runs_test_and_replay_without_panic() {
    let yaml = r#"robots:
  ops:
    webhook: "http://127.0.0.1:9/robot/send?access_token=x"
    rate: 10000/1day
    timeout: { connect: 10m, request: 1h }
    retry: { initial: 1h, max: 1day, recheck: 1day }
    throttle_pause: 1day
defaults: { window: 1day }
inputs:
  - path: /nonexistent/*.log
    multiline: { start: '^\d', timeout: 1h }
rules:
  - name: err
    match: ERROR
    window: 1day
    cooldown: 30days
    resolve_after: 30days
    threshold: { count: 1, within: 1day }
  - name: gone
    absent: { match: heartbeat, for: 30days }
"#;
    let env = TestEnv::new().config(yaml);
    let out = env.run(&["check"], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = env.run(&["test", "--replay", "--line-interval", "1day"], &sample());
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("【err】"), "{}", out.stdout);
    // `run` on stdin (without `inputs:`, which it would follow for ever)
    let stdin_only = yaml.replace(
        "inputs:\n  - path: /nonexistent/*.log\n    multiline: { start: '^\\d', timeout: 1h }\n",
        "",
    );
    assert_ne!(stdin_only, yaml);
    let out = TestEnv::new().config(&stdin_only).run(
        &["run", "--dry-run", "--shutdown-timeout", "1h"],
        b"ERROR x\n",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("【err】×1"), "{}", out.stdout);
    // one past each maximum: refused, naming the field
    for (from, to, field) in [
        (
            "window: 1day\n    cooldown",
            "window: 86400001ms\n    cooldown",
            "field 'window'",
        ),
        (
            "cooldown: 30days",
            "cooldown: 2592000001ms",
            "field 'cooldown'",
        ),
        ("for: 30days", "for: 2592000001ms", "field 'absent.for'"),
        (
            "throttle_pause: 1day",
            "throttle_pause: 86400001ms",
            "field 'throttle_pause'",
        ),
    ] {
        let bad = yaml.replacen(from, to, 1);
        let out = TestEnv::new().config(&bad).run(&["check"], b"");
        assert_eq!(out.code, 2, "{to}: {}", out.stderr);
        assert!(out.stderr.contains(field), "{to}: {}", out.stderr);
    }
}

#[test]
fn command_line_durations_are_range_checked_with_exit_2() {
    let env = TestEnv::new();
    for (args, ok) in [
        (vec!["run", "--dry-run", "--shutdown-timeout", "1h"], true),
        // zero is accepted (deliver nothing after the input ends): not a usage error
        (vec!["run", "--dry-run", "--shutdown-timeout", "0s"], true),
        (
            vec!["run", "--dry-run", "--shutdown-timeout", "3600001ms"],
            false,
        ),
        (
            vec![
                "run",
                "--dry-run",
                "--shutdown-timeout",
                "18446744073709551615s",
            ],
            false,
        ),
        (vec!["test", "--replay", "--line-interval", "1day"], true),
        (
            vec!["test", "--replay", "--line-interval", "86400001ms"],
            false,
        ),
        (vec!["test", "--replay", "--line-interval", "0s"], false),
        (
            vec![
                "test",
                "--replay",
                "--line-interval",
                "18446744073709551615s",
            ],
            false,
        ),
    ] {
        let out = env.run(&args, b"ERROR one\nERROR two\n");
        if ok {
            let zero = args.contains(&"0s");
            assert!(
                out.code == 0 || (zero && out.code == 1),
                "{args:?}: {}",
                out.stderr
            );
        } else {
            assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
            assert!(
                out.stderr.contains("longest allowed") || out.stderr.contains("longer than zero"),
                "{args:?}: {}",
                out.stderr
            );
        }
        assert!(!out.stderr.contains("panicked"), "{args:?}: {}", out.stderr);
    }
}
