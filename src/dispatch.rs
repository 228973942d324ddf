//! One dispatcher per robot: rate limit, merging, rendering, posting, retries, accounting.
//!
//! The dispatcher never sends faster than its robot allows ([`SlidingWindow`]). While it waits, for
//! a slot, a retry or an answer, it keeps receiving alerts and merges them into what is pending
//! (one entry per rule, exact counts, bounded samples), so a storm becomes a few digest messages
//! and upstream stages are never held back by a slow or absent DingTalk.
//!
//! A message in flight is immutable: a retry resends the very same body with the same `msgUuid`,
//! so DingTalk drops the copy if the first attempt did arrive. Alerts that arrive meanwhile go
//! into the next message.
//!
//! Edges: when its input closes (end of input or shutdown) the dispatcher has its rate-limit wait
//! plus `shutdown_timeout` to deliver what it holds; whatever is left then is reported as not
//! delivered, with its rules and counts, never dropped silently. A permanent error (bad token,
//! bad secret, disabled robot) stops sending to that robot (no hammering) and every later alert for
//! it is reported as not delivered, with the reason. "Sending too fast" pauses the robot for
//! `throttle_pause` and keeps gathering.

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
use crate::config::{Rate, RobotConfig};
use crate::dingtalk::message::render_text;
use crate::dingtalk::{Client, ErrorClass, MAX_BODY_BYTES, Message, RenderContext};
use crate::ratelimit::SlidingWindow;

/// Backoff between retries of one message.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// First wait.
    pub initial: Duration,
    /// Longest wait; the wait doubles up to this.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

/// Where messages go.
#[derive(Clone)]
pub enum Sink {
    /// POST to the robot.
    Post {
        /// The HTTP client.
        client: Client,
        /// The robot (webhook and secret).
        robot: RobotConfig,
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
    /// Backoff for retryable failures.
    pub retry: RetryPolicy,
    /// How long to leave a robot alone after DingTalk said "too fast".
    pub throttle_pause: Duration,
    /// Time allowed after input ends, beyond waiting for the rate limit.
    pub shutdown_timeout: Duration,
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
    /// Not posted; its alerts go back to pending (throttled, or too large and to be re-rendered).
    Requeue,
    /// Given up on, with the reason; `permanent` stops all sending to the robot.
    Failed {
        reason: String,
        permanent: bool,
    },
    /// The shutdown deadline passed.
    TimedOut,
}

/// Delivers alerts to one robot; see the module docs.
pub struct Dispatcher {
    cfg: DispatchConfig,
    sink: Sink,
    alerts_rx: mpsc::Receiver<Vec<Alert>>,
    limiter: SlidingWindow,
    pending: Vec<Alert>,
    input_open: bool,
    deadline: Option<Instant>,
    max_body: usize,
    /// Set after a permanent error: why nothing more is sent.
    disabled: Option<String>,
    report: DeliveryReport,
}

impl Dispatcher {
    /// A dispatcher reading alerts from `alerts_rx`.
    pub fn new(
        cfg: DispatchConfig,
        sink: Sink,
        alerts_rx: mpsc::Receiver<Vec<Alert>>,
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
            pending: Vec::new(),
            input_open: true,
            deadline: None,
            max_body: MAX_BODY_BYTES,
            disabled: None,
        }
    }

    /// Runs until the input closes and everything is delivered or the deadline passes.
    pub async fn run(mut self) -> DeliveryReport {
        loop {
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
            if let Some(reason) = self.disabled.clone() {
                let alerts = std::mem::take(&mut self.pending);
                self.report.fail(&alerts, &reason);
                continue;
            }
            let slot = self.next_slot();
            if !self.wait_until(slot).await {
                break;
            }
            let (message, used) = render_text(&self.pending, &self.render_context(), new_uuid());
            let alerts: Vec<Alert> = self.pending.drain(..used).collect();
            match self.deliver(&message).await {
                Outcome::Delivered => {
                    self.report.messages_sent += 1;
                    self.report.events_sent += message.count;
                }
                Outcome::Requeue => {
                    let later = std::mem::replace(&mut self.pending, alerts);
                    self.merge(later);
                }
                Outcome::Failed { reason, permanent } => {
                    self.report.fail(&alerts, &reason);
                    if permanent {
                        self.disabled = Some(reason);
                    }
                }
                Outcome::TimedOut => {
                    self.pending.splice(0..0, alerts);
                    break;
                }
            }
        }
        let left = std::mem::take(&mut self.pending);
        self.report
            .fail(&left, "not delivered before the shutdown timeout");
        self.report
    }

