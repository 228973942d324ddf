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

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use tokio::time::Instant;

pub use crate::alert::{
    Alert, AlertKind, MAX_OTHER_SOURCES, SAMPLE_MAX_BYTES, Sample, note_source,
};
use crate::escalate;
use crate::ids::RobotId;
use crate::ids::RuleId;
use crate::matcher::{Hit, HitBatch};
use crate::rules::{OTHER_GROUP, Rule};
use crate::source::Mark;

mod persist;

/// Longest capture value kept for group keys and templates, in bytes.
pub const CAPTURE_MAX_BYTES: usize = 256;

/// An [`Alert`] on its way to one robot, with the file positions it holds until it is settled
/// (delivered, or reported undelivered). Reads as the alert it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// What the message says.
    pub alert: Alert,
    /// Where it goes (`None` when the config has no robot: dry-run). A rule with several robots
    /// yields one alert per robot.
    pub robot: Option<RobotId>,
    /// Per followed file, the start of the first chunk this alert counts a hit from: until the
    /// alert is settled (delivered, or reported undelivered) the file's checkpoint stays at or
    /// before it. One entry per file, not per hit, because later hits of the same file lie after
    /// it anyway; merging keeps the earliest per file and hands back the others to be settled
    /// ([`Routed::merge`]), so this never grows with the number of alerts merged.
    pub holds: Vec<Mark>,
}

impl Routed {
    /// Folds a later alert of the same stream into this one ([`Alert::merge`]). Holds stay one per
    /// file, the earliest: the later ones are returned, to be settled at once (the earlier hold
    /// keeps the file's checkpoint before them anyway), so however many alerts merge while
    /// DingTalk is down, an alert holds at most one position per file.
    pub fn merge(&mut self, later: Routed) -> Vec<Mark> {
        self.alert.merge(later.alert);
        let mut surplus = Vec::new();
        for h in later.holds {
            match self.holds.iter_mut().find(|m| m.file == h.file) {
                Some(m) => {
                    surplus.push((*m).max(h));
                    *m = (*m).min(h);
                }
                None => self.holds.push(h),
            }
        }
        surplus
    }
}

impl std::ops::Deref for Routed {
    type Target = Alert;
    fn deref(&self) -> &Alert {
        &self.alert
    }
}

impl std::ops::DerefMut for Routed {
    fn deref_mut(&mut self) -> &mut Alert {
        &mut self.alert
    }
}

impl AsRef<Alert> for Routed {
    fn as_ref(&self) -> &Alert {
        &self.alert
    }
}

/// Hits counted and not yet sent.
#[derive(Debug)]
struct Pending {
    count: u64,
    first: SystemTime,
    last: SystemTime,
    source: Arc<str>,
    /// See [`Alert::other_sources`].
    other_sources: Vec<Arc<str>>,
    samples: Vec<Sample>,
    captures: Vec<String>,
    /// See [`Routed::holds`].
    holds: Vec<Mark>,
}

/// One alert stream: a rule, or one `group_by` value of it.
#[derive(Debug)]
struct Group {
    pending: Option<Pending>,
    /// Threshold rules: times of the most recent hits, at most `threshold.count`, with the
    /// chunk each came in (for followed files): a pending below the threshold holds only these.
    recent: VecDeque<(Instant, Option<Mark>)>,
    /// The gathering window is open and closes then.
    closes_at: Option<Instant>,
    /// A message went out; hits are gathered until then.
    cooldown_until: Option<Instant>,
    last_hit: Instant,
    /// A message went out and no "recovered" since (only tracked with `resolve_after`).
    alerted: bool,
    /// The entry in the deadline set, if any.
    scheduled: Option<Instant>,
    /// With `escalate:`, the open episode (first message to "recovered").
    episode: Option<Episode>,
}

/// An episode of a group with `escalate:` steps: since when, how many lines, which steps sent.
#[derive(Debug, Clone, Copy)]
struct Episode {
    start: Instant,
    count: u64,
    level: usize,
}

/// An absence rule's state (per `group_by` value, with one).
#[derive(Debug)]
struct Absence {
    /// When watching began (this run's start, or an earlier run's: see `persist.rs`): the
    /// silence is counted from here while no line was seen.
    since: Instant,
    /// Last match: when, by the aggregator's clock and the wall clock.
    last_seen: Option<(Instant, SystemTime)>,
    alerted: bool,
    scheduled: Option<Instant>,
    /// Captures and route of the last matching line (for templates and routing of "absent").
    captures: Vec<String>,
    route: Option<usize>,
}

