//! Routes, people groups, escalation and per-value absence through the real binary: `run`
//! against the DingTalk emulator, `test` and `test --replay` on a simulated clock, `check`.

use crate::support::emulator::{Emulator, RobotSpec};
use crate::support::env::{TestEnv, header_counts};
use crate::support::replay::{TIMESTAMP, replayed};

const OPS: &str = "tok-ops";
const PAY: &str = "tok-pay";
const DB: &str = "tok-db";

fn routed_config(emu: &Emulator) -> String {
    format!(
        r#"robots:
  ops: {{ webhook: "{}" }}
  pay-oncall: {{ webhook: "{}", keyword: "告警" }}
  db: {{ webhook: "{}" }}
defaults:
  robot: ops
  window: 100ms
people:
  payteam: {{ mobiles: ["13800000001"] }}
  dba: {{ mobiles: ["13800000002", "13800000003"] }}
routes:
  - name: payments
    when: 'service == "payment"'
    robot: pay-oncall
    mention: payteam
  - name: database
    when: 'team == "db" or severity == "critical"'
    robot: [db, ops]
    mention: dba
    rules: [json-errors, db-down]
rules:
  - name: app-errors
    match: 'ERROR service=(?P<service>\w+)'
  - name: json-errors
    match: '"level": "error"'
  - name: db-down
    match: 'database unreachable'
    severity: critical
"#,
        emu.webhook(OPS),
        emu.webhook(PAY),
        emu.webhook(DB)
    )
}

