//! Renders alerts into a DingTalk `text` or `markdown` message whose request body stays within
//! 20,000 bytes.
//!
//! The message text is a contract with the people reading it: for every rule (and group) it
//! stands for, a header line `【rule】×N host` with the exact number of matching lines (then the
//! severity and the group, when there are), then the rule's template or, by default, the time
//! span, the quoted lines and `… K more not shown`. When several alerts are merged into one
//! message (the robot was waiting for its rate limit), each has its own header. "Recovered",
//! "absent" and "back" news stand for no line and say so with a word in place of `×N`.
//!
//! DingTalk refuses (errcode 460101), and does not cut, a body over 20,000 bytes counted in UTF-8
//! after JSON escaping. So sizes here are computed exactly, as serde_json will escape them, and
//! space is given up in this order: long lines are cut (marked `…`), then fewer lines are quoted,
//! then (only when one message cannot even hold every header) later alerts are left for the next
//! message. A count is never dropped and a UTF-8 character is never split.
//!
//! Log text is never trusted: quoted lines, capture values, group keys, source and host names
//! all pass [`neutralise`] (no control, bidi or zero-width character, no `【】`, no `@`, no
//! markdown markup), so the only lines that start with `【` are real headers. Values that go
//! into headers and templates are also cut to [`MAX_VALUE_CHARS`], so one alert's fixed text
//! always fits in a message. Before that, personal data is masked out of them (`redact:`, see
//! [`crate::pii`]), so every size is computed on the text actually sent.

use std::time::SystemTime;

use serde::Serialize;

use crate::alert::{Alert, AlertKind};
use crate::dingtalk::neutral::{MAX_VALUE_CHARS, neutralise, neutralise_short};
use crate::pii::Pii;
use crate::style::{Mention, MsgType, Piece, Placeholder};
use crate::timezone::Zone;

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
    /// The zone every time in the message is written in (`timezone:`).
    pub zone: Zone,
    /// Per alert, in order, what its header names instead of `host`: a fleet digest names the
    /// hosts its lines came from (`on 48 hosts: web-3 ×1200, …`). `None`: `host` for all.
    pub hosts: Option<&'a [String]>,
}

impl RenderContext<'_> {
    /// What the header of the `i`th alert names: its hosts in a fleet digest, else this host.
    fn host_of(&self, i: usize) -> &str {
        self.hosts
            .and_then(|h| h.get(i))
            .map_or(self.host, String::as_str)
    }
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
struct Body<'a> {
    msgtype: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<TextContent<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    markdown: Option<MarkdownContent<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    at: Option<At<'a>>,
    #[serde(rename = "msgUuid")]
    msg_uuid: &'a str,
}

#[derive(Serialize)]
struct TextContent<'a> {
    content: &'a str,
}

#[derive(Serialize)]
struct MarkdownContent<'a> {
    title: &'a str,
    text: &'a str,
}

#[derive(Serialize)]
struct At<'a> {
    #[serde(rename = "atMobiles", skip_serializing_if = "<[String]>::is_empty")]
    mobiles: &'a [String],
    #[serde(rename = "atUserIds", skip_serializing_if = "<[String]>::is_empty")]
    user_ids: &'a [String],
    #[serde(rename = "isAtAll")]
    all: bool,
}

/// Text or markdown, and what differs between them when writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Text,
    Markdown,
}

impl Flavor {
    fn of(msgtype: MsgType) -> Flavor {
        match msgtype {
            MsgType::Text => Flavor::Text,
            MsgType::Markdown => Flavor::Markdown,
        }
    }

    /// End of a line: markdown needs two spaces before `\n` for a line break.
    fn eol(self) -> &'static str {
        match self {
            Flavor::Text => "\n",
            Flavor::Markdown => "  \n",
        }
    }

    /// Log-derived text made harmless (see [`neutral`](super::neutral)).
    fn untrusted(self, text: &str) -> String {
        neutralise(text, self == Flavor::Markdown)
    }

    /// [`Flavor::untrusted`], cut to [`MAX_VALUE_CHARS`]: for values that go into headers and
    /// templates (captures, group keys, the host name).
    fn untrusted_value(self, text: &str) -> String {
        neutralise_short(text, self == Flavor::Markdown, MAX_VALUE_CHARS)
    }
}

