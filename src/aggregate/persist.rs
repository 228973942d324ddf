//! The aggregator's state out and in: [`Aggregator::snapshot`] and [`Aggregator::restore`],
//! between its clock and the wall-clock times of [`crate::state::snapshot`]. No I/O here.
//!
//! What is exported, per rule (by name): each stream's open window, cooldown, "recovered"
//! awaited (`alerted` and the last hit), threshold history, escalation episode (its start and
//! the steps sent), and its pending hits *when no checkpoint holds them* (carried at a stop, or
//! read from stdin) — pending hits whose file position is still held are read again after a
//! crash instead, so they are never counted twice after a clean stop. A stream is a group
//! (`group_by` value), or a group of a route (`routes:`), saved under the route's name. Per
//! absence watch (the rule's, each `group_by` value's, each `stale:` input's): when it started
//! watching, when its line was last seen (with that line's route and captures), and whether
//! "absent" was sent, so "back" still comes after a restart.
//!
//! Restored by rule name, route name and group value, at most `max_groups` values per rule (as
//! while running); what no longer fits the rule (its shape changed, its route is gone) starts
//! fresh, with one line for the log.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::time::Instant;

use super::{Absence, Aggregator, Episode, Group, Key, Pending, Sample};
use crate::rules::{OTHER_GROUP, Rule};
use crate::state::snapshot::{
    AbsenceState, AlertSnapshot, EpisodeState, GroupState, PendingState, RuleState, SampleState,
    Wall,
};

/// A restored absence timer already due fires this long after the start at the earliest, so the
/// lines written while dingtail was stopped (read first, from the checkpoints) can still show
/// the line was there: a deploy must not page for a line that merely waited to be read.
pub const ABSENCE_GRACE: Duration = Duration::from_secs(5);

