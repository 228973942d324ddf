//! The monthly budget through the real binary and the emulator: a storm cannot spend more than
//! the budget, every matching line is counted in some message or reported, the ledger survives
//! restarts, the reserve is kept for critical rules, and a quota error from DingTalk stops the
//! robot. (The pacing itself is shown on a simulated clock in `src/budget` and `src/dispatch.rs`:
//! through the binary the real date decides how much the pace allows.)

use std::time::Duration;

use crate::support::emulator::{Emulator, Fault, RobotSpec};
use crate::support::env::{Output, TestEnv, WAIT_LIMIT, header_total};

const TOKEN: &str = "tok-budget-0123456789";

/// Robot `ops` at the emulator, this `quota:`, 60 ordinary rules `r00`…`r59` (each matches
/// `E<nn> `) and one critical rule `crit`.
fn config(emu: &Emulator, quota: &str) -> String {
    let mut rules = String::new();
    for r in 0..60 {
        rules.push_str(&format!("  - name: r{r:02}\n    match: 'E{r:02} '\n"));
    }
    rules.push_str("  - name: crit\n    match: 'CRIT '\n    severity: critical\n");
    format!(
        r#"robots:
  ops:
    webhook: "{}"
    retry: {{ initial: 50ms, max: 200ms, recheck: 400ms }}
quota: {quota}
defaults:
  window: 100ms
  max_lines: 1
rules:
{rules}"#,
        emu.webhook(TOKEN)
    )
}

/// A storm: every one of the 60 rules matches `per_rule` lines, with noise between.
fn storm(tag: &str, per_rule: usize) -> (String, u64) {
    let mut text = String::new();
    for i in 0..per_rule {
        for r in 0..60 {
            text.push_str(&format!("{tag} {i} E{r:02} failed\n{tag} {i} fine\n"));
        }
    }
    (text, 60 * per_rule as u64)
}

fn lines_in(posts: &[crate::support::emulator::Post]) -> u64 {
    posts.iter().map(|p| header_total(&p.text())).sum()
}

/// The `N matching line(s) not delivered` of the failure line.
fn undelivered(out: &Output) -> u64 {
    out.stderr
        .lines()
        .find(|l| l.contains("not delivered"))
        .and_then(|l| l.split(" with ").nth(1))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no undelivered count: {}", out.stderr))
}

fn ledger(env: &TestEnv) -> serde_json::Value {
    let text = std::fs::read_to_string(env.dir().join("state/budget.json")).expect("budget.json");
    serde_json::from_str(&text).unwrap()
}

/// One run: part of a storm, then the rest. With `first_post`, the rest is written once the
/// first message is posted (a fresh month's budget always allows one at once), so it arrives
/// while the robot is under way.
fn storm_run(env: &TestEnv, emu: &Emulator, tag: &str, first_post: bool) -> (Output, u64) {
    let before = emu.posts().len();
    let mut run = env.start(&["run"]);
    let (first, n1) = storm(&format!("{tag}a"), 2);
    run.write(first.as_bytes());
    if first_post {
        emu.wait_for_posts(before + 1, WAIT_LIMIT);
    }
    let (second, n2) = storm(&format!("{tag}b"), 3);
    run.write(second.as_bytes());
    (run.finish(), n1 + n2)
}

