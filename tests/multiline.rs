//! Multi-line events through the real binary on every reader that is not a followed file
//! (those are in `tests/follow.rs`): standard input (`stdin.multiline`) and `test --replay`,
//! which must gather, count and quote an event as `run` does.

mod support;

use std::io::Write;

use support::emulator::{Emulator, RobotSpec};
use support::env::{TestEnv, WAIT_LIMIT};

/// Three events: an INFO line, an ERROR with a stack trace (two lines say `Exception`), an
/// INFO line; seven lines.
const TRACE: &str = "2024-05-01 10:00:00 INFO started\n\
                     2024-05-01 10:00:01 ERROR request failed\n\
                     java.lang.IllegalStateException: boom\n\
                     \tat com.shop.Pay.charge(Pay.java:42)\n\
                     \tat com.shop.Api.handle(Api.java:7)\n\
                     Caused by: java.net.SocketTimeoutException: timeout\n\
                     2024-05-01 10:00:02 INFO next\n";

/// The lines of the ERROR event, in order.
const EVENT: [&str; 5] = [
    "2024-05-01 10:00:01 ERROR request failed",
    "java.lang.IllegalStateException: boom",
    "\tat com.shop.Pay.charge(Pay.java:42)",
    "\tat com.shop.Api.handle(Api.java:7)",
    "Caused by: java.net.SocketTimeoutException: timeout",
];

const RULE: &str = "rules:\n  - { name: exc, match: 'Exception', window: 1h }\n";

/// The text of a message, as `--dry-run` prints it.
fn text(message: &serde_json::Value) -> String {
    message["body"]["text"]["content"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {message}"))
        .to_owned()
}

/// The event's lines quoted in order, one per line (the later ones indented).
fn quotes_the_event(text: &str) -> bool {
    let mut want = format!("> {}", EVENT[0]);
    for line in &EVENT[1..] {
        want.push_str(&format!("\n  {line}"));
    }
    text.contains(&want)
}

#[test]
fn a_stack_trace_on_stdin_is_one_message_quoting_all_its_lines() {
    let env = TestEnv::new().config(&format!(
        "stdin:\n  multiline: {{ start: '^\\d{{4}}-\\d\\d-\\d\\d ' }}\n{RULE}"
    ));
    let out = env.run(&["run", "--dry-run"], TRACE.as_bytes());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let messages = out.dry_run_lines();
    assert_eq!(messages.len(), 1, "{}", out.stdout);
    assert_eq!(
        messages[0]["count"], 1,
        "the event counts once: {}",
        out.stdout
    );
    let text = text(&messages[0]);
    assert!(quotes_the_event(&text), "{text}");
    assert!(
        out.stderr.contains("read 7 lines as 3 events"),
        "{}",
        out.stderr
    );

    // The same setting given as the `-` input's.
    let env = TestEnv::new().config(&format!(
        "inputs:\n  - path: '-'\n    multiline: {{ start: '^\\d{{4}}-' }}\n{RULE}"
    ));
    let out = env.run(&["run", "--dry-run"], TRACE.as_bytes());
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.dry_run_lines()[0]["count"], 1, "{}", out.stdout);

    // Without it, every line is an event: two of them say Exception.
    let env = TestEnv::new().config(RULE);
    let out = env.run(&["run", "--dry-run"], TRACE.as_bytes());
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.dry_run_lines()[0]["count"], 2, "{}", out.stdout);
}

#[test]
fn a_stack_trace_in_an_open_pipe_ends_by_its_timeout() {
    const TOKEN: &str = "tok-multiline-0123456789";
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN)]);
    let env = TestEnv::new().config(&format!(
        "robots:\n  ops: {{ webhook: '{}' }}\n\
         stdin:\n  multiline: {{ start: '^\\d{{4}}-', timeout: 100ms }}\n\
         rules:\n  - {{ name: exc, match: 'Exception', window: 100ms }}\n",
        emu.webhook(TOKEN)
    ));
    let mut run = env.start(&["run"]);
    let mut stdin = run.stdin();
    // The ERROR event, and no next start line: only its timeout can end it while the pipe
    // stays open.
    let lines: String = EVENT.iter().map(|l| format!("{l}\n")).collect();
    stdin.write_all(lines.as_bytes()).unwrap();
    stdin.flush().unwrap();
    let posts = emu.wait_for_posts(1, WAIT_LIMIT);
    assert_eq!(posts.len(), 1, "{}", run.stderr());
    assert!(quotes_the_event(&posts[0].text()), "{}", posts[0].text());
    drop(stdin);
    let out = run.wait();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("read 5 lines as 1 events"),
        "{}",
        out.stderr
    );
}

#[test]
fn replay_gathers_and_counts_events_as_the_run_does() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    // The trace twice, an hour apart: two messages of one event each.
    let later = TRACE.replace("2024-05-01 10:", "2024-05-01 11:");
    std::fs::write(&log, format!("{TRACE}{later}")).unwrap();
    let env = TestEnv::new().env("TZ", "UTC").config(&format!(
        "inputs:\n  - path: '{}'\n    multiline: {{ start: '^\\d{{4}}-\\d\\d-\\d\\d ' }}\n\
         timestamp: {{ regex: '^(\\S+ \\S+)', format: '%Y-%m-%d %H:%M:%S' }}\n\
         rules:\n  - {{ name: exc, match: 'Exception', window: 1m }}\n",
        log.display()
    ));
    let replay = env.run(&["test", "--replay", log.to_str().unwrap()], b"");
    assert_eq!(replay.code, 0, "{}", replay.stderr);
    assert!(
        replay
            .stdout
            .contains("=== 2 message(s), 2 matching event(s) in them"),
        "{}",
        replay.stdout
    );
    assert!(quotes_the_event(&replay.stdout), "{}", replay.stdout);

    // `run` over the same input counts the same events.
    let run = env.run(&["run", "--dry-run", "--once", "--from-beginning"], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let counted: u64 = (run.dry_run_lines().iter())
        .map(|m| m["count"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, 2, "{}", run.stdout);
    assert!(run.stderr.contains("matches: exc 2"), "{}", run.stderr);
    assert!(
        run.stderr.contains("read 14 lines as 6 events"),
        "{}",
        run.stderr
    );
}
