//! Robots checked: webhooks, secrets, rates, `${VAR}`, fallbacks, and what errors may show of them.

use super::*;

#[test]
fn debug_output_never_shows_secrets() {
    let c = parse(GOOD).unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("t0k3n"), "{debug}");
    assert!(!debug.contains("SECabc"), "{debug}");
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
fn fallbacks_name_robots_by_id_and_never_form_a_cycle() {
    let robots = |fallbacks: [&str; 3]| {
        let mut text = String::from("robots:\n");
        for (name, fallback) in ["a", "b", "c"].iter().zip(fallbacks) {
            text +=
                &format!("  {name}:\n    webhook: \"http://h/robot/send?access_token={name}\"\n");
            if !fallback.is_empty() {
                text += &format!("    fallback: {fallback}\n");
            }
        }
        text + "defaults:\n  robot: a\nrules:\n  - { name: r, match: x }\n"
    };
    let c = parse(&robots(["", "c", "a"])).unwrap();
    let fallback_of = |name: &str| {
        let robot = &c.robots[c.robot_id(name).unwrap()];
        robot.fallback.map(|f| c.robots[f].name.as_str())
    };
    assert_eq!(fallback_of("a"), None);
    assert_eq!(fallback_of("b"), Some("c"));
    assert_eq!(fallback_of("c"), Some("a"));

    let problems = parse(&robots(["a", "", ""])).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].message, "a robot cannot be its own fallback");
    // Every robot whose fallbacks come back says so, the one leading into the cycle too.
    let problems = parse(&robots(["b", "c", "b"])).unwrap_err();
    let contexts: Vec<&str> = problems.iter().map(|p| p.context.as_str()).collect();
    assert_eq!(
        contexts,
        [
            "robot 'a', field 'fallback'",
            "robot 'b', field 'fallback'",
            "robot 'c', field 'fallback'"
        ]
    );
    assert!(
        problems
            .iter()
            .all(|p| p.message == "fallbacks form a cycle")
    );
}
