//! Output for people, through a real pseudo-terminal (util-linux `script`), against the same
//! commands piped: on a terminal messages and matches are rendered and coloured; piped, or with
//! `--format json`, the output is the machine form, byte for byte.

use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_dingtail");
const ESC: char = '\u{1b}';

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs `dingtail ARGS < input` with stdout and stderr on a pseudo-terminal; returns what the
/// terminal showed (with `\r\n` made `\n`).
fn on_terminal(dir: &Path, args: &[&str], input: &Path) -> String {
    let found = Command::new("sh")
        .args(["-c", "command -v script"])
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "`script` (util-linux) is needed for terminal tests"
    );
    let cmd = format!(
        "{} {} < {}",
        sh_quote(BIN),
        args.iter()
            .map(|a| sh_quote(a))
            .collect::<Vec<_>>()
            .join(" "),
        sh_quote(&input.display().to_string())
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(dir)
        .env_remove("DINGTAIL_CONFIG")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .env("DINGTAIL_HOST", "web-01")
        .env("TERM", "xterm-256color")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "script: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n")
}

fn piped(dir: &Path, args: &[&str], input: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("DINGTAIL_CONFIG")
        .env("DINGTAIL_HOST", "web-01")
        .stdin(std::fs::File::open(input).unwrap())
        .output()
        .unwrap()
}

const SAMPLE: &str = "starting\n\
    2026-11-29 10:00:00 ERROR payment failed for order 17\n\
    ok\n\
    thread 'main' panicked at src/main.rs:3:5\n\
    2026-11-29 10:00:01 ERROR payment failed for order 18\n";

fn sample(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("app.log");
    std::fs::write(&p, SAMPLE).unwrap();
    p
}

/// Times and message ids differ from run to run; everything else must not.
fn normalise(text: &str) -> String {
    let time = regex::Regex::new(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d").unwrap();
    let uuid = regex::Regex::new(r#""msgUuid":"[^"]+""#).unwrap();
    uuid.replace_all(&time.replace_all(text, "T"), r#""msgUuid":"U""#)
        .into_owned()
}

#[test]
fn dry_run_on_a_terminal_shows_messages_as_dingtalk_would() {
    let dir = tempfile::tempdir().unwrap();
    let input = sample(dir.path());
    let shown = on_terminal(dir.path(), &["run", "--dry-run"], &input);
    assert!(shown.contains(ESC), "no colour on a terminal: {shown:?}");
    let plain = strip_ansi(&shown);
    assert!(
        plain.contains("━━ robot (none: printing only) · rules error, panic · 3 lines · text"),
        "{plain}"
    );
    assert!(plain.contains("【error】×2 web-01"), "{plain}");
    assert!(
        plain.contains("│ 2026-11-29 10:00:01 ERROR payment failed for order 18"),
        "{plain}"
    );
    assert!(
        !plain.contains("\"msgUuid\""),
        "JSON on a terminal: {plain}"
    );
    // The summary still goes to stderr (the same terminal here).
    assert!(plain.contains("messages: 1 printed"), "{plain}");

    // NO_COLOR: the same rendering, no escape codes.
    let out = Command::new("script")
        .args([
            "-qec",
            &format!(
                "{} run --dry-run < {}",
                sh_quote(BIN),
                sh_quote(&input.display().to_string())
            ),
            "/dev/null",
        ])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .env("DINGTAIL_HOST", "web-01")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains(ESC), "{text:?}");
    assert!(text.contains("【error】×2 web-01"), "{text}");
}

#[test]
fn dry_run_piped_or_json_is_the_json_lines_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let input = sample(dir.path());
    let out = piped(dir.path(), &["run", "--dry-run"], &input);
    assert!(out.status.success());
    let pipe = String::from_utf8(out.stdout).unwrap();
    // The machine form: one JSON object per message, nothing else.
    for line in pipe.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["count"], 3);
    }
    assert!(!pipe.contains(ESC));
    // --format json on a terminal prints exactly what the pipe got (times and ids aside; the
    // summary line on stderr shares the terminal, so only the JSON lines are compared).
    let shown = on_terminal(
        dir.path(),
        &["run", "--dry-run", "--format", "json"],
        &input,
    );
    let json_lines: String = shown
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(!shown.contains(ESC), "{shown:?}");
    assert_eq!(normalise(&json_lines), normalise(&pipe));
    // --format text piped: the rendering, without colour.
    let out = piped(
        dir.path(),
        &["run", "--dry-run", "--format", "text"],
        &input,
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("━━ robot (none: printing only)"), "{text}");
    assert!(!text.contains(ESC));
}