#[test]
fn a_budget_of_ten_holds_storms_of_sixty_rules_across_restarts_and_keeps_the_reserve() {
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN)]);
    let env = TestEnv::new().config(&config(&emu, "{ monthly: 10, reserve: 1 }"));

    // Storms, one run after another, until the 9 ordinary messages are spent.
    let mut runs = 0;
    loop {
        runs += 1;
        assert!(runs <= 10, "every run sends at least one message");
        let before = emu.posts().len();
        let (out, matched) = storm_run(&env, &emu, &format!("run{runs}"), runs == 1);
        let posts = emu.posts();
        let this_run = &posts[before..];
        assert!(posts.len() <= 9, "{} ordinary messages", posts.len());
        // The ledger on disk counts every message sent, across restarts.
        assert_eq!(ledger(&env)["total"], posts.len() as u64);
        assert_eq!(ledger(&env)["robots"]["ops"], posts.len() as u64);
        if out.code == 0 {
            assert_eq!(lines_in(this_run), matched, "{}", out.stderr);
            assert!(out.stderr.contains("of 10 messages used"), "{}", out.stderr);
            continue;
        }
        // Spent: what was held is counted and reported, nothing is lost silently.
        assert_eq!(out.code, 1, "{}", out.stderr);
        let reported = undelivered(&out);
        assert_eq!(lines_in(this_run) + reported, matched, "{}", out.stderr);
        assert!(
            out.stderr
                .contains("the monthly budget is used up but for the 1 kept for critical rules"),
            "{}",
            out.stderr
        );
        if posts.len() == 9 && this_run.is_empty() {
            break;
        }
    }
    assert_eq!(emu.posts().len(), 9);

    // The reserve is there for a critical rule, once; ordinary lines ride along in its message.
    let out = env.run(&["run"], b"CRIT disk full\nx E07 failed\n");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let posts = emu.posts();
    assert_eq!(posts.len(), 10);
    assert_eq!(header_total(&posts[9].text()), 2, "{}", posts[9].text());
    let out = env.run(&["run"], b"CRIT disk full again\n");
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("the monthly budget is used up (10 of 10)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("1 matching line(s) not delivered (crit 1)"),
        "{}",
        out.stderr
    );
    assert_eq!(emu.posts().len(), 10, "never more than the budget");

    // `check` shows where the month stands.
    let out = env.run(&["check"], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("10 of 10 messages used (1 kept for critical rules)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("Asia/Shanghai"), "{}", out.stdout);
}

#[test]
fn a_quota_error_from_dingtalk_stops_the_robot_until_the_month_turns() {
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN).quota_after(2)]);
    let env = TestEnv::new().config(&config(&emu, "{ monthly: 50000 }"));
    let mut run = env.start(&["run"]);
    let mut matched = 0;
    for (i, wanted) in [1, 2].into_iter().enumerate() {
        let (text, n) = storm(&format!("part{i}"), 1);
        run.write(text.as_bytes());
        matched += n;
        emu.wait_for_posts(wanted, WAIT_LIMIT);
    }
    // The third message gets 90030; what comes after is held, not sent.
    let (text, n3) = storm("part2", 1);
    run.write(text.as_bytes());
    emu.wait_for_requests(3, WAIT_LIMIT);
    let (text, n4) = storm("part3", 2);
    run.write(text.as_bytes());
    matched += n3 + n4;
    let out = run.finish();

    assert_eq!(out.code, 1, "{}", out.stderr);
    let requests = emu.requests();
    assert_eq!(requests.len(), 3, "nothing more after the quota error");
    assert_eq!(requests[2].errcode, Some(90030));
    assert_eq!(emu.posts().len(), 2);
    assert!(
        out.stderr.contains("monthly quota is used up"),
        "{}",
        out.stderr
    );
    let reported = undelivered(&out);
    assert!(reported >= n3 + n4, "{}", out.stderr);
    assert_eq!(lines_in(&emu.posts()) + reported, matched, "{}", out.stderr);
    assert!(
        out.stderr.contains("before the month turns"),
        "{}",
        out.stderr
    );
    // The refused message is not counted; the robot is remembered as spent.
    let ledger = ledger(&env);
    assert_eq!(ledger["total"], 2);
    assert!(
        ledger["spent"]["ops"].as_str().unwrap().contains("90030"),
        "{ledger}"
    );

    // A restart does not try the robot again this month.
    let out = env.run(&["run"], b"again E01 failed\n");
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(emu.requests().len(), 3);
    assert!(
        out.stderr
            .contains("1 matching line(s) not delivered (r01 1)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("DingTalk said the quota is used up"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_crash_while_a_message_is_in_flight_never_under_counts() {
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN)]);
    // DingTalk posts the message at once but answers only much later.
    emu.push_fault(TOKEN, Fault::Delay(Duration::from_secs(30)));
    let env = TestEnv::new().config(&config(&emu, "{ monthly: 10 }"));
    let mut run = env.start(&["run"]);
    run.write(b"x E01 failed\n");
    emu.wait_for_posts(1, WAIT_LIMIT);
    run.signal(libc::SIGKILL);
    let out = run.wait();
    assert_eq!(out.code, -1);
    // Counted before it was sent: the ledger knows of the message the crash interrupted.
    assert_eq!(ledger(&env)["total"], 1);
    assert_eq!(emu.posts().len(), 1);
}

