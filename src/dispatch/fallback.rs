//! While the robot is throttled, what it holds goes to its `fallback` robot, if it has one.

use tokio::sync::mpsc;

use super::Dispatcher;

impl Dispatcher {
    /// Hands everything pending to the fallback robot; false when there is none (or it is gone).
    pub(super) async fn forward_to_fallback(&mut self) -> bool {
        let Some(tx) = &self.fallback_tx else {
            return false;
        };
        let alerts = std::mem::take(&mut self.pending);
        let count: u64 = alerts.iter().map(|a| a.count).sum();
        match tx.send(alerts).await {
            Ok(()) => {
                self.report.events_forwarded += count;
                true
            }
            Err(mpsc::error::SendError(alerts)) => {
                self.pending = alerts;
                self.fallback_tx = None;
                false
            }
        }
    }
}
