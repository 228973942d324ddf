//! Renders alerts into a DingTalk `text` message whose request body stays within 20,000 bytes.
//!
//! The message text is a contract with the people reading it: for every rule it stands for, a
//! header line `【rule】×N host` with the exact number of matching lines, then the time span, then
//! up to `max_lines` quoted lines, then `… K more not shown` when lines were left out. When several
//! alerts are merged into one message (the robot was waiting for its rate limit), each rule has its
//! own header.
//!
//! DingTalk refuses (errcode 460101), and does not cut, a body over 20,000 bytes counted in UTF-8
//! after JSON escaping. So sizes here are computed exactly, as serde_json will escape them, and
//! space is given up in this order: long lines are cut (marked `…`), then fewer lines are quoted,
//! then (only when one message cannot even hold every header) later alerts are left for the next
//! message. A count is never dropped and a UTF-8 character is never split.

use std::borrow::Cow;
use std::time::SystemTime;

use chrono::{DateTime, Local};
use serde::Serialize;

use crate::aggregate::Alert;

/// DingTalk's limit on a request body, in bytes.
pub const MAX_BODY_BYTES: usize = 20_000;

/// A quoted line is never cut shorter than this many bytes (escaped) while lines can be dropped
/// instead: a handful of readable lines beats many stubs.
const MIN_LINE_BYTES: usize = 160;

/// What the renderer needs to know beyond the alerts.
#[derive(Debug, Clone)]
pub struct RenderContext<'a> {
    /// This machine's name, shown in every header.
    pub host: &'a str,
    /// The robot's security keyword; when set, every message contains it.
    pub keyword: Option<&'a str>,
    /// Body size limit; [`MAX_BODY_BYTES`] except when shrinking after a 460101.
    pub max_body: usize,
}

/// A rendered message, ready to POST.
#[derive(Debug, Clone)]
pub struct Message {
    /// DingTalk's idempotency key: kept across retries of this exact body.
    pub msg_uuid: String,
    /// The exact JSON request body.
    pub body: String,
    /// Names of the rules it accounts for, in order.
    pub rules: Vec<String>,
    /// Total matching lines it accounts for (the sum of its ×N).
    pub count: u64,
}

#[derive(Serialize)]
struct TextBody<'a> {
    msgtype: &'static str,
    text: TextContent<'a>,
    #[serde(rename = "msgUuid")]
    msg_uuid: &'a str,
}

#[derive(Serialize)]
struct TextContent<'a> {
    content: &'a str,
}

/// Renders the first alerts of `alerts` that fit into one message (always at least one; all of
/// them when their headers fit) and returns it with how many alerts it used.
///
/// # Panics
/// When `alerts` is empty.
pub fn render_text(alerts: &[Alert], ctx: &RenderContext, msg_uuid: String) -> (Message, usize) {
    assert!(!alerts.is_empty(), "nothing to render");
    let overhead = body_json(&msg_uuid, "").len();
    let keyword_part = ctx.keyword.map(|k| format!("\n{k}")).unwrap_or_default();
    let budget = ctx
        .max_body
        .saturating_sub(overhead + escaped_len(&keyword_part));

    // Headers first: as many alerts as fit with their worst-case "more" line.
    let heads: Vec<String> = alerts.iter().map(|a| head(a, ctx.host)).collect();
    let mut used = 0;
    let mut fixed = 0;
    for (i, (a, h)) in alerts.iter().zip(&heads).enumerate() {
        let cost = escaped_len(h) + escaped_len(&more_line(a.count)) + usize::from(i > 0);
        if used > 0 && fixed + cost > budget {
            break;
        }
        fixed += cost;
        used += 1;
    }
    let alerts = &alerts[..used];

    let lines: Vec<Vec<Quoted>> = alerts
        .iter()
        .map(|a| {
            a.samples
                .iter()
                .map(|s| Quoted::new(&s.text, s.cut))
                .collect()
        })
        .collect();
    let shown = fit_lines(&lines, budget.saturating_sub(fixed));

    let mut content = String::new();
    for (i, (a, h)) in alerts.iter().zip(&heads).enumerate() {
        if i > 0 {
            content.push('\n');
        }
        content.push_str(h);
        let (n, cap) = shown[i];
        for q in &lines[i][..n] {
            q.write_cut(&mut content, cap);
        }
        let more = a.count - n as u64;
        if more > 0 {
            content.push_str(&more_line(more));
        }
    }
    if content.ends_with('\n') {
        content.pop();
    }
    content.push_str(&keyword_part);

    let mut body = body_json(&msg_uuid, &content);
    if body.len() > ctx.max_body {
        // Cannot happen if the arithmetic above is right (a test hammers it); if it ever does,
        // send the headers alone rather than a body DingTalk refuses.
        tracing::error!(
            body_bytes = body.len(),
            "rendered message over the limit; sending headers only (this is a bug, please report it)"
        );
        let mut bare = String::new();
        for (a, h) in alerts.iter().zip(&heads) {
            bare.push_str(h);
            bare.push_str(&more_line(a.count));
        }
        bare.push_str(&keyword_part);
        body = body_json(&msg_uuid, &bare);
    }
    let message = Message {
        msg_uuid,
        body,
        rules: alerts.iter().map(|a| a.rule_name.to_string()).collect(),
        count: alerts.iter().map(|a| a.count).sum(),
    };
    (message, used)
}

