//! Between the aggregator and the dispatchers: silences, mute windows and quiet hours decide
//! which alerts go out now, which are counted and not sent, and which wait for a digest.
//!
//! - Silenced or muted: the alert is not sent; its hits are counted per rule (summary, metrics)
//!   and per stream (rule, group, robot), and the next alert of that stream carries the count
//!   (`while silenced: ×N`). Its holds are released (its lines are done with).
//! - Quiet hours: alerts of low severity wait, and go out together when quiet hours end (the
//!   dispatcher merges them into one digest); at end of input they go out at once.
//!
//! Pure: told the wall-clock time, so `dingtail test --replay` runs it on its simulated clock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use crate::aggregate::Routed;
use crate::config::RobotId;
use crate::metrics::Metrics;
use crate::mute::{MuteWindow, QuietHours};
use crate::silence::Silences;
use crate::source::Mark;
use crate::timezone::Zone;

type Stream = (Arc<str>, Option<Arc<str>>, Option<RobotId>);

/// See the module docs.
#[derive(Debug, Default)]
pub struct Hush {
    silences: Silences,
    mutes: Vec<MuteWindow>,
    quiet: Option<QuietHours>,
    zone: Zone,
    /// Hits not sent per stream, for the next alert of it.
    covered: HashMap<Stream, u64>,
    /// Silenced hits per rule and robot (each robot gets a copy of every alert).
    per_robot: HashMap<(Arc<str>, Option<RobotId>), u64>,
    /// Silenced hits per rule: the most any robot's copies covered, in first-seen order.
    per_rule: Vec<(Arc<str>, u64)>,
    /// Alerts waiting for the end of quiet hours, and when that is.
    waiting: Vec<Routed>,
    quiet_ends: Option<SystemTime>,
    metrics: Option<Arc<Metrics>>,
}

impl Hush {
    /// A filter with these silences, mute windows and quiet hours, read in `zone`.
    pub fn new(
        silences: Silences,
        mutes: Vec<MuteWindow>,
        quiet: Option<QuietHours>,
        zone: Zone,
    ) -> Hush {
        Hush {
            silences,
            mutes,
            quiet,
            zone,
            ..Hush::default()
        }
    }

    /// Counts silenced hits into `metrics` too.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Hush {
        self.metrics = Some(metrics);
        self
    }

    /// Takes the mute windows, quiet hours and zone of a reloaded config.
    pub fn reconfigure(&mut self, mutes: Vec<MuteWindow>, quiet: Option<QuietHours>, zone: Zone) {
        (self.mutes, self.quiet, self.zone) = (mutes, quiet, zone);
    }

    /// Sorts alerts produced at `now`: returns those to send now, and the holds of those that
    /// will never be sent.
    pub fn filter(&mut self, alerts: Vec<Routed>, now: SystemTime) -> (Vec<Routed>, Vec<Mark>) {
        let mut send = Vec::new();
        let mut released = Vec::new();
        let local = self.zone.naive(now);
        for mut alert in alerts {
            let severity = alert.style.severity;
            let silenced = self
                .silences
                .covering(&alert.rule_name, alert.group.as_deref(), now)
                .is_some()
                || self
                    .mutes
                    .iter()
                    .any(|m| m.covers(&alert.rule_name, severity) && m.schedule.open_at(local));
            if silenced {
                self.count(&alert);
                released.append(&mut alert.holds);
                continue;
            }
            let stream = (alert.rule_name.clone(), alert.group.clone(), alert.robot);
            if let Some(n) = self.covered.remove(&stream) {
                alert.silenced += n;
            }
            if let Some(q) = &self.quiet
                && q.holds(severity)
                && let Some(end) = q.schedule.closes_after(self.zone, now)
            {
                self.quiet_ends = Some(end);
                self.waiting.push(alert);
                continue;
            }
            send.push(alert);
        }
        (send, released)
    }

    fn count(&mut self, alert: &Routed) {
        let n = alert.count;
        if n == 0 {
            return;
        }
        *self
            .covered
            .entry((alert.rule_name.clone(), alert.group.clone(), alert.robot))
            .or_default() += n;
        let robot_total = self
            .per_robot
            .entry((alert.rule_name.clone(), alert.robot))
            .or_default();
        *robot_total += n;
        let robot_total = *robot_total;
        let rule = match self
            .per_rule
            .iter_mut()
            .find(|(r, _)| *r == alert.rule_name)
        {
            Some(r) => r,
            None => {
                self.per_rule.push((alert.rule_name.clone(), 0));
                self.per_rule.last_mut().expect("just pushed")
            }
        };
        if robot_total > rule.1 {
            if let Some(m) = &self.metrics {
                m.record_silenced(&alert.rule_name, robot_total - rule.1);
            }
            rule.1 = robot_total;
        }
    }

    /// When quiet hours end with alerts waiting.
    pub fn next_deadline(&self) -> Option<SystemTime> {
        self.quiet_ends.filter(|_| !self.waiting.is_empty())
    }

    /// The alerts that waited for quiet hours to end, if they have ended at `now` (or `all`:
    /// end of input).
    pub fn due(&mut self, now: SystemTime, all: bool) -> Vec<Routed> {
        match self.quiet_ends {
            Some(end) if all || now >= end => {
                self.quiet_ends = None;
                std::mem::take(&mut self.waiting)
            }
            _ if all => std::mem::take(&mut self.waiting),
            _ => Vec::new(),
        }
    }

    /// Silenced hits per rule, for the summary.
    pub fn silenced(&self) -> Vec<(String, u64)> {
        self.per_rule
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| (r.to_string(), *n))
            .collect()
    }
}
