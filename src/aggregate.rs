//! Hits → alerts: the per-rule state machine of windows, thresholds, cooldowns, groups,
//! recovery and absence, with exact counts.
//!
//! The aggregator is told the time (`tokio::time::Instant`, so tests can pause and advance it, and
//! `dingtail test --replay` can run a simulated clock) and never reads a clock or sleeps itself;
//! `app.rs` drives it with [`Aggregator::next_deadline`] and [`Aggregator::expire`].
//!
//! Hits of a rule are kept per *group*: one per value of the rule's `group_by` captures (one group
//! when it has none). A group:
//! - counts every hit into its pending alert (exact count, at most `max_lines` samples);
//! - opens a gathering window (`window`) at the first hit, or, with a `threshold`, at the hit
//!   that makes `count` hits within `within`; the message counts everything pending, including
//!   the hits below the threshold that came before (a suppressed hit is counted into a later
//!   message, never dropped);
//! - after a message, with a `cooldown`, gathers further hits and sends them when the cooldown
//!   ends (then cools down again), so an ongoing incident gives one message per cooldown;
//! - after a message, with `resolve_after`, sends "recovered" once no hit came for that long.
//!
//! Memory is bounded whatever arrives: per group one count, at most `max_lines` samples of at most
//! [`SAMPLE_MAX_BYTES`], at most `threshold.count` hit times; per rule at most `max_groups`
//! groups plus one shared [`OTHER_GROUP`]. A group that holds nothing (no pending hit, no timer,
//! no recent hit that a threshold still needs) is forgotten. Hits below a threshold that is
//! never met stay pending in their group; at the end of input they are not sent (the rule says
//! they are not worth a message) but reported by [`Aggregator::held_below_threshold`].
//!
//! Absence rules (`absent: {match, for}`) are the reverse: a matching line is the good news. The
//! rule alerts once nothing matched for `for` (counted from the aggregator's start or the last
//! match), says so once, and sends a "back" message when a line matches again. Their matching
//! lines are not counted into messages.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use tokio::time::Instant;

pub use crate::alert::{
    Alert, AlertKind, MAX_OTHER_SOURCES, SAMPLE_MAX_BYTES, Sample, note_source,
};
use crate::ids::RobotId;
use crate::ids::RuleId;
use crate::matcher::{Hit, HitBatch};
use crate::rules::Rule;
use crate::source::Mark;

mod absence;
mod flush;
mod group;
mod persist;
mod reload;
mod routed;
#[cfg(test)]
mod tests;

use absence::Absence;
use group::{Group, Pending};
pub use routed::Routed;
use routed::{fan_out, hits_alert};

/// Longest capture value kept for group keys and templates, in bytes.
pub const CAPTURE_MAX_BYTES: usize = 256;

/// An alert stream: rule, group text (empty without `group_by`), route.
type Key = (RuleId, Arc<str>, Option<usize>);

/// The key of a rule's only absence state (or its only group without `group_by`).
fn whole(rule: RuleId) -> Key {
    (rule, Arc::from(""), None)
}

