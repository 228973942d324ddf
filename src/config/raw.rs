//! The raw schema: what the YAML file says, field for field (serde, `deny_unknown_fields`,
//! every value that can be wrong [`Spanned`] so a problem names its line and column). The
//! README's config tables document the same fields (a test below keeps them in step).

use super::*;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    /// `robots:` DingTalk group robots by name.
    #[serde(default)]
    pub(super) robots: BTreeMap<String, Spanned<RawRobot>>,
    /// `defaults:` what rules get when they say nothing.
    #[serde(default)]
    pub(super) defaults: Option<RawDefaults>,
    /// `rules:` in file order; a rule's index is its id.
    #[serde(default)]
    pub(super) rules: Vec<Spanned<RawRule>>,
    /// `max_line_bytes:` lines are judged and quoted on at most this many bytes.
    #[serde(default)]
    pub(super) max_line_bytes: Option<Spanned<usize>>,
    /// `timestamp:` how `test --replay` reads a line's time.
    #[serde(default)]
    pub(super) timestamp: Option<RawTimestamp>,
    /// `inputs:` files and globs to follow, with their multi-line events.
    #[serde(default)]
    pub(super) inputs: Vec<Spanned<RawInput>>,
    /// `timezone:` the IANA zone times are written in and mute windows read in.
    #[serde(default)]
    pub(super) timezone: Option<Spanned<String>>,
    /// `listen:` address of the metrics, probes and silences listener.
    #[serde(default)]
    pub(super) listen: Option<Spanned<String>>,
    /// `mute:` windows in which matching rules send nothing.
    #[serde(default)]
    pub(super) mute: Vec<Spanned<mute_config::RawMute>>,
    /// `quiet_hours:` hours in which low-severity alerts wait for a digest.
    #[serde(default)]
    pub(super) quiet_hours: Option<Spanned<mute_config::RawQuietHours>>,
    /// `quota:` the monthly message budget of all robots together.
    #[serde(default)]
    pub(super) quota: Option<Spanned<quota::RawQuota>>,
    /// `redact:` personal data masked before it leaves the host.
    #[serde(default)]
    pub(super) redact: Option<pii::RawRedact>,
    /// `people:` named groups of people a `mention:` can name.
    #[serde(default)]
    pub(super) people: BTreeMap<String, Spanned<RawMention>>,
    /// `routes:` send a rule's alerts to other robots and people by where they came from.
    #[serde(default)]
    pub(super) routes: Vec<Spanned<routes::RawRoute>>,
    /// `stdin:` settings of standard input when it is read (`multiline:`, `stale:`).
    #[serde(default)]
    pub(super) stdin: Option<RawStdin>,
    /// `self_alerts:` the robot told about dingtail's own trouble.
    #[serde(default)]
    pub(super) self_alerts: Option<Spanned<self_alerts::RawSelfAlerts>>,
    /// `coordination:` Redis shared by the instances that post to the same robots.
    pub(super) coordination: Option<Spanned<coordination::RawCoordination>>,
    /// `new_patterns:` errors never seen before, found without writing a rule.
    #[serde(default)]
    pub(super) new_patterns: Option<Spanned<new_patterns::RawNewPatterns>>,
}

impl RawConfig {
    /// Adds the parts of a config holding one unit (see [`parse_str`]).
    pub(super) fn absorb(&mut self, part: RawConfig) {
        self.robots.extend(part.robots);
        self.rules.extend(part.rules);
        self.inputs.extend(part.inputs);
        self.defaults = self.defaults.take().or(part.defaults);
        self.max_line_bytes = self.max_line_bytes.take().or(part.max_line_bytes);
        self.timestamp = self.timestamp.take().or(part.timestamp);
        self.quota = self.quota.take().or(part.quota);
        self.coordination = self.coordination.take().or(part.coordination);
        self.redact = self.redact.take().or(part.redact);
        self.timezone = self.timezone.take().or(part.timezone);
        self.listen = self.listen.take().or(part.listen);
        self.mute.extend(part.mute);
        self.quiet_hours = self.quiet_hours.take().or(part.quiet_hours);
        self.people.extend(part.people);
        self.routes.extend(part.routes);
        self.stdin = self.stdin.take().or(part.stdin);
        self.self_alerts = self.self_alerts.take().or(part.self_alerts);
        self.new_patterns = self.new_patterns.take().or(part.new_patterns);
    }
}