/// The full request body for a text message.
fn body_json(msg_uuid: &str, content: &str) -> String {
    serde_json::to_string(&TextBody {
        msgtype: "text",
        text: TextContent { content },
        msg_uuid,
    })
    .expect("a struct of strings serializes")
}

/// A plain text message (for `dingtail send`): the text, plus the keyword when it lacks it.
pub fn plain_text(text: &str, keyword: Option<&str>, msg_uuid: &str) -> String {
    let content = match keyword {
        Some(k) if !text.contains(k) => format!("{text}\n{k}"),
        _ => text.to_owned(),
    };
    body_json(msg_uuid, &content)
}

/// `【rule】×N host` and the time span line, each ending in `\n`.
fn head(alert: &Alert, host: &str) -> String {
    let source = match &*alert.source {
        "-" => "stdin",
        other => other,
    };
    format!(
        "【{}】×{} {}\n{} · {}\n",
        alert.rule_name,
        alert.count,
        host,
        span(alert.first, alert.last),
        source
    )
}

fn more_line(more: u64) -> String {
    format!("… {more} more not shown\n")
}

/// `2026-11-29 10:44:54 → 10:45:04`, local time; the date only once when it does not change.
fn span(first: SystemTime, last: SystemTime) -> String {
    let first: DateTime<Local> = first.into();
    let last: DateTime<Local> = last.into();
    let start = first.format("%Y-%m-%d %H:%M:%S").to_string();
    if first.format("%Y%m%d%H%M%S").to_string() == last.format("%Y%m%d%H%M%S").to_string() {
        start
    } else if first.date_naive() == last.date_naive() {
        format!("{start} → {}", last.format("%H:%M:%S"))
    } else {
        format!("{start} → {}", last.format("%Y-%m-%d %H:%M:%S"))
    }
}

/// A line ready to quote: decoded, cleaned, with its escaped size known.
struct Quoted {
    text: String,
    /// Escaped length of `> ` + text + `\n`.
    len: usize,
    /// It was cut before it got here.
    cut: bool,
}

const PREFIX: &str = "> ";
const ELLIPSIS: &str = "…";

impl Quoted {
    fn new(raw: &[u8], cut: bool) -> Quoted {
        // A multi-line event (a stack trace) arrives with its lines joined by `\r`: each of its
        // lines goes on a line of its own, indented under the `> ` that marks one counted event.
        let text = raw
            .split(|&b| b == b'\r')
            .map(|l| clean(&String::from_utf8_lossy(l)).into_owned())
            .collect::<Vec<_>>()
            .join("\n  ");
        let len =
            escaped_len(PREFIX) + escaped_len(&text) + 1 + if cut { ELLIPSIS.len() } else { 0 };
        Quoted { text, len, cut }
    }

