//! One dispatcher per robot: rate limit, merging, rendering, posting, retries, accounting.
//!
//! The dispatcher never sends faster than its robot allows ([`SlidingWindow`]). While it waits, for
//! a slot, a retry or an answer, it keeps receiving alerts and merges them into what is pending
//! (one entry per rule, exact counts, bounded samples), so a storm becomes a few digest messages,
//! memory stays bounded through an outage of any length, and upstream stages are never held back
//! by a slow or absent DingTalk.
//!
//! A message in flight is immutable: a retry resends the very same body with the same `msgUuid`
//! (signed afresh), so DingTalk drops the copy if an earlier attempt did arrive. Alerts that arrive
//! meanwhile go into the next message.
//!
//! What each kind of failure does (see [`ErrorClass`]):
//! - retryable (network, timeouts, 5xx, errcode -1, an answer that is not DingTalk's): retry with
//!   exponential backoff and jitter, for as long as the input lasts;
//! - throttled (130101/410100): DingTalk blocks the robot for about ten minutes, so the robot is
//!   paused for `throttle_pause`; alerts keep gathering, or go to the robot's `fallback`;
//! - permanent (bad token or secret, disabled robot…): one clear error, then the robot is left
//!   alone and tried again every `retry.recheck` while alerts keep gathering (someone may fix
//!   it); when the input ends, what it holds is reported as not delivered;
//! - too large (460101): a rendering bug; the message is rendered again smaller;
//! - quota spent (90030): the robot sends nothing more this month (see below).
//!
//! The monthly budget ([`crate::budget`]) is part of "when may I send next?": before each
//! message the dispatcher asks it, and while the pace says wait it rests and merges, as for the
//! rate limit. A message is counted in the ledger (on disk) before it is posted, and taken back
//! only when DingTalk certainly refused it. A message holding a critical alert may use the
//! reserve; while ordinary rules are held back, critical alerts go first and the others ride along
//! in the same message. When the budget is spent, the robot holds everything until the month
//! turns; at the end of input what it holds is reported as not delivered.
//!
//! With `coordination:` ([`crate::fleet`]) the same three limits are asked of Redis, shared by
//! every instance posting to the robot: each attempt first takes a place in the robot's shared
//! window ([`RobotLink::acquire`]), a throttle pause told to any instance holds them all, and the
//! message is counted in the fleet's ledger. The local window still applies too (it can only be
//! laxer than the shared one). While Redis is away the link answers from local state at
//! `fallback_rate`, and this module does not notice the difference.
//!
//! Edges: when its input closes (end of input or a shutdown signal) the dispatcher has
//! `shutdown_timeout` to deliver what it holds; whatever is left then is reported as not
//! delivered, with its rules, counts and the last error, never dropped silently.
//!
//! The files, one idea each: this one holds the dispatcher's state and settings; `run` is the
//! sender loop (gathering, merging, waiting while receiving); `deliver` posts one message and
//! handles what each errcode means; `budget_gate` asks the monthly budget; `fallback` hands
//! alerts to the fallback robot while this one is throttled.

mod budget_gate;
mod deliver;
mod fallback;
mod fleet_digest;
mod run;
#[cfg(test)]
mod tests;

pub use fleet_digest::{FleetDigest, join_fleet};

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::aggregate::Routed;
use crate::budget::SharedBudget;
use crate::config::{RobotConfig, SendSettings};
pub use crate::delivery_report::DeliveryReport;
use crate::dingtalk::{Client, MAX_BODY_BYTES};
use crate::fleet::RobotLink;
use crate::metrics::RobotMetrics;
use crate::ratelimit::SlidingWindow;
use crate::source::Mark;
use crate::style::Severity;
use crate::timezone::Zone;

/// Where messages go.
#[derive(Clone)]
pub enum Sink {
    /// POST to the robot.
    Post {
        /// The HTTP client (the robot's timeouts and proxy).
        client: Client,
        /// The robot (webhook and secret).
        robot: Box<RobotConfig>,
    },
    /// `--dry-run`: one JSON line per message on this writer, nothing sent, no rate-limit waits.
    DryRun(Arc<Mutex<dyn Write + Send>>),
}