/// One `inputs:` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInput {
    /// A file or a glob to follow.
    pub(super) path: Spanned<String>,
    /// How lines of this input form events (stack traces).
    #[serde(default)]
    pub(super) multiline: Option<Spanned<RawMultiline>>,
    /// An input that wrote nothing for this long is an alert of its own.
    #[serde(default)]
    pub(super) stale: Option<Spanned<String>>,
}

/// `stdin:` as written: settings of the pipe dingtail reads, in the words of an input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStdin {
    /// How lines of standard input form events (stack traces), as `inputs[].multiline`.
    #[serde(default)]
    pub(super) multiline: Option<Spanned<RawMultiline>>,
    /// Standard input that wrote nothing for this long is an alert of its own.
    #[serde(default)]
    pub(super) stale: Option<Spanned<String>>,
}

/// `inputs[].multiline`, `stdin.multiline`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMultiline {
    /// A line matching this regex starts a new event.
    pub(super) start: Spanned<String>,
    /// An event is closed after this many lines.
    #[serde(default)]
    pub(super) max_lines: Option<Spanned<usize>>,
    /// An event is closed this long after its last line.
    #[serde(default)]
    pub(super) timeout: Option<Spanned<String>>,
}

/// One robot under `robots:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRobot {
    /// The full webhook URL with `access_token`; `${VAR}` expanded.
    #[serde(default)]
    pub(super) webhook: Option<Spanned<String>>,
    /// A file holding the webhook instead (Kubernetes secrets).
    #[serde(default)]
    pub(super) webhook_file: Option<Spanned<String>>,
    /// The `SEC…` signing secret (加签).
    #[serde(default)]
    pub(super) secret: Option<Spanned<String>>,
    /// A file holding the secret instead.
    #[serde(default)]
    pub(super) secret_file: Option<Spanned<String>>,
    /// A security keyword added to every message that lacks it.
    #[serde(default)]
    pub(super) keyword: Option<Spanned<String>>,
    /// Messages per period: `N/s`, `N/min`, `N/hour`, `N/<duration>`.
    #[serde(default)]
    pub(super) rate: Option<Spanned<String>>,
    /// The robot that takes this one's alerts while it is throttled.
    #[serde(default)]
    pub(super) fallback: Option<Spanned<String>>,
    /// An `http://`, `https://` or `socks5://` proxy for this robot.
    #[serde(default)]
    pub(super) proxy: Option<Spanned<String>>,
    /// `{connect, request}` timeouts.
    #[serde(default)]
    pub(super) timeout: Option<RawTimeouts>,
    /// `{initial, max, recheck}`: backoff and rechecks after failures.
    #[serde(default)]
    pub(super) retry: Option<RawRetry>,
    /// How long to leave the robot alone after "sending too fast".
    #[serde(default)]
    pub(super) throttle_pause: Option<Spanned<String>>,
    /// This robot's own messages per month, within `quota.monthly`.
    #[serde(default)]
    pub(super) monthly: Option<Spanned<u64>>,
}

/// `robots.NAME.timeout`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTimeouts {
    /// TCP/TLS connect timeout.
    #[serde(default)]
    pub(super) connect: Option<Spanned<String>>,
    /// Whole-request timeout.
    #[serde(default)]
    pub(super) request: Option<Spanned<String>>,
}

/// `robots.NAME.retry`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetry {
    /// First wait after a retryable failure.
    #[serde(default)]
    pub(super) initial: Option<Spanned<String>>,
    /// Longest wait; waits double up to it.
    #[serde(default)]
    pub(super) max: Option<Spanned<String>>,
    /// How often a robot that failed permanently is tried again.
    #[serde(default)]
    pub(super) recheck: Option<Spanned<String>>,
}

