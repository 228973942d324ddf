//! Rules checked: on-call fields (mentions, people, routes, escalation), names and templates.

use super::*;

#[test]
fn on_call_fields_are_checked_into_rules() {
    let text = r#"robots:
  ops: { webhook: "http://h/robot/send?access_token=x" }
  security: { webhook: "http://h/robot/send?access_token=y" }
defaults:
  robot: ops
  mention:
    critical: { mobiles: ["13800000000"] }
rules:
  - name: ssh
    match: 'Failed password for (?P<user>\S+) from (?P<ip>[\d.]+)'
    severity: critical
    threshold: { count: 5, within: 1m }
    cooldown: 10m
    group_by: [ip]
    max_groups: 10
    template: "{ip} tried {count} passwords, last user {user}"
    robot: [ops, security]
    msgtype: markdown
    resolve_after: 5m
  - name: k8s
    match: '^(error|fatal)$'
    field: log.level
    mention: { user_ids: [u1], all: true }
  - name: heartbeat
    absent: { match: 'heartbeat ok', for: 2m }
timestamp: { regex: '^(\S+ \S+)', format: '%Y-%m-%d %H:%M:%S' }
"#;
    let c = parse(text).unwrap();
    let ssh = &c.rules[0];
    assert_eq!(ssh.robots, [0, 1]);
    assert_eq!(
        ssh.threshold,
        Some(Threshold {
            count: 5,
            within: Duration::from_secs(60)
        })
    );
    assert_eq!(ssh.cooldown, Some(Duration::from_secs(600)));
    assert_eq!(ssh.group_by, [1]);
    assert_eq!(ssh.max_groups, 10);
    assert!(ssh.needs_captures);
    assert_eq!(ssh.style.msgtype, MsgType::Markdown);
    assert_eq!(ssh.style.mention.mobiles, ["13800000000"], "by severity");
    assert_eq!(ssh.resolve_after, Some(Duration::from_secs(300)));
    let k8s = &c.rules[1];
    assert_eq!(
        k8s.field.as_deref(),
        Some(&["log".to_owned(), "level".to_owned()][..])
    );
    assert!(k8s.style.mention.all);
    assert_eq!(c.rules[2].absent_for, Some(Duration::from_secs(120)));
    assert!(c.timestamp.is_some());
}

#[test]
fn every_on_call_mistake_is_reported_at_once_with_its_line() {
    let text = r#"robots:
  ops: { webhook: "http://h/robot/send?access_token=x" }
defaults:
  mention:
    urgent: { mobiles: ["1380000"] }
rules:
  - name: a
    match: '(?P<ip>\S+) failed'
    severity: high
    threshold: { count: 0, within: soon }
    group_by: [ip, host]
    template: "{ip} {nope}"
    mention: { mobiles: ["call me"] }
    robot: [ops, pager]
    msgtype: html
    field: "log..level"
    resolve_after: never
  - name: b
    absent: { match: x, for: 1m }
    threshold: { count: 2, within: 1m }
  - name: c
    match: x
    max_groups: 5
  - name: d
timestamp: { regex: '^\S+', format: '%Y-%Q' }
"#;
    let problems = parse(text).unwrap_err();
    let shown: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    let expect = [
        (
            "rules.yaml:5:13: defaults, field 'mention.urgent'",
            "by severity",
        ),
        (
            "rules.yaml:25:21: timestamp, field 'regex'",
            "capture group",
        ),
        ("rules.yaml:25:37: timestamp, field 'format'", "strftime"),
        (
            "rules.yaml:14:12: rule 'a', field 'robot'",
            "unknown robot `pager`",
        ),
        (
            "rules.yaml:9:15: rule 'a', field 'severity'",
            "info, warning, critical",
        ),
        (
            "rules.yaml:10:25: rule 'a', field 'threshold.count'",
            "between 1",
        ),
        (
            "rules.yaml:10:36: rule 'a', field 'threshold.within'",
            "not a duration",
        ),
        (
            "rules.yaml:11:20: rule 'a', field 'group_by'",
            "`host` is not a named capture",
        ),
        ("rules.yaml:12:15: rule 'a', field 'template'", "`{nope}`"),
        (
            "rules.yaml:13:26: rule 'a', field 'mention'",
            "not a phone number",
        ),
        (
            "rules.yaml:15:14: rule 'a', field 'msgtype'",
            "text or markdown",
        ),
        (
            "rules.yaml:16:12: rule 'a', field 'field'",
            "not a field path",
        ),
        (
            "rules.yaml:17:20: rule 'a', field 'resolve_after'",
            "not a duration",
        ),
        (
            "rules.yaml:19:13: rule 'b', field 'threshold'",
            "absent rule",
        ),
        (
            "rules.yaml:23:17: rule 'c', field 'max_groups'",
            "needs group_by",
        ),
        ("rules.yaml:24:11: rule 'd', field 'match'", "is missing"),
    ];
    assert_eq!(shown.len(), expect.len(), "{shown:#?}");
    for (want, says) in expect {
        assert!(
            shown
                .iter()
                .any(|s| s.starts_with(want) && s.contains(says)),
            "no `{want}…{says}` in {shown:#?}"
        );
    }
}

#[test]
fn names_templates_and_keywords_cannot_forge_headers() {
    for (text, field) in [
        (
            "rules:\n  - name: \"a】×5 host\\n【b\"\n    match: x\n",
            "name",
        ),
        ("rules:\n  - name: \"a\\u202eb\"\n    match: x\n", "name"),
        (
            "rules:\n  - name: a\n    match: x\n    template: \"ok\\n【fake】×9 h\"\n",
            "template",
        ),
        (
            "rules:\n  - name: a\n    match: x\n    template: \"ok\\rno\"\n",
            "template",
        ),
        (
            "robots:\n  ops:\n    webhook: \"http://h/robot/send?access_token=x\"\n    keyword: \"a\\rb\"\nrules: []\n",
            "keyword",
        ),
    ] {
        let problems = parse(text).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.context.ends_with(&format!("field '{field}'"))),
            "{text}: {problems:#?}"
        );
    }
}
