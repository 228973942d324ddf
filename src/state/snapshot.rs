//! The alert state as data: what the aggregator exports at a stop (and every second while it
//! runs) and imports at the next start, so a deploy neither re-alerts what was cooling down nor
//! forgets to send "recovered", and absence is measured across restarts.
//!
//! Plain serde structs, no behaviour: the aggregator converts its clock (`Instant`s) to wall-clock
//! times ([`Wall`]) on export and back on import; [`crate::state::alert_state`] reads and writes
//! the file. Rules are keyed by *name* (ids change when rules are added or reordered), and each
//! carries its [`RuleState::shape`]: what its state depends on (`hits`, `hits group_by=ip`,
//! `absent`). A rule whose shape changed between two runs starts fresh, said in one log line.
//!
//! ## Extending it (new rule features with state)
//!
//! Add one field to the struct of the state it belongs to ([`GroupState`] for per-group timers,
//! [`AbsenceState`] for absence rules, or a new `Option<YourState>` field on [`RuleState`] for a
//! new kind of rule state), with `#[serde(default)]` (the structs here already default every
//! field) so a file written by an older dingtail still loads. Export and import it in
//! `aggregate/persist.rs`. If the new state is *keyed differently* (say absence watched per
//! `group_by` value), make it a map keyed like [`RuleState::groups`] and put what the key depends
//! on into the shape (`absent group_by=host`), so a changed definition starts fresh instead of
//! importing keys that mean something else. Only a change that old binaries must not misread
//! bumps [`VERSION`]; an unknown version is one warning and a fresh start, never a refusal to run.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The format version written; files of another version start fresh (one warning).
pub const VERSION: u32 = 1;

/// A wall-clock time, written as RFC 3339 (UTC, milliseconds) so the file can be read by people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Wall(pub SystemTime);

impl Serialize for Wall {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(self.0))
    }
}

impl<'de> Deserialize<'de> for Wall {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Wall, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_rfc3339(&text)
            .map(Wall)
            .map_err(serde::de::Error::custom)
    }
}

/// The whole alert state of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertSnapshot {
    /// [`VERSION`] when written by this dingtail.
    pub version: u32,
    /// When it was taken.
    pub saved_at: Wall,
    /// Per rule name, the rules that hold any state.
    #[serde(default)]
    pub rules: BTreeMap<String, RuleState>,
}

impl AlertSnapshot {
    /// An empty snapshot taken at `at`.
    pub fn new(at: SystemTime) -> AlertSnapshot {
        AlertSnapshot {
            version: VERSION,
            saved_at: Wall(at),
            rules: BTreeMap::new(),
        }
    }

    /// Groups and absence watches held, for logs.
    pub fn streams(&self) -> usize {
        self.rules
            .values()
            .map(|r| {
                r.groups.len()
                    + r.routes.values().map(|g| g.len()).sum::<usize>()
                    + usize::from(r.absence.is_some())
                    + r.absences.len()
            })
            .sum()
    }
}

/// One rule's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RuleState {
    /// What the state depends on in the rule's definition (`hits`, `hits group_by=ip,user`,
    /// `absent`): compared at import, a rule whose shape changed starts fresh.
    pub shape: String,
    /// Per group (`ip=10.0.0.5`; `""` for a rule without `group_by`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, GroupState>,
    /// An absence rule's watch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub absence: Option<AbsenceState>,
    /// Streams sent by a route (`routes:`): per route name (`name:`, else `#N`), per group as
    /// in [`Self::groups`]. A route that is gone (by name) starts nothing: its streams are
    /// dropped.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub routes: BTreeMap<String, BTreeMap<String, GroupState>>,
    /// An absence rule with `group_by`: the watch of each value seen (`host=web1`), at most
    /// the rule's `max_groups` plus the shared `other` watch.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub absences: BTreeMap<String, AbsenceState>,
}