/// One alert, laid out: fixed text before and after its quoted lines.
struct Part {
    pre: String,
    lines: Vec<Quoted>,
    /// Whether a `… K more not shown` line goes after the lines.
    more: bool,
    post: String,
}

/// Renders the first alerts of `alerts` that fit into one message (always at least one; all of
/// them when their headers fit and they share the first one's message type) and returns it with
/// how many alerts it used. Mentions of all the alerts used are put together (at most 50).
///
/// The sizes are computed exactly, so the body fits at the first try. Should it ever not (a bug),
/// fewer alerts are put in, and a single alert too large for a message has its text after the
/// header cut: its count is never dropped, and the other alerts go into the next message.
///
/// Takes anything that reads as an [`Alert`] (the aggregator's routed alerts do), so the caller
/// need not copy its alerts to render them.
///
/// # Panics
/// When `alerts` is empty.
pub fn render<A: AsRef<Alert>>(
    alerts: &[A],
    ctx: &RenderContext,
    msg_uuid: String,
) -> (Message, usize) {
    let alerts: Vec<&Alert> = alerts.iter().map(AsRef::as_ref).collect();
    let mut alerts = &alerts[..];
    loop {
        let (message, used, content) = render_within(alerts, ctx, msg_uuid.clone());
        if message.body.len() <= ctx.max_body {
            return (message, used);
        }
        tracing::debug!(
            body_bytes = message.body.len(),
            used,
            "rendered message over the limit; rendering fewer alerts (a dingtail bug)"
        );
        if used > 1 {
            alerts = &alerts[..used - 1];
            continue;
        }
        return (squeeze(alerts[0], ctx, msg_uuid, &content), 1);
    }
}

/// One alert whose own text does not fit: its header, then as much of the rest as fits.
fn squeeze(alert: &Alert, ctx: &RenderContext, msg_uuid: String, content: &str) -> Message {
    let flavor = Flavor::of(alert.style.msgtype);
    let title = title(&[alert]);
    let keyword_part = keyword_line(ctx.keyword);
    let head = head(alert, ctx.host_of(0), flavor);
    let rest = content.strip_prefix(head.as_str()).unwrap_or("");
    let fixed = body_json(flavor, &msg_uuid, &title, "", &Mention::default()).len()
        + escaped_len(&head)
        + escaped_len(&keyword_part)
        + ELLIPSIS.len();
    let room = ctx.max_body.saturating_sub(fixed);
    let mut text = head.trim_end().to_owned();
    text.push_str(flavor.eol());
    let mut used = 0;
    for c in rest.chars() {
        let n = escaped_char_len(c);
        if used + n > room {
            break;
        }
        used += n;
        text.push(c);
    }
    text.push_str(ELLIPSIS);
    text.push_str(&keyword_part);
    Message {
        msg_uuid: msg_uuid.clone(),
        body: body_json(flavor, &msg_uuid, &title, &text, &Mention::default()),
        rules: vec![alert.rule_name.to_string()],
        count: alert.count,
    }
}

/// The line that carries the robot's keyword. A keyword that starts with `【` is set off so
/// that only real headers start a line with it.
fn keyword_line(keyword: Option<&str>) -> String {
    match keyword {
        Some(k) if k.starts_with('【') => format!("\n· {k}"),
        Some(k) => format!("\n{k}"),
        None => String::new(),
    }
}