#[test]
fn test_on_a_terminal_highlights_the_match_and_prints_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let input = sample(dir.path());
    let shown = on_terminal(dir.path(), &["test"], &input);
    // The matched part of the line is set off by escape codes; the rest is not.
    assert!(
        shown.contains(&format!(
            "{ESC}[31m ERROR {ESC}[0mpayment failed for order 17"
        )) || shown.contains(&format!("{ESC}[1m{ESC}[31m ERROR {ESC}[0mpayment")),
        "{shown:?}"
    );
    let plain = strip_ansi(&shown);
    assert!(
        plain.contains("error  2026-11-29 10:00:00 ERROR payment failed for order 17"),
        "{plain}"
    );
    assert!(
        plain.contains("rule             lines     share"),
        "{plain}"
    );
    assert!(
        plain.contains("error                2    40.00%"),
        "{plain}"
    );
    assert!(
        plain.contains("3 of 5 lines matched at least one rule"),
        "{plain}"
    );

    // Piped: the tab-separated form scripts read.
    let out = piped(dir.path(), &["test"], &input);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("error\t2026-11-29 10:00:00 ERROR payment failed for order 17\n"),
        "{text}"
    );
    assert!(!text.contains(ESC) && !text.contains("share"));
}

#[test]
fn replay_on_a_terminal_renders_each_message_with_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let input = sample(dir.path());
    let shown = strip_ansi(&on_terminal(dir.path(), &["test", "--replay"], &input));
    assert!(
        shown.contains("· robot (none: printing only) · rules error, panic · 3 lines · text")
            || shown.contains("· robot (none: printing only) · rule error · 2 lines · text"),
        "{shown}"
    );
    assert!(shown.contains("│ thread 'main' panicked"), "{shown}");
    assert!(shown.contains("=== "), "{shown}");
    let out = piped(dir.path(), &["test", "--replay"], &input);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("--- "), "{text}");
}

#[test]
fn progress_bar_only_on_a_terminal_and_only_for_large_files() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.log");
    let line = "2026-11-29 10:00:00 INFO all is well, nothing to see here at all\n";
    let lines = (4 << 20) / line.len() + 1;
    let mut text = line.repeat(lines);
    text.push_str("2026-11-29 10:00:01 ERROR the one\n");
    std::fs::write(&big, &text).unwrap();
    let shown = on_terminal(dir.path(), &["test"], &big);
    let plain = strip_ansi(&shown);
    assert!(plain.contains(" hits"), "no progress bar: {plain}");
    assert!(plain.contains("MiB"), "{plain}");
    assert!(plain.contains("1 of "), "{plain}");
    // Piped stderr: no bar.
    let out = piped(dir.path(), &["test"], &big);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A small file on a terminal: no bar either.
    let input = sample(dir.path());
    assert!(!strip_ansi(&on_terminal(dir.path(), &["test"], &input)).contains(" hits"));
}

fn strip_ansi(s: &str) -> String {
    let re = regex::Regex::new(r"\x1b\[[0-9;?]*[A-Za-z]").unwrap();
    re.replace_all(s, "").into_owned()
}

/// `run --once --from-beginning` over a large file shows the bar on a terminal (and clears it
/// before the summary), and never when stderr is piped.
#[test]
fn run_once_over_a_large_file_shows_progress_only_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.log");
    let line = "2026-11-29 10:00:00 INFO all is well, nothing to see here at all\n";
    let mut text = line.repeat((4 << 20) / line.len() + 1);
    text.push_str("2026-11-29 10:00:01 ERROR the one\n");
    std::fs::write(&big, &text).unwrap();
    let path = big.display().to_string();
    let args = [
        "run",
        "--dry-run",
        "--once",
        "--from-beginning",
        "--state-dir",
        "state",
        &path,
    ];
    let shown = strip_ansi(&on_terminal(dir.path(), &args, Path::new("/dev/null")));
    assert!(shown.contains(" hits"), "no progress bar: {shown}");
    assert!(shown.contains("MiB"), "{shown}");
    assert!(
        shown.contains("dingtail: read "),
        "the summary follows: {shown}"
    );
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir.path())
        .env_remove("DINGTAIL_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains(" hits"), "{stderr}");
    assert!(stderr.contains("dingtail: read "), "{stderr}");
}
