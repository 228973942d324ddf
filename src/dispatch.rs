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

use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};

use crate::aggregate::Routed;
use crate::budget::month::shanghai_time;
use crate::budget::{SharedBudget, Verdict};
use crate::config::{Rate, Retry, RobotConfig, SendSettings};
pub use crate::delivery_report::DeliveryReport;
use crate::dingtalk::message::render;
use crate::dingtalk::{Client, ErrorClass, MAX_BODY_BYTES, Message, RenderContext, SendError};
use crate::fleet::{RobotLink, Slot};
use crate::metrics::RobotMetrics;
use crate::ratelimit::SlidingWindow;
use crate::source::Mark;
use crate::style::Severity;
use crate::timezone::Zone;

/// A permanent error is logged again at most this often, however short `retry.recheck` is.
const PERMANENT_ERROR_REPEAT: Duration = Duration::from_secs(60);

/// A robot held back by its budget asks again at least this often: the wall clock may be set,
/// and the month turns.
const BUDGET_RECHECK: Duration = Duration::from_secs(60);

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
    /// Put into every message when set.
    pub keyword: Option<String>,
    /// The robot's rate.
    pub rate: Rate,
    /// This machine's name, for message headers.
    pub host: String,
    /// Backoff for failures.
    pub retry: Retry,
    /// How long to leave a robot alone after DingTalk said "too fast".
    pub throttle_pause: Duration,
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
        let SendSettings {
            keyword,
            rate,
            retry,
            throttle_pause,
        } = robot.map(|r| r.send.clone()).unwrap_or_default();
        DispatchConfig {
            robot: robot.map(|r| r.name.clone()),
            keyword,
            rate,
            host: host.to_owned(),
            retry,
            throttle_pause,
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

/// The dry-run line: what would be sent, to whom, and what it accounts for.
#[derive(Serialize)]
struct DryRunLine<'a> {
    robot: Option<&'a str>,
    rules: &'a [String],
    count: u64,
    body: &'a RawValue,
}

/// How one message ended.
enum Outcome {
    Delivered,
    /// Not posted: its alerts go back to pending (throttled, or too large and to be re-rendered).
    Requeue,
    /// The robot refuses everything until someone fixes it: alerts go back to pending, the robot
    /// rests until a recheck.
    Broken(String),
    /// Cannot be delivered at all (dry-run output failed).
    Failed(String),
    /// The shutdown deadline passed.
    TimedOut,
    /// DingTalk says the monthly quota is used up: alerts go back to pending, the robot stops
    /// until the month turns.
    Spent(String),
}

/// What the budget lets the dispatcher do with what it holds.
enum Gate {
    /// Send (the rate limit permitting).
    Go,
    /// Rest (merging) until then, and ask again.
    Wait(Instant),
    /// The input has ended and the budget is spent: report what is held as not delivered.
    GiveUp(String),
}

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
}

/// Tells the time of day (the budget's month and pace are in wall-clock time).
pub type WallClock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