/// What a rule's state depends on in its definition: saved with the state, compared on import.
pub fn shape(rule: &Rule) -> String {
    let kind = if rule.absent_for.is_some() {
        "absent"
    } else {
        "hits"
    };
    if rule.group_by.is_empty() {
        return kind.to_owned();
    }
    let names: Vec<&str> = rule
        .group_by
        .iter()
        .map(|&i| &*rule.style.capture_names[i])
        .collect();
    format!("{kind} group_by={}", names.join(","))
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
                // an episode ends with "recovered", which only an alerted stream awaits
                episode: g.episode.filter(|_| g.alerted).map(|e| EpisodeState {
                    start: clock.wall(e.start),
                    count: e.count,
                    level: e.level,
                }),
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
        for ((rule, text, route), state) in groups {
            let worth = state.closes_at.is_some()
                || state.cooldown_until.is_some()
                || state.alerted
                || !state.recent.is_empty()
                || state.pending.is_some();
            if !worth {
                continue;
            }
            let r = &self.rules[rule];
            let saved = rule_state(&mut snap, r);
            let streams = match route.and_then(|i| r.routes.get(i)) {
                None => &mut saved.groups,
                Some(route) => saved.routes.entry(route.name.to_string()).or_default(),
            };
            streams.insert(text.to_string(), state);
        }
        for ((rule, text, _), w) in &self.absences {
            let r = &self.rules[*rule];
            let state = AbsenceState {
                since: Some(clock.wall(w.since)),
                last_seen: w.last_seen.map(|(_, wall)| Wall(wall)),
                alerted: w.alerted,
                route: (w.route)
                    .and_then(|i| r.routes.get(i))
                    .map(|route| route.name.to_string()),
                captures: w.captures.clone(),
            };
            let saved = rule_state(&mut snap, r);
            if text.is_empty() {
                saved.absence = Some(state);
            } else {
                saved.absences.insert(text.to_string(), state);
            }
        }
        snap
    }

    /// Takes up the state of an earlier run, as of `now` (`wall` on the wall clock); call right
    /// after [`Aggregator::new`] (and [`Aggregator::with_stale`]). Rules are matched by name,
    /// routed streams by route name, groups by value; a rule whose shape changed (see
    /// [`shape`]) starts fresh, and so do the streams of a route that is gone; the returned
    /// lines say so (one per rule or route, for the log). Timers already past run at the next
    /// [`Aggregator::expire`] (a restored absence timer no earlier than [`ABSENCE_GRACE`] from
    /// now); an escalation step that came due while stopped is sent then, one already sent is
    /// not sent again.
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
                self.restore_absence(id, "", a, clock);
            }
            for (text, a) in &saved.absences {
                self.restore_absence(id, text, a, clock);
            }
            for (text, g) in &saved.groups {
                self.restore_group((id, text, None), g, clock);
            }
            for (name, streams) in &saved.routes {
                let Some(route) = self.route_named(id, name) else {
                    notes.push(format!(
                        "rule {}: route {name} is gone: its {} saved alert stream(s) start fresh, their unsent hits go with the rule's own",
                        self.rules[id].name,
                        streams.len()
                    ));
                    // counted hits are sent, not lost: by the rule's own robots
                    for (text, g) in streams {
                        let only = GroupState {
                            pending: g.pending.clone(),
                            last_hit: g.last_hit,
                            ..GroupState::default()
                        };
                        if only.pending.is_some() {
                            self.restore_group((id, text, None), &only, clock);
                        }
                    }
                    continue;
                };
                for (text, g) in streams {
                    self.restore_group((id, text, Some(route)), g, clock);
                }
            }
        }
        notes
    }

    /// The index of rule `id`'s route called `name`.
    fn route_named(&self, id: usize, name: &str) -> Option<usize> {
        self.rules[id].routes.iter().position(|r| &*r.name == name)
    }

    fn restore_absence(&mut self, id: usize, text: &str, a: &AbsenceState, clock: Clock) {
        let rule = &self.rules[id];
        let Some(silence) = rule.absent_for else {
            return;
        };
        if rule.group_by.is_empty() != text.is_empty() {
            return;
        }
        let route = a.route.as_deref().and_then(|n| self.route_named(id, n));
        // Aligned with the rule's capture names, or not at all (the pattern changed).
        let captures = if a.captures.len() == rule.style.capture_names.len() {
            a.captures.clone()
        } else {
            Vec::new()
        };
        let key: Key = (id, Arc::from(text), None);
        if !text.is_empty() {
            // a value is watched from its first line: none is known at the start
            let counted = text != OTHER_GROUP;
            if self.absences.contains_key(&key)
                || counted && self.absence_counts[id] >= rule.max_groups
            {
                return;
            }
            if counted {
                self.absence_counts[id] += 1;
            }
            self.absences
                .insert(key.clone(), Absence::new(clock.now, None));
        }
        let Some(watch) = self.absences.get_mut(&key) else {
            return;
        };
        if let Some(old) = watch.scheduled.take() {
            self.deadlines.remove(&(old, key.clone()));
        }
        if let Some(since) = a.since {
            watch.since = clock.instant(since);
        }
        watch.last_seen = a.last_seen.map(|w| (clock.instant(w), w.0));
        watch.alerted = a.alerted;
        watch.route = route;
        watch.captures = captures;
        if !watch.alerted {
            let from = watch.last_seen.map_or(watch.since, |(t, _)| t);
            let at = (from + silence).max(clock.now + ABSENCE_GRACE.min(silence));
            watch.scheduled = Some(at);
            self.deadlines.insert((at, key));
        }
    }

    fn restore_group(
        &mut self,
        (id, text, route): (usize, &str, Option<usize>),
        g: &GroupState,
        clock: Clock,
    ) {
        let rule = &self.rules[id];
        if rule.group_by.is_empty() != text.is_empty() {
            return;
        }
        let counted = !text.is_empty() && text != OTHER_GROUP;
        let key: Key = (id, Arc::from(text), route);
        if let Some(have) = self.groups.get_mut(&key) {
            // The hits of a route that is gone join the rule's own stream (restored first).
            if let Some(p) = &g.pending {
                let p = pending(p, rule);
                match &mut have.pending {
                    Some(h) => absorb(h, p, rule.max_lines),
                    None => have.pending = Some(p),
                }
                if have.closes_at.is_none()
                    && have.cooldown_until.is_none()
                    && rule.threshold.is_none()
                {
                    have.closes_at = Some(clock.now + rule.window);
                }
                self.reschedule(&key, clock.now);
            }
            return;
        }
        if counted && self.group_counts[id] >= rule.max_groups {
            return;
        }
        let mut recent: VecDeque<(Instant, Option<crate::source::Mark>)> = VecDeque::new();
        if let Some(t) = rule.threshold {
            for &w in g.recent.iter().rev().take(t.count).rev() {
                recent.push_back((clock.instant(w), None));
            }
        }
        let alerted = g.alerted && rule.resolve_after.is_some();
        let mut group = Group {
            pending: g.pending.as_ref().map(|p| pending(p, rule)),
            recent,
            closes_at: g.closes_at.map(|w| clock.instant(w)),
            cooldown_until: g
                .cooldown_until
                .filter(|_| rule.cooldown.is_some())
                .map(|w| clock.instant(w)),
            last_hit: g.last_hit.map_or(clock.now, |w| clock.instant(w)),
            alerted,
            scheduled: None,
            // Steps already sent stay sent (at most the rule's steps now); one that came due
            // while stopped is sent at the next timer run.
            episode: (g.episode.as_ref())
                .filter(|_| alerted && !rule.escalate.is_empty())
                .map(|e| Episode {
                    start: clock.instant(e.start),
                    count: e.count,
                    level: e.level.min(rule.escalate.len()),
                }),
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

/// The entry of rule `r` in `snap`, made with its shape when new.
fn rule_state<'s>(snap: &'s mut AlertSnapshot, r: &Rule) -> &'s mut RuleState {
    snap.rules
        .entry(r.name.clone())
        .or_insert_with(|| RuleState {
            shape: shape(r),
            ..RuleState::default()
        })
}

/// Adds `p`'s hits to `into` (exact count, at most `max_lines` samples).
fn absorb(into: &mut Pending, p: Pending, max_lines: usize) {
    into.count += p.count;
    into.first = into.first.min(p.first);
    into.last = into.last.max(p.last);
    let room = max_lines.saturating_sub(into.samples.len());
    into.samples.extend(p.samples.into_iter().take(room));
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
mod tests;
