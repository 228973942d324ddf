//! Hit streams: a group counts hits, opens its window (at once, or when a threshold is met),
//! sends when the window closes, cools down, escalates and says "recovered"; see the module
//! docs of [`super`]. [`Aggregator::reschedule`] keeps one timer per group and forgets a group
//! that holds nothing.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::time::Instant;

use super::{
    Aggregator, Alert, AlertKind, CAPTURE_MAX_BYTES, Key, Routed, Sample, fan_out, hits_alert,
    note_source,
};
use crate::escalate;
use crate::matcher::{Hit, HitBatch};
use crate::rules::{OTHER_GROUP, Rule};
use crate::source::Mark;

/// Hits counted and not yet sent.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) count: u64,
    pub(super) first: SystemTime,
    pub(super) last: SystemTime,
    pub(super) source: Arc<str>,
    /// See [`Alert::other_sources`].
    pub(super) other_sources: Vec<Arc<str>>,
    pub(super) samples: Vec<Sample>,
    pub(super) captures: Vec<String>,
    /// See [`Routed::holds`].
    pub(super) holds: Vec<Mark>,
}

/// One alert stream: a rule, or one `group_by` value of it.
#[derive(Debug)]
pub(super) struct Group {
    pub(super) pending: Option<Pending>,
    /// Threshold rules: times of the most recent hits, at most `threshold.count`, with the
    /// chunk each came in (for followed files): a pending below the threshold holds only these.
    pub(super) recent: VecDeque<(Instant, Option<Mark>)>,
    /// The gathering window is open and closes then.
    pub(super) closes_at: Option<Instant>,
    /// A message went out; hits are gathered until then.
    pub(super) cooldown_until: Option<Instant>,
    pub(super) last_hit: Instant,
    /// A message went out and no "recovered" since (only tracked with `resolve_after`).
    pub(super) alerted: bool,
    /// The entry in the deadline set, if any.
    pub(super) scheduled: Option<Instant>,
    /// With `escalate:`, the open episode (first message to "recovered").
    pub(super) episode: Option<Episode>,
}

/// An episode of a group with `escalate:` steps: since when, how many lines, which steps sent.
#[derive(Debug, Clone, Copy)]
pub(super) struct Episode {
    pub(super) start: Instant,
    pub(super) count: u64,
    pub(super) level: usize,
}

impl Aggregator {
    pub(super) fn count(&mut self, hit: &Hit, batch: &HitBatch, now: Instant) {
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

    /// The timers of one group at `at` (its scheduled time, which is the current time as far
    /// as the group is concerned).
    pub(super) fn group_due(&mut self, key: &Key, at: Instant, out: &mut Vec<Routed>) {
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
    pub(super) fn reschedule(&mut self, key: &Key, now: Instant) {
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
}

/// `ip=10.0.0.5 user=root` for a rule with `group_by`, from the hit's captures.
pub(super) fn group_key(rule: &Rule, hit: &Hit) -> Option<String> {
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
pub(super) fn capture_text(value: &[u8]) -> String {
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
