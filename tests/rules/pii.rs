//! `redact:` through the real binary and the DingTalk emulator: personal data in a log line
//! never reaches a request body, while the rule still matches and counts every line.

use crate::support::emulator::{Emulator, RobotSpec};
use crate::support::env::{TestEnv, header_counts};

const TOKEN: &str = "tok-ops";

/// Values that must never leave the machine (each is valid: checksum, Luhn, scheme).
const SECRETS: [&str; 6] = [
    "13812345678",
    "11010519491231002X",
    "6222021234567894",
    "zhang.san@example.com",
    "eyJhbGciOiJIUzI1NiJ9",
    "hunter2",
];

fn log() -> String {
    let mut input = String::new();
    for i in 0..3 {
        input.push_str(&format!(
            "payment failed order={i}0042 user=13812345678 id=11010519491231002X card=6222021234567894 mail=zhang.san@example.com auth='Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln' password=hunter2\n"
        ));
    }
    input.push_str("payment ok user=13912345678\n");
    input
}

fn every_body(emu: &Emulator) -> String {
    emu.requests()
        .iter()
        .map(|r| r.body.as_ref().map(|b| b.to_string()).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn personal_data_in_a_log_line_never_reaches_dingtalk_but_the_rule_matches() {
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN)]);
    let config = format!(
        r#"robots:
  ops: {{ webhook: "{}" }}
defaults:
  window: 100ms
rules:
  - name: payment
    match: 'payment failed order=\d+ user=(?P<user>\d+)'
    group_by: [user]
    template: "user {{user}} failed {{count}} times\n{{lines}}"
"#,
        emu.webhook(TOKEN)
    );
    let env = TestEnv::new().config(&config);
    let out = env.run(&["run"], log().as_bytes());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let posts = emu.posts();
    assert_eq!(posts.len(), 1, "{posts:#?}");
    let text = posts[0].text();
    // The rule matched all three lines (the mobile number is what it captured and grouped by).
    assert_eq!(header_counts(&text), [("payment".to_owned(), 3)], "{text}");
    assert!(text.contains("user=[mobile]"), "{text}");
    assert!(text.contains("user [mobile] failed 3 times"), "{text}");
    for masked in [
        "id=[id]",
        "card=[card]",
        "mail=[email]",
        "Bearer [secret]",
        "password=[secret]",
    ] {
        assert!(text.contains(masked), "{masked}: {text}");
    }
    assert!(
        text.contains("order=00042"),
        "ordinary numbers stay: {text}"
    );
    let bodies = every_body(&emu);
    for s in SECRETS {
        assert!(!bodies.contains(s), "{s} reached DingTalk: {bodies}");
    }
    for s in SECRETS {
        assert!(!out.stderr.contains(s), "{s} in stderr: {}", out.stderr);
    }
}

#[test]
fn builtins_turn_off_one_by_one_and_user_patterns_apply() {
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN)]);
    let config = format!(
        r#"robots:
  ops: {{ webhook: "{}" }}
defaults:
  window: 100ms
redact:
  builtins: {{ email: false }}
  patterns:
    - name: order
      regex: 'order=(\d)\d+'
      replace: 'order=${{1}}***'
rules:
  - name: payment
    match: 'payment failed'
"#,
        emu.webhook(TOKEN)
    );
    let env = TestEnv::new().config(&config);
    let out = env.run(&["run"], log().as_bytes());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = emu.posts()[0].text();
    assert_eq!(header_counts(&text), [("payment".to_owned(), 3)], "{text}");
    assert!(text.contains("mail=zhang.san＠example.com"), "{text}");
    assert!(
        text.contains("order=0***") && text.contains("order=1***"),
        "{text}"
    );
    assert!(text.contains("user=[mobile]"), "{text}");
}

#[test]
fn check_names_redact_mistakes_with_file_line_and_field() {
    let env = TestEnv::new().config(
        "redact:\n  builtins: { mobiles: false }\n  patterns:\n    - name: a\n      regex: '(x'\n    - name: b\n      regex: 'y*'\nrules:\n  - name: r\n    match: x\n",
    );
    env.run(&["check"], b"").assert_problems(&[
        &["rules.yaml:2:", "builtins.mobiles"],
        &["rules.yaml:5:", "field 'regex'"],
        &["rules.yaml:7:", "empty string"],
    ]);
}
