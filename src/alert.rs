//! What one entry of a message says about one rule (and group): the neutral alert the renderer
//! takes. It carries counts, times, samples and the rule's presentation, and nothing of where
//! the lines were read (file positions stay with the aggregator's [`Routed`](crate::aggregate::Routed),
//! which settles them) nor of robots, so the DingTalk code knows nothing of files.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::ids::RuleId;
use crate::style::Style;

/// Longest sample line kept; a message (20,000 bytes in all) could not show more of it anyway.
pub const SAMPLE_MAX_BYTES: usize = 8 * 1024;

/// A quoted line, or the lines of a multi-line event: its bytes (maybe invalid UTF-8) and
/// whether it was already cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The line, without newline, at most [`SAMPLE_MAX_BYTES`]; an event's lines are separated
    /// by `\n`, which no line holds (see [`Sample::lines`]).
    pub text: Bytes,
    /// The line (the event's last line shown) was longer than `text`.
    pub cut: bool,
}

impl Sample {
    /// Copies a line (or an event's lines, `\n` between them), cutting it at
    /// [`SAMPLE_MAX_BYTES`].
    pub fn from_line(line: &[u8]) -> Sample {
        let cut = line.len() > SAMPLE_MAX_BYTES;
        Sample {
            text: Bytes::copy_from_slice(&line[..line.len().min(SAMPLE_MAX_BYTES)]),
            cut,
        }
    }

    /// Its lines: one, or those of a multi-line event. Lines are framed at `\n`, so a `\n` in
    /// `text` can only be where one line of an event ends and the next begins.
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> {
        self.text.split(|&b| b == b'\n')
    }
}

/// What an alert reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    /// Matching lines (the usual case): `count` is exact.
    Hits,
    /// The rule (group) was quiet for `resolve_after` after a message; `count` is 0.
    Recovered {
        /// The quiet time that was waited.
        quiet: Duration,
    },
    /// An absence rule saw no matching line for `silent_for`; `count` is 0.
    Absent {
        /// The rule's `absent.for`.
        silent_for: Duration,
        /// When a line last matched (`None`: never, since dingtail started).
        last_seen: Option<SystemTime>,
    },
    /// An absence rule's line matched again after an [`AlertKind::Absent`]; `count` is 0, the
    /// line is the one sample.
    Back,
    /// An episode (first message to "recovered") reached an `escalate:` step; `count` is 0.
    Escalated {
        /// The step's `after`.
        after: Duration,
        /// Matching lines counted since the episode's first message, that one's included.
        episode_count: u64,
    },
    /// dingtail's news about itself (`self_alerts:`, see `crate::self_alert`): `count` is 0, the
    /// samples are the lines of the news, written by dingtail.
    Notice,
}

/// How many other sources an alert names besides its latest (see [`Alert::other_sources`]).
pub const MAX_OTHER_SOURCES: usize = 4;

/// Makes `new` an alert's latest source, moving the one before (and `earlier` ones, when two
/// alerts merge) into `others`, bounded at [`MAX_OTHER_SOURCES`] + 1.
pub fn note_source(
    latest: &mut Arc<str>,
    others: &mut Vec<Arc<str>>,
    earlier: &[Arc<str>],
    new: &Arc<str>,
) {
    let old = std::mem::replace(latest, new.clone());
    for s in earlier.iter().chain(std::iter::once(&old)) {
        if **s != **new && !others.iter().any(|o| **o == **s) && others.len() <= MAX_OTHER_SOURCES {
            others.push(s.clone());
        }
    }
    others.retain(|o| **o != **new);
}

/// Everything one message needs to say about one rule (and group): the exact number of hits it
/// stands for, when they happened, and a bounded sample of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// The rule.
    pub rule: RuleId,
    /// Its name, for the `【rule】` header.
    pub rule_name: Arc<str>,
    /// The `group_by` values (`ip=10.0.0.5`), [`OTHER_GROUP`](crate::rules::OTHER_GROUP) past `max_groups`; `None` for
    /// rules without `group_by`.
    pub group: Option<Arc<str>>,
    /// What it reports.
    pub kind: AlertKind,
    /// Exact number of matching lines this alert stands for.
    pub count: u64,
    /// Time of the first hit.
    pub first: SystemTime,
    /// Time of the last hit.
    pub last: SystemTime,
    /// Source of the most recent hit (`-` for stdin, else a path).
    pub source: Arc<str>,
    /// The other sources this alert's hits came from, oldest first, without `source`: at most
    /// [`MAX_OTHER_SOURCES`] named, one more entry when there were even more (the message says
    /// "and more"), so a message never names one file for lines from several.
    pub other_sources: Vec<Arc<str>>,
    /// Up to `max_lines` lines, the first ones seen.
    pub samples: Vec<Sample>,
    /// The rule's `max_lines`, kept so merged alerts stay within it.
    pub max_lines: usize,
    /// Values of the rule's named captures on the most recent hit (aligned with
    /// `style.capture_names`; empty when the rule needs none).
    pub captures: Vec<String>,
    /// How the message looks (the route's, with escalated mentions added).
    pub style: Arc<Style>,
    /// The route the hits took (`None`: the rule's own robots and mentions), see
    /// [`crate::route`]: streams of different routes are never merged.
    pub route: Option<usize>,
    /// Hits of this stream that a silence or mute window covered since its last message (not
    /// counted in `count`): the message says `while silenced: ×N`.
    pub silenced: u64,
}

impl Alert {
    /// Folds a later alert of the same stream into this one: counts add up, the time span widens,
    /// samples fill up to `max_lines`, captures and kind are the later ones.
    pub fn merge(&mut self, later: Alert) {
        debug_assert!(self.same_stream(&later));
        self.count += later.count;
        // an escalation reached while waiting: the later mentions are the wider ones
        self.style = later.style;
        self.first = self.first.min(later.first);
        self.last = self.last.max(later.last);
        note_source(
            &mut self.source,
            &mut self.other_sources,
            &later.other_sources,
            &later.source,
        );
        self.kind = later.kind;
        if !later.captures.is_empty() {
            self.captures = later.captures;
        }
        let room = self.max_lines.saturating_sub(self.samples.len());
        self.samples.extend(later.samples.into_iter().take(room));
        self.silenced += later.silenced;
    }

    /// Whether `other` reports on the same thing (rule, group and kind of news), so the two may
    /// be merged into one entry of a message. Rule ids are those of one config, so the name is
    /// compared too: across a reload the same id may name another rule.
    pub fn same_stream(&self, other: &Alert) -> bool {
        self.rule == other.rule
            && self.rule_name == other.rule_name
            && self.group == other.group
            && self.route == other.route
            && std::mem::discriminant(&self.kind) == std::mem::discriminant(&other.kind)
    }

    /// Lines counted but not quoted.
    pub fn unquoted(&self) -> u64 {
        self.count.saturating_sub(self.samples.len() as u64)
    }
}

impl AsRef<Alert> for Alert {
    fn as_ref(&self) -> &Alert {
        self
    }
}