/// Gathers hits into alerts; see the module docs.
#[derive(Debug)]
pub struct Aggregator {
    rules: Vec<Rule>,
    names: Vec<Arc<str>>,
    groups: HashMap<Key, Group>,
    /// Groups per rule, not counting [`OTHER_GROUP`].
    group_counts: Vec<usize>,
    absences: HashMap<Key, Absence>,
    /// Absence states per rule, not counting [`OTHER_GROUP`] (bounded by `max_groups`).
    absence_counts: Vec<usize>,
    /// Every timer, ordered by time, so the next deadline is the first entry.
    deadlines: BTreeSet<(Instant, Key)>,
    /// Relates the aggregator's clock to the wall clock, for times shown in messages.
    anchor: (Instant, SystemTime),
    held: Vec<u64>,
    /// Holds taken since [`Aggregator::take_holds`] was last called (one per alert copy).
    new_holds: u32,
    /// Holds of hits dropped without a message (below a threshold at the end, or no longer
    /// within a threshold's reach), to release.
    released: Vec<Mark>,
    /// Holds moved to an earlier chunk than the one being reported (a below-threshold pending
    /// whose oldest hits left the threshold's reach), to register, one entry per copy.
    moved: Vec<Mark>,
    /// Inputs watched for silence (`stale:`), with the id of the rule each is watched under;
    /// their rules come after the config's (see [`crate::stale`]).
    stale: Vec<(RuleId, crate::stale::StaleInput)>,
    /// Those rules, kept across reloads.
    stale_rules: Vec<Rule>,
    /// Whether [`Aggregator::flush`] reports absence not yet due: yes at the end of a finite
    /// input (stdin read to its end holds no such line), no for a stop of followed files.
    absence_at_end: bool,
    /// Whether [`Aggregator::flush`] keeps the hits gathered in a cooldown for the next run
    /// (exported by [`Aggregator::snapshot`]) instead of sending them at once.
    keep_pending: bool,
    /// Pending hits [`Aggregator::flush`] did not send (below a threshold, or gathered in a
    /// cooldown when `keep_pending`), for the snapshot; not counted by `pending_hits`.
    carried: Vec<(Key, Pending)>,
    /// Holds of the hits carried over, one entry per alert copy: released by
    /// [`Aggregator::release_carried`] once the snapshot carrying them is saved.
    carried_holds: Vec<Mark>,
    /// Per rule: hits gathered in a cooldown that [`Aggregator::flush`] kept for the next run.
    kept: Vec<u64>,
}

impl Aggregator {
    /// An aggregator for these rules (indexed by `RuleId`), started at `now`, which is `wall` on
    /// the wall clock. Absence timers start now.
    pub fn new(rules: &[Rule], now: Instant, wall: SystemTime) -> Aggregator {
        let mut agg = Aggregator {
            names: rules.iter().map(|r| Arc::from(r.name.as_str())).collect(),
            rules: rules.to_vec(),
            groups: HashMap::new(),
            group_counts: vec![0; rules.len()],
            absences: HashMap::new(),
            absence_counts: vec![0; rules.len()],
            deadlines: BTreeSet::new(),
            anchor: (now, wall),
            held: vec![0; rules.len()],
            new_holds: 0,
            released: Vec::new(),
            moved: Vec::new(),
            absence_at_end: true,
            stale: Vec::new(),
            stale_rules: Vec::new(),
            keep_pending: false,
            carried: Vec::new(),
            carried_holds: Vec::new(),
            kept: vec![0; rules.len()],
        };
        for (id, rule) in rules.iter().enumerate() {
            // With group_by, a value is watched from its first line: the ones never seen are
            // not known.
            if let Some(silence) = rule.absent_for
                && rule.group_by.is_empty()
            {
                let at = now + silence;
                agg.deadlines.insert((at, whole(id)));
                agg.absences.insert(whole(id), Absence::new(now, Some(at)));
            }
        }
        agg
    }

    /// Watches these inputs for silence (`stale:`) from `now`, sending to `robots`: each
    /// becomes an absence rule after the config's, whose heartbeat is any chunk of the input.
    pub fn with_stale(
        mut self,
        inputs: &[crate::stale::StaleInput],
        robots: &[RobotId],
        pii: &crate::pii::Pii,
        now: Instant,
    ) -> Aggregator {
        for input in inputs {
            let rule = input.rule(robots, pii);
            let id = self.rules.len();
            let at = now + input.after;
            self.names.push(Arc::from(rule.name.as_str()));
            self.group_counts.push(0);
            self.absence_counts.push(0);
            self.held.push(0);
            self.rules.push(rule.clone());
            self.stale_rules.push(rule);
            self.stale.push((id, input.clone()));
            self.deadlines.insert((at, whole(id)));
            self.absences.insert(whole(id), Absence::new(now, Some(at)));
        }
        self
    }

