//! How a rule's messages look: severity, template, mentions and message type.
//!
//! These are rendering instructions, compiled once when the config is loaded and shared by every
//! alert of the rule (behind an `Arc`), so rendering never parses anything. They sit beside the
//! rules, below both the config that builds them and the renderer that follows them, and know
//! nothing of patterns, time or HTTP.

use std::fmt;
use std::sync::Arc;

/// How bad it is; shown in every message of the rule and used to pick default mentions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Someone should look soon.
    Warning,
    /// Wake someone up.
    Critical,
}

impl Severity {
    /// The names the config accepts, in order.
    pub const NAMES: [&'static str; 3] = ["info", "warning", "critical"];

    /// Parses a config name.
    pub fn parse(text: &str) -> Option<Severity> {
        match text.trim() {
            "info" => Some(Severity::Info),
            "warning" => Some(Severity::Warning),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }

    /// The config name.
    pub fn as_str(self) -> &'static str {
        Severity::NAMES[self as usize]
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// DingTalk message type of a rule's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MsgType {
    /// Plain text (the default).
    #[default]
    Text,
    /// DingTalk's markdown subset, with a title shown in the notification.
    Markdown,
}

/// People to @mention. DingTalk fires a mention only when `@mobile`/`@userId` is also in the
/// text, so the renderer writes them there; at most [`MAX_MENTIONS`] people per message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mention {
    /// Phone numbers (`atMobiles`).
    pub mobiles: Vec<String>,
    /// DingTalk user ids (`atUserIds`).
    pub user_ids: Vec<String>,
    /// `isAtAll`.
    pub all: bool,
}

/// DingTalk's limit on people mentioned in one message.
pub const MAX_MENTIONS: usize = 50;

impl Mention {
    /// Nobody is mentioned.
    pub fn is_empty(&self) -> bool {
        self.mobiles.is_empty() && self.user_ids.is_empty() && !self.all
    }

    /// Adds `other`'s people (no duplicates), keeping at most [`MAX_MENTIONS`] people in all;
    /// the ones past the limit are left out (the first ones named win).
    pub fn absorb(&mut self, other: &Mention) {
        self.all |= other.all;
        for m in &other.mobiles {
            if self.people() < MAX_MENTIONS && !self.mobiles.contains(m) {
                self.mobiles.push(m.clone());
            }
        }
        for u in &other.user_ids {
            if self.people() < MAX_MENTIONS && !self.user_ids.contains(u) {
                self.user_ids.push(u.clone());
            }
        }
    }

    /// People named (not counting `all`).
    pub fn people(&self) -> usize {
        self.mobiles.len() + self.user_ids.len()
    }
}

/// What a template can refer to besides the rule's named captures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// `{rule}`: the rule's name.
    Rule,
    /// `{count}`: the exact number of lines the alert stands for.
    Count,
    /// `{host}`: this machine.
    Host,
    /// `{source}`: where the last line came from.
    Source,
    /// `{severity}`: the rule's severity (empty when none).
    Severity,
    /// `{first}`: time of the first line.
    First,
    /// `{last}`: time of the last line.
    Last,
    /// `{lines}`: the quoted lines, then `… K more not shown`.
    Lines,
    /// A named capture of the rule's pattern, by index in the rule's capture names; its value
    /// is taken from the most recent line of the alert.
    Capture(usize),
}

/// The built-in placeholder names, for the config checker's messages.
pub const PLACEHOLDERS: [&str; 8] = [
    "rule", "count", "host", "source", "severity", "first", "last", "lines",
];

/// A piece of a compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal text, written as is (it is the rule author's, so markdown in it is meant).
    Text(String),
    /// A value filled in at render time.
    Value(Placeholder),
}

/// A message template, compiled once: the text after the `【rule】×N` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The pieces in order.
    pub pieces: Vec<Piece>,
}

