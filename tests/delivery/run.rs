//! `dingtail run` through the real binary, against the DingTalk emulator on 127.0.0.1.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::time::{Duration, Instant};

use crate::support::emulator::{Emulator, Fault, RobotSpec};
use crate::support::env::{TestEnv, WAIT_LIMIT, header_counts, header_total};

const TOKEN: &str = "tok-0123456789abcdef";
const SECRET: &str = "SECd1f2e3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0";

/// A config with one signing, keyword-protected robot pointing at the emulator.
fn config(emu: &Emulator, rate: &str, rules: &str) -> String {
    format!(
        r#"robots:
  ops:
    webhook: "{}"
    secret: "${{TEST_SECRET}}"
    keyword: "告警"
    rate: {rate}
defaults:
  window: 200ms
  max_lines: 3
rules:
{rules}"#,
        emu.webhook(TOKEN)
    )
}

const THREE_RULES: &str = r#"  - name: nginx-5xx
    match: '" 5\d\d '
    exclude: ['/healthz']
  - name: java-error
    match: ' ERROR '
  - name: oom
    match: 'Out of memory'
"#;

fn robot() -> RobotSpec {
    RobotSpec::new(TOKEN).secret(SECRET).keyword("告警")
}

/// A log with a known number of hits per rule, plus noise and near misses.
fn log(n5xx: usize, nerr: usize, noom: usize) -> String {
    let mut s = String::new();
    for i in 0..n5xx.max(nerr).max(noom) {
        s.push_str(&format!(
            "10.0.0.{} - - \"GET /api/{i} HTTP/1.1\" 200 12\n",
            i % 250
        ));
        if i < n5xx {
            s.push_str(&format!("10.0.0.1 - - \"GET /api/{i} HTTP/1.1\" 502 0\n"));
            s.push_str("10.0.0.1 - - \"GET /healthz HTTP/1.1\" 503 0\n");
        }
        if i < nerr {
            s.push_str(&format!("2026-11-29 10:00:00 ERROR payment {i} failed\n"));
        }
        if i < noom {
            s.push_str("kernel: Out of memory: Killed process 42 (java)\n");
        }
    }
    s
}

fn per_rule(posts: &[crate::support::emulator::Post]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for p in posts {
        for (rule, n) in header_counts(&p.text()) {
            *m.entry(rule).or_default() += n;
        }
    }
    m
}