/// The message as sized, how many alerts it used, and its content (for [`squeeze`]).
fn render_within(
    alerts: &[&Alert],
    ctx: &RenderContext,
    msg_uuid: String,
) -> (Message, usize, String) {
    assert!(!alerts.is_empty(), "nothing to render");
    let msgtype = alerts[0].style.msgtype;
    let same_type = alerts
        .iter()
        .take_while(|a| a.style.msgtype == msgtype)
        .count();
    let alerts = &alerts[..same_type];
    let flavor = Flavor::of(msgtype);
    // Sized with the title of every alert (never shorter than that of the ones that fit).
    let title_all = title(alerts);
    let keyword_part = keyword_line(ctx.keyword);
    // Headers first: as many alerts as fit with their worst-case "more" line and mentions.
    let parts: Vec<Part> = alerts
        .iter()
        .enumerate()
        .map(|(i, a)| layout(a, ctx.host_of(i), ctx.zone, flavor))
        .collect();
    let mut mention = Mention::default();
    let mut used = 0;
    let mut fixed = 0;
    let mut budget = 0;
    for (i, (a, p)) in alerts.iter().zip(&parts).enumerate() {
        let mut with = mention.clone();
        with.absorb(&a.style.mention);
        let overhead = body_json(flavor, &msg_uuid, &title_all, "", &with).len()
            + escaped_len(&keyword_part)
            + escaped_len(&mention_line(&with));
        let b = ctx.max_body.saturating_sub(overhead);
        let cost = escaped_len(&p.pre)
            + escaped_len(&p.post)
            + if p.more {
                escaped_len(&more_line(a.count, flavor))
            } else {
                0
            }
            + if i > 0 { escaped_len("\n") } else { 0 }
            + if flavor == Flavor::Markdown && !p.lines.is_empty() {
                escaped_len("\n")
            } else {
                0
            };
        if used > 0 && fixed + cost > b {
            break;
        }
        fixed += cost;
        used += 1;
        budget = b;
        mention = with;
    }
    let alerts = &alerts[..used];
    let parts = &parts[..used];
    let title = title(alerts);

    let lines: Vec<&[Quoted]> = parts.iter().map(|p| p.lines.as_slice()).collect();
    let shown = fit_lines(&lines, budget.saturating_sub(fixed));

    let mut content = String::new();
    for (i, (a, p)) in alerts.iter().zip(parts).enumerate() {
        if i > 0 {
            content.push('\n');
        }
        content.push_str(&p.pre);
        let (n, cap) = shown[i];
        for q in &p.lines[..n] {
            q.write_cut(&mut content, cap, flavor);
        }
        if n > 0 && flavor == Flavor::Markdown {
            content.push('\n');
        }
        let more = a.count.saturating_sub(n as u64);
        if p.more && more > 0 {
            content.push_str(&more_line(more, flavor));
        }
        content.push_str(&p.post);
    }
    while content.ends_with('\n') || content.ends_with(' ') {
        content.pop();
    }
    content.push_str(&mention_line(&mention));
    content.push_str(&keyword_part);

    let body = body_json(flavor, &msg_uuid, &title, &content, &mention);
    let message = Message {
        msg_uuid,
        body,
        rules: alerts.iter().map(|a| a.rule_name.to_string()).collect(),
        count: alerts.iter().map(|a| a.count).sum(),
    };
    (message, used, content)
}

/// The full request body.
fn body_json(flavor: Flavor, msg_uuid: &str, title: &str, content: &str, at: &Mention) -> String {
    let at = (!at.is_empty()).then_some(At {
        mobiles: &at.mobiles,
        user_ids: &at.user_ids,
        all: at.all,
    });
    let body = match flavor {
        Flavor::Text => Body {
            msgtype: "text",
            text: Some(TextContent { content }),
            markdown: None,
            at,
            msg_uuid,
        },
        Flavor::Markdown => Body {
            msgtype: "markdown",
            text: None,
            markdown: Some(MarkdownContent {
                title,
                text: content,
            }),
            at,
            msg_uuid,
        },
    };
    serde_json::to_string(&body).expect("a struct of strings serializes")
}

