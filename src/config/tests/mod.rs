//! The config checked end to end: good configs, every kind of problem, and what errors may
//! show.

use super::*;

mod inputs;
mod robots;
mod rules;

pub(super) fn env(name: &str) -> Option<String> {
    match name {
        "TOKEN" => Some("t0k3n".into()),
        "SECRET" => Some("SECabc".into()),
        _ => None,
    }
}

pub(super) fn parse(text: &str) -> Result<Config, Vec<Problem>> {
    parse_str(text, "rules.yaml", &env).map_err(|e| match e {
        ConfigError::Invalid(p) => p,
        other => panic!("{other}"),
    })
}

pub(super) const GOOD: &str = r#"
robots:
  ops:
    webhook: "http://127.0.0.1:1/robot/send?access_token=${TOKEN}"
    secret: "${SECRET}"
    keyword: 告警
    rate: 5/10s
defaults:
  window: 2s
  max_lines: 3
rules:
  - name: five
    match: '" 5\d\d '
    exclude: ['/healthz']
  - name: err
    match: ERROR
    window: 500ms
"#;

#[test]
fn a_good_config_is_checked_into_robots_and_rules() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.robots.len(), 1);
    let ops = &c.robots[0];
    assert_eq!(
        ops.endpoint.webhook.expose(),
        "http://127.0.0.1:1/robot/send?access_token=t0k3n"
    );
    assert_eq!(ops.endpoint.secret.as_ref().unwrap().expose(), "SECabc");
    assert_eq!(ops.send.keyword.as_deref(), Some("告警"));
    assert_eq!(
        ops.send.rate,
        Rate {
            count: 5,
            per: Duration::from_secs(10)
        }
    );
    assert_eq!(c.rules[0].window, Duration::from_secs(2));
    assert_eq!(c.rules[0].max_lines, 3);
    assert_eq!(c.rules[1].window, Duration::from_millis(500));
    assert_eq!(c.rules[1].robots, [0]);
}

#[test]
fn timezone_is_an_iana_name_located_when_wrong() {
    let c = parse(&format!("timezone: Asia/Shanghai\n{GOOD}")).unwrap();
    assert_eq!(c.timezone, Zone::parse("Asia/Shanghai").unwrap());
    let problems = parse(&format!("timezone: Beijing\n{GOOD}")).unwrap_err();
    assert_eq!(
        problems[0].to_string(),
        "rules.yaml:1:11: field 'timezone': unknown time zone `Beijing`: use an IANA name such as Asia/Shanghai or UTC"
    );
}

#[test]
fn every_problem_is_reported_with_line_rule_and_field() {
    let text = r#"robots:
  ops:
    webhook: "http://127.0.0.1:1/robot/send?access_token=${NOPE}"
rules:
  - name: a
    match: '(unclosed'
  - name: a
    match: ok
    window: soon
  - name: b
    match: ok
    robot: pager
"#;
    let problems = parse(text).unwrap_err();
    let shown: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    let expect = [
        "rules.yaml:3:14: robot 'ops', field 'webhook': environment variable NOPE is not set",
        "rules.yaml:6:12: rule 'a', field 'match': ",
        "rules.yaml:7:11: rule 'a', field 'name': another rule has the same name",
        "rules.yaml:9:13: rule 'a', field 'window': `soon` is not a duration",
        "rules.yaml:12:12: rule 'b', field 'robot': unknown robot `pager` (robots are: ops)",
    ];
    assert_eq!(shown.len(), expect.len(), "{shown:#?}");
    for (got, want) in shown.iter().zip(expect) {
        assert!(
            got.starts_with(want),
            "{got}\n  does not start with\n{want}"
        );
    }
}

#[test]
fn unknown_fields_and_syntax_errors_are_located() {
    let problems = parse("rules:\n  - name: a\n    match: x\n    widnow: 1s\n").unwrap_err();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].line, 4, "{:?}", problems[0]);
    assert!(problems[0].message.contains("widnow"), "{:?}", problems[0]);

    let problems = parse("rules: [\n").unwrap_err();
    assert_eq!(problems.len(), 1);
    assert!(problems[0].line > 0);
}

#[test]
fn schema_errors_are_reported_with_the_semantic_ones_all_at_once() {
    let text = r#"robots:
  ops:
    webhook: "http://h/robot/send?access_token=x"
    retry: 5
  pager:
    webhook: "http://h/robot/send?access_token=y"
defaults: { robot: ops }
rules:
  - name: a
    match: '(unclosed'
  - name: b
    match: ok
    widnow: 1s
  - name: c
    match: '(still checked'
    max_lines: many
    exclude: |
      not a list
  - name: d
    match: ok
    robot: [ops, nobody]
  - name: e
    match: ok
    window: 2d
extra_top: 1
"#;
    let problems = parse(text).unwrap_err();
    let shown: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    let expect = [
        (
            "rules.yaml:4:12: robot 'ops', field 'retry'",
            "must be a mapping",
        ),
        ("rules.yaml:10:12: rule 'a', field 'match'", ""),
        ("rules.yaml:13:5: rule 'b', field 'widnow'", "unknown field"),
        (
            "rules.yaml:15:12: rule 'c', field 'match'",
            "unclosed group",
        ),
        (
            "rules.yaml:16:16: rule 'c', field 'max_lines'",
            "whole number",
        ),
        (
            "rules.yaml:18:7: rule 'c', field 'exclude'",
            "must be a list",
        ),
        (
            "rules.yaml:21:12: rule 'd', field 'robot'",
            "unknown robot `nobody`",
        ),
        (
            "rules.yaml:24:13: rule 'e', field 'window'",
            "longest allowed, 1day",
        ),
        ("rules.yaml:25:1: field 'extra_top'", "unknown field"),
    ];
    assert_eq!(shown.len(), expect.len(), "{shown:#?}");
    for ((want, says), got) in expect.iter().zip(&shown) {
        assert!(
            got.starts_with(want) && got.contains(says),
            "`{got}` is not `{want}…{says}`:\n{shown:#?}"
        );
    }
    // A rule naming a robot whose own block had a schema error is not blamed for it.
    assert!(!shown.iter().any(|s| s.contains("unknown robot `ops`")));
}