#[test]
fn piped_log_becomes_signed_messages_whose_counts_add_up() {
    let emu = Emulator::start(vec![robot()]);
    let env = TestEnv::new()
        .config(&config(&emu, "20/min", THREE_RULES))
        .env("TEST_SECRET", SECRET);
    let out = env.run(&["run"], log(57, 9, 2).as_bytes());
    assert_eq!(out.code, 0, "{}", out.stderr);

    let posts = emu.posts();
    assert!(!posts.is_empty());
    let counts = per_rule(&posts);
    let want: BTreeMap<String, u64> = [
        ("java-error".into(), 9),
        ("nginx-5xx".into(), 57),
        ("oom".into(), 2),
    ]
    .into();
    assert_eq!(counts, want);
    // at end of input every window is flushed at once: one digest message
    assert_eq!(posts.len(), 1, "{posts:#?}");
    let text = posts[0].text();
    assert!(text.starts_with("【"), "{text}");
    assert!(text.contains("×57 test-host"), "{text}");
    assert!(text.contains("告警"));
    assert!(text.contains("… 54 more not shown"), "{text}");
    assert!(
        !text.contains("/healthz"),
        "excluded lines are not quoted: {text}"
    );
    assert!(posts[0].msg_uuid().is_some());
    // every request was signed and accepted: no errcode other than 0
    assert!(emu.requests().iter().all(|r| r.errcode == Some(0)));
    // the summary names lines, matches and messages
    assert!(
        out.stderr
            .contains("matches: nginx-5xx 57, java-error 9, oom 2"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("messages: 1 sent, 0 failed"),
        "{}",
        out.stderr
    );
}

#[test]
fn windows_close_on_time_while_input_flows() {
    let emu = Emulator::start(vec![robot()]);
    let env = TestEnv::new()
        .config(&config(&emu, "20/min", "  - name: err\n    match: ERROR\n"))
        .env("TEST_SECRET", SECRET);
    let mut run = env.start(&["run"]);
    let mut stdin = run.stdin();
    stdin.write_all(b"ERROR one\nERROR two\nok\n").unwrap();
    stdin.flush().unwrap();
    // the 200ms window closes and the message goes out while stdin is still open
    let posts = emu.wait_for_posts(1, WAIT_LIMIT);
    assert_eq!(posts.len(), 1);
    assert_eq!(header_total(&posts[0].text()), 2);
    stdin.write_all(b"ERROR three\n").unwrap();
    drop(stdin);
    let out = run.wait();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let posts = emu.posts();
    assert_eq!(posts.len(), 2);
    assert_eq!(header_total(&posts[1].text()), 1);
}

#[test]
fn the_rate_limit_holds_with_many_rules_firing() {
    // 60 rules, hits in 40 rounds spread over at least ten messages' time, windows of 50ms: far
    // more alerts than a robot allowed 4 messages per second may send. The emulator enforces
    // the same limit and would answer 130101 at the first excess.
    let emu = Emulator::start(vec![
        robot()
            .rate(4, Duration::from_secs(1))
            .block(Duration::from_secs(30)),
    ]);
    let rules: String = (0..60)
        .map(|i| format!("  - name: r{i:02}\n    match: 'code={i:02}\\b'\n    window: 50ms\n"))
        .collect();
    let env = TestEnv::new()
        .config(&config(&emu, "4/1s", &rules))
        .env("TEST_SECRET", SECRET);
    let mut run = env.start(&["run"]);
    let mut stdin = run.stdin();
    let mut sent = 0u64;
    let start = Instant::now();
    for round in 0..40 {
        for i in 0..60 {
            if (i + round) % 4 == 0 {
                writeln!(stdin, "t={round} code={i:02} failed").unwrap();
                sent += 1;
            }
        }
        stdin.flush().unwrap();
        if round % 4 == 3 {
            // input keeps coming while the robot sends: one more message per four rounds
            emu.wait_for_posts(round / 4 + 1, Duration::from_secs(60));
        }
    }
    drop(stdin);
    let out = run.wait();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let requests = emu.requests();
    assert!(
        requests.iter().all(|r| r.errcode == Some(0)),
        "a request was refused: {:?}",
        requests
            .iter()
            .filter(|r| r.errcode != Some(0))
            .collect::<Vec<_>>()
    );
    let posts = emu.posts();
    let total: u64 = posts.iter().map(|p| header_total(&p.text())).sum();
    assert_eq!(total, sent, "every matching line is counted exactly once");
    // the limit was the bottleneck, and merging made up for it
    let elapsed = start.elapsed().as_secs_f64();
    assert!(
        posts.len() as f64 <= 4.0 * (elapsed + 1.5),
        "{} posts in {elapsed}s",
        posts.len()
    );
    assert!(
        posts.len() >= 8,
        "the robot's allowance was used: {}",
        posts.len()
    );
    // no sliding window of 1 s saw more than 4 accepted posts
    for (i, p) in posts.iter().enumerate() {
        let within = posts[i..]
            .iter()
            .filter(|q| q.at < p.at + Duration::from_secs(1))
            .count();
        assert!(within <= 4, "{within} posts within 1s");
    }
}

#[test]
fn undeliverable_alerts_exit_1_with_counts_and_no_secret() {
    // The robot knows another secret: DingTalk says "sign not match" every time.
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN).secret("SECsomethingelse")]);
    let env = TestEnv::new()
        .config(&config(&emu, "20/min", THREE_RULES))
        .env("TEST_SECRET", SECRET);
    let out = env.run(&["run"], log(5, 2, 0).as_bytes());
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(emu.posts().is_empty());
    let err = &out.stderr;
    assert!(err.contains("robot ops"), "{err}");
    assert!(err.contains("310000"), "{err}");
    assert!(err.contains("SEC…"), "the hint says what to fix: {err}");
    assert!(err.contains("7 matching line(s) not delivered"), "{err}");
    assert!(
        err.contains("nginx-5xx 5") && err.contains("java-error 2"),
        "{err}"
    );
    // one request, no hammering
    assert_eq!(emu.requests().len(), 1);
    for secret in [TOKEN, SECRET, "sign="] {
        assert!(!err.contains(secret), "stderr leaks {secret}: {err}");
        assert!(!out.stdout.contains(secret));
    }
}