/// A dispatcher's settings.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// The robot's name, `None` when the config has no robot (dry-run only).
    pub robot: Option<String>,
    /// How to send: keyword, rate, retries, pause after "too fast" (the robot's; the
    /// defaults when there is no robot).
    pub send: SendSettings,
    /// This machine's name, for message headers.
    pub host: String,
    /// Time allowed to deliver after the input ends.
    pub shutdown_timeout: Duration,
    /// The one deadline every dispatcher of a run shares: set by the first whose input closes,
    /// so a fallback robot (whose input closes only when its primaries are done) does not add
    /// another `shutdown_timeout`. Share it with [`DispatchConfig::sharing_deadline`].
    pub shutdown_deadline: Arc<std::sync::OnceLock<Instant>>,
    /// The zone message times are written in (`timezone:`); the host's until set.
    pub zone: Zone,
}

impl DispatchConfig {
    /// The settings for a robot (or for no robot, in dry-run).
    pub fn new(
        robot: Option<&RobotConfig>,
        host: &str,
        shutdown_timeout: Duration,
    ) -> DispatchConfig {
        DispatchConfig {
            robot: robot.map(|r| r.name.clone()),
            send: robot.map(|r| r.send.clone()).unwrap_or_default(),
            host: host.to_owned(),
            shutdown_timeout,
            shutdown_deadline: Arc::default(),
            zone: Zone::Host,
        }
    }

    /// The same settings, with a shutdown deadline shared with other dispatchers.
    pub fn sharing_deadline(mut self, deadline: &Arc<std::sync::OnceLock<Instant>>) -> Self {
        self.shutdown_deadline = deadline.clone();
        self
    }
}

/// New settings for a robot that stays across a reload.
pub struct RobotUpdate {
    /// Rate, keyword, retries, time zone…
    pub cfg: DispatchConfig,
    /// Where its messages go (a client for the new webhook, secret and proxy).
    pub sink: Sink,
}

/// Where a dispatcher receives [`RobotUpdate`]s.
pub type UpdateRx = watch::Receiver<Option<Arc<RobotUpdate>>>;

/// Delivers alerts to one robot; see the module docs.
pub struct Dispatcher {
    cfg: DispatchConfig,
    sink: Sink,
    alerts_rx: mpsc::Receiver<Vec<Routed>>,
    /// While throttled, alerts go here instead of waiting.
    fallback_tx: Option<mpsc::Sender<Vec<Routed>>>,
    limiter: SlidingWindow,
    pending: Vec<Routed>,
    input_open: bool,
    deadline: Option<Instant>,
    max_body: usize,
    /// After a permanent error: why, and when to try the robot again.
    broken: Option<(String, Instant)>,
    /// The last failure, for the report of what was left at the deadline.
    last_error: Option<String>,
    /// When a permanent error was last logged: it repeats at most once a minute.
    last_said: Option<Instant>,
    report: DeliveryReport,
    /// Told the holds of every alert once it is settled (delivered, or reported undelivered),
    /// so the checkpoint of a followed file may move past its lines; see `source::checkpoint`.
    settled_tx: Option<mpsc::UnboundedSender<Vec<Mark>>>,
    /// Where the counters, pending gauges and latencies go (`--listen`).
    metrics: Option<RobotMetrics>,
    /// New settings from a config reload (see `reload.rs`).
    updates_rx: Option<UpdateRx>,
    /// The update applied last.
    applied: Option<Arc<RobotUpdate>>,
    /// The monthly budget and this robot's index in it (`None`: no budget, as in dry-run).
    budget: Option<(SharedBudget, usize)>,
    /// What the budget last made us say ("pace", "spent"), so it is said once, not per minute.
    budget_said: Option<&'static str>,
    /// Some attempt of the message being delivered ended without a clear answer, so DingTalk
    /// may have posted (and counted) it: its count in the ledger stays.
    maybe_posted: bool,
    /// The wall clock the budget is asked with (tests put it on tokio's paused clock).
    wall: WallClock,
    /// With `coordination:`, the robot's limits shared with the fleet through Redis.
    link: Option<Arc<RobotLink>>,
    /// A shared pause was said (once per pause).
    shared_pause_said: bool,
    /// With `coordination:`, the robot's fleet-wide digest (see `fleet_digest`).
    digest: Option<FleetDigest>,
}

/// Tells the time of day (the budget's month and pace are in wall-clock time).
pub type WallClock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

pub(super) fn is_critical(alert: &Routed) -> bool {
    alert.style.severity == Some(Severity::Critical)
}