/// `\n@138… @user` for the people mentioned (DingTalk only fires mentions written in the text);
/// empty when nobody is. `isAtAll` needs no text.
fn mention_line(m: &Mention) -> String {
    if m.people() == 0 {
        return String::new();
    }
    let names: Vec<String> = m
        .mobiles
        .iter()
        .chain(&m.user_ids)
        .map(|p| format!("@{p}"))
        .collect();
    format!("\n{}", names.join(" "))
}

/// Longest list of rules in a markdown title, in characters, before the rest are counted as
/// `+K more`: the title is what the notification shows, a line, not the message.
const TITLE_RULES_CHARS: usize = 120;

/// The markdown title (shown in the notification): every alert's news, so that a message
/// standing for several rules does not read as if it held only the first. Several alerts get
/// the total first (`×12 · disk ×3, oom ×9`) and the highest severity; past
/// [`TITLE_RULES_CHARS`] the remaining rules are counted, not named (`… +4 more`), so the title
/// of a subset is never longer than that of the whole.
fn title(alerts: &[&Alert]) -> String {
    let news = |a: &Alert| match a.kind {
        AlertKind::Hits => format!("{} ×{}", a.rule_name, a.count),
        AlertKind::Recovered { .. } => format!("{} recovered", a.rule_name),
        AlertKind::Absent { .. } => format!("{} absent", a.rule_name),
        AlertKind::Back => format!("{} back", a.rule_name),
        AlertKind::Escalated { .. } => format!("{} escalated", a.rule_name),
        AlertKind::Notice => a.rule_name.to_string(),
    };
    let severity = alerts.iter().filter_map(|a| a.style.severity).max();
    let mut text = match alerts {
        [one] => news(one),
        _ => {
            let total: u64 = alerts.iter().map(|a| a.count).sum();
            let mut list = String::new();
            let mut named = 0;
            for &a in alerts {
                let n = news(a);
                if named > 0 && list.chars().count() + n.chars().count() + 2 > TITLE_RULES_CHARS {
                    break;
                }
                if named > 0 {
                    list.push_str(", ");
                }
                list.push_str(&n);
                named += 1;
            }
            if named < alerts.len() {
                list.push_str(&format!(" +{} more", alerts.len() - named));
            }
            format!("×{total} · {list}")
        }
    };
    if let Some(s) = severity {
        text = format!("[{s}] {text}");
    }
    text
}

/// A plain text message (for `dingtail send`): the text, plus the keyword when it lacks it.
pub fn plain_text(text: &str, keyword: Option<&str>, msg_uuid: &str) -> String {
    let content = match keyword {
        Some(k) if !text.contains(k) => format!("{text}\n{k}"),
        _ => text.to_owned(),
    };
    body_json(Flavor::Text, msg_uuid, "", &content, &Mention::default())
}

/// `【rule】×N host · severity · group`, ending in a line break.
fn head(alert: &Alert, host: &str, flavor: Flavor) -> String {
    let news = match alert.kind {
        AlertKind::Hits => format!("×{}", alert.count),
        AlertKind::Recovered { .. } => "recovered".to_owned(),
        AlertKind::Absent { .. } => "absent".to_owned(),
        AlertKind::Back => "back".to_owned(),
        AlertKind::Escalated { .. } => "escalated".to_owned(),
        AlertKind::Notice => "notice".to_owned(),
    };
    // The host name is the operator's (not log text): no markup twins, but nothing hidden.
    let mut h = format!(
        "【{}】{news} {}",
        alert.rule_name,
        neutralise_short(host, false, MAX_VALUE_CHARS)
    );
    if let Some(s) = alert.style.severity {
        match flavor {
            Flavor::Text => h.push_str(&format!(" · {s}")),
            Flavor::Markdown => h.push_str(&format!(" · **{s}**")),
        }
    }
    if let Some(g) = &alert.group {
        h.push_str(" · ");
        h.push_str(&flavor.untrusted_value(&alert.style.pii.mask(g)));
    }
    h.push_str(flavor.eol());
    if alert.silenced > 0 {
        h.push_str(&format!(
            "while silenced: ×{} (not sent){}",
            alert.silenced,
            flavor.eol()
        ));
    }
    h
}

