//! The config checked end to end: good configs, every kind of problem, and what errors may
//! show.

use super::*;

fn env(name: &str) -> Option<String> {
    match name {
        "TOKEN" => Some("t0k3n".into()),
        "SECRET" => Some("SECabc".into()),
        _ => None,
    }
}

fn parse(text: &str) -> Result<Config, Vec<Problem>> {
    parse_str(text, "rules.yaml", &env).map_err(|e| match e {
        ConfigError::Invalid(p) => p,
        other => panic!("{other}"),
    })
}

const GOOD: &str = r#"
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
fn debug_output_never_shows_secrets() {
    let c = parse(GOOD).unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("t0k3n"), "{debug}");
    assert!(!debug.contains("SECabc"), "{debug}");
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
fn webhook_mistakes_are_caught_without_quoting_the_token() {
    for (url, says) in [
        ("ftp://x/robot/send?access_token=zzsecret", "http"),
        ("https://oapi.dingtalk.com/robot/send", "access_token"),
        (
            "https://oapi.dingtalk.com/robot/send?access_token=zzsecret&timestamp=1&sign=x",
            "timestamp/sign",
        ),
    ] {
        let text = format!("robots:\n  ops:\n    webhook: \"{url}\"\nrules: []\n");
        let problems = parse(&text).unwrap_err();
        let shown = problems[0].to_string();
        assert!(shown.contains(says), "{shown}");
        assert!(!shown.contains("zzsecret"), "{shown}");
    }
}

#[test]
fn secrets_must_look_like_dingtalk_secrets() {
    let text =
        "robots:\n  ops:\n    webhook: \"http://h/robot/send?access_token=x\"\n    secret: abc\n";
    let problems = parse(text).unwrap_err();
    assert!(problems[0].message.contains("SEC"));
    assert!(!problems[0].to_string().contains("abc"));
}

#[test]
fn several_robots_need_a_default_or_a_choice() {
    let text = r#"robots:
  a: { webhook: "http://h/robot/send?access_token=x" }
  b: { webhook: "http://h/robot/send?access_token=y" }
rules:
  - { name: r, match: x }
  - { name: s, match: x, robot: b }
"#;
    let problems = parse(text).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].context.contains("rule 'r'"));
}

#[test]
fn rates_parse_in_several_spellings() {
    assert_eq!(parse_rate("20/min").unwrap(), Rate::default());
    assert_eq!(parse_rate("20/1m").unwrap(), Rate::default());
    assert_eq!(
        parse_rate(" 5 / 10s ").unwrap(),
        Rate {
            count: 5,
            per: Duration::from_secs(10)
        }
    );
    assert!(parse_rate("0/min").is_err());
    assert!(parse_rate("fast").is_err());
    assert!(parse_rate("5/lightyear").is_err());
}

#[test]
fn env_expansion() {
    assert_eq!(expand_env("a${TOKEN}b", &env).unwrap(), "at0k3nb");
    assert_eq!(expand_env("$$5 and $x", &env).unwrap(), "$5 and $x");
    assert_eq!(
        expand_env("${MISSING}", &env).unwrap_err(),
        "environment variable MISSING is not set"
    );
    assert!(expand_env("${TOKEN", &env).is_err());
    assert!(expand_env("${1X}", &env).is_err());
}

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
fn config_errors_do_not_quote_secret_shaped_values() {
    let secret = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd";
    for text in [
        format!(
            "robots:\n  ops:\n    webhook: \"http://h/robot/send?access_token=x\"\n    rate: {secret}\nrules: []\n"
        ),
        format!("rules:\n  - name: r\n    match: x\n    max_lines: {secret}\n"),
        format!("rules:\n  - name: r\n    match: x\n    window: {secret}\n"),
        format!("rules:\n  - name: r\n    match: x\n    severity: {secret}\n"),
        "rules:\n  - name: r\n    match: x\n    window: 0123456789abcdef0123456789abcdef\n"
            .to_owned(),
    ] {
        let problems = parse(&text).unwrap_err();
        let shown = format!("{problems:?} {}", ConfigError::Invalid(problems.clone()));
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(problems[0].line > 0, "{shown}");
    }
    // short, ordinary values are still quoted
    let problems = parse("rules:\n  - name: r\n    match: x\n    window: soon\n").unwrap_err();
    assert!(problems[0].message.contains("`soon`"), "{problems:?}");
}

#[test]
fn a_webhook_file_path_holding_the_token_is_not_printed() {
    let dir = tempfile::tempdir().unwrap();
    let token_dir = dir.path().join("tok0123456789abcdef0123456789");
    std::fs::create_dir(&token_dir).unwrap();
    let origin = dir.path().join("rules.yaml");
    let text =
        "robots:\n  ops:\n    webhook_file: tok0123456789abcdef0123456789/webhook\nrules: []\n";
    let problems = match parse_str(text, &origin.display().to_string(), &env) {
        Err(ConfigError::Invalid(p)) => p,
        other => panic!("{other:?}"),
    };
    let shown = problems[0].to_string();
    assert!(shown.contains("cannot read the file"), "{shown}");
    assert!(!shown.contains("tok0123456789abcdef"), "{shown}");
    assert_eq!((problems[0].line, problems[0].column), (3, 19), "{shown}");
    // ${VAR} in the path: not printed either
    let text = "robots:\n  ops:\n    webhook_file: \"/run/${TOKEN}/webhook\"\nrules: []\n";
    let shown = parse(text).unwrap_err()[0].to_string();
    assert!(!shown.contains("t0k3n"), "{shown}");
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

#[test]
fn the_builtin_rules_are_valid() {
    let c = Config::builtin();
    assert!(c.robots.is_empty());
    assert!(c.rules.len() >= 6);
}