    /// Counts the hits of a batch read at `now`, returning alerts due at once (an absence rule's
    /// "back" message, a stale input's).
    pub fn add(&mut self, batch: &HitBatch, now: Instant) -> Vec<Routed> {
        self.anchor = (now, batch.read_at);
        let mut out = Vec::new();
        if batch.lines > 0 {
            let fed: Vec<RuleId> = (self.stale.iter())
                .filter(|(_, s)| s.covers(&batch.source))
                .map(|&(id, _)| id)
                .collect();
            for rule in fed {
                let beat = Hit {
                    rule,
                    line: Bytes::new(),
                    captures: Vec::new(),
                };
                self.absence_matched(&beat, batch, now, &mut out);
            }
        }
        for hit in &batch.hits {
            if self.rules[hit.rule].absent_for.is_some() {
                self.absence_matched(hit, batch, now, &mut out);
            } else {
                self.count(hit, batch, now);
            }
        }
        out
    }

    /// When the next timer is due, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// Runs every timer due at `now` (windows, cooldowns, recoveries, absences), returning the
    /// alerts they produce, oldest first.
    pub fn expire(&mut self, now: Instant) -> Vec<Routed> {
        let mut out = Vec::new();
        while let Some((at, _)) = self.deadlines.first() {
            if *at > now {
                break;
            }
            let (at, key) = self.deadlines.pop_first().expect("just seen");
            if self.absences.contains_key(&key) {
                self.absence_due(&key, at, &mut out);
            } else {
                self.group_due(&key, at, &mut out);
            }
        }
        out
    }

    /// Hits counted and not yet sent.
    pub fn pending_hits(&self) -> u64 {
        self.groups
            .values()
            .filter_map(|g| g.pending.as_ref())
            .map(|p| p.count)
            .sum()
    }

    /// For the checkpoint keeper: how many holds alerts took since the last call (to register
    /// before any of those alerts can be settled), and the holds of hits dropped without a
    /// message (to release).
    pub fn take_holds(&mut self) -> (u32, Vec<Mark>) {
        (
            std::mem::take(&mut self.new_holds),
            std::mem::take(&mut self.released),
        )
    }

    /// For the checkpoint keeper: holds moved to an earlier chunk than the current one (one
    /// entry per alert copy), to register before the releases of [`Self::take_holds`].
    pub fn take_moved_holds(&mut self) -> Vec<Mark> {
        std::mem::take(&mut self.moved)
    }

    /// Per rule: hits that stayed below the rule's threshold until [`Self::flush`], so were
    /// never sent.
    pub fn held_below_threshold(&self) -> &[u64] {
        &self.held
    }

    /// Groups kept now (all rules); bounded by the rules' `max_groups` (+1 each).
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// The wall-clock time of `at` on the aggregator's clock.
    fn wall(&self, at: Instant) -> SystemTime {
        let (i, w) = self.anchor;
        if at >= i {
            w + (at - i)
        } else {
            w.checked_sub(i - at).unwrap_or(w)
        }
    }

    /// An alert of `rule` (by `route`) standing for no line, at `wall`.
    fn bare_alert(
        &self,
        rule: RuleId,
        group: Option<Arc<str>>,
        route: Option<usize>,
        wall: SystemTime,
    ) -> Alert {
        let r = &self.rules[rule];
        Alert {
            rule,
            rule_name: self.names[rule].clone(),
            group,
            kind: AlertKind::Hits,
            count: 0,
            first: wall,
            last: wall,
            source: Arc::from("-"),
            other_sources: Vec::new(),
            samples: Vec::new(),
            max_lines: r.max_lines,
            captures: Vec::new(),
            style: r.style_for(route).clone(),
            route,
            silenced: 0,
        }
    }
}
