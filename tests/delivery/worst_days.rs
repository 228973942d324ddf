//! Delivery on DingTalk's worst days, through the real binary and the emulator's fault injection:
//! outages, throttling, permanent errors, fallbacks, shutdown under load, bounded memory, and no
//! secret in any output.

use std::io::Write;
use std::process::ChildStdin;
use std::time::Duration;

use crate::support::emulator::{Emulator, Fault, RobotSpec};
use crate::support::env::{Output, TestEnv, WAIT_LIMIT};

const TOKEN: &str = "tok-a1b2c3d4e5f60718";
const BACKUP: &str = "tok-backup99887766";
const SECRET: &str = "SECf00dfeedbeefcafe0123456789abcdef";

/// One signing robot `ops` at the emulator, fast retries, plus `extra` robot settings and rules.
fn config(emu: &Emulator, extra: &str, rules: &str) -> String {
    format!(
        r#"robots:
  ops:
    webhook: "{}"
    secret: "${{TEST_SECRET}}"
    retry: {{ initial: 50ms, max: 200ms, recheck: 400ms }}
{extra}
defaults:
  robot: ops
  window: 100ms
  max_lines: 2
rules:
{rules}"#,
        emu.webhook(TOKEN)
    )
}

const RULE: &str = "  - name: err\n    match: ERROR\n";

fn env(emu: &Emulator, extra: &str) -> TestEnv {
    TestEnv::new()
        .config(&config(emu, extra, RULE))
        .env("TEST_SECRET", SECRET)
}

/// Writes round `r` of matching lines (`per_round`, and some noise); returns how many match.
fn feed(stdin: &mut ChildStdin, r: usize, per_round: usize) -> u64 {
    for i in 0..per_round {
        writeln!(
            stdin,
            "round {r} line {i} ERROR something broke\nround {r} fine"
        )
        .unwrap();
    }
    stdin.flush().unwrap();
    per_round as u64
}

/// Feeds `rounds` rounds, waiting after each until the emulator has had one more request
/// than before it: the input keeps coming while dingtail sends, fails and retries, at
/// dingtail's own pace rather than the clock's.
fn feed_while_sending(emu: &Emulator, stdin: &mut ChildStdin, rounds: usize, per: usize) -> u64 {
    let mut sent = 0;
    for r in 0..rounds {
        let before = emu.requests().len();
        sent += feed(stdin, r, per);
        emu.wait_for_requests(before + 1, WAIT_LIMIT);
    }
    sent
}

/// No output may contain the token, the secret or any signature the emulator was sent.
fn assert_no_secrets(emu: &Emulator, out: &Output) {
    let mut secrets = vec![TOKEN.to_owned(), BACKUP.to_owned(), SECRET.to_owned()];
    for r in emu.requests() {
        for (k, v) in &r.query {
            if k == "sign" {
                secrets.push(v.clone());
                secrets.push(r.raw_query.clone());
            }
        }
    }
    for s in &secrets {
        assert!(!out.stdout.contains(s.as_str()), "stdout leaks {s}");
        assert!(
            !out.stderr.contains(s.as_str()),
            "stderr leaks {s}:\n{}",
            out.stderr
        );
    }
}