const ROUTED_INPUT: &str = "ERROR service=payment charge failed
ERROR service=search index stale
ERROR service=payment refund failed
{\"level\": \"error\", \"team\": \"db\", \"msg\": \"slow query\"}
{\"level\": \"error\", \"team\": \"web\", \"msg\": \"404 storm\"}
database unreachable
";

/// Each route's hits reach its robots with its people mentioned (written into the text as
/// `@mobile`, which DingTalk needs), every other hit the rule's own robot, counts exact.
#[test]
fn routes_pick_robots_and_mentions_by_captures_json_fields_and_severity() {
    let emu = Emulator::start(vec![
        RobotSpec::new(OPS),
        RobotSpec::new(PAY).keyword("告警"),
        RobotSpec::new(DB),
    ]);
    let env = TestEnv::new().config(&routed_config(&emu));
    let out = env.run(&["run"], ROUTED_INPUT.as_bytes());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let posts = emu.posts();
    let by = |token: &str| -> Vec<(String, u64)> {
        let mut c: Vec<(String, u64)> = (posts.iter())
            .filter(|p| p.token == token)
            .flat_map(|p| header_counts(&p.text()))
            .collect();
        c.sort();
        c
    };
    let s = |n: &str, c: u64| (n.to_owned(), c);
    assert_eq!(by(PAY), [s("app-errors", 2)], "{posts:#?}");
    assert_eq!(by(DB), [s("db-down", 1), s("json-errors", 1)], "{posts:#?}");
    assert_eq!(
        by(OPS),
        [
            s("app-errors", 1),
            s("db-down", 1),
            s("json-errors", 1),
            s("json-errors", 1)
        ],
        "{posts:#?}"
    );
    for p in &posts {
        let text = p.text();
        let at: Vec<&str> = p.body["at"]["atMobiles"]
            .as_array()
            .map(|a| a.iter().filter_map(|m| m.as_str()).collect())
            .unwrap_or_default();
        // every mention is also written in the text, or DingTalk would not fire it
        for m in &at {
            assert!(text.contains(&format!("@{m}")), "{text}");
        }
        if p.token == PAY {
            assert_eq!(at, ["13800000001"], "{text}");
            assert!(text.contains("告警"), "the robot's keyword: {text}");
        }
        if p.token == DB {
            assert_eq!(at, ["13800000002", "13800000003"], "{text}");
        }
        if p.token == OPS {
            // the database route also goes to ops, with the DBAs; the default route names nobody
            let dba = text.contains("database unreachable") || text.contains("slow query");
            assert_eq!(at.contains(&"13800000002"), dba, "{text}");
            assert!(!at.contains(&"13800000001"), "{text}");
        }
    }
}

/// `dingtail test` names the route each hit took.
#[test]
fn test_shows_the_route_each_hit_took() {
    let emu = Emulator::start(vec![RobotSpec::new(OPS)]);
    let env = TestEnv::new().config(&routed_config(&emu));
    let out = env.run(&["test", "--format", "json"], ROUTED_INPUT.as_bytes());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let tags: Vec<&str> = (out.stdout.lines())
        .filter_map(|l| l.split_once('\t').map(|(t, _)| t))
        .collect();
    assert_eq!(
        tags,
        [
            "app-errors→payments",
            "app-errors→default",
            "app-errors→payments",
            "json-errors→database",
            "json-errors→default",
            "db-down→database",
        ],
        "{}",
        out.stdout
    );
    assert!(emu.posts().is_empty());
}

/// Every robot and people name is checked where it is written.
#[test]
fn check_names_unknown_robots_and_people_with_line_rule_and_field() {
    let env = TestEnv::new().config(
        r#"robots:
  ops: { webhook: "https://oapi.dingtalk.com/robot/send?access_token=abc" }
people:
  dba: { mobiles: ["13800000002"] }
routes:
  - when: 'service == "payment"'
    robot: pay-oncall
    mention: [dba, payteam]
  - when: 'service = 1'
    mention: dba
    rules: [nope]
  - when: 'x == 1'
rules:
  - name: a
    match: 'x'
    mention: sre
  - name: b
    match: 'y'
    resolve_after: 5m
    escalate:
      - { after: 15m, mention: dba }
      - { after: 1h, mention: boss }
  - name: c
    match: 'z'
    escalate: [{ after: 15m, mention: { all: true } }]
"#,
    );
    let out = env.run(&["check"], b"");
    assert_eq!(out.code, 2, "{}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    let find = |needle: &[&str]| {
        lines
            .iter()
            .find(|l| needle.iter().all(|n| l.contains(n)))
            .unwrap_or_else(|| panic!("no line with {needle:?} in\n{}", out.stderr))
            .to_string()
    };
    find(&[
        "rules.yaml:7:",
        "routes[1] (#1), field 'robot'",
        "unknown robot `pay-oncall`",
        "robots are: ops",
    ]);
    find(&[
        "rules.yaml:8:",
        "routes[1] (#1), field 'mention'",
        "unknown people group `payteam`",
        "groups are: dba",
    ]);
    find(&[
        "rules.yaml:9:",
        "routes[2] (#2), field 'when'",
        "character 9",
    ]);
    find(&[
        "routes[2] (#2), field 'rules'",
        "`nope`, which is not a rule",
    ]);
    find(&["routes[3] (#3)", "a robot, a mention or both"]);
    find(&[
        "rules.yaml:16:",
        "rule 'a', field 'mention'",
        "unknown people group `sre`",
    ]);
    find(&[
        "rules.yaml:22:",
        "rule 'b', field 'escalate[2].mention'",
        "unknown people group `boss`",
    ]);
    find(&["rule 'c', field 'escalate'", "needs resolve_after"]);
    assert_eq!(lines.len(), 8, "{}", out.stderr);
}

/// Escalation on the simulated clock: the step is reached 15 minutes after the episode's
/// first message, mentions the DBA from then on, and "recovered" starts over.
#[test]
fn escalation_reaches_more_people_as_an_episode_goes_on() {
    let yaml = format!(
        "{TIMESTAMP}people:\n  dba: {{ mobiles: ['13800000002'] }}\nrules:\n  - name: db\n    match: ORA-\n    window: 10s\n    cooldown: 5m\n    resolve_after: 10m\n    escalate: [{{ after: 15m, mention: dba }}, {{ after: 1h, mention: {{ all: true }} }}]\n"
    );
    let env = TestEnv::new().config(&yaml).env("TZ", "UTC");
    // an error every 4 minutes for 20 minutes, then quiet for an hour, then one more
    let mut log = String::new();
    for m in (0..=20).step_by(4) {
        log.push_str(&format!("2026-01-05 02:{m:02}:00 ORA-00018 sessions\n"));
    }
    log.push_str("2026-01-05 04:00:00 ORA-00018 sessions\n");
    let out = env.run(&["test", "--replay", "--format", "json"], log.as_bytes());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let msgs = replayed(&out.stdout);
    // every header, with the time of its message (alerts due together share a message)
    let heads: Vec<(String, String)> = (msgs.iter())
        .flat_map(|(at, text)| {
            (text.lines()).filter(|l| l.starts_with('【')).map(|l| {
                (
                    at[11..19].to_owned(),
                    l.split(' ').next().unwrap().to_owned(),
                )
            })
        })
        .collect();
    let heads: Vec<(&str, &str)> = heads
        .iter()
        .map(|(a, h)| (a.as_str(), h.as_str()))
        .collect();
    assert_eq!(
        heads,
        [
            ("02:00:10", "【db】×1"),
            ("02:05:10", "【db】×1"),
            ("02:10:10", "【db】×1"),
            ("02:15:10", "【db】escalated"),
            ("02:15:10", "【db】×1"),
            ("02:20:10", "【db】×2"),
            ("02:30:00", "【db】recovered"),
            ("04:00:00", "【db】×1"), // the end of input closes the window
        ],
        "{}",
        out.stdout
    );
    let with = |needle: &str| -> Vec<&String> {
        msgs.iter()
            .map(|(_, t)| t)
            .filter(|t| t.contains(needle))
            .collect()
    };
    let escalated = with("escalated");
    assert!(
        escalated[0].contains("4 matching line(s) since"),
        "{}",
        escalated[0]
    );
    // the step's people from the step on (the escalation and the messages after it), and
    // not before it, nor in the next episode
    let mentioned: Vec<&str> = (msgs.iter())
        .filter(|(_, t)| t.contains("@13800000002"))
        .map(|(at, _)| &at[11..19])
        .collect();
    let mut expected = vec!["02:15:10", "02:20:10", "02:30:00"];
    expected.dedup();
    if mentioned.len() == 4 {
        // the escalation and the ×1 of 02:15:10 went as two messages
        expected.insert(0, "02:15:10");
    }
    assert_eq!(mentioned, expected, "{}", out.stdout);
    // the exact counts: 7 lines, 7 counted
    let total: u64 = msgs
        .iter()
        .flat_map(|(_, t)| header_counts(t))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(total, 7);
}

/// `absent` with `group_by`: the host that went quiet is named, and its return.
#[test]
fn absence_per_host_names_the_host_that_went_quiet_and_its_return() {
    let yaml = format!(
        "{TIMESTAMP}rules:\n  - name: heartbeat\n    absent: {{ match: 'heartbeat from (?P<host>\\S+)', for: 5m }}\n    group_by: [host]\n    max_groups: 10\n"
    );
    let env = TestEnv::new().config(&yaml).env("TZ", "UTC");
    let mut log = String::new();
    for m in 0..20 {
        log.push_str(&format!("2026-01-05 02:{m:02}:00 heartbeat from web-1\n"));
        // web-2 is silent from 02:03 to 02:12
        if !(3..12).contains(&m) {
            log.push_str(&format!("2026-01-05 02:{m:02}:30 heartbeat from web-2\n"));
        }
    }
    let out = env.run(&["test", "--replay", "--format", "json"], log.as_bytes());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let msgs = replayed(&out.stdout);
    let heads: Vec<(String, String)> = (msgs.iter())
        .map(|(at, text)| {
            (
                at[11..19].to_owned(),
                text.lines().next().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(heads.len(), 2, "{}", out.stdout);
    assert_eq!(heads[0].0, "02:07:30");
    assert!(
        heads[0].1.starts_with("【heartbeat】absent") && heads[0].1.ends_with("host=web-2"),
        "{heads:?}"
    );
    assert_eq!(heads[1].0, "02:12:30");
    assert!(
        heads[1].1.starts_with("【heartbeat】back") && heads[1].1.ends_with("host=web-2"),
        "{heads:?}"
    );
}
