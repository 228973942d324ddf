//! Asking the monthly budget ([`crate::budget`]) before each message: go, rest and merge until
//! the pace allows, or give up at the end of input once the month's budget is spent.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::{Dispatcher, is_critical};
use crate::budget::Verdict;
use crate::budget::month::shanghai_time;

/// A robot held back by its budget asks again at least this often: the wall clock may be set,
/// and the month turns.
const BUDGET_RECHECK: Duration = Duration::from_secs(60);

/// What the budget lets the dispatcher do with what it holds.
pub(super) enum Gate {
    /// Send (the rate limit permitting).
    Go,
    /// Rest (merging) until then, and ask again.
    Wait(Instant),
    /// The input has ended and the budget is spent: report what is held as not delivered.
    GiveUp(String),
}

impl Dispatcher {
    /// Asks the budget about what is pending; see [`Gate`].
    pub(super) fn budget_gate(&mut self) -> Gate {
        let Some((budget, robot)) = &self.budget else {
            return Gate::Go;
        };
        let name = self.cfg.robot.as_deref().unwrap_or("(none)");
        let critical = self.pending.iter().any(is_critical);
        let now = (self.wall)();
        let wait = |until: SystemTime| {
            Instant::now()
                + until
                    .duration_since(now)
                    .unwrap_or_default()
                    .min(BUDGET_RECHECK)
        };
        match budget.verdict(*robot, critical, self.input_open, now) {
            Verdict::Now => {
                if self.budget_said.take() == Some("spent") {
                    tracing::info!(robot = name, "robot may send again: a new month");
                }
                Gate::Go
            }
            Verdict::Pace { until } => {
                if self.budget_said.replace("pace") != Some("pace") {
                    tracing::info!(robot = name, next = %shanghai_time(until), "pacing the monthly budget: holding and merging alerts until the next message is due");
                }
                Gate::Wait(wait(until))
            }
            Verdict::Spent { until, why } => {
                let reason = format!(
                    "robot {name}: {why}; nothing more is sent before the month turns ({})",
                    shanghai_time(until)
                );
                if !self.input_open {
                    return Gate::GiveUp(reason);
                }
                if self.budget_said.replace("spent") != Some("spent") {
                    tracing::error!("{reason}; holding its alerts (they are reported at exit)");
                }
                Gate::Wait(wait(until))
            }
        }
    }

    /// While the budget holds ordinary rules back but lets critical ones through, critical
    /// alerts go first into the message (the others fill what room is left).
    pub(super) fn critical_first(&mut self) {
        let Some((budget, robot)) = &self.budget else {
            return;
        };
        if self.pending.iter().any(is_critical)
            && budget.verdict(*robot, false, self.input_open, (self.wall)()) != Verdict::Now
        {
            self.pending.sort_by_key(|a| !is_critical(a));
        }
    }

    /// Takes back the ledger's count for a message DingTalk certainly did not post.
    pub(super) async fn refund(&self, counted: SystemTime) {
        if let Some((budget, robot)) = &self.budget
            && !self.maybe_posted
        {
            match &self.link {
                Some(link) => link.refund(budget, *robot, counted).await,
                None => budget.refund(*robot, counted, (self.wall)()),
            }
        }
    }
}