#[test]
fn a_retry_after_a_lost_answer_reuses_the_msg_uuid_and_posts_once() {
    let emu = Emulator::start(vec![robot()]);
    emu.push_fault(TOKEN, Fault::LoseAnswer);
    emu.push_fault(TOKEN, Fault::Errcode(-1, "系统繁忙".into()));
    let env = TestEnv::new()
        .config(&config(&emu, "20/min", THREE_RULES))
        .env("TEST_SECRET", SECRET);
    let out = env.run(&["run"], log(3, 0, 0).as_bytes());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let requests = emu.requests();
    assert_eq!(requests.len(), 3, "lost answer, busy, then accepted");
    let uuids: HashSet<String> = requests
        .iter()
        .map(|r| {
            r.body.as_ref().unwrap()["msgUuid"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(uuids.len(), 1, "one message, retried");
    let stamps: HashSet<&str> = requests
        .iter()
        .filter_map(|r| {
            r.query
                .iter()
                .find(|(k, _)| k == "timestamp")
                .map(|(_, v)| v.as_str())
        })
        .collect();
    assert_eq!(stamps.len(), 3, "each attempt is signed afresh");
    assert_eq!(emu.posts().len(), 1, "DingTalk posted it once");
    assert_eq!(header_total(&emu.posts()[0].text()), 3);
}

#[test]
fn tee_copies_input_unchanged_while_alerting() {
    let emu = Emulator::start(vec![robot()]);
    let env = TestEnv::new()
        .config(&config(&emu, "20/min", THREE_RULES))
        .env("TEST_SECRET", SECRET);
    let mut input = log(4, 1, 1).into_bytes();
    input.extend_from_slice(b"\xff\xfe not utf-8 ERROR \x00 nul\r\nno newline at end");
    let out = env.run(&["run", "--tee"], &input);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout_bytes, input);
    assert_eq!(per_rule(&emu.posts())["java-error"], 2);
    assert!(
        emu.posts()[0]
            .text()
            .contains("\u{fffd}\u{fffd} not utf-8 ERROR")
    );
}

#[test]
fn tee_with_dry_run_is_a_usage_error() {
    let out = TestEnv::new().run(&["run", "--tee", "--dry-run"], b"");
    assert_eq!(out.code, 2, "{}", out.stderr);
}

#[test]
fn tee_found_contradictory_only_at_run_time_is_a_usage_error_too() {
    // no robot (the built-in rules): messages go to stdout, which --tee would share
    let out = TestEnv::new().run(&["run", "--tee"], b"ERROR x\n");
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--tee"), "{}", out.stderr);
    // following files: --tee copies stdin only
    let env = TestEnv::new();
    let log = env.dir().join("app.log");
    std::fs::write(&log, "").unwrap();
    let out = env.run(&["run", "--tee", "--once", log.to_str().unwrap()], b"");
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--tee"), "{}", out.stderr);
}

#[test]
fn without_a_config_the_builtin_rules_print_what_would_be_sent() {
    let sample =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/sample.log")).unwrap();
    let out = TestEnv::new().run(&["run"], &sample);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("no robot"), "{}", out.stderr);
    let lines = out.dry_run_lines();
    assert!(!lines.is_empty());

    // Count independently, line by line, with the same patterns: the messages must add up.
    let config = dingtail::config::Config::builtin();
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for line in sample.split(|&b| b == b'\n') {
        for rule in &config.rules {
            let re = dingtail::rules::regex_builder(&rule.pattern)
                .build()
                .unwrap();
            if re.is_match(line) && !rule.excludes(line) {
                *want.entry(rule.name.clone()).or_default() += 1;
            }
        }
    }
    let mut got: BTreeMap<String, u64> = BTreeMap::new();
    for l in &lines {
        assert_eq!(l["robot"], serde_json::Value::Null);
        let text = l["body"]["text"]["content"].as_str().unwrap();
        assert_eq!(header_total(text), l["count"].as_u64().unwrap());
        for (rule, n) in header_counts(text) {
            *got.entry(rule).or_default() += n;
        }
    }
    assert_eq!(got, want);
    assert!(
        want.len() >= 5,
        "the sample shows most built-in rules: {want:?}"
    );
}

#[test]
fn dry_run_with_robots_names_them_and_sends_nothing() {
    let emu = Emulator::start(vec![robot()]);
    let env = TestEnv::new()
        .config(&config(&emu, "20/min", THREE_RULES))
        .env("TEST_SECRET", SECRET);
    let out = env.run(&["run", "--dry-run"], log(2, 1, 0).as_bytes());
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(emu.requests().is_empty());
    let lines = out.dry_run_lines();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["robot"], "ops");
    assert_eq!(lines[0]["count"], 3);
    assert_eq!(
        lines[0]["rules"],
        serde_json::json!(["nginx-5xx", "java-error"])
    );
    assert!(
        lines[0]["body"]["text"]["content"]
            .as_str()
            .unwrap()
            .ends_with("告警")
    );
    for s in [TOKEN, SECRET] {
        assert!(!out.stdout.contains(s) && !out.stderr.contains(s));
    }
}

