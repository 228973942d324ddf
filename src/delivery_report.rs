//! What a dispatcher did: the summary line per robot, the exit status, and what the metrics
//! publish. Kept apart from the dispatcher so the metrics can read it without depending on it.

use std::collections::BTreeMap;

use crate::alert::Alert;

/// What a dispatcher did, for the summary and the exit status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// The robot (`None`: no robot, dry-run).
    pub robot: Option<String>,
    /// Messages accepted (or printed, in dry-run).
    pub messages_sent: u64,
    /// Messages given up on.
    pub messages_failed: u64,
    /// Matching lines accounted for in accepted messages.
    pub events_sent: u64,
    /// Matching lines handed to the fallback robot while this one was throttled.
    pub events_forwarded: u64,
    /// Matching lines in messages given up on, by rule.
    pub events_failed: BTreeMap<String, u64>,
    /// Why messages were given up on, each reason once, in order.
    pub reasons: Vec<String>,
}

impl DeliveryReport {
    /// Matching lines that were not delivered.
    pub fn events_failed_total(&self) -> u64 {
        self.events_failed.values().sum()
    }

    /// Counts a message given up on: its alerts' lines by rule, and the reason (once).
    pub(crate) fn fail<A: AsRef<Alert>>(&mut self, alerts: &[A], reason: &str) {
        if alerts.is_empty() {
            return;
        }
        self.messages_failed += 1;
        for a in alerts.iter().map(AsRef::as_ref) {
            *self
                .events_failed
                .entry(a.rule_name.to_string())
                .or_default() += a.count;
        }
        if !self.reasons.iter().any(|r| r == reason) {
            self.reasons.push(reason.to_owned());
        }
    }
}
