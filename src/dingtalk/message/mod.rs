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
//!
//! The parts: this file decides which alerts go into a message and puts it together;
//! [`layout`] writes one alert's text (header, template, news) and the title; [`fit`] quotes
//! log lines and decides how many of them, cut how short, fit; [`json`] writes the request body
//! and measures text exactly as it will be escaped.

mod fit;
mod json;
mod layout;
#[cfg(test)]
mod tests;

use crate::alert::Alert;
use crate::style::Mention;
use crate::timezone::Zone;

use fit::{ELLIPSIS, Quoted, fit_lines};
use json::{body_json, escaped_char_len, escaped_len, mention_line};
use layout::{Flavor, Part, head, layout, more_line, title};

/// DingTalk's limit on a request body, in bytes.
pub const MAX_BODY_BYTES: usize = 20_000;

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

/// A plain text message (for `dingtail send`): the text, plus the keyword when it lacks it.
pub fn plain_text(text: &str, keyword: Option<&str>, msg_uuid: &str) -> String {
    let content = match keyword {
        Some(k) if !text.contains(k) => format!("{text}\n{k}"),
        _ => text.to_owned(),
    };
    body_json(Flavor::Text, msg_uuid, "", &content, &Mention::default())
}