#[test]
fn transient_failures_are_retried_with_one_msg_uuid_and_nothing_is_posted_twice() {
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN).secret(SECRET)]);
    for fault in [
        Fault::Http500,
        Fault::Drop,
        Fault::Html,
        Fault::Firewall,
        Fault::Errcode(-1, "system busy".into()),
        Fault::LoseAnswer,
    ] {
        emu.push_fault(TOKEN, fault);
    }
    let out = env(&emu, "").run(&["run"], b"ERROR a\nERROR b\nok\nERROR c\n");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let requests = emu.requests();
    assert_eq!(requests.len(), 7, "six faults, then accepted");
    let uuids: std::collections::HashSet<_> = requests
        .iter()
        .filter_map(|r| r.body.as_ref()?["msgUuid"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(uuids.len(), 1);
    assert_eq!(
        emu.posts().len(),
        1,
        "the lost answer's post counts; the retry is deduplicated"
    );
    assert_eq!(emu.delivered_to(TOKEN), 3);
    assert_no_secrets(&emu, &out);
}

#[test]
fn an_outage_gathers_alerts_and_delivers_them_when_dingtalk_is_back() {
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN).secret(SECRET)]);
    emu.set_outage(true);
    let env = env(&emu, "");
    let mut run = env.start(&["run"]);
    let mut stdin = run.stdin();
    // each round comes after another failed attempt: it kept trying
    let sent = feed_while_sending(&emu, &mut stdin, 10, 100);
    assert!(emu.posts().is_empty());
    assert!(emu.requests().len() >= 10, "it kept trying");
    emu.set_outage(false);
    let posts = emu.wait_for_posts(1, WAIT_LIMIT);
    assert!(!posts.is_empty());
    drop(stdin);
    let out = run.wait();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        emu.delivered_to(TOKEN),
        sent,
        "every line counted once: {:?}",
        emu.posts()
    );
    assert!(
        emu.posts().len() <= 4,
        "the backlog went out as a few digests: {}",
        emu.posts().len()
    );
    assert!(out.stderr.contains("will retry"), "{}", out.stderr);
    assert_no_secrets(&emu, &out);
}

#[test]
fn a_throttled_robot_is_paused_then_sends_its_backlog() {
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN).secret(SECRET)]);
    emu.push_fault(TOKEN, Fault::Errcode(130101, "send too fast".into()));
    let env = env(&emu, "    throttle_pause: 1s");
    let mut run = env.start(&["run"]);
    let mut stdin = run.stdin();
    // more input while the robot is paused, then the end of input
    let mut sent = feed_while_sending(&emu, &mut stdin, 1, 5);
    for r in 1..10 {
        sent += feed(&mut stdin, r, 5);
    }
    drop(stdin);
    let out = run.wait();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let requests = emu.requests();
    assert_eq!(requests[0].errcode, Some(130101));
    let gap = requests[1].at - requests[0].at;
    assert!(
        gap >= Duration::from_millis(950),
        "the pause was honoured: {gap:?}"
    );
    assert_eq!(emu.delivered_to(TOKEN), sent);
    assert!(out.stderr.contains("throttled"), "{}", out.stderr);
}

#[test]
fn a_throttled_robot_hands_its_alerts_to_the_fallback() {
    let emu = Emulator::start(vec![
        RobotSpec::new(TOKEN).secret(SECRET),
        RobotSpec::new(BACKUP),
    ]);
    emu.push_fault(TOKEN, Fault::Errcode(130101, "send too fast".into()));
    let backup = format!(
        "    fallback: backup\n    throttle_pause: 1h\n  backup:\n    webhook: \"{}\"",
        emu.webhook(BACKUP)
    );
    let env = env(&emu, &backup);
    let mut run = env.start(&["run"]);
    let mut stdin = run.stdin();
    // the first message is throttled; what comes after it goes to the fallback too
    let mut sent = feed_while_sending(&emu, &mut stdin, 1, 5);
    for r in 1..6 {
        sent += feed(&mut stdin, r, 5);
    }
    drop(stdin);
    let out = run.wait();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(emu.delivered_to(TOKEN), 0);
    assert_eq!(emu.delivered_to(BACKUP), sent, "{}", out.stderr);
    assert_eq!(
        emu.requests()
            .iter()
            .filter(|r| r.token.as_deref() == Some(TOKEN))
            .count(),
        1
    );
}

#[test]
fn a_permanent_error_is_rechecked_while_input_flows_and_nothing_is_lost() {
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN).secret(SECRET)]);
    emu.push_fault(TOKEN, Fault::Errcode(400102, "robot disabled".into()));
    let env = env(&emu, "");
    let mut run = env.start(&["run"]);
    let mut stdin = run.stdin();
    // input keeps flowing past the refusal and the recheck (the second request): the "fixed"
    // robot gets it all
    let mut sent = feed_while_sending(&emu, &mut stdin, 2, 3);
    for r in 2..12 {
        sent += feed(&mut stdin, r, 3);
    }
    drop(stdin);
    let out = run.wait();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(emu.delivered_to(TOKEN), sent);
    assert!(
        out.stderr.contains("400102") && out.stderr.contains("disabled"),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stderr.matches("400102").count(),
        1,
        "the error is said once: {}",
        out.stderr
    );
}

