//! Posting one message: a place in the shared window, the POST, and what each kind of failure
//! means (retry with backoff, pause after a throttle, shrink, rest a broken robot, stop for the
//! month); and the dry-run writer.

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;
use tokio::time::Instant;

use super::{Dispatcher, Sink};
use crate::dingtalk::{ErrorClass, Message, SendError};
use crate::fleet::Slot;

/// A permanent error is logged again at most this often, however short `retry.recheck` is.
const PERMANENT_ERROR_REPEAT: Duration = Duration::from_secs(60);

/// The dry-run line: what would be sent, to whom, and what it accounts for.
#[derive(Serialize)]
struct DryRunLine<'a> {
    robot: Option<&'a str>,
    rules: &'a [String],
    count: u64,
    body: &'a RawValue,
}

/// How one message ended.
pub(super) enum Outcome {
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

impl Dispatcher {
    /// Takes a place in the fleet's window for the robot (`Ok(None)` without coordination, or
    /// counted locally in fallback), waiting (and merging) while the window is full. A pause
    /// told to another instance pauses this one too: `Err(Requeue)`, and the main loop holds or
    /// forwards as after its own 130101.
    pub(super) async fn shared_slot(&mut self) -> Result<Option<String>, Outcome> {
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

    /// Sends one message, retrying what can be retried, receiving alerts all the while.
    pub(super) async fn deliver(&mut self, message: &Message) -> Outcome {
        let (client, robot) = match &self.sink {
            Sink::DryRun(out) => return dry_run(out, self.cfg.robot.as_deref(), message),
            Sink::Post { client, robot } => (client.clone(), robot.clone()),
        };
        let mut backoff = self.cfg.send.retry.initial;
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
                    backoff = (backoff * 2).min(self.cfg.send.retry.max);
                }
                ErrorClass::Throttled => {
                    let pause = self.cfg.send.throttle_pause;
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
                        let recheck = self.cfg.send.retry.recheck;
                        tracing::error!(robot = %robot.name, ?recheck, "{error}; holding this robot's alerts and trying it again later");
                    }
                    return Outcome::Broken(format!("robot {}: {error}", robot.name));
                }
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

pub(super) fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// ±20% so that many dingtails retrying after one outage do not retry in step.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(0.8 + fastrand::f64() * 0.4)
}