fn source_name(alert: &Alert) -> &str {
    match &*alert.source {
        "-" => "stdin",
        other => other,
    }
}

/// Where an alert's lines came from: its latest source, and the others when there were several
/// (`/var/log/b.log (also /var/log/a.log)`; "and more" past those it names).
fn sources_text(alert: &Alert) -> String {
    let name = |s: &str| match s {
        "-" => "stdin".to_owned(),
        other => other.to_owned(),
    };
    let mut text = source_name(alert).to_owned();
    if !alert.other_sources.is_empty() {
        let named = alert
            .other_sources
            .len()
            .min(crate::alert::MAX_OTHER_SOURCES);
        let others: Vec<String> = alert.other_sources[..named]
            .iter()
            .map(|s| name(s))
            .collect();
        let more = if alert.other_sources.len() > named {
            " and more"
        } else {
            ""
        };
        text.push_str(&format!(" (also {}{more})", others.join(", ")));
    }
    text
}

/// Lays out one alert: its header and template (or default body) around its quoted lines.
fn layout(a: &Alert, host: &str, zone: Zone, flavor: Flavor) -> Part {
    let eol = flavor.eol();
    let mut pre = head(a, host, flavor);
    let quote = |a: &Alert| -> Vec<Quoted> {
        a.samples
            .iter()
            .map(|s| Quoted::new(&s.text, s.cut, flavor, &a.style.pii))
            .collect()
    };
    match a.kind {
        AlertKind::Recovered { quiet } => {
            pre.push_str(&format!(
                "no matching line for {} (since {}){eol}",
                humantime::format_duration(quiet),
                time(zone, a.first.checked_sub(quiet).unwrap_or(a.first))
            ));
            return Part {
                pre,
                lines: Vec::new(),
                more: false,
                post: String::new(),
            };
        }
        AlertKind::Absent {
            silent_for,
            last_seen,
        } if a.style.absent_pattern.is_none() => {
            // a stale input (see stale.rs): its name is in the header
            pre.push_str(&format!(
                "nothing was read from it for {} (last read: {}){eol}",
                humantime::format_duration(silent_for),
                last_seen.map_or_else(
                    || "never, since dingtail started".to_owned(),
                    |t| time(zone, t)
                )
            ));
            return Part {
                pre,
                lines: Vec::new(),
                more: false,
                post: String::new(),
            };
        }
        AlertKind::Back if a.style.absent_pattern.is_none() => {
            pre.push_str(&format!("read again at {}{eol}", time(zone, a.first)));
            return Part {
                pre,
                lines: Vec::new(),
                more: false,
                post: String::new(),
            };
        }
        AlertKind::Absent {
            silent_for,
            last_seen,
        } => {
            let pattern = a.style.absent_pattern.as_deref().unwrap_or("");
            pre.push_str(&format!(
                "no line matched {} for {} (last seen: {}){eol}",
                flavor.untrusted(&format!("`{pattern}`")),
                humantime::format_duration(silent_for),
                last_seen.map_or_else(
                    || "never, since dingtail started".to_owned(),
                    |t| time(zone, t)
                )
            ));
            return Part {
                pre,
                lines: Vec::new(),
                more: false,
                post: String::new(),
            };
        }
        AlertKind::Back => {
            let pattern = a.style.absent_pattern.as_deref().unwrap_or("");
            pre.push_str(&format!(
                "{} matches again at {} · {}{eol}",
                flavor.untrusted(&format!("`{pattern}`")),
                time(zone, a.first),
                source_name(a)
            ));
            return Part {
                pre,
                lines: quote(a),
                more: false,
                post: String::new(),
            };
        }
        AlertKind::Escalated {
            after,
            episode_count,
        } => {
            pre.push_str(&format!(
                "still firing {} after its first message (at {}): {episode_count} matching line(s) since{eol}",
                humantime::format_duration(after),
                time(zone, a.first)
            ));
            return Part {
                pre,
                lines: Vec::new(),
                more: false,
                post: String::new(),
            };
        }
        AlertKind::Notice => {
            // dingtail's own words, but they name paths and quote errors: made harmless too.
            for s in &a.samples {
                pre.push_str(&flavor.untrusted(&String::from_utf8_lossy(&s.text)));
                pre.push_str(eol);
            }
            return Part {
                pre,
                lines: Vec::new(),
                more: false,
                post: String::new(),
            };
        }
        AlertKind::Hits => {}
    }
    let Some(template) = &a.style.template else {
        pre.push_str(&format!(
            "{} · {}{eol}",
            span(zone, a.first, a.last),
            flavor.untrusted(&sources_text(a))
        ));
        if flavor == Flavor::Markdown && !a.samples.is_empty() {
            pre.push('\n');
        }
        return Part {
            pre,
            lines: quote(a),
            more: true,
            post: String::new(),
        };
    };
    // A template: text before `{lines}` goes before the lines, the rest after them.
    let mut before = String::new();
    let mut after = String::new();
    let mut seen_lines = false;
    for piece in &template.pieces {
        let out = if seen_lines { &mut after } else { &mut before };
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Value(Placeholder::Lines) => {
                if !seen_lines {
                    seen_lines = true;
                }
            }
            Piece::Value(v) => out.push_str(&value(a, *v, host, zone, flavor)),
        }
    }
    let end_line = |s: &mut String| {
        if !s.is_empty() && !s.ends_with('\n') {
            s.push_str(eol);
        }
    };
    end_line(&mut before);
    pre.push_str(&before);
    if seen_lines && flavor == Flavor::Markdown && !a.samples.is_empty() {
        pre.push('\n');
    }
    end_line(&mut after);
    Part {
        pre,
        lines: if seen_lines { quote(a) } else { Vec::new() },
        more: seen_lines,
        post: after,
    }
}