#[test]
fn a_permanent_error_at_end_of_input_reports_what_was_not_delivered() {
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN).secret(SECRET)]);
    for _ in 0..10 {
        emu.push_fault(TOKEN, Fault::Errcode(300001, "token is not exist".into()));
    }
    let out = env(&emu, "").run(&["run"], b"ERROR 1\nERROR 2\nERROR 3\n");
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("3 matching line(s) not delivered (err 3)"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("token"), "{}", out.stderr);
    assert_eq!(emu.requests().len(), 1, "no hammering");
    assert_no_secrets(&emu, &out);
}

/// With DingTalk down a stop gives up at the shutdown timeout (without it, the retries would
/// go on until the test's run limit fails it) and reports every line it read as undelivered.
#[test]
fn shutdown_under_load_with_dingtalk_down_gives_up_at_the_timeout_and_counts_everything() {
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN).secret(SECRET)]);
    emu.set_outage(true);
    let env = env(&emu, "");
    let mut run = env.start(&[
        "run",
        "--shutdown-timeout",
        "500ms",
        "--listen",
        "127.0.0.1:0",
    ]);
    let mut stdin = run.stdin();
    let mut sent = 0u64;
    for _ in 0..30_000 {
        writeln!(stdin, "ERROR under load").unwrap();
        sent += 1;
    }
    stdin.flush().unwrap();
    // stopped once every line is read (input still open) and a delivery has failed
    run.wait_for_lines_read(sent);
    emu.wait_for_requests(1, WAIT_LIMIT);
    run.signal(libc::SIGTERM);
    let out = run.wait();
    drop(stdin);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let reported = format!("{sent} matching line(s) not delivered (err {sent})");
    assert!(
        out.stderr.contains(&reported),
        "want {reported}:\n{}",
        out.stderr
    );
    assert!(out.stderr.contains("shutdown timeout"), "{}", out.stderr);
    assert_no_secrets(&emu, &out);
}

#[test]
fn memory_stays_bounded_through_a_long_outage() {
    // 1.5 million matching lines (about 100 MB) while DingTalk is down: the pending state is
    // one count and a few sample lines, so the process stays small.
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN).secret(SECRET)]);
    emu.set_outage(true);
    let env = env(&emu, "");
    let mut run = env.start(&["run", "--shutdown-timeout", "200ms"]);
    let mut stdin = run.stdin();
    let line = b"2026-11-29 10:00:00.000 ERROR 1 --- [exec-1] c.e.Service : request failed, upstream said no\n";
    let block: Vec<u8> = line
        .iter()
        .copied()
        .cycle()
        .take(line.len() * 10_000)
        .collect();
    for _ in 0..150 {
        stdin.write_all(&block).unwrap();
    }
    drop(stdin);
    let out = run.wait();
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("1500000 matching line(s) not delivered"),
        "{}",
        out.stderr
    );
    let rss_mib = out.max_rss_kib / 1024;
    assert!(rss_mib < 48, "peak RSS {rss_mib} MiB");
    eprintln!("peak RSS through the outage: {rss_mib} MiB");
}

#[test]
fn a_per_robot_proxy_carries_the_requests() {
    // The webhook names a host that does not exist; only the proxy (the emulator, which also
    // answers absolute-form requests) can deliver it.
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN).secret(SECRET)]);
    let proxied = format!(
        "robots:\n  ops:\n    webhook: \"http://dingtalk.invalid/robot/send?access_token={TOKEN}\"\n    secret: \"{SECRET}\"\n    proxy: \"{}\"\nrules:\n{RULE}",
        emu.base_url()
    );
    let out = TestEnv::new()
        .config(&proxied)
        .run(&["run"], b"ERROR via proxy\n");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(emu.delivered_to(TOKEN), 1);
}