impl Dispatcher {
    /// A dispatcher reading alerts from `alerts_rx`, handing them to `fallback_tx` while its
    /// robot is throttled.
    pub fn new(
        cfg: DispatchConfig,
        sink: Sink,
        alerts_rx: mpsc::Receiver<Vec<Routed>>,
        fallback_tx: Option<mpsc::Sender<Vec<Routed>>>,
    ) -> Dispatcher {
        Dispatcher {
            limiter: SlidingWindow::new(cfg.send.rate),
            report: DeliveryReport {
                robot: cfg.robot.clone(),
                ..DeliveryReport::default()
            },
            cfg,
            sink,
            alerts_rx,
            fallback_tx,
            pending: Vec::new(),
            input_open: true,
            deadline: None,
            max_body: MAX_BODY_BYTES,
            broken: None,
            last_error: None,
            last_said: None,
            settled_tx: None,
            metrics: None,
            updates_rx: None,
            applied: None,
            budget: None,
            budget_said: None,
            maybe_posted: false,
            wall: Arc::new(SystemTime::now),
            link: None,
            shared_pause_said: false,
            digest: None,
        }
    }

    /// Takes new settings from config reloads: they apply from the next message on, to what
    /// is pending too; a robot that failed permanently is tried again at once.
    pub fn with_updates(mut self, updates_rx: UpdateRx) -> Dispatcher {
        self.updates_rx = Some(updates_rx);
        self
    }

    /// Applies the newest [`RobotUpdate`], if one came.
    pub(super) fn take_update(&mut self) {
        let Some(rx) = &mut self.updates_rx else {
            return;
        };
        let Some(update) = rx.borrow_and_update().clone() else {
            return;
        };
        if self
            .applied
            .as_ref()
            .is_some_and(|a| Arc::ptr_eq(a, &update))
        {
            return;
        }
        self.applied = Some(update.clone());
        if update.cfg.send.rate != self.cfg.send.rate {
            self.limiter = SlidingWindow::new(update.cfg.send.rate);
        }
        // The shutdown timeout is the run's, not the config's.
        let shutdown_timeout = self.cfg.shutdown_timeout;
        self.cfg = update.cfg.clone();
        self.cfg.shutdown_timeout = shutdown_timeout;
        self.sink = update.sink.clone();
        self.max_body = MAX_BODY_BYTES;
        if self.broken.take().is_some() {
            tracing::info!(robot = ?self.cfg.robot, "robot settings reloaded: trying it again");
        }
    }

    /// Feeds this robot's metrics as it works (see [`crate::metrics`]).
    pub fn with_metrics(mut self, metrics: RobotMetrics) -> Dispatcher {
        self.metrics = Some(metrics);
        self
    }

    /// Brings the metrics up to date: counters from the report, pending, pause, failing.
    pub(super) fn publish(&mut self) {
        let Some(m) = &mut self.metrics else {
            return;
        };
        m.publish(&self.report);
        m.set_pending(
            self.pending.len(),
            self.pending.iter().map(|a| a.count).sum(),
        );
        m.set_failing(self.broken.as_ref().map(|(reason, _)| reason.as_str()));
        if !self.limiter.paused(Instant::now()) {
            m.set_paused(None);
        }
    }

    /// Asks the budget with this clock instead of the system's.
    pub fn with_wall_clock(mut self, wall: WallClock) -> Dispatcher {
        self.wall = wall;
        self
    }

    /// Shares the robot's rate, throttle pause and budget with the fleet (`coordination:`).
    pub fn with_link(mut self, link: RobotLink) -> Dispatcher {
        self.link = Some(Arc::new(link));
        self
    }

    /// Sends only what the monthly `budget` allows, counting as robot `robot` in it.
    pub fn with_budget(mut self, budget: SharedBudget, robot: usize) -> Dispatcher {
        self.budget = Some((budget, robot));
        self
    }

    /// Reports settled alerts' holds to `settled_tx` (the checkpoint keeper).
    pub fn with_settled(mut self, settled_tx: mpsc::UnboundedSender<Vec<Mark>>) -> Dispatcher {
        self.settled_tx = Some(settled_tx);
        self
    }

    /// These alerts are done with (delivered, or counted as undelivered): release their holds.
    pub(super) fn settle(&self, alerts: &[Routed]) {
        if let Some(tx) = &self.settled_tx {
            let holds: Vec<Mark> = alerts
                .iter()
                .flat_map(|a| a.holds.iter().copied())
                .collect();
            if !holds.is_empty() {
                // The keeper outlives the dispatchers; if it is gone, nothing is checkpointed.
                let _ = tx.send(holds);
            }
        }
    }
}