impl Absence {
    fn new(since: Instant, scheduled: Option<Instant>) -> Absence {
        Absence {
            since,
            last_seen: None,
            alerted: false,
            scheduled,
            captures: Vec::new(),
            route: None,
        }
    }
}

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

    fn count(&mut self, hit: &Hit, batch: &HitBatch, now: Instant) {
        let rule = &self.rules[hit.rule];
        let mut key_text = group_key(rule, hit);
        if let Some(k) = &key_text {
            let key = (
                hit.rule,
                Arc::from(k.as_str()),
                rule.route_for(&hit.line, &hit.captures),
            );
            if !self.groups.contains_key(&key) && self.group_counts[hit.rule] >= rule.max_groups {
                key_text = Some(OTHER_GROUP.to_owned());
            }
        }
        let route = rule.route_for(&hit.line, &hit.captures);
        let copies = rule.targets(route).len().max(1);
        let key: Key = (
            hit.rule,
            Arc::from(key_text.as_deref().unwrap_or("")),
            route,
        );
        let group = match self.groups.get_mut(&key) {
            Some(g) => g,
            None => {
                if key.1.as_ref() != OTHER_GROUP && key_text.is_some() {
                    self.group_counts[hit.rule] += 1;
                }
                self.groups.entry(key.clone()).or_insert(Group {
                    pending: None,
                    recent: VecDeque::new(),
                    closes_at: None,
                    cooldown_until: None,
                    last_hit: now,
                    alerted: false,
                    scheduled: None,
                    episode: None,
                })
            }
        };
        let pending = group.pending.get_or_insert_with(|| Pending {
            count: 0,
            first: batch.read_at,
            last: batch.read_at,
            source: batch.source.clone(),
            other_sources: Vec::new(),
            samples: Vec::new(),
            captures: Vec::new(),
            holds: Vec::new(),
        });
        if let Some(mark) = batch.mark
            && !pending.holds.iter().any(|h| h.file == mark.file)
        {
            pending.holds.push(mark);
            // fan_out makes one copy of the alert per robot, and each copy is settled
            self.new_holds += copies as u32;
        }
        pending.count += 1;
        if let Some(e) = &mut group.episode {
            e.count += 1;
        }
        pending.last = pending.last.max(batch.read_at);
        if !Arc::ptr_eq(&pending.source, &batch.source) && pending.source != batch.source {
            note_source(
                &mut pending.source,
                &mut pending.other_sources,
                &[],
                &batch.source,
            );
        }
        if pending.samples.len() < rule.max_lines {
            pending.samples.push(Sample::from_line(&hit.line));
        }
        if rule.needs_captures {
            pending.captures = hit.captures.iter().map(|c| capture_text(c)).collect();
        }
        group.last_hit = now;
        let open = match rule.threshold {
            None => true,
            Some(t) => {
                group.recent.push_back((now, batch.mark));
                while group.recent.len() > t.count {
                    group.recent.pop_front();
                }
                group.recent.len() >= t.count
                    && group.recent.front().is_some_and(|&(oldest, _)| {
                        now.saturating_duration_since(oldest) < t.within
                    })
            }
        };
        if open && group.closes_at.is_none() && group.cooldown_until.is_none() {
            group.closes_at = Some(now + rule.window);
        }
        self.reschedule(&key, now);
    }

    fn absence_matched(
        &mut self,
        hit: &Hit,
        batch: &HitBatch,
        now: Instant,
        out: &mut Vec<Routed>,
    ) {
        let wall = batch.read_at;
        let rule = &self.rules[hit.rule];
        let silence = rule.absent_for.expect("an absence rule");
        let route = rule.route_for(&hit.line, &hit.captures);
        let key: Key = match group_key(rule, hit) {
            None => whole(hit.rule),
            Some(k) => {
                let key = (hit.rule, Arc::from(k.as_str()), None);
                if self.absences.contains_key(&key) {
                    key
                } else if self.absence_counts[hit.rule] >= rule.max_groups {
                    // At the bound, the values not watched yet share one "other" absence state: it
                    // goes absent when none of them was seen for `for`.
                    (hit.rule, Arc::from(OTHER_GROUP), None)
                } else {
                    self.absence_counts[hit.rule] += 1;
                    key
                }
            }
        };
        let captures: Vec<String> = if rule.needs_captures {
            hit.captures.iter().map(|c| capture_text(c)).collect()
        } else {
            Vec::new()
        };
        let grouped = !rule.group_by.is_empty();
        let absence = self
            .absences
            .entry(key.clone())
            .or_insert_with(|| Absence::new(now, None));
        absence.last_seen = Some((now, wall));
        absence.captures = captures;
        absence.route = route;
        if std::mem::take(&mut absence.alerted) {
            let alert = Alert {
                kind: AlertKind::Back,
                // a stale input's heartbeat is no line
                samples: (!hit.line.is_empty())
                    .then(|| Sample::from_line(&hit.line))
                    .into_iter()
                    .collect(),
                captures: absence.captures.clone(),
                // The line's own source: "back" says where it matched again.
                source: batch.source.clone(),
                ..self.bare_alert(hit.rule, grouped.then(|| key.1.clone()), route, wall)
            };
            fan_out(alert, Vec::new(), self.rules[hit.rule].targets(route), out);
        }
        let absence = self.absences.get_mut(&key).expect("just inserted");
        if let Some(old) = absence.scheduled.take() {
            self.deadlines.remove(&(old, key.clone()));
        }
        let at = now + silence;
        absence.scheduled = Some(at);
        self.deadlines.insert((at, key));
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

    fn absence_due(&mut self, key: &Key, at: Instant, out: &mut Vec<Routed>) {
        let wall = self.wall(at);
        let absence = self.absences.get_mut(key).expect("an absence rule");
        absence.scheduled = None;
        if absence.alerted {
            return;
        }
        absence.alerted = true;
        let last_seen = absence.last_seen.map(|(_, w)| w);
        let (route, captures) = (absence.route, absence.captures.clone());
        let rule = &self.rules[key.0];
        let silence = rule.absent_for.expect("an absence rule");
        let group = (!rule.group_by.is_empty()).then(|| key.1.clone());
        let alert = Alert {
            kind: AlertKind::Absent {
                silent_for: silence,
                last_seen,
            },
            captures,
            ..self.bare_alert(key.0, group, route, wall)
        };
        fan_out(alert, Vec::new(), self.rules[key.0].targets(route), out);
    }

    /// The timers of one group at `at` (its scheduled time, which is the current time as far
    /// as the group is concerned).
    fn group_due(&mut self, key: &Key, at: Instant, out: &mut Vec<Routed>) {
        let rule = &self.rules[key.0];
        let Some(group) = self.groups.get_mut(key) else {
            return;
        };
        group.scheduled = None;
        let mut send = false;
        if group.closes_at.is_some_and(|t| t <= at) {
            group.closes_at = None;
            send = true;
        } else if group.cooldown_until.is_some_and(|t| t <= at) {
            group.cooldown_until = None;
            send = group.pending.is_some();
        }
        let resolving = rule.resolve_after.filter(|&quiet| {
            group.alerted
                && group.closes_at.is_none()
                && group.pending.is_none()
                && !send
                && at >= group.last_hit + quiet
        });
        let mut escalated = None;
        if resolving.is_none()
            && let Some(e) = &mut group.episode
            && let Some(step) = rule.escalate.get(e.level)
            && at >= e.start + step.after
        {
            e.level = escalate::reached(&rule.escalate, at - e.start).max(e.level + 1);
            escalated = Some((step.after, *e));
        }
        if let Some((after, e)) = escalated {
            let rule = &self.rules[key.0];
            let alert = Alert {
                kind: AlertKind::Escalated {
                    after,
                    episode_count: e.count,
                },
                group: (!rule.group_by.is_empty()).then(|| key.1.clone()),
                first: self.wall(e.start),
                style: escalate::styled(rule.style_for(key.2), &rule.escalate, e.level),
                ..self.bare_alert(key.0, None, key.2, self.wall(at))
            };
            fan_out(alert, Vec::new(), rule.targets(key.2), out);
        }
        let rule = &self.rules[key.0];
        let group = self.groups.get_mut(key).expect("still there");
        if send && let Some(p) = group.pending.take() {
            group.alerted = true;
            if let Some(cd) = rule.cooldown {
                group.cooldown_until = Some(at + cd);
            }
            if !rule.escalate.is_empty() && group.episode.is_none() {
                group.episode = Some(Episode {
                    start: at,
                    count: p.count,
                    level: 0,
                });
            }
            let level = group.episode.map_or(0, |e| e.level);
            let (mut alert, holds) = hits_alert(key.clone(), self.names[key.0].clone(), rule, p);
            alert.style = escalate::styled(&alert.style, &rule.escalate, level);
            fan_out(alert, holds, rule.targets(key.2), out);
        }
        let rule = &self.rules[key.0];
        let group = self.groups.get_mut(key).expect("still there");
        if let Some(quiet) = resolving {
            group.alerted = false;
            group.cooldown_until = None;
            // the people an escalation reached hear that it is over
            let level = group.episode.take().map_or(0, |e| e.level);
            let wall = self.wall(at);
            let alert = Alert {
                kind: AlertKind::Recovered { quiet },
                group: (!rule.group_by.is_empty()).then(|| key.1.clone()),
                style: escalate::styled(rule.style_for(key.2), &rule.escalate, level),
                ..self.bare_alert(key.0, None, key.2, wall)
            };
            fan_out(alert, Vec::new(), self.rules[key.0].targets(key.2), out);
        }
        self.reschedule(key, at);
    }

    /// Sets the group's next timer, or forgets the group when it holds nothing, as of `now`.
    fn reschedule(&mut self, key: &Key, now: Instant) {
        let rule = &self.rules[key.0];
        let Some(group) = self.groups.get_mut(key) else {
            return;
        };
        if let Some(t) = rule.threshold {
            while group
                .recent
                .front()
                .is_some_and(|&(e, _)| e + t.within <= now)
            {
                group.recent.pop_front();
            }
            if group.closes_at.is_none()
                && group.cooldown_until.is_none()
                && let Some(p) = &mut group.pending
            {
                // Below the threshold: only the recent hits can still count towards it, so
                // the checkpoint is held at the earliest of them, not at the first hit ever.
                let copies = rule.targets(key.2).len().max(1);
                let mut needed: Vec<Mark> = Vec::new();
                for m in group.recent.iter().filter_map(|&(_, m)| m) {
                    match needed.iter_mut().find(|n| n.file == m.file) {
                        Some(n) => *n = (*n).min(m),
                        None => needed.push(m),
                    }
                }
                for h in std::mem::take(&mut p.holds) {
                    let keep = needed.contains(&h);
                    if !keep {
                        (0..copies).for_each(|_| self.released.push(h));
                    } else {
                        p.holds.push(h);
                    }
                }
                for n in needed {
                    if !p.holds.contains(&n) {
                        (0..copies).for_each(|_| self.moved.push(n));
                        p.holds.push(n);
                    }
                }
            }
        }
        let quiet_now = group.closes_at.is_none() && group.pending.is_none();
        let resolve_at = rule
            .resolve_after
            .filter(|_| group.alerted && quiet_now)
            .map(|q| group.last_hit + q);
        let escalate_at = group
            .episode
            .filter(|_| group.alerted)
            .and_then(|e| rule.escalate.get(e.level).map(|s| e.start + s.after));
        let mut next = [
            group.closes_at,
            group.cooldown_until,
            resolve_at,
            escalate_at,
        ]
        .into_iter()
        .flatten()
        .min();
        if next.is_none() && group.pending.is_none() {
            // Idle: wait only until the threshold no longer needs the recent hit times.
            next = rule
                .threshold
                .and_then(|t| group.recent.back().map(|&(newest, _)| newest + t.within));
        } else if next.is_none() {
            // Below the threshold: look again when the oldest recent hit leaves its reach,
            // to move the hold on (see above).
            next = rule
                .threshold
                .and_then(|t| group.recent.front().map(|&(oldest, _)| oldest + t.within));
        }
        if group.scheduled != next {
            if let Some(old) = group.scheduled.take() {
                self.deadlines.remove(&(old, key.clone()));
            }
            if let Some(t) = next {
                self.deadlines.insert((t, key.clone()));
                group.scheduled = Some(t);
            }
        }
        if next.is_none() && group.pending.is_none() {
            self.groups.remove(key);
            if !key.1.is_empty() && key.1.as_ref() != OTHER_GROUP {
                self.group_counts[key.0] -= 1;
            }
        }
    }

    /// End of input (or shutdown) at `now`: sends everything that would be sent at its time
    /// (open windows, hits gathered in cooldowns) and checks absence rules; hits below a
    /// threshold that was not met are not sent but added to [`Self::held_below_threshold`].
    /// Pending "recovered" messages are not sent: nobody knows yet whether it stays quiet.
    pub fn flush(&mut self, now: Instant) -> Vec<Routed> {
        let mut due: Vec<(Instant, Key)> = Vec::new();
        let mut carry: Vec<Key> = Vec::new();
        for (key, g) in &self.groups {
            if let Some(p) = &g.pending {
                match (g.closes_at, g.cooldown_until) {
                    (Some(t), _) => due.push((t, key.clone())),
                    // (a routed stream is not saved, see persist.rs: sent now instead)
                    (None, Some(_)) if self.keep_pending && key.2.is_none() => {
                        self.kept[key.0] += p.count;
                        carry.push(key.clone());
                    }
                    (None, Some(t)) => due.push((t, key.clone())),
                    (None, None) => {
                        self.held[key.0] += p.count;
                        carry.push(key.clone());
                    }
                }
            }
        }
        for key in carry {
            let g = self.groups.get_mut(&key).expect("listed");
            let mut p = g.pending.take().expect("listed with pending hits");
            // Counted here, carried by the snapshot: the holds go once it is saved (below a
            // threshold without a saved state, the lines are simply done with).
            let copies = self.rules[key.0].targets(key.2).len().max(1);
            let holds = std::mem::take(&mut p.holds);
            // A routed stream is not saved (see persist.rs): its lines below the threshold are
            // simply done with.
            let saved = key.2.is_none();
            let to = if self.keep_pending && saved {
                &mut self.carried_holds
            } else {
                &mut self.released
            };
            for _ in 0..copies {
                to.extend(&holds);
            }
            if saved {
                self.carried.push((key, p));
            }
        }
        due.sort();
        let mut out = Vec::new();
        for (at, key) in due {
            if let Some(g) = self.groups.get_mut(&key) {
                // Due now: make the open window (or cooldown) end.
                if g.closes_at.is_some() {
                    g.closes_at = Some(now.min(at));
                } else {
                    g.cooldown_until = Some(now.min(at));
                }
                let at = now.min(at);
                self.group_due(&key, at, &mut out);
            }
        }
        let mut absent: Vec<Key> = self.absences.keys().cloned().collect();
        absent.sort_unstable();
        for key in absent {
            let absence = &self.absences[&key];
            let silence = self.rules[key.0].absent_for.expect("an absence rule");
            let since = absence.last_seen.map_or(absence.since, |(t, _)| t);
            // Only what is due: a stop (every deploy) must not page for a line that simply
            // had not had its `for:` yet.
            // (an input that wrote nothing at all before its end is not stale: it ended)
            let stale_input = self.stale.iter().any(|&(id, _)| id == key.0);
            let silent = (self.absence_at_end && absence.last_seen.is_none() && !stale_input)
                || now >= since + silence;
            if !absence.alerted && silent {
                self.absence_due(&key, now, &mut out);
            }
        }
        // No timer runs after the end; what the groups still know (cooldowns, open alerts,
        // threshold history) stays for the snapshot.
        self.deadlines.clear();
        for g in self.groups.values_mut() {
            g.scheduled = None;
        }
        for w in self.absences.values_mut() {
            w.scheduled = None;
        }
        out
    }

    /// Whether [`Self::flush`] keeps hits gathered in a cooldown for the next run instead of
    /// sending them: yes when followed files are stopped and the alert state is saved (a deploy
    /// must not send what is cooling down), no for stdin (its end is final).
    pub fn with_pending_kept(mut self, yes: bool) -> Aggregator {
        self.keep_pending = yes;
        self
    }

    /// Per rule: hits gathered in a cooldown that [`Self::flush`] kept for the next run.
    pub fn kept_for_next_run(&self) -> &[u64] {
        &self.kept
    }

    /// The snapshot carrying the kept hits is saved: their holds are released (through
    /// [`Self::take_holds`]). Not called when the save failed, so the checkpoint stays before
    /// those lines and the next run reads them again.
    pub fn release_carried(&mut self) {
        self.released.append(&mut self.carried_holds);
    }

    /// Whether the end of input (a [`Self::flush`]) reports absence rules whose line was never
    /// seen though their `for:` has not passed: true by default (a finite input read to its
    /// end), false for followed files, where the end is a stop (a deploy) and must not page.
    pub fn with_absence_at_end(mut self, yes: bool) -> Aggregator {
        self.absence_at_end = yes;
        self
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

/// Hot reload: the aggregator takes the rules of a new config without losing what it holds.
impl Aggregator {
    /// The names of the rules, by `RuleId`.
    pub fn rule_names(&self) -> &[Arc<str>] {
        &self.names
    }

    /// A rule that is gone from `rules` (by name, or turned from a hit rule into an absence rule
    /// or back) delivers now what it holds: every pending hit of every group becomes an alert,
    /// threshold met or not, routed by the old rule's robots. Call before [`Self::reconfigure`],
    /// and route the alerts with the routes of the old config.
    pub fn retire(&mut self, rules: &[Rule]) -> Vec<Routed> {
        let rules = &[rules, &self.stale_rules[..]].concat()[..];
        let kept = |old: &Rule| {
            rules
                .iter()
                .any(|r| r.name == old.name && r.absent_for.is_some() == old.absent_for.is_some())
        };
        let gone: Vec<Key> = self
            .groups
            .keys()
            .filter(|k| !kept(&self.rules[k.0]))
            .cloned()
            .collect();
        let mut out = Vec::new();
        for key in gone {
            let group = self.groups.remove(&key).expect("listed");
            if let Some(at) = group.scheduled {
                self.deadlines.remove(&(at, key.clone()));
            }
            let Some(p) = group.pending else {
                continue;
            };
            let rule = &self.rules[key.0];
            let (alert, holds) = hits_alert(key.clone(), self.names[key.0].clone(), rule, p);
            fan_out(alert, holds, rule.targets(key.2), &mut out);
        }
        let gone_absences: Vec<Key> = self
            .absences
            .keys()
            .filter(|k| !kept(&self.rules[k.0]))
            .cloned()
            .collect();
        for key in gone_absences {
            if let Some(at) = self.absences.remove(&key).and_then(|w| w.scheduled) {
                self.deadlines.remove(&(at, key));
            }
        }
        out
    }

    /// Takes the rules of a reloaded config. Rules that keep their name keep their pending hits,
    /// open windows, cooldowns, threshold history and absence timers (new durations apply from
    /// the next timer on); new absence rules start their timer now. Call [`Self::retire`] first:
    /// state of rules that are gone is dropped here.
    pub fn reconfigure(&mut self, rules: &[Rule], now: Instant) {
        // stale inputs' rules stay (inputs are read at start); their ids move after the new rules
        let rules = &[rules, &self.stale_rules[..]].concat()[..];
        let first_stale = rules.len() - self.stale_rules.len();
        for (i, (id, _)) in self.stale.iter_mut().enumerate() {
            *id = first_stale + i;
        }
        let kept = std::mem::replace(&mut self.kept, vec![0; rules.len()]);
        let new_id = |name: &str| rules.iter().position(|r| r.name == name);
        let old_rules = std::mem::replace(&mut self.rules, rules.to_vec());
        let map: Vec<Option<RuleId>> = old_rules.iter().map(|r| new_id(&r.name)).collect();
        let groups = std::mem::take(&mut self.groups);
        let absences = std::mem::take(&mut self.absences);
        self.absence_counts = vec![0; rules.len()];
        let held = std::mem::replace(&mut self.held, vec![0; rules.len()]);
        self.names = rules.iter().map(|r| Arc::from(r.name.as_str())).collect();
        self.deadlines.clear();
        self.group_counts = vec![0; rules.len()];
        for (old, n) in held.into_iter().enumerate() {
            if let Some(new) = map[old] {
                self.held[new] += n;
            }
        }
        for (old, n) in kept.into_iter().enumerate() {
            if let Some(new) = map[old] {
                self.kept[new] += n;
            }
        }
        // A route is kept by position: a reload that reorders `routes:` sends a group's next
        // message by the route now at its place (its hits were counted all the same).
        let route_kept =
            |route: Option<usize>, new: RuleId| route.filter(|&i| i < rules[new].routes.len());
        for ((old, text, route), mut group) in groups {
            let Some(new) = map[old] else { continue };
            group.scheduled = None;
            if !text.is_empty() && text.as_ref() != OTHER_GROUP {
                self.group_counts[new] += 1;
            }
            self.groups
                .insert((new, text, route_kept(route, new)), group);
        }
        for ((old, text, _), mut absence) in absences {
            let Some(new) = map[old] else { continue };
            // a rule that gained or lost group_by starts its absences afresh
            if text.is_empty() != rules[new].group_by.is_empty() {
                continue;
            }
            if !text.is_empty() && text.as_ref() != OTHER_GROUP {
                self.absence_counts[new] += 1;
            }
            absence.route = route_kept(absence.route, new);
            let key = (new, text, None);
            if let Some(at) = absence.scheduled {
                self.deadlines.insert((at, key.clone()));
            }
            self.absences.insert(key, absence);
        }
        for (id, rule) in rules.iter().enumerate() {
            if let Some(silence) = rule.absent_for
                && rule.group_by.is_empty()
                && !self.absences.contains_key(&whole(id))
            {
                let at = now + silence;
                self.deadlines.insert((at, whole(id)));
                self.absences.insert(whole(id), Absence::new(now, Some(at)));
            }
        }
        let keys: Vec<Key> = self.groups.keys().cloned().collect();
        for key in keys {
            self.reschedule(&key, now);
        }
    }
}

/// The alert that a group's pending hits become when its window closes (or its rule goes), and
/// the file positions it holds.
fn hits_alert(key: Key, rule_name: Arc<str>, rule: &Rule, p: Pending) -> (Alert, Vec<Mark>) {
    let alert = Alert {
        rule: key.0,
        rule_name,
        group: (!rule.group_by.is_empty()).then_some(key.1),
        kind: AlertKind::Hits,
        count: p.count,
        first: p.first,
        last: p.last,
        source: p.source,
        other_sources: p.other_sources,
        samples: p.samples,
        max_lines: rule.max_lines,
        captures: p.captures,
        style: rule.style_for(key.2).clone(),
        route: key.2,
        silenced: 0,
    };
    (alert, p.holds)
}

/// One copy of the alert per robot it goes to (the rule's, or its route's), each holding
/// `holds` (each copy is settled on its own).
fn fan_out(alert: Alert, holds: Vec<Mark>, robots: &[RobotId], out: &mut Vec<Routed>) {
    match robots {
        [] => out.push(Routed {
            alert,
            robot: None,
            holds,
        }),
        [only] => out.push(Routed {
            alert,
            robot: Some(*only),
            holds,
        }),
        many => out.extend(many.iter().map(|&r| Routed {
            alert: alert.clone(),
            robot: Some(r),
            holds: holds.clone(),
        })),
    }
}

/// `ip=10.0.0.5 user=root` for a rule with `group_by`, from the hit's captures.
fn group_key(rule: &Rule, hit: &Hit) -> Option<String> {
    if rule.group_by.is_empty() {
        return None;
    }
    let mut key = String::new();
    for (n, &i) in rule.group_by.iter().enumerate() {
        if n > 0 {
            key.push(' ');
        }
        key.push_str(&rule.style.capture_names[i]);
        key.push('=');
        key.push_str(&capture_text(hit.captures.get(i).map_or(&[][..], |b| b)));
    }
    Some(key)
}

/// A capture value as text: lossy UTF-8, at most [`CAPTURE_MAX_BYTES`] (never splitting a
/// character).
fn capture_text(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    if text.len() <= CAPTURE_MAX_BYTES {
        return text.into_owned();
    }
    let mut end = CAPTURE_MAX_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use proptest::prelude::*;

    use super::*;
    use crate::rules::{RuleSpec, Threshold};

    const MS: Duration = Duration::from_millis(1);

    fn dur(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A rule whose pattern captures `ip` (the first word of a line).
    fn rule(tweak: impl FnOnce(&mut RuleSpec)) -> Rule {
        let mut spec = RuleSpec {
            name: "r".into(),
            pattern: r"(?P<ip>\S+) x".into(),
            window: 100 * MS,
            max_lines: 3,
            robots: vec![0],
            max_groups: 1000,
            ..RuleSpec::default()
        };
        tweak(&mut spec);
        Rule::compile(spec).unwrap()
    }

    fn batch(rule: &Rule, id: RuleId, line: &str, wall: SystemTime) -> HitBatch {
        let ip = Bytes::copy_from_slice(line.split(' ').next().unwrap().as_bytes());
        HitBatch {
            source: "-".into(),
            read_at: wall,
            lines: 1,
            bytes: line.len() as u64,
            end_offset: 0,
            mark: None,
            hits: vec![Hit {
                rule: id,
                line: Bytes::copy_from_slice(line.as_bytes()),
                captures: if rule.needs_captures {
                    vec![ip]
                } else {
                    Vec::new()
                },
            }],
        }
    }

    #[test]
    fn a_reload_keeps_pending_hits_of_kept_rules_and_delivers_those_of_removed_ones() {
        let named = |name: &str, window: u64| {
            rule(|s| {
                s.name = name.into();
                s.pattern = "x".into();
                s.window = dur(window);
            })
        };
        let (a, b) = (named("a", 100), named("b", 100));
        let t0 = Instant::now();
        let w0 = SystemTime::UNIX_EPOCH;
        let mut agg = Aggregator::new(&[a.clone(), b.clone()], t0, w0);
        for _ in 0..3 {
            agg.add(&batch(&a, 0, "1 x", w0), t0);
        }
        agg.add(&batch(&b, 1, "1 x", w0), t0);
        // New config: `b` is gone, `c` is new and `a` moves to index 1 with a longer window.
        let (c, a2) = (named("c", 100), named("a", 500));
        let retired = agg.retire(&[c.clone(), a2.clone()]);
        assert_eq!(retired.len(), 1);
        assert_eq!((&*retired[0].rule_name, retired[0].count), ("b", 1));
        agg.reconfigure(&[c.clone(), a2.clone()], t0 + 10 * MS);
        assert_eq!(agg.pending_hits(), 3);
        agg.add(&batch(&a2, 1, "1 x", w0), t0 + 20 * MS);
        // The window opened before the reload closes on time, with every hit.
        let out = agg.expire(t0 + 100 * MS);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].rule, &*out[0].rule_name, out[0].count), (1, "a", 4));
        assert_eq!(agg.rule_names().len(), 2);
    }

    fn describe(a: &Routed, at: u64) -> String {
        let group = a
            .group
            .as_deref()
            .map(|g| format!(" {g}"))
            .unwrap_or_default();
        let robot = a.robot.map(|r| format!(" @{r}")).unwrap_or_default();
        match a.kind {
            AlertKind::Hits => format!("{at} ×{}{group}{robot}", a.count),
            AlertKind::Recovered { .. } => format!("{at} recovered{group}{robot}"),
            AlertKind::Absent { .. } => format!("{at} absent{group}{robot}"),
            AlertKind::Back => format!("{at} back{group}{robot}"),
            AlertKind::Notice => format!("{at} notice{robot}"),
            AlertKind::Escalated { episode_count, .. } => {
                format!(
                    "{at} escalated{group}{robot} ({episode_count} so far, @{})",
                    a.style.mention.mobiles.join(",")
                )
            }
        }
    }

    /// Feeds `hits` (milliseconds, line) to an aggregator of `rules`, running every timer on
    /// time, then either runs timers until `end` or flushes at `end`; returns what came out,
    /// described, with when.
    fn play(
        rules: &[Rule],
        hits: &[(u64, RuleId, &str)],
        end: u64,
        flush: bool,
    ) -> (Vec<String>, Aggregator) {
        let t0 = Instant::now();
        let w0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut agg = Aggregator::new(rules, t0, w0);
        let mut out = Vec::new();
        let run_until = |agg: &mut Aggregator, ms: u64, out: &mut Vec<String>| {
            while let Some(d) = agg.next_deadline() {
                if d > t0 + dur(ms) {
                    break;
                }
                let at = (d - t0).as_millis() as u64;
                out.extend(agg.expire(d).iter().map(|a| describe(a, at)));
            }
        };
        for &(ms, rule, line) in hits {
            run_until(&mut agg, ms, &mut out);
            let b = batch(&rules[rule], rule, line, w0 + dur(ms));
            out.extend(agg.add(&b, t0 + dur(ms)).iter().map(|a| describe(a, ms)));
        }
        if flush {
            run_until(&mut agg, end, &mut out);
            out.extend(agg.flush(t0 + dur(end)).iter().map(|a| describe(a, end)));
        } else {
            run_until(&mut agg, end, &mut out);
        }
        (out, agg)
    }

    fn threshold(count: usize, within_ms: u64) -> Option<Threshold> {
        Some(Threshold {
            count,
            within: dur(within_ms),
        })
    }

    #[test]
    fn table() {
        type Case<'a> = (&'a str, Rule, &'a [(u64, &'a str)], u64, &'a [&'a str]);
        let cases: Vec<Case> = vec![
            (
                "a window gathers hits from its first until it closes",
                rule(|_| {}),
                &[(0, "a x"), (50, "a x"), (150, "a x")],
                1000,
                &["100 ×2 @0", "250 ×1 @0"],
            ),
            (
                "below the threshold nothing is sent, and those hits count into the message",
                rule(|s| s.threshold = threshold(3, 1000)),
                &[
                    (0, "a x"),
                    (500, "a x"),
                    (2000, "a x"),
                    (2100, "a x"),
                    (2200, "a x"),
                ],
                5000,
                &["2300 ×5 @0"],
            ),
            (
                "a threshold met again after a message opens the next window",
                rule(|s| s.threshold = threshold(2, 1000)),
                &[(0, "a x"), (10, "a x"), (200, "a x"), (300, "a x")],
                6000,
                &["110 ×2 @0", "300 ×1 @0", "400 ×1 @0"],
            ),
            (
                "a cooldown gathers hits and sends them when it ends, then cools down again",
                rule(|s| s.cooldown = Some(1000 * MS)),
                &[
                    (0, "a x"),
                    (50, "a x"),
                    (200, "a x"),
                    (300, "a x"),
                    (900, "a x"),
                    (2500, "a x"),
                ],
                5000,
                &["100 ×2 @0", "1100 ×3 @0", "2600 ×1 @0"],
            ),
            (
                "group_by: one stream per value, each with its own threshold and cooldown",
                rule(|s| {
                    s.group_by = vec!["ip".into()];
                    s.threshold = threshold(2, 1000);
                    s.cooldown = Some(1000 * MS);
                }),
                &[
                    (0, "a x"),
                    (10, "b x"),
                    (20, "a x"),
                    (30, "a x"),
                    (500, "a x"),
                    (600, "b x"),
                    (1500, "b x"),
                ],
                5000,
                &[
                    "120 ×3 ip=a @0",
                    "700 ×2 ip=b @0",
                    "1120 ×1 ip=a @0",
                    "1700 ×1 ip=b @0",
                ],
            ),
            (
                "past max_groups, new values share the other group",
                rule(|s| {
                    s.group_by = vec!["ip".into()];
                    s.max_groups = 2;
                }),
                &[(0, "a x"), (1, "b x"), (2, "c x"), (3, "d x"), (4, "a x")],
                1000,
                &["100 ×2 ip=a @0", "101 ×1 ip=b @0", "102 ×2 other @0"],
            ),
            (
                "groups are forgotten when they hold nothing, making room for new values",
                rule(|s| {
                    s.group_by = vec!["ip".into()];
                    s.max_groups = 1;
                }),
                &[(0, "a x"), (500, "b x")],
                1000,
                &["100 ×1 ip=a @0", "600 ×1 ip=b @0"],
            ),
            (
                "resolve_after: recovered once quiet that long after a message",
                rule(|s| s.resolve_after = Some(500 * MS)),
                &[(0, "a x"), (600, "a x"), (900, "a x")],
                3000,
                &[
                    "100 ×1 @0",
                    "500 recovered @0",
                    "700 ×1 @0",
                    "1000 ×1 @0",
                    "1400 recovered @0",
                ],
            ),
            (
                "resolve_after with cooldown: hits in the cooldown delay the recovery",
                rule(|s| {
                    s.resolve_after = Some(300 * MS);
                    s.cooldown = Some(1000 * MS);
                }),
                &[(0, "a x"), (200, "a x"), (800, "a x")],
                3000,
                &["100 ×1 @0", "1100 ×2 @0", "1100 recovered @0"],
            ),
            (
                "several robots each get every alert",
                rule(|s| s.robots = vec![0, 1]),
                &[(0, "a x")],
                1000,
                &["100 ×1 @0", "100 ×1 @1"],
            ),
        ];
        for (name, rule, hits, end, want) in cases {
            let hits: Vec<(u64, RuleId, &str)> = hits.iter().map(|&(t, l)| (t, 0, l)).collect();
            let (got, agg) = play(&[rule], &hits, end, false);
            assert_eq!(got, want, "{name}");
            assert_eq!(agg.pending_hits(), 0, "{name}: nothing left pending");
        }
    }

    #[test]
    fn a_hit_below_a_threshold_holds_its_file_only_while_the_threshold_can_reach_it() {
        let rules = [rule(|s| s.threshold = threshold(3, 1000))];
        let t0 = Instant::now();
        let w0 = SystemTime::UNIX_EPOCH;
        let mut agg = Aggregator::new(&rules, t0, w0);
        let at = |file, start| {
            let mut b = batch(&rules[0], 0, "x", w0);
            b.mark = Some(Mark { file, start });
            b
        };
        assert!(agg.add(&at(1, 0), t0).is_empty());
        assert_eq!(
            agg.take_holds(),
            (1, vec![]),
            "the first hit holds its chunk"
        );
        assert!(agg.add(&at(1, 100), t0 + dur(600)).is_empty());
        assert_eq!(agg.take_holds(), (0, vec![]));
        // the first hit leaves the threshold's reach: the hold moves on to the second
        let due = agg.next_deadline().expect("a timer to move the hold");
        assert!(agg.expire(due).is_empty());
        assert_eq!(
            agg.take_moved_holds(),
            [Mark {
                file: 1,
                start: 100
            }]
        );
        assert_eq!(agg.take_holds(), (0, vec![Mark { file: 1, start: 0 }]));
        // and once no hit is within reach, nothing is held, though the count is kept
        let due = agg.next_deadline().expect("a timer");
        agg.expire(due);
        assert_eq!(
            agg.take_holds(),
            (
                0,
                vec![Mark {
                    file: 1,
                    start: 100
                }]
            )
        );
        assert_eq!(agg.pending_hits(), 2);
    }

    #[test]
    fn a_stop_of_followed_files_sends_no_absence_that_was_not_due() {
        let absent = rule(|s| {
            s.pattern = "heartbeat".into();
            s.absent_for = Some(1000 * MS);
        });
        let t0 = Instant::now();
        let mut agg = Aggregator::new(std::slice::from_ref(&absent), t0, SystemTime::UNIX_EPOCH)
            .with_absence_at_end(false);
        assert!(agg.flush(t0 + dur(500)).is_empty(), "not due yet");
        let mut agg =
            Aggregator::new(&[absent], t0, SystemTime::UNIX_EPOCH).with_absence_at_end(false);
        assert_eq!(agg.flush(t0 + dur(1500)).len(), 1, "due");
    }

    #[test]
    fn absence_alerts_once_then_says_when_the_line_is_back() {
        let absent = rule(|s| {
            s.pattern = "heartbeat".into();
            s.absent_for = Some(1000 * MS);
        });
        let (got, _) = play(
            std::slice::from_ref(&absent),
            &[
                (400, 0, "heartbeat"),
                (900, 0, "heartbeat"),
                (3000, 0, "heartbeat"),
            ],
            5000,
            false,
        );
        assert_eq!(got, ["1900 absent @0", "3000 back @0", "4000 absent @0"]);

        // a regular heartbeat never alerts, nor does the end of input
        let beats: Vec<(u64, RuleId, &str)> = (0..10).map(|i| (i * 500, 0, "heartbeat")).collect();
        let (got, _) = play(std::slice::from_ref(&absent), &beats, 4800, true);
        assert!(got.is_empty(), "{got:?}");

        // at the end of input (stdin), an input without the line is absence
        let (got, _) = play(&[absent], &[], 10, true);
        assert_eq!(got, ["10 absent @0"]);
    }

    /// Regression: one file was named for lines from several.
    #[test]
    fn an_alert_names_every_source_its_lines_came_from() {
        let r = rule(|s| s.pattern = "x".into());
        let t0 = Instant::now();
        let w0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut agg = Aggregator::new(std::slice::from_ref(&r), t0, w0);
        for src in ["/a.log", "/b.log", "/a.log", "/c.log"] {
            let mut b = batch(&r, 0, "1 x", w0);
            b.source = src.into();
            agg.add(&b, t0);
        }
        let out = agg.expire(t0 + dur(100));
        assert_eq!(out.len(), 1);
        assert_eq!(&*out[0].source, "/c.log");
        let others: Vec<&str> = out[0].other_sources.iter().map(|s| &**s).collect();
        assert_eq!(others, ["/b.log", "/a.log"]);
        // Merging keeps every name once, bounded.
        let mut merged = out[0].clone();
        for i in 0..10 {
            let mut later = out[0].clone();
            later.source = format!("/{i}.log").into();
            later.other_sources = vec!["/a.log".into()];
            merged.merge(later);
        }
        assert_eq!(&*merged.source, "/9.log");
        assert_eq!(merged.other_sources.len(), MAX_OTHER_SOURCES + 1);
        assert!(!merged.other_sources.iter().any(|s| &**s == "/9.log"));
    }

    /// Regression: "back" named stdin for a line that matched again in a followed file.
    #[test]
    fn a_back_message_names_the_source_the_line_came_from() {
        let absent = rule(|s| {
            s.pattern = "heartbeat".into();
            s.absent_for = Some(1000 * MS);
        });
        let t0 = Instant::now();
        let w0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut agg = Aggregator::new(std::slice::from_ref(&absent), t0, w0);
        let absent_out = agg.expire(t0 + dur(1000));
        assert!(matches!(absent_out[0].kind, AlertKind::Absent { .. }));
        let mut b = batch(&absent, 0, "heartbeat", w0);
        b.source = "/var/log/app/worker.log".into();
        let out = agg.add(&b, t0 + dur(1500));
        assert!(matches!(out[0].kind, AlertKind::Back));
        assert_eq!(&*out[0].source, "/var/log/app/worker.log");
    }

    #[test]
    fn flush_sends_open_windows_and_cooldowns_and_holds_back_unmet_thresholds() {
        let rules = [
            rule(|s| s.threshold = threshold(5, 1000)),
            rule(|s| s.cooldown = Some(10_000 * MS)),
        ];
        let (got, agg) = play(
            &rules,
            &[
                (0, 0, "a x"),
                (1, 0, "a x"),
                (0, 1, "b x"),
                (500, 1, "b x"),
                (600, 1, "b x"),
            ],
            700,
            true,
        );
        assert_eq!(got, ["100 ×1 @0", "700 ×2 @0"]);
        assert_eq!(agg.held_below_threshold(), [2, 0]);
        assert_eq!(agg.pending_hits(), 0);
    }

    #[test]
    fn memory_stays_bounded_under_many_groups() {
        let r = rule(|s| {
            s.group_by = vec!["ip".into()];
            s.max_groups = 50;
            s.threshold = threshold(100, 60_000);
        });
        let t0 = Instant::now();
        let mut agg = Aggregator::new(std::slice::from_ref(&r), t0, SystemTime::UNIX_EPOCH);
        for i in 0..10_000u64 {
            let line = format!("10.0.{}.{} x", i / 256, i % 256);
            agg.add(&batch(&r, 0, &line, SystemTime::UNIX_EPOCH), t0 + dur(i));
        }
        assert_eq!(agg.groups(), 51);
        assert_eq!(agg.pending_hits(), 10_000);
    }

    #[test]
    fn merging_adds_counts_and_keeps_samples_bounded() {
        let r = rule(|s| s.max_lines = 2);
        let mut agg = Aggregator::new(std::slice::from_ref(&r), Instant::now(), SystemTime::now());
        for l in ["1 x", "2 x", "3 x"] {
            agg.add(&batch(&r, 0, l, SystemTime::now()), Instant::now());
        }
        let mut a = agg.flush(Instant::now()).remove(0);
        agg.add(&batch(&r, 0, "4 x", SystemTime::now()), Instant::now());
        let b = agg.flush(Instant::now()).remove(0);
        assert!(a.same_stream(&b));
        a.merge(b);
        assert_eq!(a.count, 4);
        assert_eq!(a.samples.len(), 2);
        assert_eq!(a.unquoted(), 2);
    }

    #[test]
    fn huge_lines_are_sampled_cut() {
        let s = Sample::from_line(&vec![b'x'; SAMPLE_MAX_BYTES + 1]);
        assert!(s.cut);
        assert_eq!(s.text.len(), SAMPLE_MAX_BYTES);
        assert!(!Sample::from_line(b"short").cut);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// The exact-count contract: whatever the hits and the rule's threshold, cooldown,
        /// grouping and window, the counts of all messages plus the hits held below an unmet
        /// threshold at the end add up to the number of hits, and without a threshold the
        /// messages alone do.
        #[test]
        fn every_hit_is_counted_exactly_once(
            gaps in prop::collection::vec((0u64..400, 0usize..6), 1..300),
            window in 1u64..300,
            thresh in prop::option::of((1usize..6, 1u64..1000)),
            cooldown in prop::option::of(1u64..2000),
            grouped in any::<bool>(),
            max_groups in 1usize..4,
            resolve in prop::option::of(1u64..1000),
            robots in 1usize..3,
        ) {
            let r = rule(|s| {
                s.window = dur(window);
                s.threshold = thresh.and_then(|(c, w)| threshold(c, w));
                s.cooldown = cooldown.map(dur);
                if grouped {
                    s.group_by = vec!["ip".into()];
                    s.max_groups = max_groups;
                }
                s.resolve_after = resolve.map(dur);
                s.robots = (0..robots).collect();
            });
            let t0 = Instant::now();
            let mut agg = Aggregator::new(std::slice::from_ref(&r), t0, SystemTime::UNIX_EPOCH);
            let mut now = t0;
            let mut sent = vec![0u64; robots];
            let record = |alerts: Vec<Routed>, sent: &mut Vec<u64>| {
                for a in alerts {
                    sent[a.robot.unwrap()] += a.count;
                }
            };
            for (gap, who) in &gaps {
                let at = now + dur(*gap);
                while let Some(d) = agg.next_deadline().filter(|&d| d <= at) {
                    record(agg.expire(d), &mut sent);
                }
                now = at;
                let line = format!("{who} x");
                record(agg.add(&batch(&r, 0, &line, SystemTime::UNIX_EPOCH), now), &mut sent);
                prop_assert!(agg.groups() <= max_groups + 1 || !grouped);
            }
            // Half the time the input ends at once; otherwise time runs on first.
            if gaps.len() % 2 == 0 {
                let later = now + Duration::from_secs(10);
                while let Some(d) = agg.next_deadline().filter(|&d| d <= later) {
                    record(agg.expire(d), &mut sent);
                }
                now = later;
            }
            record(agg.flush(now), &mut sent);
            let held: u64 = agg.held_below_threshold().iter().sum();
            for s in &sent {
                prop_assert_eq!(s + held, gaps.len() as u64);
            }
            if thresh.is_none() {
                prop_assert_eq!(held, 0);
            }
            prop_assert_eq!(agg.pending_hits(), 0);
        }
    }

    fn routes(spec: &[(&str, &[RobotId], &str)]) -> Vec<crate::route::RouteSpec> {
        spec.iter()
            .map(|&(when, robots, mobile)| crate::route::RouteSpec {
                name: Arc::from(when),
                when: Some(crate::where_expr::Where::parse(when).unwrap()),
                robots: robots.to_vec(),
                mention: crate::style::Mention {
                    mobiles: vec![mobile.into()],
                    ..Default::default()
                },
            })
            .collect()
    }

    #[test]
    fn routes_split_streams_and_pick_robots_with_exact_counts() {
        let r = rule(|s| {
            s.routes = routes(&[("ip == 'pay'", &[1, 2], "111")]);
            s.resolve_after = Some(1000 * MS);
        });
        let (got, _) = play(
            std::slice::from_ref(&r),
            &[(0, 0, "pay x"), (10, 0, "web x"), (20, 0, "pay x")],
            5000,
            false,
        );
        // the pay hits go to robots 1 and 2 (twice two), the web hit to the rule's robot 0;
        // "recovered" goes where the alerts went
        assert_eq!(
            got,
            [
                "100 ×2 @1",
                "100 ×2 @2",
                "110 ×1 @0",
                "1010 recovered @0",
                "1020 recovered @1",
                "1020 recovered @2"
            ]
        );
    }

    #[test]
    fn escalation_counts_from_the_first_message_and_recovery_resets_it() {
        use crate::style::Mention;
        let step = |ms: u64, m: &str| crate::escalate::Step {
            after: dur(ms),
            mention: Mention {
                mobiles: vec![m.into()],
                ..Mention::default()
            },
        };
        let r = rule(|s| {
            s.pattern = "x".into();
            s.cooldown = Some(300 * MS);
            s.resolve_after = Some(500 * MS);
            s.escalate = vec![step(1000, "dba"), step(400, "lead")];
        });
        // hits every 200 ms until 1800, then quiet; then a new episode at 4000
        let mut hits: Vec<(u64, RuleId, &str)> = (0..10).map(|i| (i * 200, 0, "x")).collect();
        hits.push((4000, 0, "x"));
        let (got, _) = play(std::slice::from_ref(&r), &hits, 6000, false);
        assert_eq!(
            got,
            [
                "100 ×1 @0",
                "400 ×1 @0",
                // 400 after the first message at 100: the lead is added
                "500 escalated @0 (3 so far, @lead)",
                "700 ×2 @0",
                "1000 ×1 @0",
                // 1000 after 100: the dba too
                "1100 escalated @0 (6 so far, @lead,dba)",
                "1300 ×2 @0",
                "1600 ×1 @0",
                "1900 ×2 @0",
                "2300 recovered @0",
                // a new episode starts from the first step again; it recovers at the moment
                // its first step would be due, so it never escalates
                "4100 ×1 @0",
                "4500 recovered @0"
            ]
        );
        // the exact counts are untouched: 11 hits, 11 counted
        let counted: u64 = got
            .iter()
            .filter_map(|g| g.split('×').nth(1)?.split(' ').next()?.parse::<u64>().ok())
            .sum();
        assert_eq!(counted, 11);
    }

    #[test]
    fn absence_per_group_watches_each_value_seen_up_to_max_groups() {
        let r = rule(|s| {
            s.pattern = r"(?P<ip>\S+) x".into();
            s.absent_for = Some(1000 * MS);
            s.group_by = vec!["ip".into()];
            s.max_groups = 2;
        });
        let (got, agg) = play(
            std::slice::from_ref(&r),
            &[
                (0, 0, "a x"),
                (0, 0, "b x"),
                // past max_groups: c and d share the "other" absence
                (100, 0, "c x"),
                (500, 0, "a x"),
                (900, 0, "d x"),
                (1200, 0, "a x"),
                (2500, 0, "b x"),
            ],
            2600,
            false,
        );
        assert_eq!(
            got,
            [
                "1000 absent ip=b @0",
                "1900 absent other @0",
                "2200 absent ip=a @0",
                "2500 back ip=b @0"
            ]
        );
        assert_eq!(
            agg.absences.len(),
            3,
            "a, b and other: bounded by max_groups + 1"
        );
        // no timer before a value is seen: a rule with group_by and no line says nothing
        let (got, _) = play(std::slice::from_ref(&r), &[], 5000, false);
        assert!(got.is_empty(), "{got:?}");
    }
}