/// `defaults:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDefaults {
    /// Robot for rules that name none.
    #[serde(default)]
    pub(super) robot: Option<Spanned<String>>,
    /// Gathering window for rules that set none.
    #[serde(default)]
    pub(super) window: Option<Spanned<String>>,
    /// Lines quoted per message for rules that set none.
    #[serde(default)]
    pub(super) max_lines: Option<Spanned<usize>>,
    /// Mentions by severity: `critical: {mobiles: [...]}`.
    #[serde(default)]
    pub(super) mention: BTreeMap<String, Spanned<people::RawMentionRef>>,
    /// Message type (`text` or `markdown`) for rules that set none.
    #[serde(default)]
    pub(super) msgtype: Option<Spanned<String>>,
}

/// One rule under `rules:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    /// Unique name, shown as `【name】`.
    pub(super) name: Spanned<String>,
    /// `match:` the regex run on each line (or on `field`).
    #[serde(rename = "match", default)]
    pub(super) pattern: Option<Spanned<String>>,
    /// Regexes that veto a hit.
    #[serde(default)]
    pub(super) exclude: Vec<Spanned<String>>,
    /// Hits within this window of the first go out as one message.
    #[serde(default)]
    pub(super) window: Option<Spanned<String>>,
    /// Lines quoted per message.
    #[serde(default)]
    pub(super) max_lines: Option<Spanned<usize>>,
    /// The robot (or robots) its alerts go to.
    #[serde(default)]
    pub(super) robot: Option<Spanned<OneOrMany>>,
    /// `info`, `warning` or `critical`.
    #[serde(default)]
    pub(super) severity: Option<Spanned<String>>,
    /// Alert only when `count` hits fall within `within`.
    #[serde(default)]
    pub(super) threshold: Option<Spanned<RawThreshold>>,
    /// After a message, further hits wait this long and go out together.
    #[serde(default)]
    pub(super) cooldown: Option<Spanned<String>>,
    /// Named captures whose values split the rule into groups.
    #[serde(default)]
    pub(super) group_by: Vec<Spanned<String>>,
    /// Groups kept before the rest share one "other" group.
    #[serde(default)]
    pub(super) max_groups: Option<Spanned<usize>>,
    /// The message text, with `{placeholders}`.
    #[serde(default)]
    pub(super) template: Option<Spanned<String>>,
    /// Whom the message mentions (or the name of a `people:` group).
    #[serde(default)]
    pub(super) mention: Option<Spanned<people::RawMentionRef>>,
    /// `text` or `markdown`.
    #[serde(default)]
    pub(super) msgtype: Option<Spanned<String>>,
    /// Match this JSON field's value instead of the whole line.
    #[serde(default)]
    pub(super) field: Option<Spanned<String>>,
    /// `where:` a condition on the line's fields and captures.
    #[serde(default, rename = "where")]
    pub(super) condition: Option<Spanned<String>>,
    /// Send "recovered" once no hit came for this long.
    #[serde(default)]
    pub(super) resolve_after: Option<Spanned<String>>,
    /// Alert when no line matches for a while.
    #[serde(default)]
    pub(super) absent: Option<Spanned<RawAbsent>>,
    /// Steps that mention more people while the alert stays unresolved.
    #[serde(default)]
    pub(super) escalate: Option<Spanned<Vec<escalate::RawStep>>>,
}

/// `rules[].threshold`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawThreshold {
    /// Hits needed.
    pub(super) count: Spanned<usize>,
    /// The sliding window they must fall in.
    pub(super) within: Spanned<String>,
}

/// `mention:` of a rule or of `defaults.mention.SEVERITY`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMention {
    /// Mobile numbers to @.
    #[serde(default)]
    pub(super) mobiles: Vec<Spanned<String>>,
    /// DingTalk user ids to @.
    #[serde(default)]
    pub(super) user_ids: Vec<Spanned<String>>,
    /// @ everyone in the group.
    #[serde(default)]
    pub(super) all: bool,
}

/// `rules[].absent`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAbsent {
    /// `match:` the line whose absence is the alert.
    #[serde(rename = "match")]
    pub(super) pattern: Spanned<String>,
    /// `for:` how long without it before the alert.
    #[serde(rename = "for")]
    pub(super) duration: Spanned<String>,
}

/// `timestamp:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTimestamp {
    /// Finds the time in a line (the `ts` group, or the first).
    pub(super) regex: Spanned<String>,
    /// The strftime format of that time.
    pub(super) format: Spanned<String>,
}