    /// Escaped length when cut to at most `cap` bytes (prefix, ellipsis and newline included).
    fn len_cut(&self, cap: usize) -> usize {
        self.len.min(cap)
    }

    /// Appends the quoted line, cut so that its escaped length is at most `cap`.
    fn write_cut(&self, out: &mut String, cap: usize) {
        out.push_str(PREFIX);
        if self.len <= cap {
            out.push_str(&self.text);
            if self.cut {
                out.push_str(ELLIPSIS);
            }
        } else {
            let room = cap.saturating_sub(escaped_len(PREFIX) + ELLIPSIS.len() + 1);
            let mut used = 0;
            for c in self.text.chars() {
                let n = escaped_char_len(c);
                if used + n > room {
                    break;
                }
                used += n;
                out.push(c);
            }
            out.push_str(ELLIPSIS);
        }
        out.push('\n');
    }
}

/// Decides, for each alert, how many of its lines to quote and the per-line cap, so that all of
/// it fits in `budget` bytes: first cut long lines (down to [`MIN_LINE_BYTES`]), then drop lines,
/// always from the alert that shows the most, so every rule keeps some of its lines.
fn fit_lines(lines: &[Vec<Quoted>], budget: usize) -> Vec<(usize, usize)> {
    let total = |counts: &[usize], cap: usize| -> usize {
        lines
            .iter()
            .zip(counts)
            .map(|(ls, &n)| ls[..n].iter().map(|q| q.len_cut(cap)).sum::<usize>())
            .sum()
    };
    let mut counts: Vec<usize> = lines.iter().map(Vec::len).collect();
    let longest = lines.iter().flatten().map(|q| q.len).max().unwrap_or(0);
    if total(&counts, longest) <= budget {
        return counts.iter().map(|&n| (n, longest)).collect();
    }
    if total(&counts, MIN_LINE_BYTES) <= budget {
        // The largest cap that fits, by bisection: total() grows with the cap.
        let (mut lo, mut hi) = (MIN_LINE_BYTES, longest);
        while lo + 1 < hi {
            let mid = lo + (hi - lo) / 2;
            if total(&counts, mid) <= budget {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        return counts.iter().map(|&n| (n, lo)).collect();
    }
    // Even cut short they do not fit: quote fewer lines.
    let mut size = total(&counts, MIN_LINE_BYTES);
    while size > budget {
        let (i, _) = counts
            .iter()
            .enumerate()
            .max_by_key(|&(i, n)| (*n, std::cmp::Reverse(i)))
            .expect("at least one alert");
        if counts[i] == 0 {
            break;
        }
        counts[i] -= 1;
        size -= lines[i][counts[i]].len_cut(MIN_LINE_BYTES);
    }
    counts.iter().map(|&n| (n, MIN_LINE_BYTES)).collect()
}

/// Makes a log line presentable: strips ANSI colour sequences (common in `kubectl logs`) and
/// replaces other control characters, which DingTalk would show as garbage, with `�`. Tabs stay.
fn clean(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() && c != '\t') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            // CSI: parameters and intermediates, then one final byte in @..~
            for f in chars.by_ref() {
                if ('@'..='~').contains(&f) {
                    break;
                }
            }
        } else if c.is_control() && c != '\t' {
            out.push('\u{fffd}');
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Bytes `c` takes in a JSON string as serde_json writes it.
fn escaped_char_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{08}' | '\u{0c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// Bytes `s` takes in a JSON string (without the quotes).
fn escaped_len(s: &str) -> usize {
    s.chars().map(escaped_char_len).sum()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use proptest::prelude::*;

    use super::*;
    use crate::aggregate::Sample;

    fn alert(name: &str, count: u64, lines: &[&[u8]], max_lines: usize) -> Alert {
        Alert {
            rule: 0,
            rule_name: Arc::from(name),
            robot: Some(0),
            count,
            first: SystemTime::UNIX_EPOCH,
            last: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(65),
            source: "-".into(),
            samples: lines.iter().map(|l| Sample::from_line(l)).collect(),
            holds: Vec::new(),
            max_lines,
        }
    }

    fn ctx(keyword: Option<&str>) -> RenderContext<'_> {
        RenderContext {
            host: "web-01",
            keyword,
            max_body: MAX_BODY_BYTES,
        }
    }

    fn content(m: &Message) -> String {
        let v: serde_json::Value = serde_json::from_str(&m.body).unwrap();
        assert_eq!(v["msgtype"], "text");
        assert_eq!(v["msgUuid"], m.msg_uuid.as_str());
        v["text"]["content"].as_str().unwrap().to_owned()
    }

    /// The sum of every `【rule】×N` in a text.
    fn header_total(text: &str) -> u64 {
        text.lines()
            .filter(|l| l.starts_with('【'))
            .map(|l| {
                let n = l.split('×').nth(1).unwrap().split(' ').next().unwrap();
                n.parse::<u64>().unwrap()
            })
            .sum()
    }

    /// For each `【rule】×N` section: N, the lines quoted, and K of `… K more not shown`.
    fn sections(text: &str) -> Vec<(u64, u64, u64)> {
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

    #[test]
    fn a_small_alert_is_quoted_whole() {
        let a = alert("nginx-5xx", 3, &[b"GET /a 500", b"GET /b 502"], 2);
        let (m, used) = render_text(&[a], &ctx(None), "u1".into());
        assert_eq!(used, 1);
        let text = content(&m);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "【nginx-5xx】×3 web-01");
        assert!(lines[1].ends_with(" · stdin"), "{}", lines[1]);
        assert!(lines[1].contains(" → "), "{}", lines[1]);
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
        let (m, used) = render_text(&alerts, &ctx(Some("告警")), "u".into());
        assert_eq!(used, 2);
        let text = content(&m);
        assert_eq!(header_total(&text), 8);
        assert!(text.contains("【a】×1 web-01") && text.contains("【b】×7 web-01"));
        assert!(text.ends_with("\n告警"), "{text}");
    }

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
        let (m, _) = render_text(&[a], &ctx(Some("告警")), "u".into());
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
        let (m, _) = render_text(&[a], &ctx(None), "u".into());
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
        let (m, used) = render_text(&alerts, &ctx(None), "u".into());
        assert!(used > 10 && used < 400, "{used}");
        assert!(m.body.len() <= MAX_BODY_BYTES);
        assert_eq!(header_total(&content(&m)), (1..=used as u64).sum::<u64>());
    }

    #[test]
    fn ansi_colours_are_stripped_and_controls_replaced() {
        assert_eq!(
            clean("\u{1b}[31mERROR\u{1b}[0m x\u{7}y\tz"),
            "ERROR x\u{fffd}y\tz"
        );
        assert_eq!(clean("plain"), "plain");
    }

    #[test]
    fn escaped_len_agrees_with_serde_json() {
        let s = "a\"b\\c\nd\te\u{1}f\u{7f}数\u{fffd}🎉\r\u{8}\u{c}";
        assert_eq!(escaped_len(s) + 2, serde_json::to_string(s).unwrap().len());
    }

    #[test]
    fn plain_text_adds_the_keyword_only_when_missing() {
        let b = plain_text("hello", Some("告警"), "u");
        assert!(b.contains(r#""content":"hello\n告警""#), "{b}");
        let b = plain_text("告警 hello", Some("告警"), "u");
        assert!(b.contains(r#""content":"告警 hello""#), "{b}");
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
                let (m, used) = render_text(rest, &ctx(keyword.as_deref()), "uuid".into());
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
    fn bytes_helper_is_used() {
        // Sample keeps raw bytes; a line of only invalid bytes still renders.
        let a = Alert {
            samples: vec![Sample {
                text: Bytes::from_static(b"\xff"),
                cut: false,
            }],
            ..alert("x", 1, &[], 1)
        };
        let (m, _) = render_text(&[a], &ctx(None), "u".into());
        assert!(content(&m).contains("> \u{fffd}"));
    }
}