#[test]
fn a_message_sent_by_hand_counts_in_the_ledger() {
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN)]);
    let env = TestEnv::new().config(&config(&emu, "{ monthly: 10 }"));
    let out = env.run(&["send", "hello from the on-call"], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(emu.posts().len(), 1);
    assert_eq!(ledger(&env)["total"], 1);
    assert_eq!(ledger(&env)["robots"]["ops"], 1);
}

#[test]
fn replay_prints_a_forecast_against_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let mut text = String::new();
    // A day: a storm of an error every 10 s for two hours, then a quiet rest.
    for i in 0..720 {
        let (h, m, s) = (8 + i / 360, (i / 6) % 60, (i % 6) * 10);
        text.push_str(&format!(
            "2026-11-10 {h:02}:{m:02}:{s:02} ERROR upstream down\n"
        ));
    }
    text.push_str("2026-11-11 07:59:59 ERROR once more\n");
    std::fs::write(&log, text).unwrap();
    // Log times are local: pin the zone so the Shanghai days are the same everywhere.
    let env = TestEnv::new().env("TZ", "UTC").config(
        r#"robots:
  ops: { webhook: "http://127.0.0.1:9/robot/send?access_token=x" }
quota: { monthly: 300, reserve: 10% }
timestamp: { regex: '^(\S+ \S+)', format: '%Y-%m-%d %H:%M:%S' }
rules:
  - { name: err, match: ERROR, window: 1m }
"#,
    );
    let out = env.run(&["test", "--replay", log.to_str().unwrap()], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let forecast = out
        .stdout
        .split("=== forecast")
        .nth(1)
        .unwrap_or_else(|| panic!("no forecast: {}", out.stdout));
    assert!(
        forecast.contains("(300 messages, 30 kept for critical rules"),
        "{forecast}"
    );
    // 120 one-minute windows plus the last line: 121 messages without pacing. The month is
    // taken as spent at the pace until then (N = 270: 87 by Nov 10 16:01 Shanghai), so a day's
    // share (9) goes at once, the rest of the storm is merged and goes as one digest when the
    // pace reaches 88 (that evening), and the next day's line goes alone.
    assert!(
        forecast.contains(
            "robot ops: 121 message(s) without pacing, 11 with pacing (110 merged into later digests)"
        ),
        "{forecast}"
    );
    assert!(forecast.contains("2026-11-10: 120 → 10"), "{forecast}");
    assert!(forecast.contains("2026-11-11: 1 → 1"), "{forecast}");
    assert!(
        forecast.contains("a month at this rate: 121 message(s) in 23h 58m 59s → about 3632 a month, 1211% of the budget of 300"),
        "{forecast}"
    );
    assert!(forecast.contains("% of the budget of 300"), "{forecast}");
}

#[test]
fn quota_mistakes_are_config_errors_with_their_line() {
    let env = TestEnv::new().config(
        r#"robots:
  ops:
    webhook: "http://127.0.0.1:9/robot/send?access_token=x"
    monthly: 0
quota:
  monthly: 100
  reserve: ten percent
rules:
  - { name: err, match: ERROR }
"#,
    );
    let out = env.run(&["check"], b"");
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("rules.yaml:4:14: robot 'ops', field 'monthly': must be at least 1"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("rules.yaml:7:12: quota, field 'reserve': `ten percent` is not a reserve"),
        "{}",
        out.stderr
    );
    let env = TestEnv::new()
        .config("quota: { monthly: 100, reserve: 100 }\nrules:\n  - { name: err, match: ERROR }\n");
    let out = env.run(&["check"], b"");
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("keeps all 100 messages for critical rules"),
        "{}",
        out.stderr
    );
}
