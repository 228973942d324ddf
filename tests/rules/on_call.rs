//! Rules for on-call (thresholds, grouping, templates, mentions, several robots, markdown,
//! absence) through the real binary, against the DingTalk emulator.

use crate::support::emulator::{Emulator, RobotSpec};
use crate::support::env::{TestEnv, header_counts};

const OPS: &str = "tok-ops";
const SEC: &str = "tok-security";

fn config(emu: &Emulator, rules: &str) -> String {
    format!(
        r#"robots:
  ops: {{ webhook: "{}" }}
  security: {{ webhook: "{}" }}
defaults:
  robot: ops
  window: 100ms
  mention:
    critical: {{ mobiles: ["13800000000"] }}
rules:
{rules}"#,
        emu.webhook(OPS),
        emu.webhook(SEC)
    )
}

#[test]
fn threshold_group_by_template_mentions_and_two_robots() {
    let emu = Emulator::start(vec![RobotSpec::new(OPS), RobotSpec::new(SEC)]);
    let rules = r#"  - name: ssh-bruteforce
    match: 'Failed password for (invalid user )?(?P<user>\S+) from (?P<ip>[\d.]+)'
    severity: critical
    threshold: { count: 3, within: 1m }
    group_by: [ip]
    template: "{ip} tried {count} passwords, last user {user}\n{lines}"
    max_lines: 2
    robot: [ops, security]
  - name: disk
    match: 'No space left'
    msgtype: markdown
"#;
    let env = TestEnv::new().config(&config(&emu, rules));
    let mut input = String::new();
    for i in 0..4 {
        input.push_str(&format!(
            "sshd[1]: Failed password for invalid user u{i} from 10.0.0.5 port 22 ssh2\n"
        ));
    }
    input.push_str("sshd[1]: Failed password for root from 10.0.0.9 port 22 ssh2\n");
    input.push_str("sshd[1]: Failed password for root from 10.0.0.9 port 22 ssh2\n");
    input.push_str("app: write failed: No space left on device [@opslead](x)\n");
    let out = env.run(&["run"], input.as_bytes());
    assert_eq!(out.code, 0, "{}", out.stderr);

    let posts = emu.posts();
    let to = |token: &str| -> Vec<_> { posts.iter().filter(|p| p.token == token).collect() };
    // 10.0.0.5 met the threshold: both robots get it; 10.0.0.9 stayed below it
    for token in [OPS, SEC] {
        let ssh: Vec<_> = to(token)
            .into_iter()
            .filter(|p| p.text().contains("ssh-bruteforce"))
            .collect();
        assert_eq!(ssh.len(), 1, "{token}: {posts:#?}");
        let text = ssh[0].text();
        assert_eq!(
            header_counts(&text),
            [("ssh-bruteforce".to_owned(), 4)],
            "{text}"
        );
        assert!(
            text.starts_with("【ssh-bruteforce】×4 test-host · critical · ip=10.0.0.5\n10.0.0.5 tried 4 passwords, last user u3\n> "),
            "{text}"
        );
        assert!(text.contains("… 2 more not shown"), "{text}");
        assert!(text.contains("@13800000000"), "{text}");
        assert_eq!(ssh[0].body["at"]["atMobiles"][0], "13800000000");
        assert!(!text.contains("10.0.0.9"), "{text}");
    }
    // the markdown rule went to the default robot only, its line defused
    let md: Vec<_> = to(OPS)
        .into_iter()
        .filter(|p| p.msgtype().as_deref() == Some("markdown"))
        .collect();
    assert_eq!(md.len(), 1, "{posts:#?}");
    let text = md[0].text();
    assert!(text.contains("＠opslead"), "{text}");
    assert!(!text.contains("[@"), "{text}");
    assert_eq!(md[0].body["markdown"]["title"], "disk ×1");
    assert!(to(SEC).iter().all(|p| !p.text().contains("disk")));
    assert!(
        out.stderr.contains("below threshold") && out.stderr.contains("ssh-bruteforce 2"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_input_without_the_heartbeat_alerts_at_its_end() {
    let emu = Emulator::start(vec![RobotSpec::new(OPS), RobotSpec::new(SEC)]);
    let rules = r#"  - name: heartbeat
    absent: { match: 'heartbeat ok', for: 1m }
    severity: critical
  - name: other-beat
    absent: { match: 'pong', for: 1m }
"#;
    let env = TestEnv::new().config(&config(&emu, rules));
    let out = env.run(&["run"], b"pong\nsomething else\n");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let posts = emu.posts();
    assert_eq!(posts.len(), 1, "{posts:#?}");
    let text = posts[0].text();
    assert!(
        text.starts_with(
            "【heartbeat】absent test-host · critical\nno line matched `heartbeat ok` for 1m"
        ),
        "{text}"
    );
    assert_eq!(posts[0].body["at"]["atMobiles"][0], "13800000000");
}

#[test]
fn check_lists_every_rule_mistake_with_file_and_line() {
    let env = TestEnv::new().config(
        "rules:\n  - name: a\n    match: '(?P<ip>x)'\n    group_by: [host]\n    severity: bad\n  - name: b\n    absent: { match: y, for: forever }\n",
    );
    env.run(&["check"], b"").assert_problems(&[
        &["rules.yaml:4:", "field 'group_by'"],
        &["rules.yaml:5:", "field 'severity'"],
        &["rules.yaml:7:", "field 'absent.for'"],
    ]);
}
