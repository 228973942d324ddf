//! What a run did: the one-line summary, the per-robot failure lines and the exit status are
//! read from a [`RunReport`], which `main` prints.

use crate::budget::Status;
use crate::delivery_report::DeliveryReport;

/// What a run did: the summary line and the exit status come from this.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// Messages were printed, not sent.
    pub dry_run: bool,
    /// Lines read.
    pub lines: u64,
    /// Events matched as one: lines, or multi-line events where an input has `multiline`
    /// (then fewer than `lines`).
    pub events: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Lines cut at `max_line_bytes`.
    pub cut_lines: u64,
    /// Matching lines per rule, in config order.
    pub matches: Vec<(String, u64)>,
    /// One report per dispatcher.
    pub deliveries: Vec<DeliveryReport>,
    /// Rules whose threshold was not met by the end of input, with the hits not sent.
    pub held_below_threshold: Vec<(String, u64)>,
    /// Hits a silence or mute window covered, per rule (counted, not sent).
    pub silenced: Vec<(String, u64)>,
    /// Hits gathered in a cooldown at a stop, per rule: saved with the alert state and sent by
    /// the next run when the cooldown ends (see `state::alert_state`).
    pub kept: Vec<(String, u64)>,
    /// The monthly budget after the run (`None` in dry-run).
    pub budget: Option<Status>,
}

impl RunReport {
    /// Whether any message (of any kind: hits, "absent", "recovered", "back") was not
    /// delivered.
    pub fn has_failures(&self) -> bool {
        self.deliveries
            .iter()
            .any(|d| d.messages_failed > 0 || d.events_failed_total() > 0)
    }

    /// The one-line summary printed at the end.
    pub fn summary(&self) -> String {
        let matches: Vec<String> = self
            .matches
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        let sent: u64 = self.deliveries.iter().map(|d| d.messages_sent).sum();
        let failed: u64 = self.deliveries.iter().map(|d| d.messages_failed).sum();
        let held = if self.held_below_threshold.is_empty() {
            String::new()
        } else {
            let rules: Vec<String> = self
                .held_below_threshold
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            format!("; below threshold, not sent: {}", rules.join(", "))
        };
        let held = if self.silenced.is_empty() {
            held
        } else {
            let rules: Vec<String> = self
                .silenced
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            format!("{held}; silenced, not sent: {}", rules.join(", "))
        };
        let held = if self.kept.is_empty() {
            held
        } else {
            let rules: Vec<String> = self.kept.iter().map(|(r, n)| format!("{r} {n}")).collect();
            format!(
                "{held}; cooling down, kept for the next run: {}",
                rules.join(", ")
            )
        };
        format!(
            "dingtail: read {} lines{} ({} bytes){}; matches: {}; messages: {sent} {}, {failed} failed{held}",
            self.lines,
            if self.events != self.lines {
                format!(" as {} events", self.events)
            } else {
                String::new()
            },
            self.bytes,
            if self.cut_lines > 0 {
                format!(", {} cut at max_line_bytes", self.cut_lines)
            } else {
                String::new()
            },
            if matches.is_empty() {
                "none".to_owned()
            } else {
                matches.join(", ")
            },
            if self.dry_run { "printed" } else { "sent" },
        )
    }

    /// One line per robot that failed to deliver something: which, how much, why.
    pub fn failures(&self) -> Vec<String> {
        self.deliveries
            .iter()
            .filter(|d| d.messages_failed > 0 || d.events_failed_total() > 0)
            .map(|d| {
                let rules: Vec<String> =
                    d.events_failed.iter().map(|(r, n)| format!("{r} {n}")).collect();
                format!(
                    "dingtail: robot {}: {} message(s) with {} matching line(s) not delivered ({}): {}",
                    d.robot.as_deref().unwrap_or("(none)"),
                    d.messages_failed,
                    d.events_failed_total(),
                    rules.join(", "),
                    d.reasons.join("; "),
                )
            })
            .collect()
    }
}
