//! `inputs:` and `stdin:`: where standard input's `multiline` comes from, and which one
//! `test` and `--replay` use for a path.

use std::path::Path;

use super::*;

/// The `start` regex of the multi-line setting `run` would use for `path`.
fn start_for(c: &Config, path: Option<&str>) -> Option<String> {
    c.multiline_for(path.map(Path::new))
        .map(|m| m.start.as_str().to_owned())
}

#[test]
fn stdin_multiline_is_given_in_stdin_or_as_the_dash_input_not_both() {
    let c = parse("stdin:\n  multiline: { start: '^S', max_lines: 7, timeout: 2s }\n").unwrap();
    let m = c.stdin.multiline.as_ref().unwrap();
    assert_eq!(
        (m.start.as_str(), m.max_lines, m.timeout),
        ("^S", 7, Duration::from_secs(2))
    );
    let c = parse("inputs:\n  - path: '-'\n    multiline: { start: '^D' }\n").unwrap();
    let m = c.stdin.multiline.as_ref().unwrap();
    assert_eq!(
        (m.start.as_str(), m.max_lines, m.timeout),
        ("^D", DEFAULT_MULTILINE_MAX_LINES, DEFAULT_MULTILINE_TIMEOUT)
    );
    assert!(
        parse("stdin: { stale: 5m }\n")
            .unwrap()
            .stdin
            .multiline
            .is_none()
    );

    let problems = parse(
        "inputs:\n  - path: '-'\n    multiline: { start: '^D' }\nstdin:\n  multiline: { start: '^S' }\n",
    )
    .unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].context, "stdin, field 'multiline'");
    assert_eq!(problems[0].line, 5);
    assert!(problems[0].message.contains("input 1"), "{problems:#?}");

    // checked as an input's is, each problem at its field
    let problems = parse("stdin:\n  multiline: { start: '(open', max_lines: 0 }\n").unwrap_err();
    let fields: Vec<&str> = problems.iter().map(|p| p.context.as_str()).collect();
    assert_eq!(
        fields,
        [
            "stdin, field 'multiline.start'",
            "stdin, field 'multiline.max_lines'"
        ]
    );
}

#[test]
fn test_and_replay_use_the_setting_run_would_use() {
    let c = parse(
        "stdin:\n  multiline: { start: '^S' }\n\
         inputs:\n  - path: /var/log/app/*.log\n    multiline: { start: '^A' }\n  - path: /var/log/plain.log\n",
    )
    .unwrap();
    let table = [
        (None, Some("^S")),
        (Some("/var/log/app/shop.log"), Some("^A")),
        (Some("/var/log/app/*.log"), Some("^A")),
        (Some("/var/log/plain.log"), None),
        (Some("/elsewhere.log"), None),
    ];
    for (path, want) in table {
        assert_eq!(start_for(&c, path).as_deref(), want, "{path:?}");
    }
    // stdin without its own setting: the only input's (a copy of its log piped in)
    let c = parse("inputs:\n  - path: /a.log\n    multiline: { start: '^A' }\n").unwrap();
    assert_eq!(start_for(&c, None).as_deref(), Some("^A"));
    let c = parse("inputs:\n  - path: /a.log\n    multiline: { start: '^A' }\n  - path: /b.log\n")
        .unwrap();
    assert_eq!(start_for(&c, None), None);
}
