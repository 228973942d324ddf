//! dingtail about itself (`self_alerts:`): a refused reload, a robot failing permanently (told
//! through another robot), a file that stays unreadable, a restart after a gap and a low
//! monthly budget, each reaching the emulator through the real binary, without a secret.

use std::time::SystemTime;

use crate::support::emulator::{Emulator, Fault, Post, RobotSpec};
use crate::support::env::TestEnv;

const OPS: &str = "tok-ops-5f1e2d3c4b5a";
const BACKUP: &str = "tok-backup-0a1b2c3d";
const SECRET: &str = "SEC0123456789abcdef0123456789abcdef";

fn config(emu: &Emulator, extra: &str) -> String {
    format!(
        "robots:\n  ops:\n    webhook: '{}'\n    secret: '${{OPS_SECRET}}'\n    retry: {{ recheck: 1s }}\n  backup:\n    webhook: '{}'\nself_alerts:\n  robot: ops\n{extra}rules:\n  - {{name: err, match: ERROR, window: 10ms, robot: ops}}\n",
        emu.base_url() + "/robot/send?access_token=${OPS_TOKEN}",
        emu.webhook(BACKUP),
    )
}

fn env_for(emu: &Emulator, extra: &str) -> TestEnv {
    TestEnv::new()
        .config(&config(emu, extra))
        .env("OPS_TOKEN", OPS)
        .env("OPS_SECRET", SECRET)
}

/// Waits for a post to `token` whose text contains `needle`.
fn wait_for_post(emu: &Emulator, token: &str, needle: &str) -> Post {
    let find = || {
        emu.posts()
            .into_iter()
            .find(|p| p.token == token && p.text().contains(needle))
    };
    let found = crate::support::env::poll_until(|| find().is_some());
    assert!(
        found,
        "no post to {token} with `{needle}`: {:?}",
        emu.posts().iter().map(|p| p.text()).collect::<Vec<_>>()
    );
    find().expect("found above")
}

fn no_secret_in(emu: &Emulator) {
    for p in emu.posts() {
        let body = p.body.to_string();
        for s in [OPS, SECRET, BACKUP] {
            assert!(!body.contains(s), "{s} in {body}");
        }
    }
}

#[test]
fn a_refused_reload_and_a_failing_robot_are_told_without_a_secret() {
    let emu = Emulator::start(vec![
        RobotSpec::new(OPS).secret(SECRET),
        RobotSpec::new(BACKUP),
    ]);
    let env = env_for(&emu, "");
    let mut run = env.start(&["run", "--listen", "127.0.0.1:0"]);
    // Listening comes after the SIGHUP handler is in place (the start line, before it: a
    // SIGHUP then would end the process).
    run.listen_addr();

    // A config that fails `check` (its robot's secret in it, to see it is not repeated).
    std::fs::write(
        env.config_path(),
        format!("robots:\n  ops:\n    webhook: '{}'\n    secret: '{SECRET}'\nrules:\n  - {{name: err, match: '(', window: 10ms}}\n", emu.webhook(OPS)),
    )
    .unwrap();
    run.signal(libc::SIGHUP);
    let told = wait_for_post(&emu, OPS, "config reload (SIGHUP) refused");
    let text = told.text();
    assert!(
        text.starts_with("【dingtail: config reload refused】notice test-host"),
        "{text}"
    );
    assert!(
        text.contains("rules.yaml:"),
        "the problem is quoted with its place: {text}"
    );

    // ops fails permanently (robot disabled): backup hears of it, then of its recovery.
    emu.push_fault(OPS, Fault::Errcode(400102, "robot disabled".into()));
    run.write(b"ERROR one\n");
    let told = wait_for_post(&emu, BACKUP, "robot ops fails permanently");
    assert!(told.text().contains("400102"), "{}", told.text());
    assert!(
        told.text()
            .starts_with("【dingtail: robot failing】notice test-host"),
        "{}",
        told.text()
    );
    // The recheck finds it working: the held alert arrives, and the news that it delivers again.
    wait_for_post(&emu, OPS, "ERROR one");
    wait_for_post(&emu, BACKUP, "robot ops delivers again");
    let stderr = run.finish().success().stderr;
    no_secret_in(&emu);
    assert!(
        !stderr.contains(SECRET) && !stderr.contains(OPS),
        "{stderr}"
    );
}

