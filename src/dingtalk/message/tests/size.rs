//! The 20,000-byte limit: bodies measured exactly as serde_json escapes them always fit, long
//! lines are cut before lines are dropped, and no count is ever lost to make room.

use std::sync::Arc;

use proptest::prelude::*;

use super::{alert, content, ctx, header_total, sections, styled};
use crate::alert::Alert;
use crate::dingtalk::message::json::escaped_len;
use crate::dingtalk::message::{MAX_BODY_BYTES, render, render_within};
use crate::pii::Pii;
use crate::style::{MsgType, Style};

#[test]
fn cjk_and_invalid_utf8_at_the_size_edge() {
    let cjk = "数据库连接失败".repeat(400); // 8,400 bytes a line, 3 bytes a char
    let bad = [b"\xff\xfe broken \xc3".as_slice(), &[b'x'; 3000]].concat();
    let lines: Vec<&[u8]> = vec![
        cjk.as_bytes(),
        &bad,
        cjk.as_bytes(),
        b"\"quoted\" \\ \t tab",
    ];
    let a = alert("db", 10_000, &lines, 20);
    let (m, _) = render(&[a], &ctx(Some("告警")), "u".into());
    assert!(m.body.len() <= MAX_BODY_BYTES, "{}", m.body.len());
    let text = content(&m);
    assert!(text.contains('\u{fffd}'));
    assert!(text.contains('…'));
    assert!(text.contains("\"quoted\" \\ \t tab"));
    assert_eq!(header_total(&text), 10_000);
    // every quoted line is intact UTF-8 by construction (it is a &str); the cut is marked
    for l in text.lines().filter(|l| l.starts_with("> 数据")) {
        assert!(l.ends_with('…'));
    }
}

#[test]
fn many_huge_lines_are_cut_then_dropped_never_the_count() {
    let line = vec![b'"'; 8000]; // escapes to 16,000 bytes
    let lines: Vec<&[u8]> = (0..20).map(|_| line.as_slice()).collect();
    let a = alert("q", 20, &lines, 20);
    let (m, _) = render(&[a], &ctx(None), "u".into());
    assert!(m.body.len() <= MAX_BODY_BYTES);
    let text = content(&m);
    let quoted = text.lines().filter(|l| l.starts_with("> ")).count();
    assert!(
        quoted > 10,
        "cut lines should let most lines show: {quoted}"
    );
    assert!(text.lines().any(|l| l.starts_with('…')) || quoted == 20);
}

#[test]
fn more_alerts_than_one_message_holds_are_left_for_the_next() {
    let name = "r".repeat(90);
    let alerts: Vec<Alert> = (0..400)
        .map(|i| alert(&name, i + 1, &[b"line"], 1))
        .collect();
    let (m, used) = render(&alerts, &ctx(None), "u".into());
    assert!(used > 10 && used < 400, "{used}");
    assert!(m.body.len() <= MAX_BODY_BYTES);
    assert_eq!(header_total(&content(&m)), (1..=used as u64).sum::<u64>());
}

