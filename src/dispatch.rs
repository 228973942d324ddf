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
//! - too large (460101): a rendering bug; the message is rendered again smaller.
//!
//! Edges: when its input closes (end of input or a shutdown signal) the dispatcher has
//! `shutdown_timeout` to deliver what it holds; whatever is left then is reported as not
//! delivered, with its rules, counts and the last error, never dropped silently.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use crate::aggregate::Alert;
use crate::config::{Rate, Retry, RobotConfig};
use crate::dingtalk::message::render;
use crate::dingtalk::{Client, ErrorClass, MAX_BODY_BYTES, Message, RenderContext, SendError};
use crate::metrics::RobotMetrics;
use crate::ratelimit::SlidingWindow;
use crate::reload::{RobotUpdate, UpdateRx};
use crate::source::Mark;
use crate::timezone::Zone;

/// A permanent error is logged again at most this often, however short `retry.recheck` is.
const PERMANENT_ERROR_REPEAT: Duration = Duration::from_secs(60);

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
            keyword: robot.and_then(|r| r.keyword.clone()),
            rate: robot.map(|r| r.rate).unwrap_or_default(),
            host: host.to_owned(),
            retry: robot.map(|r| r.retry).unwrap_or_default(),
            throttle_pause: robot.map_or(Duration::from_secs(600), |r| r.throttle_pause),
            shutdown_timeout,
            zone: Zone::Host,
        }
    }
}

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

    fn fail(&mut self, alerts: &[Alert], reason: &str) {
        if alerts.is_empty() {
            return;
        }
        self.messages_failed += 1;
        for a in alerts {
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
}

/// Delivers alerts to one robot; see the module docs.
pub struct Dispatcher {
    cfg: DispatchConfig,
    sink: Sink,
    alerts_rx: mpsc::Receiver<Vec<Alert>>,
    /// While throttled, alerts go here instead of waiting.
    fallback_tx: Option<mpsc::Sender<Vec<Alert>>>,
    limiter: SlidingWindow,
    pending: Vec<Alert>,
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
}

impl Dispatcher {
    /// A dispatcher reading alerts from `alerts_rx`, handing them to `fallback_tx` while its
    /// robot is throttled.
    pub fn new(
        cfg: DispatchConfig,
        sink: Sink,
        alerts_rx: mpsc::Receiver<Vec<Alert>>,
        fallback_tx: Option<mpsc::Sender<Vec<Alert>>>,
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
        m.set_failing(self.broken.is_some());
        if !self.limiter.paused(Instant::now()) {
            m.set_paused(None);
        }
    }

    /// Reports settled alerts' holds to `settled_tx` (the checkpoint keeper).
    pub fn with_settled(mut self, settled_tx: mpsc::UnboundedSender<Vec<Mark>>) -> Dispatcher {
        self.settled_tx = Some(settled_tx);
        self
    }

    /// These alerts are done with (delivered, or counted as undelivered): release their holds.
    fn settle(&self, alerts: &[Alert]) {
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
            let slot = self.next_slot();
            if !self.wait_until(slot).await {
                break;
            }
            let (message, used) = render(&self.pending, &self.render_context(), new_uuid());
            let alerts: Vec<Alert> = self.pending.drain(..used).collect();
            match self.deliver(&message).await {
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
                }
                Outcome::Failed(reason) => {
                    self.report.fail(&alerts, &reason);
                    self.settle(&alerts);
                }
                Outcome::TimedOut => {
                    self.requeue(alerts);
                    break;
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
    fn requeue(&mut self, alerts: Vec<Alert>) {
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
        loop {
            let slot = self.limiter.next_slot(Instant::now());
            if !self.wait_until(slot).await {
                return Outcome::TimedOut;
            }
            let attempt = {
                let (client, robot, body) = (client.clone(), robot.clone(), message.body.clone());
                async move { client.post(&robot, body).await }
            };
            let result = self.race(attempt).await;
            self.limiter.record(Instant::now());
            let error = match result {
                None => return Outcome::TimedOut,
                Some(Ok(_)) => {
                    tracing::debug!(robot = %robot.name, rules = ?message.rules, count = message.count, "message delivered");
                    return Outcome::Delivered;
                }
                Some(Err(e)) => e,
            };
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

    fn on_receive(&mut self, batch: Option<Vec<Alert>>) {
        match batch {
            Some(alerts) => self.merge(alerts),
            None => {
                self.input_open = false;
                self.deadline = Some(Instant::now() + self.cfg.shutdown_timeout);
            }
        }
    }

    /// Folds alerts into pending: one entry per rule, counts added.
    fn merge(&mut self, alerts: Vec<Alert>) {
        for alert in alerts {
            match self.pending.iter_mut().find(|p| p.same_stream(&alert)) {
                Some(p) => p.merge(alert),
                None => self.pending.push(alert),
            }
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
    use crate::aggregate::Sample;

    fn alert(rule: usize, count: u64) -> Alert {
        Alert {
            rule,
            rule_name: Arc::from(format!("rule-{rule}")),
            robot: None,
            count,
            first: SystemTime::now(),
            last: SystemTime::now(),
            source: "-".into(),
            samples: vec![Sample::from_line(b"line")],
            holds: Vec::new(),
            silenced: 0,
            max_lines: 3,
            group: None,
            kind: crate::aggregate::AlertKind::Hits,
            captures: Vec::new(),
            style: Arc::new(crate::dingtalk::style::Style::default()),
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
}