/// One alert stream of a hit rule (a group).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GroupState {
    /// The gathering window is open and closes then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closes_at: Option<Wall>,
    /// A message went out; further hits are gathered until then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cooldown_until: Option<Wall>,
    /// A message went out and no "recovered" since: one is due `resolve_after` after
    /// `last_hit`.
    pub alerted: bool,
    /// When the last hit came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_hit: Option<Wall>,
    /// Threshold rules: times of the most recent hits (at most `threshold.count`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recent: Vec<Wall>,
    /// Hits counted and not sent, that no checkpoint holds (gathered in a cooldown or below a
    /// threshold at a stop, or read from stdin): sent by the next run when their time comes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingState>,
    /// With `escalate:`, the open episode: the next run neither sends a step again nor
    /// forgets one that came due.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub episode: Option<EpisodeState>,
}

/// An escalation episode: from the first message to "recovered".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodeState {
    /// When its first message went out (steps count from here).
    pub start: Wall,
    /// Lines counted in the episode so far.
    #[serde(default)]
    pub count: u64,
    /// How many steps were sent.
    #[serde(default)]
    pub level: usize,
}

/// Hits counted and not yet sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingState {
    /// Exact number of hits.
    pub count: u64,
    /// Time of the first hit.
    pub first: Wall,
    /// Time of the last hit.
    pub last: Wall,
    /// Source of the most recent hit.
    #[serde(default)]
    pub source: String,
    /// The quoted lines (at most `max_lines`; decoded lossily, as they are shown).
    #[serde(default)]
    pub samples: Vec<SampleState>,
    /// The named captures of the most recent hit.
    #[serde(default)]
    pub captures: Vec<String>,
}

/// A quoted line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleState {
    /// The line (lossy UTF-8: it is only ever shown).
    pub text: String,
    /// The line was longer and was cut.
    #[serde(default)]
    pub cut: bool,
}

/// An absence rule's watch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AbsenceState {
    /// When the watch started (the first run that had the rule), counted from when no line was
    /// ever seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<Wall>,
    /// When a line last matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Wall>,
    /// "absent" was sent and no "back" since.
    pub alerted: bool,
    /// The route (by name) of the last matching line: "absent" goes where its lines went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The named captures of the last matching line (for the message's template).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub captures: Vec<String>,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_snapshot_reads_back_and_an_older_file_without_new_fields_still_loads() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_800_000_000_123);
        let mut snap = AlertSnapshot::new(t);
        snap.rules.insert(
            "err".into(),
            RuleState {
                shape: "hits".into(),
                groups: [(
                    String::new(),
                    GroupState {
                        cooldown_until: Some(Wall(t)),
                        alerted: true,
                        ..GroupState::default()
                    },
                )]
                .into(),
                routes: [(
                    "payments".into(),
                    [(
                        String::new(),
                        GroupState {
                            alerted: true,
                            episode: Some(EpisodeState {
                                start: Wall(t),
                                count: 3,
                                level: 1,
                            }),
                            ..GroupState::default()
                        },
                    )]
                    .into(),
                )]
                .into(),
                absences: [(
                    "host=web1".into(),
                    AbsenceState {
                        alerted: true,
                        route: Some("payments".into()),
                        ..AbsenceState::default()
                    },
                )]
                .into(),
                ..RuleState::default()
            },
        );
        assert_eq!(snap.streams(), 3);
        let text = serde_json::to_string(&snap).unwrap();
        assert!(text.contains("2027-01-15T08:00:00.123Z"), "{text}");
        assert_eq!(serde_json::from_str::<AlertSnapshot>(&text).unwrap(), snap);
        let old = r#"{"version":1,"saved_at":"2027-01-15T08:00:00Z","rules":{"err":{"groups":{"":{"alerted":true}}}}}"#;
        let read: AlertSnapshot = serde_json::from_str(old).unwrap();
        assert!(read.rules["err"].groups[""].alerted);
        assert_eq!(read.rules["err"].shape, "");
    }
}
