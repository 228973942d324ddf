//! The aggregator's state out and in: [`Aggregator::snapshot`] and [`Aggregator::restore`],
//! between its clock and the wall-clock times of [`crate::state::snapshot`]. No I/O here.
//!
//! What is exported, per rule (by name): each group's open window, cooldown, "recovered"
//! awaited (`alerted` and the last hit), threshold history, and its pending hits *when no
//! checkpoint holds them* (carried at a stop, or read from stdin) — pending hits whose file
//! position is still held are read again after a crash instead, so they are never counted twice
//! after a clean stop; per absence rule, when it started watching, when its line was last seen,
//! and whether "absent" was sent.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::time::Instant;

use super::{Aggregator, Group, Key, Pending, Sample};
use crate::rules::{OTHER_GROUP, Rule};
use crate::state::snapshot::{
    AbsenceState, AlertSnapshot, GroupState, PendingState, RuleState, SampleState, Wall,
};

/// A restored absence timer already due fires this long after the start at the earliest, so the
/// lines written while dingtail was stopped (read first, from the checkpoints) can still show
/// the line was there: a deploy must not page for a line that merely waited to be read.
pub const ABSENCE_GRACE: Duration = Duration::from_secs(5);

/// What a rule's state depends on in its definition: saved with the state, compared on import.
pub fn shape(rule: &Rule) -> String {
    if rule.absent_for.is_some() {
        return "absent".to_owned();
    }
    if rule.group_by.is_empty() {
        return "hits".to_owned();
    }
    let names: Vec<&str> = rule
        .group_by
        .iter()
        .map(|&i| &*rule.style.capture_names[i])
        .collect();
    format!("hits group_by={}", names.join(","))
}

/// Converts between the aggregator's clock and the wall clock at one instant.
#[derive(Clone, Copy)]
struct Clock {
    now: Instant,
    wall: SystemTime,
}

impl Clock {
    fn wall(self, t: Instant) -> Wall {
        Wall(if t >= self.now {
            self.wall + (t - self.now)
        } else {
            self.wall
                .checked_sub(self.now - t)
                .unwrap_or(SystemTime::UNIX_EPOCH)
        })
    }

    fn instant(self, w: Wall) -> Instant {
        match w.0.duration_since(self.wall) {
            Ok(ahead) => self.now + ahead,
            Err(e) => self.now.checked_sub(e.duration()).unwrap_or(self.now),
        }
    }
}

impl Aggregator {
    /// The state to carry to the next run, as of `now` (`wall` on the wall clock).
    pub fn snapshot(&self, now: Instant, wall: SystemTime) -> AlertSnapshot {
        let clock = Clock { now, wall };
        let mut snap = AlertSnapshot::new(wall);
        let mut groups: Vec<(Key, GroupState)> = Vec::new();
        for (key, g) in &self.groups {
            // Streams sent by a route (`routes:`) start fresh after a restart: the saved state
            // has no place for the route (their escalation episodes too).
            if key.2.is_some() {
                continue;
            }
            let state = GroupState {
                closes_at: g.closes_at.map(|t| clock.wall(t)),
                cooldown_until: g.cooldown_until.map(|t| clock.wall(t)),
                alerted: g.alerted,
                last_hit: Some(clock.wall(g.last_hit)),
                recent: g.recent.iter().map(|&(t, _)| clock.wall(t)).collect(),
                pending: g
                    .pending
                    .as_ref()
                    .filter(|p| p.holds.is_empty())
                    .map(pending_state),
            };
            groups.push((key.clone(), state));
        }
        for (key, p) in &self.carried {
            match groups.iter_mut().find(|(k, _)| k == key) {
                Some((_, g)) => g.pending = Some(pending_state(p)),
                None => groups.push((
                    key.clone(),
                    GroupState {
                        pending: Some(pending_state(p)),
                        ..GroupState::default()
                    },
                )),
            }
        }
        for ((rule, text, _), state) in groups {
            let worth = state.closes_at.is_some()
                || state.cooldown_until.is_some()
                || state.alerted
                || !state.recent.is_empty()
                || state.pending.is_some();
            if !worth {
                continue;
            }
            let r = &self.rules[rule];
            snap.rules
                .entry(r.name.clone())
                .or_insert_with(|| RuleState {
                    shape: shape(r),
                    ..RuleState::default()
                })
                .groups
                .insert(text.to_string(), state);
        }
        for ((rule, text, _), w) in &self.absences {
            // Per-value absence watches (`absent` with `group_by`) start fresh after a restart:
            // each value is watched again from its next line.
            if !text.is_empty() {
                continue;
            }
            let r = &self.rules[*rule];
            snap.rules
                .entry(r.name.clone())
                .or_insert_with(|| RuleState {
                    shape: shape(r),
                    ..RuleState::default()
                })
                .absence = Some(AbsenceState {
                since: Some(clock.wall(w.since)),
                last_seen: w.last_seen.map(|(_, wall)| Wall(wall)),
                alerted: w.alerted,
            });
        }
        snap
    }

