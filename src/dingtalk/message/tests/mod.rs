//! The renderer's contract: headers and exact counts, layout of text and markdown, templates
//! and mentions, and log text that can never forge a header or inject markup. The size limits
//! are tested in [`size`].

mod size;

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use proptest::prelude::*;

use super::layout::TITLE_RULES_CHARS;
use super::*;
use crate::alert::{AlertKind, Sample};
use crate::pii::Pii;
use crate::style::{MsgType, Style};

pub(super) fn alert(name: &str, count: u64, lines: &[&[u8]], max_lines: usize) -> Alert {
    Alert {
        rule: 0,
        rule_name: Arc::from(name),
        count,
        first: SystemTime::UNIX_EPOCH,
        last: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(65),
        source: "-".into(),
        other_sources: Vec::new(),
        samples: lines.iter().map(|l| Sample::from_line(l)).collect(),
        silenced: 0,
        max_lines,
        group: None,
        kind: AlertKind::Hits,
        captures: Vec::new(),
        style: Arc::new(Style::default()),
        route: None,
    }
}

pub(super) fn ctx(keyword: Option<&str>) -> RenderContext<'_> {
    RenderContext {
        host: "web-01",
        keyword,
        max_body: MAX_BODY_BYTES,
        zone: Zone::parse("Asia/Shanghai").unwrap(),
        hosts: None,
    }
}

pub(super) fn content(m: &Message) -> String {
    let v: serde_json::Value = serde_json::from_str(&m.body).unwrap();
    assert_eq!(v["msgtype"], "text");
    assert_eq!(v["msgUuid"], m.msg_uuid.as_str());
    v["text"]["content"].as_str().unwrap().to_owned()
}

/// The sum of every `【rule】×N` in a text.
pub(super) fn header_total(text: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with('【'))
        .filter_map(|l| {
            let n = l.split_once("】×")?.1.split(' ').next()?;
            Some(n.parse::<u64>().unwrap())
        })
        .sum()
}

/// For each `【rule】×N` section: N, the lines quoted, and K of `… K more not shown`.
pub(super) fn sections(text: &str) -> Vec<(u64, u64, u64)> {
    let mut out: Vec<(u64, u64, u64)> = Vec::new();
    for l in text.lines() {
        if l.starts_with('【') {
            let n = l.split('×').nth(1).unwrap().split(' ').next().unwrap();
            out.push((n.parse().unwrap(), 0, 0));
        } else if let Some(last) = out.last_mut() {
            if l.starts_with("> ") {
                last.1 += 1;
            } else if let Some(more) = l.strip_prefix("… ") {
                last.2 = more.split(' ').next().unwrap().parse().unwrap();
            }
        }
    }
    out
}

pub(super) fn styled(a: Alert, style: Style) -> Alert {
    Alert {
        style: Arc::new(style),
        ..a
    }
}

#[test]
fn a_small_alert_is_quoted_whole() {
    let a = alert("nginx-5xx", 3, &[b"GET /a 500", b"GET /b 502"], 2);
    let (m, used) = render(&[a], &ctx(None), "u1".into());
    assert_eq!(used, 1);
    let text = content(&m);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "【nginx-5xx】×3 web-01");
    assert!(lines[1].ends_with(" · stdin"), "{}", lines[1]);
    assert!(lines[1].contains(" → "), "{}", lines[1]);
    // Times are written in the configured zone, not the host's (UTC+8 here).
    assert_eq!(lines[1], "1970-01-01 08:00:00 → 08:01:05 · stdin");
    assert_eq!(
        &lines[2..],
        ["> GET /a 500", "> GET /b 502", "… 1 more not shown"]
    );
    assert_eq!(
        (m.count, m.rules.clone()),
        (3, vec!["nginx-5xx".to_owned()])
    );
}

#[test]
fn merged_alerts_each_keep_their_header_and_the_keyword_is_added() {
    let alerts = [alert("a", 1, &[b"x"], 5), alert("b", 7, &[b"y"], 5)];
    let (m, used) = render(&alerts, &ctx(Some("告警")), "u".into());
    assert_eq!(used, 2);
    let text = content(&m);
    assert_eq!(header_total(&text), 8);
    assert!(text.contains("【a】×1 web-01") && text.contains("【b】×7 web-01"));
    assert!(text.ends_with("\n告警"), "{text}");
}

