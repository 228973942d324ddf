//! Running dingtail for months: the metrics and health listener, reloads, silences, time
//! zones, mute windows and quiet hours, through the real binary. One test binary, a module
//! per concern.

#[path = "../support/mod.rs"]
mod support;

mod listener;
mod reload;
mod silences;
mod time_of_day;

use std::io::Write;
use std::process::{Command, Stdio};

const TOKEN: &str = "tok-0123456789abcdef";

/// promtool from Debian's `prometheus` package (.ci/run installs it); the test fails without it.
fn promtool_check(text: &str) {
    let promtool = ["promtool", "/usr/bin/promtool"]
        .into_iter()
        .find(|p| Command::new(p).arg("--version").output().is_ok())
        .expect("promtool not found: install Debian's `prometheus` package (.ci/run does)");
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A number in the summary line after `prefix` (`read `, `messages: `).
fn summary_number(stderr: &str, prefix: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("dingtail: read "))
        .unwrap_or_else(|| panic!("no summary in {stderr}"));
    let rest = &line[line
        .find(prefix)
        .unwrap_or_else(|| panic!("{prefix} in {line}"))
        + prefix.len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}