#[test]
fn a_file_unreadable_for_a_while_is_told_and_so_is_its_return() {
    let emu = Emulator::start(vec![
        RobotSpec::new(OPS).secret(SECRET),
        RobotSpec::new(BACKUP),
    ]);
    let env = env_for(&emu, "  unreadable_for: 1s\n");
    // The path is a directory: it cannot be read as a log.
    let env_dir = env.dir().join("app.log");
    std::fs::create_dir(&env_dir).unwrap();
    let run = env.start(&["run", env_dir.to_str().unwrap()]);
    let told = wait_for_post(&emu, OPS, "cannot read");
    let text = told.text();
    assert!(text.contains(env_dir.to_str().unwrap()), "{text}");
    assert!(text.contains("is not a regular file"), "{text}");
    // It becomes a file: read again, and said so.
    std::fs::remove_dir(&env_dir).unwrap();
    std::fs::write(&env_dir, "ERROR in the new file\n").unwrap();
    wait_for_post(&emu, OPS, "is read again");
    run.signal(libc::SIGTERM);
    run.finish().success();
    no_secret_in(&emu);
}

#[test]
fn a_restart_after_a_gap_says_how_long_it_was_down_and_what_the_backlog_held() {
    let emu = Emulator::start(vec![
        RobotSpec::new(OPS).secret(SECRET),
        RobotSpec::new(BACKUP),
    ]);
    let env = env_for(&emu, "");
    let log = env.dir().join("app.log");
    std::fs::write(&log, "start\n").unwrap();
    let args = ["run", log.to_str().unwrap()];
    // First run: follows the file, checkpoints it, stops cleanly.
    let run = env.start(&args);
    run.wait_for("sending to");
    // Stop once the file is taken up (its checkpoint written), not before.
    let checkpoints = env.dir().join("state/checkpoints.json");
    let taken_up = crate::support::env::poll_until(|| {
        std::fs::read_to_string(&checkpoints).is_ok_and(|t| t.contains("app.log"))
    });
    assert!(taken_up, "{}", run.stderr());
    run.signal(libc::SIGTERM);
    run.finish().success();
    let beat = env.dir().join("state/heartbeat.json");
    let h: serde_json::Value = serde_json::from_slice(&std::fs::read(&beat).unwrap()).unwrap();
    assert!(h["stopped_at"].is_u64(), "{h}");

    // While it is down: 1,200 lines, 3 of them errors. The stop is made an hour ago.
    let mut text = String::new();
    for i in 0..1200 {
        text.push_str(if i % 400 == 7 { "ERROR x\n" } else { "fine\n" });
    }
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
        .unwrap();
    let hour_ago = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 3600;
    std::fs::write(
        &beat,
        format!("{{\"alive_at\":{hour_ago},\"stopped_at\":{hour_ago}}}"),
    )
    .unwrap();

    let run = env.start(&args);
    let told = wait_for_post(&emu, OPS, "restarted after a gap");
    let text = told.text();
    assert!(text.contains("down "), "{text}");
    assert!(text.contains("(1h"), "{text}");
    assert!(
        text.contains("1,200 lines of backlog read") && text.contains("1 rule fired: err"),
        "{text}"
    );
    wait_for_post(&emu, OPS, "【err】×3");
    run.signal(libc::SIGTERM);
    run.finish().success();
    no_secret_in(&emu);
}

#[test]
fn a_monthly_budget_running_low_is_told_once() {
    let emu = Emulator::start(vec![
        RobotSpec::new(OPS).secret(SECRET),
        RobotSpec::new(BACKUP),
    ]);
    let env = env_for(
        &emu,
        "  budget_low: 50%\nquota:\n  monthly: 8\n  reserve: 0\n",
    );
    let mut run = env.start(&["run"]);
    run.wait_for("sending to");
    for i in 0..4 {
        run.write(format!("ERROR {i}\n").as_bytes());
        wait_for_post(&emu, OPS, &format!("ERROR {i}"));
    }
    let told = wait_for_post(&emu, OPS, "monthly budget running low");
    assert!(
        told.text().contains("of 8 messages used"),
        "{}",
        told.text()
    );
    run.finish().success();
    let lows = emu
        .posts()
        .iter()
        .filter(|p| p.text().contains("monthly budget running low"))
        .count();
    assert_eq!(lows, 1);
}