impl Template {
    /// Compiles `{name}` placeholders; `{{` and `}}` are literal braces. `captures` are the
    /// rule's named capture groups. The error says what is wrong, naming the placeholder.
    pub fn parse(text: &str, captures: &[Arc<str>]) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(i) = rest.find(['{', '}']) {
            literal.push_str(&rest[..i]);
            let brace = rest.as_bytes()[i];
            let after = &rest[i + 1..];
            if brace == b'}' {
                match after.strip_prefix('}') {
                    Some(a) => {
                        literal.push('}');
                        rest = a;
                        continue;
                    }
                    None => return Err("has a `}` without `{` (write `}}` for a brace)".into()),
                }
            }
            if let Some(a) = after.strip_prefix('{') {
                literal.push('{');
                rest = a;
                continue;
            }
            let end = after
                .find('}')
                .ok_or("has a `{` without `}` (write `{{` for a brace)")?;
            let name = after[..end].trim();
            let value = match name {
                "rule" => Placeholder::Rule,
                "count" => Placeholder::Count,
                "host" => Placeholder::Host,
                "source" => Placeholder::Source,
                "severity" => Placeholder::Severity,
                "first" => Placeholder::First,
                "last" => Placeholder::Last,
                "lines" => Placeholder::Lines,
                other => match captures.iter().position(|c| &**c == other) {
                    Some(i) => Placeholder::Capture(i),
                    None => {
                        let mut known: Vec<&str> = PLACEHOLDERS.to_vec();
                        known.extend(captures.iter().map(|c| &**c));
                        return Err(format!(
                            "unknown placeholder `{{{other}}}`; known: {}",
                            known.join(", ")
                        ));
                    }
                },
            };
            if !literal.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut literal)));
            }
            pieces.push(Piece::Value(value));
            rest = &after[end + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Template { pieces })
    }

    /// Whether the template quotes the lines (else none are quoted).
    pub fn has_lines(&self) -> bool {
        self.pieces.contains(&Piece::Value(Placeholder::Lines))
    }
}

/// Everything about a rule's look, shared by its alerts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Style {
    /// Shown in the header when set.
    pub severity: Option<Severity>,
    /// The text after the header; `None`: the time span, the source and the quoted lines.
    pub template: Option<Template>,
    /// Who to mention (the rule's own, else `defaults.mention` for its severity).
    pub mention: Mention,
    /// Text or markdown.
    pub msgtype: MsgType,
    /// Names of the rule's named captures, for templates.
    pub capture_names: Vec<Arc<str>>,
    /// For absence rules: the pattern that stopped matching, shown in the message.
    pub absent_pattern: Option<String>,
    /// Personal data masked out of quoted lines, captures and group keys (`redact:`; all
    /// built-ins on by default).
    pub pii: crate::pii::Pii,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_compile_placeholders_and_braces() {
        let caps: Vec<Arc<str>> = vec!["ip".into(), "user".into()];
        let t = Template::parse("{ip} tried {count}x {{literal}} as {user}", &caps).unwrap();
        assert_eq!(
            t.pieces,
            [
                Piece::Value(Placeholder::Capture(0)),
                Piece::Text(" tried ".into()),
                Piece::Value(Placeholder::Count),
                Piece::Text("x {literal} as ".into()),
                Piece::Value(Placeholder::Capture(1)),
            ]
        );
        assert!(!t.has_lines());
        assert!(Template::parse("{lines}", &[]).unwrap().has_lines());
        let e = Template::parse("{nope}", &caps).unwrap_err();
        assert!(e.contains("`{nope}`") && e.contains("ip, user"), "{e}");
        assert!(Template::parse("{count", &[]).is_err());
        assert!(Template::parse("a } b", &[]).is_err());
    }

    #[test]
    fn mentions_merge_without_duplicates_up_to_the_limit() {
        let mut m = Mention {
            mobiles: vec!["1".into()],
            ..Mention::default()
        };
        m.absorb(&Mention {
            mobiles: (0..60).map(|i| i.to_string()).collect(),
            user_ids: vec!["u".into()],
            all: true,
        });
        assert_eq!(m.people(), MAX_MENTIONS);
        assert!(m.all);
        assert_eq!(m.mobiles.iter().filter(|x| *x == "1").count(), 1);
    }
}