#[test]
fn every_duration_is_checked_at_its_maximum_and_one_past_it() {
    let robot = |field: &str, value: &str| {
        let (outer, inner) = field.split_once('.').unwrap_or((field, ""));
        let v = if inner.is_empty() {
            format!("    {outer}: {value}\n")
        } else {
            format!("    {outer}: {{ {inner}: {value} }}\n")
        };
        format!(
            "robots:\n  ops:\n    webhook: \"http://h/robot/send?access_token=x\"\n{v}rules: []\n"
        )
    };
    let rule = |field: &str, value: &str| {
        let body = match field {
            "threshold.within" => {
                format!("match: x\n    threshold: {{ count: 2, within: {value} }}")
            }
            "absent.for" => format!("absent: {{ match: x, for: {value} }}"),
            f => format!("match: x\n    {f}: {value}"),
        };
        format!("rules:\n  - name: r\n    {body}\n")
    };
    type Case = (String, Box<dyn Fn(&str) -> String>, Duration);
    let cases: Vec<Case> = vec![
        (
            "defaults, field 'window'".into(),
            Box::new(|v: &str| format!("defaults: {{ window: {v} }}\n")),
            limits::WINDOW,
        ),
        (
            "rule 'r', field 'window'".into(),
            Box::new(move |v: &str| rule("window", v)),
            limits::WINDOW,
        ),
        (
            "rule 'r', field 'threshold.within'".into(),
            Box::new(move |v: &str| rule("threshold.within", v)),
            limits::WINDOW,
        ),
        (
            "rule 'r', field 'cooldown'".into(),
            Box::new(move |v: &str| rule("cooldown", v)),
            limits::LONG,
        ),
        (
            "rule 'r', field 'resolve_after'".into(),
            Box::new(move |v: &str| rule("resolve_after", v)),
            limits::LONG,
        ),
        (
            "rule 'r', field 'absent.for'".into(),
            Box::new(move |v: &str| rule("absent.for", v)),
            limits::LONG,
        ),
        (
            "input 1, field 'multiline.timeout'".into(),
            Box::new(|v: &str| {
                format!("inputs:\n  - path: /x\n    multiline: {{ start: '^a', timeout: {v} }}\n")
            }),
            limits::MULTILINE_TIMEOUT,
        ),
        (
            "stdin, field 'multiline.timeout'".into(),
            Box::new(|v: &str| format!("stdin:\n  multiline: {{ start: '^a', timeout: {v} }}\n")),
            limits::MULTILINE_TIMEOUT,
        ),
        (
            "robot 'ops', field 'timeout.connect'".into(),
            Box::new(move |v: &str| robot("timeout.connect", v)),
            limits::CONNECT_TIMEOUT,
        ),
        (
            "robot 'ops', field 'timeout.request'".into(),
            Box::new(move |v: &str| robot("timeout.request", v)),
            limits::REQUEST_TIMEOUT,
        ),
        (
            "robot 'ops', field 'retry.initial'".into(),
            Box::new(move |v: &str| robot("retry.initial", v)),
            limits::RETRY_INITIAL,
        ),
        (
            "robot 'ops', field 'retry.max'".into(),
            Box::new(move |v: &str| robot("retry.max", v)),
            limits::ROBOT_WAIT,
        ),
        (
            "robot 'ops', field 'retry.recheck'".into(),
            Box::new(move |v: &str| robot("retry.recheck", v)),
            limits::ROBOT_WAIT,
        ),
        (
            "robot 'ops', field 'throttle_pause'".into(),
            Box::new(move |v: &str| robot("throttle_pause", v)),
            limits::ROBOT_WAIT,
        ),
        (
            "robot 'ops', field 'rate'".into(),
            Box::new(move |v: &str| robot("rate", &format!("5/{v}"))),
            limits::ROBOT_WAIT,
        ),
    ];
    for (field, yaml, max) in &cases {
        let at_max = format!("{}ms", max.as_millis());
        let past = format!("{}ms", max.as_millis() + 1);
        if let Err(p) = parse(&yaml(&at_max)) {
            panic!("{field} at {at_max}: {p:#?}");
        }
        for bad in [past.as_str(), "18446744073709551615s", "0s"] {
            let problems = parse(&yaml(bad)).unwrap_err();
            assert_eq!(problems.len(), 1, "{field} {bad}: {problems:#?}");
            assert_eq!(problems[0].context, *field, "{bad}: {problems:#?}");
            assert!(problems[0].line > 0 && problems[0].column > 0);
        }
    }
    assert!(parse_rate("10000/s").is_ok());
    assert!(parse_rate("10001/s").is_err());
}

#[test]
fn the_builtin_rules_are_valid() {
    let c = Config::builtin();
    assert!(c.robots.is_empty());
    assert!(c.rules.len() >= 6);
}