fn is_critical(alert: &Routed) -> bool {
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
            limiter: SlidingWindow::new(cfg.rate),
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
        }
    }

    /// Takes new settings from config reloads: they apply from the next message on, to what
    /// is pending too; a robot that failed permanently is tried again at once.
    pub fn with_updates(mut self, updates_rx: UpdateRx) -> Dispatcher {
        self.updates_rx = Some(updates_rx);
        self
    }

    /// Applies the newest [`RobotUpdate`], if one came.
    fn take_update(&mut self) {
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
        if update.cfg.rate != self.cfg.rate {
            self.limiter = SlidingWindow::new(update.cfg.rate);
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
    fn publish(&mut self) {
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
    fn settle(&self, alerts: &[Routed]) {
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

    /// Runs until the input closes and everything is delivered or the deadline passes.
    pub async fn run(mut self) -> DeliveryReport {
        // With coordination, the budget starts from the fleet's counts (see `RobotLink`).
        if let (Some(link), Some((budget, robot))) = (&self.link, &self.budget) {
            link.load_budget(budget, *robot).await;
        }
        loop {
            self.take_update();
            self.publish();
            if self.pending.is_empty() {
                if !self.input_open {
                    break;
                }
                let batch = self.alerts_rx.recv().await;
                self.on_receive(batch);
                continue;
            }
            while let Ok(batch) = self.alerts_rx.try_recv() {
                self.merge(batch);
            }
            if self.limiter.paused(Instant::now()) && self.forward_to_fallback().await {
                continue;
            }
            if let Some((reason, recheck_at)) = self.broken.clone() {
                if !self.input_open {
                    let alerts = std::mem::take(&mut self.pending);
                    self.report.fail(&alerts, &reason);
                    self.settle(&alerts);
                    continue;
                }
                self.rest_until(recheck_at).await;
                if !self.input_open {
                    continue;
                }
            }
            match self.budget_gate() {
                Gate::Go => {}
                Gate::Wait(until) => {
                    self.rest_until(until).await;
                    continue;
                }
                Gate::GiveUp(reason) => {
                    let alerts = std::mem::take(&mut self.pending);
                    self.report.fail(&alerts, &reason);
                    self.settle(&alerts);
                    continue;
                }
            }
            let slot = self.next_slot();
            if !self.wait_until(slot).await {
                break;
            }
            self.critical_first();
            let (message, used) = render(&self.pending, &self.render_context(), new_uuid());
            let alerts: Vec<Routed> = self.pending.drain(..used).collect();
            let counted = (self.wall)();
            if let Some((budget, robot)) = &self.budget {
                let critical = alerts.iter().any(is_critical);
                let taken = match &self.link {
                    Some(link) => {
                        link.take_budget(budget, *robot, critical, self.input_open, counted)
                            .await
                    }
                    None => {
                        budget.try_record(*robot, critical, self.input_open, counted)
                            == Verdict::Now
                    }
                };
                if !taken {
                    // Another robot took the last of the budget meanwhile: ask again.
                    self.requeue(alerts);
                    continue;
                }
            }
            let outcome = self.deliver(&message).await;
            if matches!(
                outcome,
                Outcome::Requeue | Outcome::Broken(_) | Outcome::Spent(_)
            ) {
                self.refund(counted).await;
            }
            match outcome {
                Outcome::Delivered => {
                    if self.broken.take().is_some() {
                        tracing::info!(robot = ?self.cfg.robot, "robot accepts messages again");
                    }
                    self.report.messages_sent += 1;
                    self.report.events_sent += message.count;
                    if let (Some(m), Some(first)) =
                        (&self.metrics, alerts.iter().map(|a| a.first).min())
                    {
                        let latency = std::time::SystemTime::now().duration_since(first);
                        m.record_latency(latency.unwrap_or_default());
                    }
                    self.settle(&alerts);
                }
                Outcome::Requeue => self.requeue(alerts),
                Outcome::Broken(reason) => {
                    self.requeue(alerts);
                    self.broken = Some((reason, Instant::now() + self.cfg.retry.recheck));
                    self.publish();
                }
                Outcome::Failed(reason) => {
                    self.report.fail(&alerts, &reason);
                    self.settle(&alerts);
                }
                Outcome::TimedOut => {
                    self.requeue(alerts);
                    break;
                }
                Outcome::Spent(why) => {
                    self.requeue(alerts);
                    if let (Some((budget, robot)), Some(link)) = (&self.budget, &self.link) {
                        link.mark_spent(budget, *robot, &why).await;
                    } else if let Some((budget, robot)) = &self.budget {
                        budget.mark_spent(*robot, &why, (self.wall)());
                    } else {
                        // No ledger to remember it: hold the robot like a broken one.
                        self.broken = Some((why, Instant::now() + self.cfg.retry.recheck));
                    }
                }
            }
        }
        let left = std::mem::take(&mut self.pending);
        let reason = match &self.last_error {
            Some(e) => format!("not delivered before the shutdown timeout (last error: {e})"),
            None => "not delivered before the shutdown timeout".to_owned(),
        };
        self.report.fail(&left, &reason);
        self.settle(&left);
        self.publish();
        self.report
    }

    /// Asks the budget about what is pending; see [`Gate`].
    fn budget_gate(&mut self) -> Gate {
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
    fn critical_first(&mut self) {
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
    async fn refund(&self, counted: SystemTime) {
        if let Some((budget, robot)) = &self.budget
            && !self.maybe_posted
        {
            match &self.link {
                Some(link) => link.refund(budget, *robot, counted).await,
                None => budget.refund(*robot, counted, (self.wall)()),
            }
        }
    }

    /// Takes a place in the fleet's window for the robot (`Ok(None)` without coordination, or
    /// counted locally in fallback), waiting (and merging) while the window is full. A pause
    /// told to another instance pauses this one too: `Err(Requeue)`, and the main loop holds or
    /// forwards as after its own 130101.
    async fn shared_slot(&mut self) -> Result<Option<String>, Outcome> {
        let Some(link) = self.link.clone() else {
            return Ok(None);
        };
        loop {
            let l = link.clone();
            match self.race(async move { l.acquire().await }).await {
                None => return Err(Outcome::TimedOut),
                Some(Slot::Granted(place)) => {
                    self.shared_pause_said = false;
                    return Ok(place);
                }
                Some(Slot::Wait(wait)) => {
                    if !self.wait_until(Instant::now() + wait).await {
                        return Err(Outcome::TimedOut);
                    }
                }
                Some(Slot::Paused(pause)) => {
                    if !std::mem::replace(&mut self.shared_pause_said, true) {
                        tracing::warn!(robot = ?self.cfg.robot, ?pause, "robot throttled by DingTalk (told to another instance of the fleet), pausing it");
                    }
                    self.limiter.pause(Instant::now() + pause);
                    if let Some(m) = &self.metrics {
                        m.set_paused(Some(std::time::SystemTime::now() + pause));
                    }
                    return Err(Outcome::Requeue);
                }
            }
        }
    }

    fn render_context(&self) -> RenderContext<'_> {
        RenderContext {
            host: &self.cfg.host,
            keyword: self.cfg.keyword.as_deref(),
            max_body: self.max_body,
            zone: self.cfg.zone,
        }
    }

    fn next_slot(&self) -> Instant {
        match self.sink {
            Sink::DryRun(_) => Instant::now(),
            Sink::Post { .. } => self.limiter.next_slot(Instant::now()),
        }
    }

    /// Puts alerts of an unsent message back in front of what arrived since.
    fn requeue(&mut self, alerts: Vec<Routed>) {
        let later = std::mem::replace(&mut self.pending, alerts);
        self.merge(later);
    }

    /// Hands everything pending to the fallback robot; false when there is none (or it is gone).
    async fn forward_to_fallback(&mut self) -> bool {
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

    /// Sends one message, retrying what can be retried, receiving alerts all the while.
    async fn deliver(&mut self, message: &Message) -> Outcome {
        let (client, robot) = match &self.sink {
            Sink::DryRun(out) => return dry_run(out, self.cfg.robot.as_deref(), message),
            Sink::Post { client, robot } => (client.clone(), robot.clone()),
        };
        let mut backoff = self.cfg.retry.initial;
        self.maybe_posted = false;
        loop {
            let slot = self.limiter.next_slot(Instant::now());
            if !self.wait_until(slot).await {
                return Outcome::TimedOut;
            }
            let place = match self.shared_slot().await {
                Ok(place) => place,
                Err(outcome) => return outcome,
            };
            let attempt = {
                let (client, robot, body) = (client.clone(), robot.clone(), message.body.clone());
                async move { client.post(&robot.endpoint, body).await }
            };
            let result = self.race(attempt).await;
            self.limiter.record(Instant::now());
            if let Some(link) = &self.link {
                link.completed(place).await;
            }
            let error = match result {
                None => return Outcome::TimedOut,
                Some(Ok(_)) => {
                    tracing::debug!(robot = %robot.name, rules = ?message.rules, count = message.count, "message delivered");
                    return Outcome::Delivered;
                }
                Some(Err(e)) => e,
            };
            // Only an errcode answer is a sure refusal; anything else may have been posted.
            self.maybe_posted |= !matches!(error, SendError::Api { .. });
            self.last_error = Some(error.to_string());
            if let (Some(m), SendError::Api { errcode, .. }) = (&self.metrics, &error) {
                m.record_errcode(*errcode);
            }
            match error.class() {
                ErrorClass::Retryable => {
                    if let Some(m) = &self.metrics {
                        m.record_retry();
                    }
                    let wait = jitter(backoff);
                    tracing::warn!(robot = %robot.name, retry_in = ?wait, "delivery failed, will retry: {error}");
                    if !self.wait_until(Instant::now() + wait).await {
                        return Outcome::TimedOut;
                    }
                    backoff = (backoff * 2).min(self.cfg.retry.max);
                }
                ErrorClass::Throttled => {
                    let pause = self.cfg.throttle_pause;
                    let to = if self.fallback_tx.is_some() {
                        "alerts go to the fallback robot"
                    } else {
                        "alerts keep gathering"
                    };
                    tracing::warn!(robot = %robot.name, ?pause, "robot throttled by DingTalk, pausing it ({to}): {error}");
                    self.limiter.pause(Instant::now() + pause);
                    if let Some(link) = &self.link {
                        link.pause(pause).await;
                    }
                    if let Some(m) = &self.metrics {
                        m.set_paused(Some(std::time::SystemTime::now() + pause));
                    }
                    return Outcome::Requeue;
                }
                ErrorClass::TooLarge => {
                    tracing::error!(robot = %robot.name, body_bytes = message.body.len(), "message too large, shrinking and resending (a dingtail bug): {error}");
                    self.max_body = (self.max_body * 3 / 4).max(2_000);
                    return Outcome::Requeue;
                }
                ErrorClass::QuotaSpent => {
                    tracing::error!(robot = %robot.name, "DingTalk says the monthly quota is used up: {error}; the robot sends nothing more this month, its alerts are held and reported at exit");
                    return Outcome::Spent(error.to_string());
                }
                ErrorClass::Permanent => {
                    let now = Instant::now();
                    if self
                        .last_said
                        .is_none_or(|t| now >= t + PERMANENT_ERROR_REPEAT)
                    {
                        self.last_said = Some(now);
                        let recheck = self.cfg.retry.recheck;
                        tracing::error!(robot = %robot.name, ?recheck, "{error}; holding this robot's alerts and trying it again later");
                    }
                    return Outcome::Broken(format!("robot {}: {error}", robot.name));
                }
            }
        }
    }

    /// Waits until `t`, receiving alerts meanwhile. False when the deadline came first.
    async fn wait_until(&mut self, t: Instant) -> bool {
        self.race(sleep_until(t)).await.is_some()
    }

    /// A broken robot rests until its recheck, receiving alerts; the rest ends early when the
    /// input closes (nothing more will come to make the recheck worth waiting for).
    async fn rest_until(&mut self, t: Instant) {
        let mut updates_rx = self.updates_rx.take();
        while self.input_open && Instant::now() < t {
            let update = async {
                match &mut updates_rx {
                    Some(rx) => rx.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = sleep_until(t) => {}
                true = update => break,
                batch = self.alerts_rx.recv() => self.on_receive(batch),
            }
        }
        self.updates_rx = updates_rx;
        self.take_update();
    }

    /// Runs `fut` to completion while receiving alerts; `None` if the deadline passes first.
    async fn race<F: Future>(&mut self, fut: F) -> Option<F::Output> {
        tokio::pin!(fut);
        loop {
            let deadline = self.deadline;
            let far = Instant::now() + Duration::from_secs(86_400 * 365);
            tokio::select! {
                out = &mut fut => return Some(out),
                batch = self.alerts_rx.recv(), if self.input_open => self.on_receive(batch),
                _ = sleep_until(deadline.unwrap_or(far)), if deadline.is_some() => return None,
            }
        }
    }

    fn on_receive(&mut self, batch: Option<Vec<Routed>>) {
        match batch {
            Some(alerts) => self.merge(alerts),
            None => {
                self.input_open = false;
                let timeout = self.cfg.shutdown_timeout;
                self.deadline = Some(
                    *self
                        .cfg
                        .shutdown_deadline
                        .get_or_init(|| Instant::now() + timeout),
                );
            }
        }
    }

    /// Folds alerts into pending: one entry per rule, counts added.
    fn merge(&mut self, alerts: Vec<Routed>) {
        let mut surplus = Vec::new();
        for alert in alerts {
            match self.pending.iter_mut().find(|p| p.same_stream(&alert)) {
                Some(p) => surplus.extend(p.merge(alert)),
                None => self.pending.push(alert),
            }
        }
        if let (Some(tx), false) = (&self.settled_tx, surplus.is_empty()) {
            let _ = tx.send(surplus);
        }
    }
}

fn dry_run(out: &Mutex<dyn Write + Send>, robot: Option<&str>, message: &Message) -> Outcome {
    let body = RawValue::from_string(message.body.clone()).expect("rendered body is JSON");
    let line = DryRunLine {
        robot,
        rules: &message.rules,
        count: message.count,
        body: &body,
    };
    let mut text = serde_json::to_string(&line).expect("serializable");
    text.push('\n');
    let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Outcome::Delivered,
        Err(e) => Outcome::Failed(format!("cannot write dry-run output: {e}")),
    }
}

fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// ±20% so that many dingtails retrying after one outage do not retry in step.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(0.8 + fastrand::f64() * 0.4)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::SystemTime;

    use super::*;
    use crate::alert::{Alert, AlertKind, Sample};

    fn alert(rule: usize, count: u64) -> Routed {
        let alert = Alert {
            rule,
            rule_name: Arc::from(format!("rule-{rule}")),
            count,
            first: SystemTime::now(),
            last: SystemTime::now(),
            source: "-".into(),
            other_sources: Vec::new(),
            samples: vec![Sample::from_line(b"line")],
            silenced: 0,
            max_lines: 3,
            group: None,
            kind: AlertKind::Hits,
            captures: Vec::new(),
            style: Arc::new(crate::style::Style::default()),
            route: None,
        };
        Routed {
            alert,
            robot: None,
            holds: Vec::new(),
        }
    }

    fn config() -> DispatchConfig {
        DispatchConfig::new(None, "h", Duration::from_secs(10))
    }

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_storm_arriving_together_becomes_one_digest_with_exact_counts() {
        let out = Shared::default();
        let (tx, rx) = mpsc::channel(4);
        let d = Dispatcher::new(
            config(),
            Sink::DryRun(Arc::new(Mutex::new(out.clone()))),
            rx,
            None,
        );
        let task = tokio::spawn(d.run());
        tx.send((0..200).map(|r| alert(r, r as u64 + 1)).collect())
            .await
            .unwrap();
        drop(tx);
        let report = task.await.unwrap();
        let total: u64 = (1..=200).sum();
        assert_eq!(report.events_sent, total);
        assert_eq!(report.events_failed_total(), 0);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(lines.len() <= 3, "{} messages", lines.len());
        let counted: u64 = lines.iter().map(|l| l["count"].as_u64().unwrap()).sum();
        assert_eq!(counted, total);
        assert_eq!(lines[0]["robot"], serde_json::Value::Null);
        assert_eq!(lines[0]["body"]["msgtype"], "text");
    }

    #[tokio::test(start_paused = true)]
    async fn alerts_of_one_rule_merge_while_waiting() {
        let (tx, rx) = mpsc::channel(4);
        let out = Shared::default();
        let mut d = Dispatcher::new(config(), Sink::DryRun(Arc::new(Mutex::new(out))), rx, None);
        d.merge(vec![alert(1, 5), alert(2, 1)]);
        d.merge(vec![alert(1, 7)]);
        assert_eq!(d.pending.len(), 2);
        assert_eq!(d.pending[0].count, 12);
        drop(tx);
    }

    /// Records each write (one dry-run line) with the time on tokio's clock.
    #[derive(Clone, Default)]
    struct Timed(Arc<Mutex<Vec<(Instant, String)>>>);
    impl Write for Timed {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let text = String::from_utf8_lossy(b).into_owned();
            self.0.lock().unwrap().push((Instant::now(), text));
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The budget in the dispatcher, on tokio's paused clock through a whole November: a budget
    /// of 30 (3 kept for critical rules), storms of 60 rules an hour for days, quiet days, and
    /// critical alerts in the middle of storms; the input ends on December 1st.
    #[tokio::test(start_paused = true)]
    async fn on_the_simulated_clock_a_month_of_storms_keeps_to_the_budget_and_loses_nothing() {
        use crate::budget::{Budget, Ledger, Month};
        use crate::config::{Quota, Reserve};
        use crate::style::Style;

        let nov = Month {
            year: 2026,
            month: 11,
        };
        let t0 = Instant::now();
        let wall0 = nov.start();
        let wall: WallClock = Arc::new(move || wall0 + (Instant::now() - t0));
        let quota = Quota {
            monthly: 30,
            reserve: Reserve::Count(3),
            robot_monthly: Vec::new(),
        };
        let budget = SharedBudget::new(
            Budget::new(&quota, &["ops".to_owned()], Ledger::default()),
            None,
        );
        let out = Timed::default();
        let (tx, rx) = mpsc::channel(64);
        let d = Dispatcher::new(
            config(),
            Sink::DryRun(Arc::new(Mutex::new(out.clone()))),
            rx,
            None,
        )
        .with_budget(budget.clone(), 0)
        .with_wall_clock(wall.clone());
        let task = tokio::spawn(d.run());

        let critical = Arc::new(Style {
            severity: Some(Severity::Critical),
            ..Style::default()
        });
        let storm_days = [0, 1, 2, 10, 11, 20];
        let critical_at = [(1, 12), (5, 3), (11, 12), (20, 12)];
        let (mut generated, mut critical_sent_at) = (0u64, Vec::new());
        for hour in 0..30 * 24 {
            let (day, h) = (hour / 24, hour % 24);
            let mut batch = Vec::new();
            if storm_days.contains(&day) {
                batch.extend((0..60).map(|r| alert(r, 1 + (r as u64 % 3))));
            } else if h % 6 == 0 {
                batch.push(alert(0, 1));
            }
            if critical_at.contains(&(day, h)) {
                let mut a = alert(100, 1);
                a.style = critical.clone();
                batch.push(a);
                critical_sent_at.push(Instant::now());
            }
            generated += batch.iter().map(|a| a.count).sum::<u64>();
            tx.send(batch).await.unwrap();
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        // The month turns; then the input ends.
        assert!(wall() >= nov.end());
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(tx);
        let report = task.await.unwrap();

        let lines = out.0.lock().unwrap().clone();
        let parsed: Vec<(Instant, serde_json::Value)> = lines
            .iter()
            .map(|(t, l)| (*t, serde_json::from_str(l).unwrap()))
            .collect();
        let november: Vec<&(Instant, serde_json::Value)> = parsed
            .iter()
            .filter(|(t, _)| wall0 + (*t - t0) < nov.end())
            .collect();
        assert!(
            november.len() <= 30,
            "{} messages in November",
            november.len()
        );
        let ordinary = november
            .iter()
            .filter(|(_, v)| !v["rules"].as_array().unwrap().contains(&"rule-100".into()))
            .count();
        assert!(
            ordinary <= 27,
            "ordinary rules ate into the reserve: {ordinary}"
        );
        // Never ahead of the pace by more than a day's share (1) and the reserve (3).
        for (i, (t, _)) in november.iter().enumerate() {
            let e = nov.elapsed_ms(wall0 + (*t - t0)) as u128;
            let pace = (27 * e / nov.len_ms() as u128) as usize;
            assert!(i < pace + 1 + 3, "message {} ran ahead of the pace", i + 1);
        }
        // Every critical alert went out at the moment it arrived, storm or not.
        for at in &critical_sent_at {
            assert!(
                parsed
                    .iter()
                    .any(|(t, v)| t == at
                        && v["rules"].as_array().unwrap().contains(&"rule-100".into())),
                "a critical alert waited"
            );
        }
        // Every count is in some message, and the storms were merged into few.
        let counted: u64 = parsed
            .iter()
            .map(|(_, v)| v["count"].as_u64().unwrap())
            .sum();
        assert_eq!(counted, generated);
        assert_eq!(report.events_sent, generated);
        assert_eq!(report.events_failed_total(), 0);
        assert!(
            november.len() >= 20,
            "the budget was used: {}",
            november.len()
        );
        // December's ledger holds only December's messages.
        let status = budget.status(wall());
        assert_eq!(status.month, "2026-12");
        assert_eq!(status.used as usize, parsed.len() - november.len());
    }
}
