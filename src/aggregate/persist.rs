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
mod tests {
    use super::*;
    use crate::aggregate::tests::{batch, describe, dur, routes, rule, step};
    use crate::ids::RuleId;
    use crate::stale::StaleInput;

    /// How long dingtail is stopped between the two runs, on the wall clock.
    const DOWN: Duration = Duration::from_secs(10);

    /// Two runs of the same rules (or of `later` ones) with a stop between them: hits (ms,
    /// rule, line) before the stop at `stop` ms, then the second run's hits (ms from its start)
    /// until `end`. Timers run on time.
    #[derive(Default)]
    struct Case {
        name: &'static str,
        rules: Vec<Rule>,
        /// The second run's rules, when the config changed.
        later: Option<Vec<Rule>>,
        /// Watch stdin (the lines' source) with `stale: 1s`.
        stale: bool,
        before: &'static [(u64, RuleId, &'static str)],
        stop: u64,
        /// What the first run sent, its stop included.
        sent: &'static [&'static str],
        after: &'static [(u64, RuleId, &'static str)],
        end: u64,
        /// What the second run sent (ms from its start; 0 for a timer that came due while
        /// stopped).
        then: &'static [&'static str],
        /// What the restore said, a piece of each line.
        notes: &'static [&'static str],
    }

    /// A run of `rules` from `t0` (`w0` on the wall clock), stopped like followed files with
    /// the alert state kept.
    fn start(rules: &[Rule], stale: bool, t0: Instant, w0: SystemTime) -> Aggregator {
        let stdin = StaleInput {
            input: "-".into(),
            after: Duration::from_secs(1),
        };
        let inputs = if stale { vec![stdin] } else { Vec::new() };
        Aggregator::new(rules, t0, w0)
            .with_stale(&inputs, &[0], &Default::default(), t0)
            .with_absence_at_end(false)
            .with_pending_kept(true)
    }

    /// Feeds the hits, running every timer on time until `end`; returns what came out.
    fn feed(
        agg: &mut Aggregator,
        rules: &[Rule],
        (t0, w0): (Instant, SystemTime),
        hits: &[(u64, RuleId, &str)],
        end: u64,
    ) -> Vec<String> {
        let mut out = Vec::new();
        let run_until = |agg: &mut Aggregator, ms: u64, out: &mut Vec<String>| {
            while let Some(d) = agg.next_deadline().filter(|&d| d <= t0 + dur(ms)) {
                let at = d.saturating_duration_since(t0).as_millis() as u64;
                out.extend(agg.expire(d).iter().map(|a| describe(a, at)));
            }
        };
        for &(ms, id, line) in hits {
            run_until(agg, ms, &mut out);
            let b = batch(&rules[id], id, line, w0 + dur(ms));
            out.extend(agg.add(&b, t0 + dur(ms)).iter().map(|a| describe(a, ms)));
        }
        run_until(agg, end, &mut out);
        out
    }

    #[test]
    fn table() {
        let cooldown = |s: &mut crate::rules::RuleSpec| s.cooldown = Some(Duration::from_secs(60));
        let per_host = |max_groups: usize| {
            rule(|s| {
                s.absent_for = Some(Duration::from_secs(1));
                s.group_by = vec!["ip".into()];
                s.max_groups = max_groups;
            })
        };
        let escalating = rule(|s| {
            s.pattern = "x".into();
            s.cooldown = Some(dur(300));
            s.resolve_after = Some(Duration::from_secs(60));
            s.escalate = vec![step(400, "lead"), step(20_000, "dba")];
        });
        let cases = vec![
            Case {
                name: "a cooldown and the hits gathered in it survive a stop",
                rules: vec![rule(cooldown)],
                before: &[(0, 0, "a x"), (300, 0, "a x"), (400, 0, "a x")],
                stop: 500,
                sent: &["100 ×1 @0"],
                after: &[(0, 0, "a x")],
                end: 60_000,
                // 60 s after the first message (at 0.1 s; this run started at 10.5 s): all 3
                then: &["49600 ×3 @0"],
                ..Case::default()
            },
            Case {
                name: "an open alert gets its recovered, counted from the last hit before",
                rules: vec![rule(|s| s.resolve_after = Some(Duration::from_secs(30)))],
                before: &[(0, 0, "a x")],
                stop: 1000,
                sent: &["100 ×1 @0"],
                end: 60_000,
                then: &["19000 recovered @0"],
                ..Case::default()
            },
            Case {
                name: "absence is counted from the line seen before the stop",
                rules: vec![rule(|s| s.absent_for = Some(Duration::from_secs(60)))],
                before: &[(0, 0, "a x")],
                stop: 1000,
                end: 120_000,
                then: &["49000 absent @0"],
                ..Case::default()
            },
            Case {
                name: "a rule whose grouping changed starts fresh, with one note",
                rules: vec![rule(cooldown)],
                later: Some(vec![rule(|s| {
                    cooldown(s);
                    s.group_by = vec!["ip".into()];
                })]),
                before: &[(0, 0, "a x")],
                stop: 200,
                sent: &["100 ×1 @0"],
                after: &[(0, 0, "a x")],
                end: 1000,
                then: &["100 ×1 ip=a @0"],
                notes: &["`hits` and the rule is now `hits group_by=ip`"],
                ..Case::default()
            },
            Case {
                name: "a routed stream's cooldown survives a stop, apart from the rule's own",
                rules: vec![rule(|s| {
                    cooldown(s);
                    s.routes = routes(&[("ip == 'pay'", &[1], "111")]);
                })],
                before: &[(0, 0, "pay x"), (10, 0, "web x"), (300, 0, "pay x")],
                stop: 500,
                sent: &["100 ×1 @1", "110 ×1 @0"],
                after: &[(0, 0, "pay x")],
                end: 60_000,
                then: &["49600 ×2 @1"],
                ..Case::default()
            },
            Case {
                name: "the streams of a route that is gone start fresh, with a note",
                rules: vec![rule(|s| {
                    cooldown(s);
                    s.routes = routes(&[("ip == 'pay'", &[1], "111")]);
                })],
                later: Some(vec![rule(cooldown)]),
                before: &[(0, 0, "pay x"), (10, 0, "web x"), (300, 0, "pay x")],
                stop: 500,
                sent: &["100 ×1 @1", "110 ×1 @0"],
                // the rule's own stream still cools down; the pay line now goes there
                after: &[(0, 0, "pay x")],
                end: 60_000,
                // the hit kept for the pay route joins it: counted, not lost
                then: &["49610 ×2 @0"],
                notes: &["route ip == 'pay' is gone: its 1 saved alert stream(s) start fresh"],
                ..Case::default()
            },
            Case {
                name: "a step sent before the stop is not sent again, the next comes on time",
                rules: vec![escalating.clone()],
                before: &[(0, 0, "x"), (200, 0, "x"), (400, 0, "x")],
                stop: 600,
                sent: &[
                    "100 ×1 @0",
                    "400 ×1 @0",
                    "500 escalated @0 (3 so far, @lead)",
                ],
                // the run starts at 10.6 s; the hit kept from the cooldown is due at once; the
                // second step 20 s after the first message; "recovered" 60 s after the last
                // hit ends the episode, and the next starts from the first step
                after: &[(50_000, 0, "x")],
                end: 51_000,
                then: &[
                    "0 ×1 @0",
                    "9500 escalated @0 (3 so far, @lead,dba)",
                    "49800 recovered @0",
                    "50100 ×1 @0",
                    "50500 escalated @0 (1 so far, @lead)",
                ],
                ..Case::default()
            },
            Case {
                name: "a step that came due while stopped is sent at the start",
                rules: vec![escalating],
                before: &[(0, 0, "x")],
                stop: 200,
                sent: &["100 ×1 @0"],
                end: 1000,
                then: &["0 escalated @0 (1 so far, @lead)"],
                ..Case::default()
            },
            Case {
                name: "a host reported absent stays absent, says back, and others keep their timers",
                rules: vec![per_host(10)],
                before: &[(0, 0, "a x"), (0, 0, "b x"), (1500, 0, "b x")],
                stop: 1800,
                sent: &[
                    "1000 absent ip=a @0",
                    "1000 absent ip=b @0",
                    "1500 back ip=b @0",
                ],
                // b was due while stopped: after the grace (at most `for`)
                after: &[(2000, 0, "a x")],
                end: 2500,
                then: &["1000 absent ip=b @0", "2000 back ip=a @0"],
                ..Case::default()
            },
            Case {
                name: "restored values are bounded by max_groups; the rest share other",
                rules: vec![per_host(10)],
                later: Some(vec![per_host(1)]),
                before: &[(0, 0, "a x"), (0, 0, "b x")],
                stop: 1500,
                sent: &["1000 absent ip=a @0", "1000 absent ip=b @0"],
                after: &[(100, 0, "a x"), (200, 0, "b x")],
                end: 1500,
                then: &[
                    "100 back ip=a @0",
                    "1100 absent ip=a @0",
                    "1200 absent other @0",
                ],
                ..Case::default()
            },
            Case {
                name: "an input reported stale stays stale and says back when it writes",
                rules: vec![rule(|_| {})],
                stale: true,
                before: &[(0, 0, "a x")],
                stop: 1500,
                sent: &["100 ×1 @0", "1000 absent @0"],
                after: &[(3000, 0, "a x")],
                end: 3500,
                then: &["3000 back @0", "3100 ×1 @0"],
                ..Case::default()
            },
            Case {
                name: "an input quiet since before the stop is reported stale after the grace",
                rules: vec![rule(|_| {})],
                stale: true,
                before: &[(0, 0, "a x"), (900, 0, "a x")],
                stop: 1000,
                sent: &["100 ×1 @0", "1000 ×1 @0"],
                end: 3000,
                then: &["1000 absent @0"],
                ..Case::default()
            },
        ];
        for case in cases {
            let name = case.name;
            let t0 = Instant::now();
            let w0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
            let mut a = start(&case.rules, case.stale, t0, w0);
            let mut sent = feed(&mut a, &case.rules, (t0, w0), case.before, case.stop);
            let stop = t0 + dur(case.stop);
            sent.extend(a.flush(stop).iter().map(|x| describe(x, case.stop)));
            assert_eq!(sent, case.sent, "{name}: the first run");
            // through JSON, as between two runs
            let snap = a.snapshot(stop, w0 + dur(case.stop));
            let snap: AlertSnapshot =
                serde_json::from_str(&serde_json::to_string(&snap).unwrap()).unwrap();

            // the next run: its own Instant origin, `DOWN` later on the wall clock
            let rules = case.later.as_ref().unwrap_or(&case.rules);
            let t1 = t0 + Duration::from_secs(100);
            let w1 = w0 + dur(case.stop) + DOWN;
            let mut b = start(rules, case.stale, t1, w1);
            let notes = b.restore(&snap, t1, w1);
            assert_eq!(notes.len(), case.notes.len(), "{name}: {notes:?}");
            for (note, want) in notes.iter().zip(case.notes) {
                assert!(note.contains(want), "{name}: {note}");
            }
            let then = feed(&mut b, rules, (t1, w1), case.after, case.end);
            assert_eq!(then, case.then, "{name}: the second run");
        }
    }
}
