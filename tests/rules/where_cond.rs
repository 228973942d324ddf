//! `where:` through the real binary and the DingTalk emulator: only matched lines whose JSON
//! fields and captures satisfy the condition are counted.

use crate::support::emulator::{Emulator, RobotSpec};
use crate::support::env::TestEnv;

const TOKEN: &str = "tok-ops";

#[test]
fn where_filters_matched_lines_on_json_fields_and_captures() {
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN)]);
    let config = format!(
        r#"robots:
  ops: {{ webhook: "{}" }}
defaults:
  window: 100ms
rules:
  - name: slow-5xx
    match: '"status"'
    where: 'status >= 500 and (latency_ms > 1000 or path == "/pay")'
  - name: slow-text
    match: 'took (?P<ms>\d+)ms'
    where: 'not ms <= 1000'
"#,
        emu.webhook(TOKEN)
    );
    let env = TestEnv::new().config(&config);
    let input = [
        r#"{"status": 503, "latency_ms": 1500, "path": "/a"}"#, // hit
        r#"{"status": 503, "latency_ms": 20, "path": "/pay"}"#, // hit
        r#"{"status": 503, "latency_ms": 20, "path": "/a"}"#,   // fast
        r#"{"status": 200, "latency_ms": 9000, "path": "/pay"}"#, // ok status
        r#"{"status": "oops", "latency_ms": 9000}"#,            // not a number
        r#"{"latency_ms": 9000, "note": "status"}"#,            // missing field
        r#"not json "status" 503"#,                             // no fields at all
        "GET /a took 1500ms",                                   // hit
        "GET /b took 999ms",
        "GET /c took 10000ms", // hit: 10000 > 1000 as a number, though "10000" < "1000" as text
    ]
    .join("\n")
        + "\n";
    let out = env.run(&["run"], input.as_bytes());
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        emu.counts(),
        [("slow-5xx".to_owned(), 2), ("slow-text".to_owned(), 2)],
        "{:#?}",
        emu.posts()
    );
}

#[test]
fn check_names_a_bad_where_with_file_line_rule_and_field() {
    let env = TestEnv::new().config(
        "rules:\n  - name: a\n    match: x\n    where: 'status = 500'\n  - name: b\n    match: y\n    where: 'status >= 500 and'\n",
    );
    env.run(&["check"], b"").assert_problems(&[
        &[
            "rules.yaml:4:",
            "rule 'a', field 'where'",
            "character 8",
            "==",
        ],
        &["rules.yaml:7:", "rule 'b', field 'where'"],
    ]);
}