#[test]
fn escaped_len_agrees_with_serde_json() {
    let s = "a\"b\\c\nd\te\u{1}f\u{7f}数\u{fffd}🎉\r\u{8}\u{c}";
    assert_eq!(escaped_len(s) + 2, serde_json::to_string(s).unwrap().len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn any_alerts_fit_and_every_count_is_accounted(
        specs in prop::collection::vec(
            (1u64..100_000, prop::collection::vec(prop::collection::vec(any::<u8>(), 0..6000), 0..30)),
            1..12),
        keyword in prop::option::of("[a-z告警]{1,6}"),
    ) {
        let alerts: Vec<Alert> = specs.iter().enumerate().map(|(i, (count, lines))| {
            let lines: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
            let count = (*count).max(lines.len() as u64);
            alert(&format!("rule-{i}"), count, &lines, 30)
        }).collect();
        let mut rest: &[Alert] = &alerts;
        let mut total = 0;
        while !rest.is_empty() {
            let (m, used) = render(rest, &ctx(keyword.as_deref()), "uuid".into());
            prop_assert!(used >= 1);
            prop_assert!(m.body.len() <= MAX_BODY_BYTES);
            let text = content(&m);
            prop_assert_eq!(header_total(&text), m.count);
            if let Some(k) = &keyword { prop_assert!(text.contains(k.as_str())); }
            // per rule: quoted lines + "… K more" = ×N
            for (count, quoted, more) in sections(&text) {
                prop_assert_eq!(quoted + more, count, "{}", text);
            }
            total += m.count;
            rest = &rest[used..];
        }
        prop_assert_eq!(total, alerts.iter().map(|a| a.count).sum::<u64>());
    }
}

#[test]
fn hundreds_of_rules_in_one_window_split_into_messages_that_fit_at_the_first_try() {
    use crate::style::Severity;
    for markdown in [false, true] {
        let style = Style {
            msgtype: if markdown {
                MsgType::Markdown
            } else {
                MsgType::Text
            },
            severity: Some(Severity::Warning),
            ..Style::default()
        };
        let alerts: Vec<Alert> = (0..400)
            .map(|i| Alert {
                group: Some(Arc::from(
                    format!("ip=10.0.{}.{}", i / 256, i % 256).as_str(),
                )),
                ..styled(
                    alert(
                        &format!("rule-number-{i}"),
                        3 + i as u64,
                        &[b"first line ERROR", b"second line ERROR"],
                        2,
                    ),
                    style.clone(),
                )
            })
            .collect();
        let refs: Vec<&Alert> = alerts.iter().collect();
        let mut rest: &[&Alert] = &refs;
        let (mut messages, mut total) = (0, 0);
        while !rest.is_empty() {
            let (m, used, _) = render_within(rest, &ctx(Some("告警")), "u".into());
            assert!(
                m.body.len() <= MAX_BODY_BYTES,
                "markdown {markdown}: {} bytes",
                m.body.len()
            );
            let v: serde_json::Value = serde_json::from_str(&m.body).unwrap();
            let text = if markdown {
                &v["markdown"]["text"]
            } else {
                &v["text"]["content"]
            };
            let text = text.as_str().unwrap();
            assert_eq!(header_total(text), m.count);
            total += m.count;
            messages += 1;
            rest = &rest[used..];
        }
        assert_eq!(total, (0..400u64).map(|i| 3 + i).sum::<u64>());
        assert!(messages > 1, "400 rules need several messages");
    }
}

#[test]
fn a_single_alert_too_large_for_any_message_keeps_its_header_and_count() {
    use crate::style::Template;
    let huge = "x".repeat(30_000);
    let style = Style {
        template: Some(Template::parse(&format!("{huge}\n{{lines}}"), &[]).unwrap()),
        ..Style::default()
    };
    let a = styled(alert("big", 9, &[b"line"], 5), style);
    let (m, used) = render(&[a.clone(), a], &ctx(Some("告警")), "u".into());
    assert_eq!(used, 1);
    assert!(m.body.len() <= MAX_BODY_BYTES, "{}", m.body.len());
    let text = content(&m);
    assert!(text.starts_with("【big】×9 web-01\n"), "{}", &text[..50]);
    assert!(text.ends_with("…\n告警"), "{}", &text[text.len() - 20..]);
    assert_eq!(m.count, 9);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Masking changes what is quoted, never what is counted: with `redact` on, every body
    /// fits, every header's ×N is the alert's count and equals quoted + not shown, the same
    /// totals as with it off, and no personal value reaches the body.
    #[test]
    fn masking_never_changes_counts(
        specs in prop::collection::vec(
            (1u64..1000, prop::collection::vec(
                (prop::collection::vec(0usize..7, 0..40), 0usize..3000), 0..12)),
            1..10),
        markdown in any::<bool>(),
    ) {
        const PIECES: [&str; 7] = [
            "13812345678", "11010519491231002X", "6222021234567894", "zhang.san@qq.com",
            "Bearer abcDEF123456", "password=hunter2", " ts=1732870000 ",
        ];
        let secrets = ["13812345678", "11010519491231002X", "6222021234567894",
            "zhang.san", "abcDEF123456", "hunter2"];
        let style = |pii: Pii| Arc::new(Style {
            msgtype: if markdown { MsgType::Markdown } else { MsgType::Text },
            pii,
            ..Style::default()
        });
        let build = |pii: Pii| -> Vec<Alert> {
            let style = style(pii);
            specs.iter().enumerate().map(|(i, (count, lines))| {
                let lines: Vec<Vec<u8>> = lines.iter().map(|(pieces, pad)| {
                    let mut l = "x".repeat(*pad);
                    for p in pieces { l.push(' '); l.push_str(PIECES[*p]); l.push(' '); }
                    l.into_bytes()
                }).collect();
                let lines: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
                let mut a = alert(&format!("rule-{i}"), (*count).max(lines.len() as u64), &lines, 12);
                a.style = style.clone();
                a
            }).collect()
        };
        let totals = |alerts: &[Alert], check_secrets: bool| -> Result<Vec<u64>, TestCaseError> {
            let mut rest = alerts;
            let mut counts = Vec::new();
            while !rest.is_empty() {
                let (m, used) = render(rest, &ctx(None), "uuid".into());
                prop_assert!(m.body.len() <= MAX_BODY_BYTES);
                let v: serde_json::Value = serde_json::from_str(&m.body).unwrap();
                let text = if markdown { &v["markdown"]["text"] } else { &v["text"]["content"] };
                let text = text.as_str().unwrap();
                prop_assert_eq!(header_total(text), m.count);
                if !markdown {
                    for (count, quoted, more) in sections(text) {
                        prop_assert_eq!(quoted + more, count);
                    }
                }
                if check_secrets {
                    for s in secrets {
                        prop_assert!(!m.body.contains(s), "{} in {}", s, m.body);
                    }
                }
                counts.push(m.count);
                rest = &rest[used..];
            }
            Ok(counts)
        };
        let on = totals(&build(Pii::default()), true)?;
        let off = totals(&build(Pii::off()), false)?;
        prop_assert_eq!(on.iter().sum::<u64>(), off.iter().sum::<u64>());
        prop_assert_eq!(on.iter().sum::<u64>(),
            build(Pii::off()).iter().map(|a| a.count).sum::<u64>());
    }
}
