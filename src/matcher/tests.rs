//! The matcher's tables: both paths against one regex per rule, captures, fields, long lines.

use std::time::Duration;

use super::*;
use crate::rules::RuleSpec;

fn rules(specs: &[(&str, &[&str])]) -> Vec<Rule> {
    specs
        .iter()
        .enumerate()
        .map(|(i, (p, ex))| {
            Rule::compile(RuleSpec {
                name: format!("r{i}"),
                pattern: p.to_string(),
                exclude: ex.iter().map(|s| s.to_string()).collect(),
                window: Duration::from_secs(1),
                max_lines: 5,
                ..RuleSpec::default()
            })
            .unwrap()
        })
        .collect()
}

fn scan(specs: &[(&str, &[&str])], data: &[u8]) -> Vec<(String, Vec<RuleId>)> {
    let m = Matcher::new(&rules(specs), 1 << 16).unwrap();
    let mut out = Vec::new();
    m.scan(data, |l| {
        out.push((
            String::from_utf8_lossy(&data[l.range.clone()]).into_owned(),
            l.rules.to_vec(),
        ))
    });
    out
}

#[test]
fn table() {
    type Case<'a> = (
        &'a [(&'a str, &'a [&'a str])],
        &'a [u8],
        &'a [(&'a str, &'a [usize])],
    );
    let cases: &[Case] = &[
        // several rules on one line, reported together, in rule order
        (
            &[("ERROR", &[]), ("db", &[])],
            b"ok\nERROR db down\ndb ok\n",
            &[("ERROR db down", &[0, 1]), ("db ok", &[1])],
        ),
        // exclusions veto only their own rule
        (
            &[("5\\d\\d", &["/healthz"]), ("GET", &[])],
            b"GET /healthz 503\nGET /a 500\n",
            &[("GET /healthz 503", &[1]), ("GET /a 500", &[0, 1])],
        ),
        // ^ and $ are line anchors, and $ works before \r\n
        (
            &[("^E", &[]), ("x$", &[])],
            b"aE\nEa\nbx\r\nxb\n",
            &[("Ea", &[0]), ("bx\r", &[1])],
        ),
        // a pattern that could span lines is judged per line, and no line is skipped
        (
            &[("a\\sb", &[]), ("c", &[])],
            b"a\nb c\nxa b\n",
            &[("b c", &[1]), ("xa b", &[0])],
        ),
        // invalid UTF-8 and NUL bytes do not stop matching
        (
            &[("(?-u:\\xff)", &[]), ("boom", &[])],
            b"\xff\xfe\n\x00boom\x00\n",
            &[("\u{fffd}\u{fffd}", &[0]), ("\u{0}boom\u{0}", &[1])],
        ),
        // last line without newline
        (&[("z", &[])], b"a\nz", &[("z", &[0])]),
        // no rules, no hits
        (&[], b"anything\n", &[]),
    ];
    for (specs, data, want) in cases {
        let got = scan(specs, data);
        let want: Vec<(String, Vec<usize>)> = want
            .iter()
            .map(|(l, r)| (l.to_string(), r.to_vec()))
            .collect();
        assert_eq!(got, want, "data {:?}", String::from_utf8_lossy(data));
    }
}

#[test]
fn many_rules_in_several_groups_match_like_one_regex_per_rule() {
    // 2.5 groups of rules; every line is judged against each rule's own regex for reference.
    let patterns: Vec<String> = (0..GROUP_SIZE * 5 / 2)
        .map(|i| match i % 4 {
            0 => format!("code={i}\\b"),
            1 => format!("(?i)user{i} failed"),
            2 => format!("^host-{i} "),
            _ => format!("err(or)?{i}$"),
        })
        .collect();
    let specs: Vec<(&str, &[&str])> = patterns.iter().map(|p| (p.as_str(), &[][..])).collect();
    for strategy in [Strategy::Automata, Strategy::Literals] {
        many_rules_in(strategy, &patterns, &specs);
    }
}

fn many_rules_in(strategy: Strategy, patterns: &[String], specs: &[(&str, &[&str])]) {
    let m = Matcher::with_strategy(&rules(specs), 1 << 16, strategy).unwrap();
    match strategy {
        Strategy::Automata => assert!(m.groups.len() >= 3),
        _ => assert!(m.plan().literal_rules > GROUP_SIZE * 2),
    }
    let mut data = String::new();
    for i in 0..2000 {
        let r = (i * 7919) % (GROUP_SIZE * 3);
        data.push_str(&format!(
            "host-{r} code={r} USER{r} FAILED error{r}\nnoise {i}\n"
        ));
    }
    let data = data.into_bytes();
    let mut got = Vec::new();
    m.scan_lines(&data, |range, ids| got.push((range, ids.to_vec())));
    let reference: Vec<regex::bytes::Regex> = patterns
        .iter()
        .map(|p| crate::rules::regex_builder(p).build().unwrap())
        .collect();
    let mut want = Vec::new();
    let mut start = 0;
    for line in data.split(|&b| b == b'\n') {
        let ids: Vec<usize> = (0..reference.len())
            .filter(|&i| reference[i].is_match(line))
            .collect();
        if !ids.is_empty() {
            want.push((start..start + line.len(), ids));
        }
        start += line.len() + 1;
    }
    assert_eq!(got, want, "{strategy:?}");
}