#[test]
fn sigterm_flushes_pending_windows_and_delivers() {
    let emu = Emulator::start(vec![robot()]);
    let rules = "  - name: err\n    match: ERROR\n    window: 1h\n";
    let env = TestEnv::new()
        .config(&config(&emu, "20/min", rules))
        .env("TEST_SECRET", SECRET);
    let mut run = env.start(&["run", "--listen", "127.0.0.1:0"]);
    let mut stdin = run.stdin();
    for i in 0..25 {
        writeln!(stdin, "ERROR {i}").unwrap();
    }
    stdin.flush().unwrap();
    run.wait_for_lines_read(25);
    assert!(emu.posts().is_empty(), "the 1h window is still open");
    run.signal(libc::SIGTERM);
    let out = run.wait();
    drop(stdin);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let posts = emu.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(header_total(&posts[0].text()), 25);
}

#[test]
fn huge_lines_and_binary_garbage_do_not_break_anything() {
    let emu = Emulator::start(vec![robot()]);
    let env = TestEnv::new()
        .config(&config(&emu, "20/min", "  - name: err\n    match: ERROR\n"))
        .env("TEST_SECRET", SECRET);
    let mut input = Vec::new();
    input.extend_from_slice(b"ERROR first\n");
    input.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024)); // 10 MiB line, cut at 64 KiB
    input.extend_from_slice(b" ERROR at the far end of the huge line\n");
    input.extend((0..=255u8).cycle().take(100_000)); // binary garbage with newlines in it
    input.extend_from_slice("\nERROR 数据库 last\n".as_bytes());
    let out = env.run(&["run"], &input);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let posts = emu.posts();
    let total: u64 = posts.iter().map(|p| header_total(&p.text())).sum();
    assert_eq!(
        total, 2,
        "the ERROR beyond max_line_bytes is not seen; {}",
        out.stderr
    );
    assert!(posts.iter().all(|p| p.body.to_string().len() <= 20_000));
    assert!(
        out.stderr.contains("1 cut at max_line_bytes"),
        "{}",
        out.stderr
    );
}
