//! Trouble dingtail has with itself, as the stages that see it report it: a followed file it
//! cannot read, a robot that fails permanently, a reload it refused. A leaf module (it depends
//! on nothing of dingtail's), so the tailer, the dispatchers' metrics and the reloader can all
//! report without knowing who listens; `crate::self_alert` listens and tells a robot.

use std::time::Duration;

use tokio::sync::mpsc;

/// One piece of trouble (or the end of one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trouble {
    /// A followed path could not be read for `since` (at least `self_alerts.unreadable_for`).
    Unreadable {
        /// The path.
        path: String,
        /// Why, as the operating system said it.
        problem: String,
        /// How long it has been unreadable.
        since: Duration,
    },
    /// A path reported [`Trouble::Unreadable`] is read again.
    Readable {
        /// The path.
        path: String,
    },
    /// A robot fails permanently (bad token or secret, disabled, removed from its group).
    RobotFailing {
        /// The robot.
        robot: String,
        /// What DingTalk answered.
        reason: String,
    },
    /// A robot reported failing delivers again.
    RobotWorks {
        /// The robot.
        robot: String,
    },
    /// Redis (`coordination:`) cannot be reached: this instance sends on its own at
    /// `fallback_rate`.
    FleetFallback,
    /// Redis answers again: this instance rejoined the fleet.
    FleetRejoined,
    /// A robot's fleet digest stream is at its `stream_limit` (its sender cannot post): this
    /// instance keeps its alerts and sends them itself.
    FleetDigestFull {
        /// The robot.
        robot: String,
    },
    /// The robot's digest stream has room again: alerts go to the fleet's digest.
    FleetDigestRoom {
        /// The robot.
        robot: String,
    },
    /// A config reload was refused; the config loaded before stays in force.
    ReloadRefused {
        /// What triggered it (`SIGHUP`, `config file changed`).
        why: String,
        /// Every problem, one per line.
        problems: Vec<String>,
    },
}

/// Where trouble is reported: a cheap handle every stage can hold. Without `self_alerts:` it
/// goes nowhere (the log has already said it).
#[derive(Debug, Clone, Default)]
pub struct Reporter(Option<mpsc::UnboundedSender<Trouble>>);

impl Reporter {
    /// A reporter whose reports arrive at the returned receiver.
    pub fn channel() -> (Reporter, mpsc::UnboundedReceiver<Trouble>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Reporter(Some(tx)), rx)
    }

    /// Reports `trouble` (dropped when nobody listens: unbounded, because a report must never
    /// block the stage that makes it, and each kind of trouble is reported on a change only).
    pub fn report(&self, trouble: Trouble) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(trouble);
        }
    }
}