#[test]
fn http_proxy_from_the_environment_is_honoured() {
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN)]);
    let yaml = format!(
        "robots:\n  ops:\n    webhook: \"http://dingtalk.invalid/robot/send?access_token={TOKEN}\"\nrules:\n{RULE}"
    );
    let out = TestEnv::new()
        .config(&yaml)
        .env("HTTP_PROXY", &emu.base_url())
        .run(&["run"], b"ERROR via env proxy\n");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(emu.delivered_to(TOKEN), 1);
}

#[test]
fn secrets_can_come_from_files_and_loose_permissions_are_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN).secret(SECRET)]);
    let env = TestEnv::new();
    let dir = env.dir().to_owned();
    std::fs::write(dir.join("webhook"), format!("{}\n", emu.webhook(TOKEN))).unwrap();
    std::fs::write(dir.join("secret"), format!("{SECRET}\n")).unwrap();
    std::fs::set_permissions(dir.join("webhook"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(dir.join("secret"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let yaml = format!(
        "robots:\n  ops:\n    webhook_file: {}\n    secret_file: secret\nrules:\n{RULE}",
        dir.join("webhook").display()
    );
    let env = env.config(&yaml);
    let out = env.run(&["run"], b"ERROR from a file-configured robot\n");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(emu.delivered_to(TOKEN), 1);
    assert!(
        out.stderr.contains("field 'secret_file'") && out.stderr.contains("chmod 600"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("field 'webhook_file'"),
        "{}",
        out.stderr
    );
    assert_no_secrets(&emu, &out);

    let both = format!(
        "robots:\n  ops:\n    webhook: \"{}\"\n    webhook_file: webhook\n",
        emu.webhook(TOKEN)
    );
    let out = TestEnv::new().config(&both).run(&["check"], b"");
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("not both"), "{}", out.stderr);
    assert!(!out.stderr.contains(TOKEN));
}

#[test]
fn a_skewed_clock_is_named_as_the_cause() {
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN).secret(SECRET)]);
    emu.set_clock_offset_ms(2 * 3_600_000);
    let out = env(&emu, "").run(&["run"], b"ERROR late\n");
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("invalid timestamp"), "{}", out.stderr);
    assert!(out.stderr.contains("host clock"), "{}", out.stderr);
}

#[test]
fn fallback_cycles_and_unknown_fallbacks_are_config_errors() {
    let yaml = r#"robots:
  a: { webhook: "http://127.0.0.1:1/robot/send?access_token=x", fallback: b }
  b: { webhook: "http://127.0.0.1:1/robot/send?access_token=y", fallback: a }
  c: { webhook: "http://127.0.0.1:1/robot/send?access_token=z", fallback: nobody }
defaults: { robot: a }
"#;
    let out = TestEnv::new().config(yaml).run(&["check"], b"");
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("robot 'a', field 'fallback': fallbacks form a cycle"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("robot 'c', field 'fallback': unknown robot `nobody`"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_second_signal_exits_at_once() {
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN).secret(SECRET)]);
    emu.set_outage(true);
    let env = env(&emu, "");
    // an hour to deliver: only the second signal can end it within the test's run limit
    let mut run = env.start(&["run", "--shutdown-timeout", "1h"]);
    let mut stdin = run.stdin();
    writeln!(stdin, "ERROR stuck").unwrap();
    stdin.flush().unwrap();
    // read and failing to be delivered
    emu.wait_for_requests(1, WAIT_LIMIT);
    run.signal(libc::SIGTERM);
    run.wait_for("shutdown requested");
    run.signal(libc::SIGINT);
    let out = run.wait();
    drop(stdin);
    assert_eq!(out.code, 130, "{}", out.stderr);
    assert!(out.stderr.contains("second signal"), "{}", out.stderr);
}

#[test]
fn no_proxy_bypasses_the_environment_proxy() {
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN)]);
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let yaml = format!(
        "robots:\n  ops:\n    webhook: \"{}\"\nrules:\n{RULE}",
        emu.webhook(TOKEN)
    );
    let out = TestEnv::new()
        .config(&yaml)
        .env("HTTP_PROXY", &format!("http://127.0.0.1:{dead}"))
        .env("NO_PROXY", "127.0.0.1")
        .run(&["run"], b"ERROR direct\n");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(emu.delivered_to(TOKEN), 1);
}
