//! `new_patterns:` through the real binary and the DingTalk emulator: a new template alerts
//! once (every line of its window counted), a repeat within `for` does not, a restart remembers
//! what is known (`new_patterns.json` in the state directory), and a corrupt memory file is kept
//! aside with one warning.
//!
//! The runs read stdin. A rule `mark` matches the marker lines the test writes: its message is
//! the signal that every line before the marker went through the pipeline.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::support::emulator::{Emulator, RobotSpec};
use crate::support::env::{TestEnv, header_counts, wait_until};

const TOKEN: &str = "tok-newpatterns01234";

fn emulator() -> Emulator {
    Emulator::start(vec![
        RobotSpec::new(TOKEN).rate(1000, Duration::from_secs(1)),
    ])
}

fn config(emu: &Emulator) -> String {
    format!(
        r#"robots:
  ops:
    webhook: "{}"
    rate: 1000/1s
defaults:
  window: 200ms
rules:
  - name: mark
    match: 'MARK'
new_patterns:
  match: '(?i)error|exception'
  for: 30d
"#,
        emu.webhook(TOKEN)
    )
}

/// `(rule, count)` of every header so far.
fn headers(emu: &Emulator) -> Vec<(String, u64)> {
    emu.posts()
        .iter()
        .flat_map(|p| header_counts(&p.text()))
        .collect()
}

fn count(emu: &Emulator, rule: &str) -> usize {
    headers(emu).iter().filter(|(r, _)| r == rule).count()
}

fn texts(emu: &Emulator) -> String {
    emu.posts().iter().map(|p| p.text() + "\n").collect()
}

fn templates(state: &Path) -> Vec<String> {
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("new_patterns.json")).unwrap()).unwrap();
    file["templates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["template"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_new_template_alerts_once_a_repeat_does_not_and_a_restart_remembers_it() {
    let emu = emulator();
    let env = TestEnv::new().config(&config(&emu));
    let state = env.dir().join("state");
    let state_arg = state.to_str().unwrap();

    // One process: the first sighting alerts with every line of its window, a repeat after
    // the window is known.
    let mut run = env.start(&["run", "--state-dir", state_arg]);
    let mut stdin = run.stdin();
    stdin
        .write_all(
            b"2026-11-29 10:44:54 ERROR db 10.0.0.5:5432 timeout after 3000 ms\n\
              2026-11-29 10:44:55 ERROR db 10.0.0.9:5432 timeout after 12 ms\n\
              2026-11-29 10:44:55 INFO all fine\n",
        )
        .unwrap();
    stdin.flush().unwrap();
    wait_until("the new template's alert", || count(&emu, "new-error") == 1);
    stdin
        .write_all(b"2026-11-29 10:45:10 ERROR db 10.0.0.7:5432 timeout after 1 ms\nMARK 1\n")
        .unwrap();
    stdin.flush().unwrap();
    wait_until("the first marker", || count(&emu, "mark") == 1);
    drop(stdin);
    let out = run.wait();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = texts(&emu);
    assert_eq!(count(&emu, "new-error"), 1, "{text}");
    assert!(
        headers(&emu).contains(&("new-error".to_owned(), 2)),
        "the window's two lines: {text}"
    );
    assert!(
        text.contains("template=<TIME> ERROR db <IP> timeout after <NUM> ms"),
        "{text}"
    );
    assert!(
        text.contains("> 2026-11-29 10:44:54 ERROR db 10.0.0.5:5432 timeout after 3000 ms"),
        "one example line: {text}"
    );
    assert_eq!(
        templates(&state),
        ["<TIME> ERROR db <IP> timeout after <NUM> ms"]
    );

    // A restart on the same state directory: the known template stays quiet, a new one alerts.
    let out = env.run(
        &["run", "--state-dir", state_arg],
        b"2026-11-30 08:00:00 ERROR db 10.1.1.1:5432 timeout after 77 ms\n\
          2026-11-30 08:00:01 java.lang.IllegalStateException: pool closed\n\
          MARK 2\n",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("new-pattern memory restored"),
        "{}",
        out.stderr
    );
    let text = texts(&emu);
    assert_eq!(count(&emu, "new-error"), 2, "{text}");
    assert!(
        text.contains("template=<TIME> java.lang.IllegalStateException: pool closed"),
        "{text}"
    );
    assert_eq!(templates(&state).len(), 2);
}

#[test]
fn a_corrupt_memory_is_kept_aside_with_one_warning_and_the_last_good_copy_used() {
    let emu = emulator();
    let env = TestEnv::new().config(&config(&emu));
    let state = env.dir().join("state");
    let state_arg = state.to_str().unwrap();
    let line = b"ERROR disk /dev/sda1 is full\n";
    let out = env.run(&["run", "--state-dir", state_arg], line);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // a second run writes the file again: the first one's is the last good copy
    let out = env.run(&["run", "--state-dir", state_arg], b"MARK\n");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(count(&emu, "new-error"), 1, "{}", texts(&emu));
    std::fs::write(state.join("new_patterns.json"), b"{\"version\":1,\"templ").unwrap();

    let out = env.run(&["run", "--state-dir", state_arg], line);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stderr
            .matches("new-pattern memory")
            .filter(|_| true)
            .count()
            - out.stderr.matches("new-pattern memory restored").count(),
        1,
        "one warning: {}",
        out.stderr
    );
    assert!(out.stderr.contains("is corrupt"), "{}", out.stderr);
    assert!(state.join("new_patterns.json.corrupt").exists());
    // the last good copy knew the template: no second alert
    assert_eq!(count(&emu, "new-error"), 1, "{}", texts(&emu));
    assert_eq!(templates(&state), ["ERROR disk <PATH> is full"]);
}