/// `robot: ops` or `robot: [ops, security]`.
#[derive(Debug)]
pub(super) struct OneOrMany(pub(super) Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a robot name or a list of robot names")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_owned()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element::<String>()? {
                    out.push(v);
                }
                Ok(OneOrMany(out))
            }
        }
        d.deserialize_any(Visit)
    }
}

#[cfg(test)]
mod tests {
    //! The README documents the config for users; the raw structs carry the same fields with a
    //! doc comment each. These tests keep the two from drifting apart.

    use std::collections::BTreeSet;
    use std::path::Path;

    /// Every field of every `Raw*` struct under `src/config` (by the name the YAML uses), with
    /// whether a doc comment precedes it.
    fn raw_fields() -> Vec<(String, String, bool)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config");
        let mut out = Vec::new();
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "rs"))
            .collect();
        files.sort();
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap();
            let mut current: Option<String> = None;
            let (mut doc, mut rename) = (false, None::<String>);
            for line in text.lines() {
                let t = line.trim();
                if let Some(rest) = t.split("struct Raw").nth(1).filter(|_| t.ends_with('{')) {
                    current = Some(format!(
                        "Raw{}",
                        rest.split([' ', '{', '<']).next().unwrap()
                    ));
                    (doc, rename) = (false, None);
                    continue;
                }
                let Some(st) = &current else { continue };
                if t == "}" {
                    current = None;
                } else if t.starts_with("///") {
                    doc = true;
                } else if t.starts_with("#[serde(") {
                    if let Some(r) = t.split("rename = \"").nth(1) {
                        rename = r.split('"').next().map(str::to_owned);
                    }
                } else if let Some((name, _)) = t.split_once(": ") {
                    let name = name.rsplit(' ').next().unwrap();
                    if name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                        let yaml = rename.take().unwrap_or_else(|| name.to_owned());
                        out.push((st.clone(), yaml, doc));
                    }
                    doc = false;
                }
            }
        }
        out
    }

    fn readme() -> String {
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
    }

    /// The fields named in the first column of the README's `| field | … |` tables.
    fn readme_table_fields(readme: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut in_field_table = false;
        for line in readme.lines() {
            if !line.starts_with('|') {
                in_field_table = false;
                continue;
            }
            let first = line.split('|').nth(1).unwrap_or("").trim();
            if first == "field" {
                in_field_table = true;
                continue;
            }
            if !in_field_table {
                continue;
            }
            for (i, code) in first.split('`').enumerate() {
                if i % 2 == 1 {
                    for seg in code.split('.') {
                        let seg = seg.trim_end_matches("[]");
                        if !seg.is_empty() && seg != "NAME" && seg != "SEVERITY" {
                            out.insert(seg.to_owned());
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn every_raw_field_has_a_doc_comment() {
        let fields = raw_fields();
        assert!(fields.len() > 50, "found only {fields:?}");
        let undocumented: Vec<_> = fields.iter().filter(|(_, _, doc)| !doc).collect();
        assert!(
            undocumented.is_empty(),
            "fields without a doc comment: {undocumented:?}"
        );
    }

    #[test]
    fn every_raw_field_is_in_the_readme_and_every_readme_field_is_in_the_schema() {
        let readme = readme();
        let names: BTreeSet<String> = raw_fields().into_iter().map(|(_, n, _)| n).collect();
        // documented: a key in a YAML example (`name:`) or a field of a README table
        let table = readme_table_fields(&readme);
        let missing: Vec<&String> = names
            .iter()
            .filter(|n| {
                !table.contains(*n)
                    && !readme.lines().any(|l| {
                        l.split(|c: char| c.is_whitespace() || "{,[-`".contains(c))
                            .any(|w| w == format!("{n}:"))
                    })
            })
            .collect();
        assert!(
            missing.is_empty(),
            "config fields the README does not show: {missing:?}"
        );
        let unknown: Vec<&String> = table.iter().filter(|f| !names.contains(*f)).collect();
        assert!(
            unknown.is_empty(),
            "README table fields the schema does not have: {unknown:?}"
        );
    }
}