    /// Takes up the state of an earlier run, as of `now` (`wall` on the wall clock); call right
    /// after [`Aggregator::new`]. Rules are matched by name; a rule whose shape changed (see
    /// [`shape`]) starts fresh, and the returned lines say so (one per rule, for the log).
    /// Timers already past run at the next [`Aggregator::expire`] (a restored absence timer no
    /// earlier than [`ABSENCE_GRACE`] from now).
    pub fn restore(&mut self, snap: &AlertSnapshot, now: Instant, wall: SystemTime) -> Vec<String> {
        let clock = Clock { now, wall };
        let mut notes = Vec::new();
        for id in 0..self.rules.len() {
            let Some(saved) = snap.rules.get(&self.rules[id].name) else {
                continue;
            };
            let want = shape(&self.rules[id]);
            if !saved.shape.is_empty() && saved.shape != want {
                notes.push(format!(
                    "rule {}: its saved alert state was for `{}` and the rule is now `{want}`: it starts fresh",
                    self.rules[id].name, saved.shape
                ));
                continue;
            }
            if let Some(a) = &saved.absence {
                self.restore_absence(id, a, clock);
            }
            for (text, g) in &saved.groups {
                self.restore_group(id, text, g, clock);
            }
        }
        notes
    }

    fn restore_absence(&mut self, id: usize, a: &AbsenceState, clock: Clock) {
        let Some(silence) = self.rules[id].absent_for else {
            return;
        };
        if !self.rules[id].group_by.is_empty() {
            return;
        }
        let Some(watch) = self.absences.get_mut(&super::whole(id)) else {
            return;
        };
        if let Some(old) = watch.scheduled.take() {
            self.deadlines.remove(&(old, super::whole(id)));
        }
        if let Some(since) = a.since {
            watch.since = clock.instant(since);
        }
        watch.last_seen = a.last_seen.map(|w| (clock.instant(w), w.0));
        watch.alerted = a.alerted;
        if !watch.alerted {
            let from = watch.last_seen.map_or(watch.since, |(t, _)| t);
            let at = (from + silence).max(clock.now + ABSENCE_GRACE.min(silence));
            watch.scheduled = Some(at);
            self.deadlines.insert((at, super::whole(id)));
        }
    }

    fn restore_group(&mut self, id: usize, text: &str, g: &GroupState, clock: Clock) {
        let rule = &self.rules[id];
        if rule.group_by.is_empty() != text.is_empty() {
            return;
        }
        let counted = !text.is_empty() && text != OTHER_GROUP;
        let key: Key = (id, Arc::from(text), None);
        if self.groups.contains_key(&key) || counted && self.group_counts[id] >= rule.max_groups {
            return;
        }
        let mut recent: VecDeque<(Instant, Option<crate::source::Mark>)> = VecDeque::new();
        if let Some(t) = rule.threshold {
            for &w in g.recent.iter().rev().take(t.count).rev() {
                recent.push_back((clock.instant(w), None));
            }
        }
        let mut group = Group {
            pending: g.pending.as_ref().map(|p| pending(p, rule)),
            recent,
            closes_at: g.closes_at.map(|w| clock.instant(w)),
            cooldown_until: g
                .cooldown_until
                .filter(|_| rule.cooldown.is_some())
                .map(|w| clock.instant(w)),
            last_hit: g.last_hit.map_or(clock.now, |w| clock.instant(w)),
            alerted: g.alerted && rule.resolve_after.is_some(),
            scheduled: None,
            // an escalation episode starts fresh with the next message
            episode: None,
        };
        // Pending hits with no timer left to send them (the rule lost its threshold or its
        // cooldown since): a window opens now.
        if group.pending.is_some()
            && group.closes_at.is_none()
            && group.cooldown_until.is_none()
            && rule.threshold.is_none()
        {
            group.closes_at = Some(clock.now + rule.window);
        }
        if counted {
            self.group_counts[id] += 1;
        }
        self.groups.insert(key.clone(), group);
        self.reschedule(&key, clock.now);
    }
}

