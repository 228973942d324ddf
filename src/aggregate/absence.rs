//! Absence watches (`absent: {match, for}`, and `stale:` inputs): a matching line is the good
//! news; silence for `for` sends "absent" once, the next line "back". With `group_by`, each
//! value seen is watched on its own, at most `max_groups` of them plus one shared
//! [`OTHER_GROUP`] watch for the rest.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::time::Instant;

use super::group::{capture_text, group_key};
use super::{Aggregator, Alert, AlertKind, Key, Routed, Sample, fan_out, whole};
use crate::matcher::{Hit, HitBatch};
use crate::rules::OTHER_GROUP;

/// An absence rule's state (per `group_by` value, with one).
#[derive(Debug)]
pub(super) struct Absence {
    /// When watching began (this run's start, or an earlier run's: see `persist.rs`): the
    /// silence is counted from here while no line was seen.
    pub(super) since: Instant,
    /// Last match: when, by the aggregator's clock and the wall clock.
    pub(super) last_seen: Option<(Instant, SystemTime)>,
    pub(super) alerted: bool,
    pub(super) scheduled: Option<Instant>,
    /// Captures and route of the last matching line (for templates and routing of "absent").
    pub(super) captures: Vec<String>,
    pub(super) route: Option<usize>,
}

impl Absence {
    pub(super) fn new(since: Instant, scheduled: Option<Instant>) -> Absence {
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

impl Aggregator {
    pub(super) fn absence_matched(
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

    pub(super) fn absence_due(&mut self, key: &Key, at: Instant, out: &mut Vec<Routed>) {
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
}