#[test]
fn patterns_that_can_match_empty_inside_a_line_terminate() {
    let m = Matcher::new(&rules(&[("\\b", &[]), ("z", &[])]), 1 << 16).unwrap();
    let mut n = 0;
    m.scan_lines(b"ab cd\n  \nz\n", |_, _| n += 1);
    assert_eq!(n, 2);
}

#[test]
fn long_lines_are_judged_on_their_head_only() {
    let m = Matcher::new(&rules(&[("needle", &[])]), 8).unwrap();
    let mut n = 0;
    m.scan(b"xxxxxxxxxxneedle\nneedle and more\n", |_| n += 1);
    assert_eq!(n, 1);
}

fn compiled(specs: Vec<RuleSpec>) -> Matcher {
    let rules: Vec<Rule> = specs
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            Rule::compile(RuleSpec {
                name: format!("r{i}"),
                window: Duration::from_secs(1),
                max_lines: 5,
                ..s
            })
            .unwrap()
        })
        .collect();
    Matcher::new(&rules, 1 << 16).unwrap()
}

fn chunk(data: &'static [u8]) -> Chunk {
    Chunk {
        source: "-".into(),
        data: Bytes::from_static(data),
        end_offset: data.len() as u64,
        read_at: SystemTime::UNIX_EPOCH,
        mark: None,
        line_joins: Vec::new(),
    }
}

#[test]
fn hits_carry_captures_only_for_rules_that_need_them() {
    let m = compiled(vec![
        RuleSpec {
            pattern: r"from (?P<ip>[\d.]+)(?: port (?P<port>\d+))?".into(),
            group_by: vec!["ip".into()],
            ..RuleSpec::default()
        },
        RuleSpec {
            pattern: "from".into(),
            ..RuleSpec::default()
        },
    ]);
    let batch = m.match_chunk(&chunk(
        b"Failed from 10.0.0.5 port 22\nok\nFailed from 10.0.0.6\n",
    ));
    let got: Vec<(usize, Vec<&[u8]>)> = batch
        .hits
        .iter()
        .map(|h| (h.rule, h.captures.iter().map(|c| &c[..]).collect()))
        .collect();
    assert_eq!(
        got,
        [
            (0, vec![&b"10.0.0.5"[..], b"22"]),
            (1, vec![]),
            (0, vec![&b"10.0.0.6"[..], b""]),
            (1, vec![]),
        ]
    );
}

#[test]
fn field_rules_match_the_value_of_json_lines_only() {
    let m = compiled(vec![
        RuleSpec {
            pattern: "^(?:error|fatal)$".into(),
            field: Some(vec!["level".into()]),
            ..RuleSpec::default()
        },
        RuleSpec {
            pattern: r"^5\d\d$".into(),
            field: Some(vec!["http".into(), "status".into()]),
            ..RuleSpec::default()
        },
        RuleSpec {
            pattern: "timeout".into(),
            ..RuleSpec::default()
        },
    ]);
    let data: &'static [u8] = b"{\"level\":\"error\",\"msg\":\"timeout\"}\n\
        {\"level\":\"info\",\"msg\":\"level error\"}\n\
        level=error not json\n\
        {\"level\":\"fatal\",\"http\":{\"status\":503}}\n\
        {\"level\": \"err\"}\n\
        {\"msg\":\"x\",\"level\":\"error\"\n\
        plain timeout\n";
    let mut got = Vec::new();
    m.scan(data, |l| {
        got.push((
            String::from_utf8_lossy(&data[l.range.clone()]).into_owned(),
            l.rules.to_vec(),
        ))
    });
    let want: Vec<(String, Vec<usize>)> = [
        ("{\"level\":\"error\",\"msg\":\"timeout\"}", vec![0, 2]),
        (
            "{\"level\":\"fatal\",\"http\":{\"status\":503}}",
            vec![0, 1],
        ),
        ("plain timeout", vec![2]),
    ]
    .iter()
    .map(|(l, r)| (l.to_string(), r.clone()))
    .collect();
    assert_eq!(got, want);
}

#[test]
fn field_rules_judge_lines_nested_past_serde_json_s_recursion_limit() {
    // Regression: lines nested deeper than ~127 levels used to be skipped without a word.
    let m = compiled(vec![RuleSpec {
        pattern: "^error$".into(),
        field: Some(vec!["level".into()]),
        ..RuleSpec::default()
    }]);
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let data = format!("{{\"payload\":{deep},\"level\":\"error\"}}\n{{\"level\":\"info\"}}\n");
    let mut got = Vec::new();
    m.scan(data.as_bytes(), |l| {
        got.push((l.range.start, l.rules.to_vec()))
    });
    assert_eq!(got, [(0, vec![0])]);
}

#[test]
fn match_chunk_counts_lines_and_strips_cr() {
    let m = Matcher::new(&rules(&[("E", &[])]), 1 << 16).unwrap();
    let chunk = Chunk {
        source: "-".into(),
        data: Bytes::from_static(b"E1\r\nok\nE2\n"),
        end_offset: 10,
        read_at: SystemTime::UNIX_EPOCH,
        mark: None,
        line_joins: Vec::new(),
    };
    let batch = m.match_chunk(&chunk);
    assert_eq!(batch.lines, 3);
    assert_eq!(batch.bytes, 10);
    let lines: Vec<&[u8]> = batch.hits.iter().map(|h| &h.line[..]).collect();
    assert_eq!(lines, [&b"E1"[..], b"E2"]);
}