#[test]
fn an_event_is_quoted_line_by_line_and_a_bare_cr_is_no_line_break() {
    // samples as the pipeline hands them over: an event's lines apart, `\n` between them
    let a = alert("trace", 2, &[b"boom\n\tat a.B(C.java)", b"one\rline"], 5);
    let (m, _) = render(&[a], &ctx(None), "u".into());
    let text = content(&m);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert_eq!(lines[2], "> boom");
    assert!(
        lines[3].starts_with("  ") && lines[3].ends_with("at a.B(C.java)"),
        "{text}"
    );
    assert!(
        lines[4].starts_with("> one") && lines[4].ends_with("line"),
        "{text}"
    );
    assert!(!text.contains('\r'));
}

#[test]
fn plain_text_adds_the_keyword_only_when_missing() {
    let b = plain_text("hello", Some("告警"), "u");
    assert!(b.contains(r#""content":"hello\n告警""#), "{b}");
    let b = plain_text("告警 hello", Some("告警"), "u");
    assert!(b.contains(r#""content":"告警 hello""#), "{b}");
}

#[test]
fn a_keyword_that_looks_like_a_header_is_set_off() {
    let (m, _) = render(
        &[alert("a", 1, &[b"x"], 5)],
        &ctx(Some("【告警】")),
        "u".into(),
    );
    let text = content(&m);
    assert!(text.ends_with("\n· 【告警】"), "{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with('【')).count(), 1);
}

#[test]
fn severity_group_template_and_mentions() {
    use crate::style::{Mention, Severity, Template};
    let caps: Vec<Arc<str>> = vec!["ip".into(), "user".into()];
    let style = Style {
        severity: Some(Severity::Critical),
        template: Some(
            Template::parse(
                "{ip} tried {count} passwords, last as {user}\n{lines}",
                &caps,
            )
            .unwrap(),
        ),
        mention: Mention {
            mobiles: vec!["13800000000".into()],
            user_ids: vec!["u42".into()],
            all: false,
        },
        capture_names: caps,
        ..Style::default()
    };
    let a = Alert {
        group: Some("ip=10.0.0.5".into()),
        captures: vec!["10.0.0.5".into(), "r@@t".into()],
        ..styled(alert("ssh", 7, &[b"Failed password for root"], 1), style)
    };
    let (m, _) = render(&[a], &ctx(Some("告警")), "u".into());
    let v: serde_json::Value = serde_json::from_str(&m.body).unwrap();
    assert_eq!(v["at"]["atMobiles"][0], "13800000000");
    assert_eq!(v["at"]["atUserIds"][0], "u42");
    assert_eq!(v["at"]["isAtAll"], false);
    let text = content(&m);
    assert_eq!(
        text,
        "【ssh】×7 web-01 · critical · ip=10.0.0.5\n\
         10.0.0.5 tried 7 passwords, last as r＠＠t\n\
         > Failed password for root\n\
         … 6 more not shown\n\
         @13800000000 @u42\n告警"
    );
    assert_eq!(header_total(&text), 7);
}

#[test]
fn a_template_without_lines_quotes_none_but_keeps_the_header() {
    use crate::style::Template;
    let style = Style {
        template: Some(Template::parse("{rule} fired {count} times on {host}", &[]).unwrap()),
        ..Style::default()
    };
    let a = styled(alert("r", 3, &[b"x", b"y"], 5), style);
    let (m, _) = render(&[a], &ctx(None), "u".into());
    assert_eq!(content(&m), "【r】×3 web-01\nr fired 3 times on web-01");
}

#[test]
fn a_markdown_title_covers_every_rule_and_count_in_the_message() {
    use crate::style::Severity;
    let md = |sev| Style {
        msgtype: MsgType::Markdown,
        severity: sev,
        ..Style::default()
    };
    let alerts = vec![
        styled(alert("disk", 3, &[b"a"], 5), md(Some(Severity::Warning))),
        styled(alert("oom", 9, &[b"b"], 5), md(Some(Severity::Critical))),
        styled(alert("slow", 1, &[b"c"], 5), md(None)),
    ];
    let (m, used) = render(&alerts, &ctx(None), "u".into());
    assert_eq!(used, 3);
    let v: serde_json::Value = serde_json::from_str(&m.body).unwrap();
    assert_eq!(
        v["markdown"]["title"],
        "[critical] ×13 · disk ×3, oom ×9, slow ×1"
    );
    // Many rules: the title stays a line, and says how many it does not name.
    let many: Vec<Alert> = (0..40)
        .map(|i| styled(alert(&format!("rule-number-{i}"), 2, &[b"x"], 5), md(None)))
        .collect();
    let (m, used) = render(&many, &ctx(None), "u".into());
    let v: serde_json::Value = serde_json::from_str(&m.body).unwrap();
    let t = v["markdown"]["title"].as_str().unwrap();
    assert!(
        t.starts_with(&format!("×{} · rule-number-0 ×2, ", 2 * used)),
        "{t}"
    );
    assert!(t.ends_with(" more"), "{t}");
    assert!(t.chars().count() < TITLE_RULES_CHARS + 40, "{t}");
}

#[test]
fn markdown_quotes_log_lines_so_they_cannot_inject_markup_or_mentions() {
    let style = Style {
        msgtype: MsgType::Markdown,
        severity: Some(crate::style::Severity::Warning),
        // The number stays so the `@` before it can be seen neutralised.
        pii: Pii::off(),
        ..Style::default()
    };
    let evil: &[u8] = b"**bold** [x](http://e.vil) ![i](u) # h @13800000000 <b>|t|</b> `c`";
    let a = styled(alert("web", 2, &[evil], 5), style);
    let (m, used) = render(&[a], &ctx(Some("告警")), "u".into());
    assert_eq!(used, 1);
    let v: serde_json::Value = serde_json::from_str(&m.body).unwrap();
    assert_eq!(v["msgtype"], "markdown");
    assert_eq!(v["markdown"]["title"], "[warning] web ×2");
    assert!(v.get("at").is_none());
    let text = v["markdown"]["text"].as_str().unwrap();
    assert!(
        text.starts_with("【web】×2 web-01 · **warning**  \n"),
        "{text}"
    );
    let quoted = text.lines().find(|l| l.starts_with("> ")).unwrap();
    for bad in ["*", "[", "]", "(", ")", "!", "#", "@", "<", ">", "|", "`"] {
        assert!(!quoted[2..].contains(bad), "{bad} in {quoted}");
    }
    assert!(quoted.contains("＠13800000000"), "{quoted}");
    assert!(text.contains("… 1 more not shown"), "{text}");
    assert!(text.ends_with("\n告警"), "{text}");
    assert_eq!(header_total(text), 2);
}

#[test]
fn messages_do_not_mix_types_and_news_without_lines_has_no_count() {
    let md = Style {
        msgtype: MsgType::Markdown,
        ..Style::default()
    };
    let alerts = [
        alert("a", 1, &[b"x"], 5),
        Alert {
            kind: AlertKind::Recovered {
                quiet: std::time::Duration::from_secs(300),
            },
            count: 0,
            samples: vec![],
            ..alert("b", 0, &[], 5)
        },
        styled(alert("c", 1, &[b"y"], 5), md),
    ];
    let (m, used) = render(&alerts, &ctx(None), "u".into());
    assert_eq!(used, 2, "the markdown alert waits for its own message");
    let text = content(&m);
    assert!(
        text.contains("【b】recovered web-01\nno matching line for 5m"),
        "{text}"
    );
    assert_eq!(header_total(&text), 1);
    let (m, used) = render(&alerts[2..], &ctx(None), "u".into());
    assert_eq!(used, 1);
    assert!(m.body.contains(r#""msgtype":"markdown""#));
}

#[test]
fn bytes_helper_is_used() {
    // Sample keeps raw bytes; a line of only invalid bytes still renders.
    let a = Alert {
        samples: vec![Sample {
            text: Bytes::from_static(b"\xff"),
            cut: false,
        }],
        ..alert("x", 1, &[], 1)
    };
    let (m, _) = render(&[a], &ctx(None), "u".into());
    assert!(content(&m).contains("> \u{fffd}"));
}

/// Every line that starts with `【` (after any leading whitespace) must be one of the real
/// headers, in order; returns the sum of their counts.
fn real_headers_only(text: &str, alerts: &[Alert]) -> Result<u64, TestCaseError> {
    let headers: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with('【'))
        .collect();
    prop_assert_eq!(headers.len(), alerts.len(), "{}", text);
    let mut total = 0;
    for (h, a) in headers.iter().zip(alerts) {
        let want = format!("【{}】×{} ", a.rule_name, a.count);
        prop_assert!(h.starts_with(&want), "{:?} is not {:?}", h, want);
        total += a.count;
    }
    Ok(total)
}

fn hostile_text() -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop::sample::select(vec![
        "\r",
        "\n",
        "\r\n",
        "【",
        "】",
        "【forged】×1000000 host",
        "×",
        "\u{1b}[2J",
        "\u{1b}",
        "\0",
        "\u{85}",
        "\u{202e}",
        "\u{2066}",
        "\u{200b}",
        "\u{200d}",
        "\u{feff}",
        "\u{2028}",
        "@all",
        "**",
        "> ",
        " ",
        "\t",
        "数据",
        "\u{fffd}",
    ]);
    prop::collection::vec(
        prop_oneof![
            pieces.prop_map(|p| p.as_bytes().to_vec()),
            prop::collection::vec(any::<u8>(), 0..8),
        ],
        0..12,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]
    /// Arbitrary bytes as quoted lines, captures, group keys, sources and the host: the
    /// only lines starting with 【 are the real headers, and their counts add up.
    #[test]
    fn log_text_never_forges_a_header(
        specs in prop::collection::vec(
            (1u64..1000, prop::collection::vec(hostile_text(), 0..4), hostile_text(), hostile_text(), any::<bool>()),
            1..6),
        host in hostile_text(),
        markdown in any::<bool>(),
        template in any::<bool>(),
    ) {
        use crate::style::Template;
        let caps: Vec<Arc<str>> = vec!["v".into()];
        let style = Style {
            msgtype: if markdown { MsgType::Markdown } else { MsgType::Text },
            template: template.then(|| Template::parse("{v} on {host} from {source}\n{lines}", &caps).unwrap()),
            capture_names: caps.clone(),
            ..Style::default()
        };
        let alerts: Vec<Alert> = specs.iter().enumerate().map(|(i, (count, lines, capture, group, grouped))| {
            let lines: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
            let count = (*count).max(lines.len() as u64);
            Alert {
                captures: vec![String::from_utf8_lossy(capture).into_owned()],
                group: grouped.then(|| Arc::from(String::from_utf8_lossy(group).as_ref())),
                source: Arc::from(String::from_utf8_lossy(group).as_ref()),
                ..styled(alert(&format!("rule-{i}"), count, &lines, 5), style.clone())
            }
        }).collect();
        let host = String::from_utf8_lossy(&host).into_owned();
        let ctx = RenderContext { host: &host, keyword: Some("【告警】"), max_body: MAX_BODY_BYTES, zone: Zone::parse("Asia/Shanghai").unwrap(), hosts: None };
        let mut rest: &[Alert] = &alerts;
        let mut total = 0;
        while !rest.is_empty() {
            let (m, used) = render(rest, &ctx, "u".into());
            prop_assert!(m.body.len() <= MAX_BODY_BYTES);
            let v: serde_json::Value = serde_json::from_str(&m.body).unwrap();
            let text = if markdown { &v["markdown"]["text"] } else { &v["text"]["content"] };
            let text = text.as_str().unwrap();
            for bad in ['\r', '\u{85}', '\u{202e}', '\u{2066}', '\u{200b}', '\u{200d}', '\u{1b}', '\0', '\u{2028}'] {
                prop_assert!(!text.contains(bad), "{:?} in {:?}", bad, text);
            }
            let counted = real_headers_only(text, &rest[..used])?;
            prop_assert_eq!(counted, m.count);
            total += counted;
            rest = &rest[used..];
        }
        prop_assert_eq!(total, alerts.iter().map(|a| a.count).sum::<u64>());
    }
}