fn pending_state(p: &Pending) -> PendingState {
    PendingState {
        count: p.count,
        first: Wall(p.first),
        last: Wall(p.last),
        source: p.source.to_string(),
        samples: p
            .samples
            .iter()
            .map(|s| SampleState {
                text: String::from_utf8_lossy(&s.text).into_owned(),
                cut: s.cut,
            })
            .collect(),
        captures: p.captures.clone(),
    }
}

fn pending(p: &PendingState, rule: &Rule) -> Pending {
    Pending {
        count: p.count,
        first: p.first.0,
        last: p.last.0,
        source: Arc::from(p.source.as_str()),
        // Other sources are not kept across a restart: the message names the first one.
        other_sources: Vec::new(),
        samples: p
            .samples
            .iter()
            .take(rule.max_lines)
            .map(|s| Sample {
                text: Bytes::from(s.text.clone().into_bytes()),
                cut: s.cut,
            })
            .collect(),
        // Aligned with the rule's capture names, or not at all (the pattern changed).
        captures: if p.captures.len() == rule.style.capture_names.len() {
            p.captures.clone()
        } else {
            Vec::new()
        },
        holds: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::AlertKind;
    use crate::matcher::{Hit, HitBatch};
    use crate::rules::RuleSpec;

    const MS: Duration = Duration::from_millis(1);

    fn rule(tweak: impl FnOnce(&mut RuleSpec)) -> Rule {
        let mut spec = RuleSpec {
            name: "r".into(),
            pattern: "x".into(),
            window: 100 * MS,
            max_lines: 3,
            robots: vec![0],
            max_groups: 10,
            ..RuleSpec::default()
        };
        tweak(&mut spec);
        Rule::compile(spec).unwrap()
    }

    fn hit(wall: SystemTime) -> HitBatch {
        HitBatch {
            source: "-".into(),
            read_at: wall,
            lines: 1,
            bytes: 2,
            end_offset: 0,
            mark: None,
            hits: vec![Hit {
                rule: 0,
                line: Bytes::from_static(b"x"),
                captures: Vec::new(),
            }],
        }
    }

    /// Runs every timer up to `until`, returning the kinds and counts of what came out.
    fn run_until(agg: &mut Aggregator, until: Instant) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        while let Some(d) = agg.next_deadline().filter(|&d| d <= until) {
            for a in agg.expire(d) {
                let kind = match a.kind {
                    AlertKind::Hits => "hits",
                    AlertKind::Recovered { .. } => "recovered",
                    AlertKind::Absent { .. } => "absent",
                    AlertKind::Back => "back",
                    AlertKind::Notice => "notice",
                    AlertKind::Escalated { .. } => "escalated",
                };
                out.push((kind.to_owned(), a.count));
            }
        }
        out
    }

    /// Through JSON, as between two runs.
    fn carried(snap: &AlertSnapshot) -> AlertSnapshot {
        serde_json::from_str(&serde_json::to_string(snap).unwrap()).unwrap()
    }

    #[test]
    fn a_cooldown_and_the_hits_gathered_in_it_survive_a_stop() {
        let r = [rule(|s| s.cooldown = Some(Duration::from_secs(60)))];
        let (t0, w0) = (
            Instant::now(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 30),
        );
        let mut a = Aggregator::new(&r, t0, w0).with_pending_kept(true);
        a.add(&hit(w0), t0);
        assert_eq!(run_until(&mut a, t0 + 200 * MS), [("hits".into(), 1)]);
        a.add(&hit(w0), t0 + 300 * MS);
        a.add(&hit(w0), t0 + 400 * MS);
        // a stop: what the cooldown gathered is kept, not sent
        assert!(a.flush(t0 + 500 * MS).is_empty());
        assert_eq!(a.kept_for_next_run(), [2]);
        let snap = carried(&a.snapshot(t0 + 500 * MS, w0 + 500 * MS));

        // the next run, 10 s later on both clocks (its own Instant origin)
        let t1 = t0 + Duration::from_secs(100);
        let w1 = w0 + Duration::from_secs(10);
        let mut b = Aggregator::new(&r, t1, w1);
        assert!(b.restore(&snap, t1, w1).is_empty());
        b.add(&hit(w1), t1);
        // no new alert: still cooling down; at its end, 60 s after the first message, all 3
        assert_eq!(run_until(&mut b, t1 + Duration::from_secs(49)), []);
        assert_eq!(
            run_until(&mut b, t1 + Duration::from_secs(51)),
            [("hits".into(), 3)]
        );
    }

    #[test]
    fn an_open_alert_gets_its_recovered_and_absence_counts_across_the_restart() {
        let r = [
            rule(|s| s.resolve_after = Some(Duration::from_secs(30))),
            rule(|s| {
                s.name = "beat".into();
                s.absent_for = Some(Duration::from_secs(60));
            }),
        ];
        let (t0, w0) = (
            Instant::now(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 30),
        );
        let mut a = Aggregator::new(&r, t0, w0);
        a.add(&hit(w0), t0);
        let beat = HitBatch {
            hits: vec![Hit {
                rule: 1,
                line: Bytes::from_static(b"x"),
                captures: Vec::new(),
            }],
            ..hit(w0)
        };
        a.add(&beat, t0);
        assert_eq!(run_until(&mut a, t0 + 200 * MS), [("hits".into(), 1)]);
        assert!(a.flush(t0 + Duration::from_secs(1)).is_empty());
        let snap = carried(&a.snapshot(t0 + Duration::from_secs(1), w0 + Duration::from_secs(1)));

        let t1 = t0 + Duration::from_secs(500);
        let w1 = w0 + Duration::from_secs(20);
        let mut b = Aggregator::new(&r, t1, w1);
        b.restore(&snap, t1, w1);
        // 30 s after the last hit (10 s into this run): recovered; 60 s after the last
        // heartbeat (40 s into this run, not 60): absent
        assert_eq!(
            run_until(&mut b, t1 + Duration::from_secs(11)),
            [("recovered".into(), 0)]
        );
        assert_eq!(run_until(&mut b, t1 + Duration::from_secs(39)), []);
        assert_eq!(
            run_until(&mut b, t1 + Duration::from_secs(41)),
            [("absent".into(), 0)]
        );
    }

    #[test]
    fn a_rule_whose_grouping_changed_starts_fresh_with_one_note() {
        let r = [rule(|s| s.cooldown = Some(Duration::from_secs(60)))];
        let (t0, w0) = (
            Instant::now(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 30),
        );
        let mut a = Aggregator::new(&r, t0, w0);
        a.add(&hit(w0), t0);
        run_until(&mut a, t0 + 200 * MS);
        let snap = a.snapshot(t0 + 200 * MS, w0);
        let grouped = [rule(|s| {
            s.pattern = "(?P<ip>x)".into();
            s.group_by = vec!["ip".into()];
            s.cooldown = Some(Duration::from_secs(60));
        })];
        let mut b = Aggregator::new(&grouped, t0, w0);
        let notes = b.restore(&snap, t0, w0);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("`hits` and the rule is now `hits group_by=ip`"));
        assert_eq!(b.groups(), 0);
    }
    #[test]
    fn per_value_absence_watches_are_not_saved_and_start_fresh() {
        let r = [rule(|s| {
            s.pattern = "(?P<host>x)".into();
            s.group_by = vec!["host".into()];
            s.absent_for = Some(Duration::from_secs(60));
        })];
        let (t0, w0) = (
            Instant::now(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 30),
        );
        let mut a = Aggregator::new(&r, t0, w0);
        let from_a = HitBatch {
            hits: vec![Hit {
                rule: 0,
                line: Bytes::from_static(b"x"),
                captures: vec![Bytes::from_static(b"a")],
            }],
            ..hit(w0)
        };
        a.add(&from_a, t0);
        assert_eq!(a.absences.len(), 1);
        let snap = carried(&a.snapshot(t0 + MS, w0 + MS));
        assert!(snap.rules.get("r").is_none_or(|s| s.absence.is_none()));

        let t1 = t0 + Duration::from_secs(500);
        let w1 = w0 + Duration::from_secs(20);
        let mut b = Aggregator::new(&r, t1, w1);
        assert!(b.restore(&snap, t1, w1).is_empty());
        // host=a is watched again from its next line: nothing is due meanwhile
        assert!(b.absences.is_empty());
        assert_eq!(run_until(&mut b, t1 + Duration::from_secs(3600)), []);
    }
}