/// A template value.
fn value(a: &Alert, v: Placeholder, host: &str, zone: Zone, flavor: Flavor) -> String {
    match v {
        Placeholder::Rule => a.rule_name.to_string(),
        Placeholder::Count => a.count.to_string(),
        Placeholder::Host => neutralise_short(host, false, MAX_VALUE_CHARS),
        Placeholder::Source => flavor.untrusted(&sources_text(a)),
        Placeholder::Severity => a.style.severity.map(|s| s.to_string()).unwrap_or_default(),
        Placeholder::First => time(zone, a.first),
        Placeholder::Last => time(zone, a.last),
        Placeholder::Lines => String::new(),
        Placeholder::Capture(i) => flavor.untrusted_value(
            &a.style
                .pii
                .mask(a.captures.get(i).map_or("", String::as_str)),
        ),
    }
}

fn more_line(more: u64, flavor: Flavor) -> String {
    format!("… {more} more not shown{}", flavor.eol())
}

/// `2026-11-29 10:44:54`, in the configured zone.
fn time(zone: Zone, t: SystemTime) -> String {
    zone.format(t, "%Y-%m-%d %H:%M:%S")
}

/// `2026-11-29 10:44:54 → 10:45:04`, in the configured zone; the date only once when it does
/// not change.
fn span(zone: Zone, first: SystemTime, last: SystemTime) -> String {
    let (a, b) = (zone.naive(first), zone.naive(last));
    let start = a.format("%Y-%m-%d %H:%M:%S").to_string();
    if a.format("%Y%m%d%H%M%S").to_string() == b.format("%Y%m%d%H%M%S").to_string() {
        start
    } else if a.date() == b.date() {
        format!("{start} → {}", b.format("%H:%M:%S"))
    } else {
        format!("{start} → {}", b.format("%Y-%m-%d %H:%M:%S"))
    }
}