    fn render_context(&self) -> RenderContext<'_> {
        RenderContext {
            host: &self.cfg.host,
            keyword: self.cfg.keyword.as_deref(),
            max_body: self.max_body,
        }
    }

    fn next_slot(&self) -> Instant {
        match self.sink {
            Sink::DryRun(_) => Instant::now(),
            Sink::Post { .. } => self.limiter.next_slot(Instant::now()),
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
            match error.class() {
                ErrorClass::Retryable => {
                    let wait = jitter(backoff);
                    tracing::warn!(robot = %robot.name, retry_in = ?wait, "delivery failed, will retry: {error}");
                    if !self.wait_until(Instant::now() + wait).await {
                        return Outcome::TimedOut;
                    }
                    backoff = (backoff * 2).min(self.cfg.retry.max);
                }
                ErrorClass::Throttled => {
                    tracing::warn!(robot = %robot.name, pause = ?self.cfg.throttle_pause, "robot throttled by DingTalk, pausing it: {error}");
                    self.limiter.pause(Instant::now() + self.cfg.throttle_pause);
                    return Outcome::Requeue;
                }
                ErrorClass::TooLarge => {
                    tracing::error!(robot = %robot.name, body_bytes = message.body.len(), "message too large, shrinking and resending (a dingtail bug): {error}");
                    self.max_body = (self.max_body * 3 / 4).max(2_000);
                    return Outcome::Requeue;
                }
                ErrorClass::Permanent => {
                    let reason = format!("robot {}: {error}", robot.name);
                    tracing::error!(robot = %robot.name, "{error}; no more messages go to this robot");
                    return Outcome::Failed {
                        reason,
                        permanent: true,
                    };
                }
            }
        }
    }

    /// Waits until `t`, receiving alerts meanwhile. False when the deadline came first.
    async fn wait_until(&mut self, t: Instant) -> bool {
        self.race(sleep_until(t)).await.is_some()
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
                let now = Instant::now();
                let rate_wait = match self.sink {
                    Sink::DryRun(_) => Duration::ZERO,
                    Sink::Post { .. } => self.limiter.next_rate_slot(now) - now,
                };
                self.deadline = Some(now + rate_wait + self.cfg.shutdown_timeout);
            }
        }
    }

    /// Folds alerts into pending: one entry per rule, counts added.
    fn merge(&mut self, alerts: Vec<Alert>) {
        for alert in alerts {
            match self.pending.iter_mut().find(|p| p.rule == alert.rule) {
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
        Err(e) => Outcome::Failed {
            reason: format!("cannot write dry-run output: {e}"),
            permanent: true,
        },
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
            max_lines: 3,
        }
    }

    fn config() -> DispatchConfig {
        DispatchConfig {
            robot: None,
            keyword: None,
            rate: Rate::default(),
            host: "h".into(),
            retry: RetryPolicy::default(),
            throttle_pause: Duration::from_secs(600),
            shutdown_timeout: Duration::from_secs(10),
        }
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
        let mut d = Dispatcher::new(config(), Sink::DryRun(Arc::new(Mutex::new(out))), rx);
        d.merge(vec![alert(1, 5), alert(2, 1)]);
        d.merge(vec![alert(1, 7)]);
        assert_eq!(d.pending.len(), 2);
        assert_eq!(d.pending[0].count, 12);
        drop(tx);
    }
}
