//! The sender loop: gathers and merges alerts, asks the budget and the rate limit when the next
//! message may go, renders it and settles its alerts by how it ended; and the waits that keep
//! receiving alerts meanwhile (see the module docs of [`crate::dispatch`]).

use std::future::Future;
use std::time::Duration;

use tokio::time::{Instant, sleep_until};

use super::budget_gate::Gate;
use super::deliver::{Outcome, new_uuid};
use super::fleet_digest::Turn;
use super::{DeliveryReport, Dispatcher, Sink, is_critical};
use crate::aggregate::Routed;
use crate::budget::Verdict;
use crate::dingtalk::RenderContext;
use crate::dingtalk::message::render;

impl Dispatcher {
    /// Runs until the input closes and everything is delivered or the deadline passes.
    pub async fn run(mut self) -> DeliveryReport {
        // With coordination, the budget starts from the fleet's counts (see `RobotLink`).
        if let (Some(link), Some((budget, robot))) = (&self.link, &self.budget) {
            link.load_budget(budget, *robot).await;
        }
        loop {
            self.take_update();
            self.publish();
            if self.digest.is_some() {
                self.hand_to_fleet().await;
                if self.pending.is_empty() {
                    match self.fleet_turn().await {
                        Turn::Again => continue,
                        Turn::Done => break,
                    }
                }
                // The stream is full and everyone may be sending their own: the sender posts a
                // due batch first, so the stream drains too.
                if self.fleet_full() && matches!(self.fleet_turn_between().await, Turn::Done) {
                    break;
                }
            }
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
                    self.broken = Some((reason, Instant::now() + self.cfg.send.retry.recheck));
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
                        self.broken = Some((why, Instant::now() + self.cfg.send.retry.recheck));
                    }
                }
            }
        }
        self.leave_fleet().await;
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

    pub(super) fn render_context(&self) -> RenderContext<'_> {
        RenderContext {
            host: &self.cfg.host,
            keyword: self.cfg.send.keyword.as_deref(),
            max_body: self.max_body,
            zone: self.cfg.zone,
            hosts: None,
        }
    }

    pub(super) fn next_slot(&self) -> Instant {
        match self.sink {
            Sink::DryRun(_) => Instant::now(),
            Sink::Post { .. } => self.limiter.next_slot(Instant::now()),
        }
    }

    /// Puts alerts of an unsent message back in front of what arrived since.
    pub(super) fn requeue(&mut self, alerts: Vec<Routed>) {
        let later = std::mem::replace(&mut self.pending, alerts);
        self.merge(later);
    }

    /// Waits until `t`, receiving alerts meanwhile. False when the deadline came first.
    pub(super) async fn wait_until(&mut self, t: Instant) -> bool {
        self.race(sleep_until(t)).await.is_some()
    }

    /// A broken robot rests until its recheck, receiving alerts; the rest ends early when the
    /// input closes (nothing more will come to make the recheck worth waiting for).
    pub(super) async fn rest_until(&mut self, t: Instant) {
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
    pub(super) async fn race<F: Future>(&mut self, fut: F) -> Option<F::Output> {
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

    pub(super) fn on_receive(&mut self, batch: Option<Vec<Routed>>) {
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
    pub(super) fn merge(&mut self, alerts: Vec<Routed>) {
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