/// A line ready to quote: decoded, cleaned, made safe, with its escaped size known.
struct Quoted {
    text: String,
    /// Escaped length of `> ` + text + end of line.
    len: usize,
    /// It was cut before it got here.
    cut: bool,
}

const PREFIX: &str = "> ";
const ELLIPSIS: &str = "…";

impl Quoted {
    /// Personal data is masked (by `pii`) before the text is made safe and measured, so the
    /// size is that of what is sent; a cut line's last piece also loses a trailing partial number.
    fn new(raw: &[u8], cut: bool, flavor: Flavor, pii: &Pii) -> Quoted {
        // A multi-line event (a stack trace) arrives with its lines joined by `\r`: each of its
        // lines goes on a line of its own, indented under the `> ` that marks one counted event.
        let pieces = raw.split(|&b| b == b'\r').count();
        let text = raw
            .split(|&b| b == b'\r')
            .enumerate()
            .map(|(i, l)| {
                let l = String::from_utf8_lossy(l);
                let masked = if cut && i + 1 == pieces {
                    pii.mask_cut(&l)
                } else {
                    pii.mask(&l)
                };
                flavor.untrusted(&masked)
            })
            .collect::<Vec<_>>()
            .join(&format!("{}  ", flavor.eol()));
        let len = escaped_len(PREFIX)
            + escaped_len(&text)
            + escaped_len(flavor.eol())
            + if cut { ELLIPSIS.len() } else { 0 };
        Quoted { text, len, cut }
    }

    /// Escaped length when cut to at most `cap` bytes (prefix, ellipsis and newline included).
    fn len_cut(&self, cap: usize) -> usize {
        self.len.min(cap)
    }

    /// Appends the quoted line, cut so that its escaped length is at most `cap`.
    fn write_cut(&self, out: &mut String, cap: usize, flavor: Flavor) {
        out.push_str(PREFIX);
        if self.len <= cap {
            out.push_str(&self.text);
            if self.cut {
                out.push_str(ELLIPSIS);
            }
        } else {
            let room = cap
                .saturating_sub(escaped_len(PREFIX) + ELLIPSIS.len() + escaped_len(flavor.eol()));
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
        out.push_str(flavor.eol());
    }
}

/// Decides, for each alert, how many of its lines to quote and the per-line cap, so that all of
/// it fits in `budget` bytes: first cut long lines (down to [`MIN_LINE_BYTES`]), then drop lines,
/// always from the alert that shows the most, so every rule keeps some of its lines.
fn fit_lines(lines: &[&[Quoted]], budget: usize) -> Vec<(usize, usize)> {
    let total = |counts: &[usize], cap: usize| -> usize {
        lines
            .iter()
            .zip(counts)
            .map(|(ls, &n)| ls[..n].iter().map(|q| q.len_cut(cap)).sum::<usize>())
            .sum()
    };
    let mut counts: Vec<usize> = lines.iter().map(|l| l.len()).collect();
    let longest = lines
        .iter()
        .flat_map(|l| l.iter())
        .map(|q| q.len)
        .max()
        .unwrap_or(0);
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
    use crate::alert::Sample;
    use crate::style::Style;

    fn alert(name: &str, count: u64, lines: &[&[u8]], max_lines: usize) -> Alert {
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

    fn ctx(keyword: Option<&str>) -> RenderContext<'_> {
        RenderContext {
            host: "web-01",
            keyword,
            max_body: MAX_BODY_BYTES,
            zone: Zone::parse("Asia/Shanghai").unwrap(),
            hosts: None,
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
            .filter_map(|l| {
                let n = l.split_once("】×")?.1.split(' ').next()?;
                Some(n.parse::<u64>().unwrap())
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

    fn styled(a: Alert, style: Style) -> Alert {
        Alert {
            style: Arc::new(style),
            ..a
        }
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
}
