//! One alert's text: its header, its template or default body, its news ("recovered",
//! "absent", …), and the markdown title of a message. Log-derived text is made harmless here.

use std::time::SystemTime;

use super::fit::Quoted;
use crate::alert::{Alert, AlertKind};
use crate::dingtalk::neutral::{MAX_VALUE_CHARS, neutralise, neutralise_short};
use crate::style::{MsgType, Piece, Placeholder};
use crate::timezone::Zone;

/// Text or markdown, and what differs between them when writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flavor {
    Text,
    Markdown,
}

impl Flavor {
    pub(super) fn of(msgtype: MsgType) -> Flavor {
        match msgtype {
            MsgType::Text => Flavor::Text,
            MsgType::Markdown => Flavor::Markdown,
        }
    }

    /// End of a line: markdown needs two spaces before `\n` for a line break.
    pub(super) fn eol(self) -> &'static str {
        match self {
            Flavor::Text => "\n",
            Flavor::Markdown => "  \n",
        }
    }

    /// Log-derived text made harmless (see [`neutral`](super::neutral)).
    pub(super) fn untrusted(self, text: &str) -> String {
        neutralise(text, self == Flavor::Markdown)
    }

    /// [`Flavor::untrusted`], cut to [`MAX_VALUE_CHARS`]: for values that go into headers and
    /// templates (captures, group keys, the host name).
    pub(super) fn untrusted_value(self, text: &str) -> String {
        neutralise_short(text, self == Flavor::Markdown, MAX_VALUE_CHARS)
    }
}

/// One alert, laid out: fixed text before and after its quoted lines.
pub(super) struct Part {
    pub(super) pre: String,
    pub(super) lines: Vec<Quoted>,
    /// Whether a `… K more not shown` line goes after the lines.
    pub(super) more: bool,
    pub(super) post: String,
}

impl Part {
    /// An alert of words only: its news, no quoted line.
    fn words(pre: String) -> Part {
        Part {
            pre,
            lines: Vec::new(),
            more: false,
            post: String::new(),
        }
    }
}

/// Longest list of rules in a markdown title, in characters, before the rest are counted as
/// `+K more`: the title is what the notification shows, a line, not the message.
pub(super) const TITLE_RULES_CHARS: usize = 120;

/// The markdown title (shown in the notification): every alert's news, so that a message
/// standing for several rules does not read as if it held only the first. Several alerts get
/// the total first (`×12 · disk ×3, oom ×9`) and the highest severity; past
/// [`TITLE_RULES_CHARS`] the remaining rules are counted, not named (`… +4 more`), so the title
/// of a subset is never longer than that of the whole.
pub(super) fn title(alerts: &[&Alert]) -> String {
    let news = |a: &Alert| match a.kind {
        AlertKind::Notice => a.rule_name.to_string(),
        _ => format!("{} {}", a.rule_name, news(a)),
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

/// What an alert says happened, in a word (`×12`, `recovered`, `absent`, …): after the rule's
/// name in the header and in the markdown title.
fn news(alert: &Alert) -> String {
    match alert.kind {
        AlertKind::Hits => format!("×{}", alert.count),
        AlertKind::Recovered { .. } => "recovered".to_owned(),
        AlertKind::Absent { .. } => "absent".to_owned(),
        AlertKind::Back => "back".to_owned(),
        AlertKind::Escalated { .. } => "escalated".to_owned(),
        AlertKind::Notice => "notice".to_owned(),
    }
}

/// `【rule】×N host · severity · group`, ending in a line break.
pub(super) fn head(alert: &Alert, host: &str, flavor: Flavor) -> String {
    // The host name is the operator's (not log text): no markup twins, but nothing hidden.
    let mut h = format!(
        "【{}】{} {}",
        alert.rule_name,
        news(alert),
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

/// A source as people read it: `-` is stdin.
fn source_name(source: &str) -> &str {
    match source {
        "-" => "stdin",
        other => other,
    }
}

/// Where an alert's lines came from: its latest source, and the others when there were several
/// (`/var/log/b.log (also /var/log/a.log)`; "and more" past those it names).
fn sources_text(alert: &Alert) -> String {
    let mut text = source_name(&alert.source).to_owned();
    if !alert.other_sources.is_empty() {
        let named = alert
            .other_sources
            .len()
            .min(crate::alert::MAX_OTHER_SOURCES);
        let others: Vec<&str> = alert.other_sources[..named]
            .iter()
            .map(|s| source_name(s))
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
pub(super) fn layout(a: &Alert, host: &str, zone: Zone, flavor: Flavor) -> Part {
    let eol = flavor.eol();
    let mut pre = head(a, host, flavor);
    let quote = |a: &Alert| -> Vec<Quoted> {
        a.samples
            .iter()
            .map(|s| Quoted::new(s, flavor, &a.style.pii))
            .collect()
    };
    match a.kind {
        AlertKind::Recovered { quiet } => {
            pre.push_str(&format!(
                "no matching line for {} (since {}){eol}",
                humantime::format_duration(quiet),
                time(zone, a.first.checked_sub(quiet).unwrap_or(a.first))
            ));
            return Part::words(pre);
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
            return Part::words(pre);
        }
        AlertKind::Back if a.style.absent_pattern.is_none() => {
            pre.push_str(&format!("read again at {}{eol}", time(zone, a.first)));
            return Part::words(pre);
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
            return Part::words(pre);
        }
        AlertKind::Back => {
            let pattern = a.style.absent_pattern.as_deref().unwrap_or("");
            pre.push_str(&format!(
                "{} matches again at {} · {}{eol}",
                flavor.untrusted(&format!("`{pattern}`")),
                time(zone, a.first),
                source_name(&a.source)
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
            return Part::words(pre);
        }
        AlertKind::Notice => {
            // dingtail's own words, but they name paths and quote errors: made harmless too.
            for s in &a.samples {
                pre.push_str(&flavor.untrusted(&String::from_utf8_lossy(&s.text)));
                pre.push_str(eol);
            }
            return Part::words(pre);
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

pub(super) fn more_line(more: u64, flavor: Flavor) -> String {
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
