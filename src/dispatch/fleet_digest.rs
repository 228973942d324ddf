//! The fleet-wide digest, as a dispatcher takes part in it (see [`crate::fleet::digest_stream`]).
//!
//! Every instance appends the closed alerts it holds for the robot to the robot's Redis stream
//! and, once Redis has acknowledged them, releases their checkpoint holds: the entries are as
//! durable as Redis is (AOF). At most one instance at a time is the robot's sender (a lease with
//! a TTL, renewed at each turn; any instance takes it once it lapses): it waits until the
//! oldest entry is `gather` old (so the other instances' alerts of the same window are in),
//! merges the entries by rule and group (`【nginx-5xx】×5712 on 48 hosts: …`), renders what
//! fits into one message, records its msgUuid and entry ids in Redis, posts it through the
//! usual path (shared window, budget, retries), and removes the entries only after errcode 0.
//! A sender that takes over a recorded batch posts the same entries under the same msgUuid, so
//! DingTalk shows it once whatever happened to the previous sender.
//!
//! What is not handed over: alerts other than matching lines (recoveries, absences, escalated
//! mentions: their look is this instance's), and everything while Redis is away. Those are sent
//! by the instance itself, as without a fleet, at the fallback rate while Redis is away.
//!
//! When the stream is at its limit (`stream_limit`), the instance keeps its alerts and sends
//! them itself (see [`crate::fleet::digest_stream`]); the sender then posts a due batch before
//! each of its own messages, so the stream drains even while every instance is busy.
//!
//! At the end of its input an instance keeps taking part until the stream no longer holds what
//! it appended (or the shutdown deadline passes: what it appended stays in Redis for the fleet).
//! If the monthly budget is spent by then, nobody can post its entries this month: it takes
//! them back out of the stream and reports them as not delivered, as it would its own alerts.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, sleep_until};

use super::Dispatcher;
use super::deliver::{Outcome, new_uuid};
use crate::aggregate::Routed;
use crate::dingtalk::RenderContext;
use crate::dingtalk::message::render;
use crate::fleet::digest_stream::{Appended, DigestStream, DigestTiming, Found, id_ms};
use crate::fleet::fleet_entry::{FleetEntry, FleetRules, Merged};

/// A dispatcher's part in its robot's fleet digest.
pub struct FleetDigest {
    stream: DigestStream,
    rules: Arc<FleetRules>,
    timing: DigestTiming,
    /// The last entry this instance appended: at exit it waits until it is gone.
    last_appended: Option<String>,
    /// This instance held the lease at its last turn (said once when it changes).
    sender: bool,
    /// The stream was full at the last append (said once when it changes).
    full: bool,
}

impl FleetDigest {
    /// Takes part in `stream`'s digest; `rules` style the entries.
    pub fn new(stream: DigestStream, rules: Arc<FleetRules>, timing: DigestTiming) -> Self {
        FleetDigest {
            stream,
            rules,
            timing,
            last_appended: None,
            sender: false,
            full: false,
        }
    }
}

/// What the main loop does after a fleet turn.
pub(super) enum Turn {
    /// Go round again.
    Again,
    /// The input is closed and this instance's part is done (or the deadline passed).
    Done,
}

/// A batch to post: its msgUuid, the ids it removes, and its alerts with their hosts.
struct Batch {
    uuid: String,
    ids: Vec<String>,
    merged: Merged,
}

impl Dispatcher {
    /// Takes part in the robot's fleet-wide digest (`coordination:`).
    pub fn with_digest(mut self, digest: FleetDigest) -> Dispatcher {
        self.digest = Some(digest);
        self
    }

    /// Appends the pending alerts the fleet can send (matching lines styled as their rule) to
    /// the stream; once Redis has them, their holds are released. Redis away, or the stream at
    /// its limit: they stay pending and this instance sends them itself (an append whose answer
    /// was lost is taken back out of the stream when Redis answers again).
    pub(super) async fn hand_to_fleet(&mut self) {
        let Some(d) = &self.digest else { return };
        if self.pending.is_empty() || !self.link.as_ref().is_some_and(|l| l.shared()) {
            return;
        }
        let (fleet, own): (Vec<Routed>, Vec<Routed>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|a| d.rules.plain(&a.alert));
        self.pending = own;
        if fleet.is_empty() {
            return;
        }
        let entries: Vec<FleetEntry> = fleet
            .iter()
            .map(|a| FleetEntry::of(&a.alert, &self.cfg.host))
            .collect();
        let seq = d.stream.next_seq();
        match d.stream.append(&entries, seq, d.timing.limit).await {
            Some(Appended::Ids(ids)) => {
                let d = self.digest.as_mut().expect("checked");
                d.last_appended = ids.last().cloned().or(d.last_appended.take());
                self.report.events_forwarded += fleet.iter().map(|a| a.alert.count).sum::<u64>();
                self.settle(&fleet);
                self.stream_full(None);
            }
            Some(Appended::Full(len)) => {
                self.requeue(fleet);
                self.stream_full(Some(len));
            }
            None => {
                d.stream.withdraw_when_back(seq);
                self.requeue(fleet);
            }
        }
    }

    /// Says (once per change, on stderr and in `dingtail_fleet_digest_full`) that the stream is
    /// at its limit (`Some(length)`) or has room again.
    fn stream_full(&mut self, full: Option<u64>) {
        let d = self.digest.as_mut().expect("only with a digest");
        if std::mem::replace(&mut d.full, full.is_some()) == full.is_some() {
            return;
        }
        let limit = d.timing.limit;
        match full {
            Some(len) => {
                tracing::warn!(robot = ?self.cfg.robot, entries = len, limit, "coordination: the robot's digest stream is full (its sender cannot post: robot blocked or failing, DingTalk down, or budget spent); this instance keeps its alerts and sends them itself, through the shared window and budget, until the stream has room")
            }
            None => {
                tracing::info!(robot = ?self.cfg.robot, "coordination: the robot's digest stream has room again; alerts go to the fleet's digest")
            }
        }
        if let Some(m) = &self.metrics {
            m.set_digest_full(full.is_some());
        }
    }

    /// Whether this instance has just been told the stream is full.
    pub(super) fn fleet_full(&self) -> bool {
        self.digest.as_ref().is_some_and(|d| d.full)
    }

    /// Takes or renews the lease: `Some(true)` while this instance is the sender (said when
    /// that changes), `None` when Redis is away.
    async fn take_lease(&mut self) -> Option<bool> {
        let d = self.digest.as_ref().expect("only with a digest");
        let held = d.stream.lease(d.timing.lease).await;
        if let Some(h) = held {
            let d = self.digest.as_mut().expect("checked");
            if h != std::mem::replace(&mut d.sender, h) {
                tracing::info!(robot = ?self.cfg.robot, sender = h, "coordination: this instance {} the robot's digest sender", if h { "is now" } else { "is no longer" });
            }
        }
        held
    }

    /// While this instance sends its own alerts (the stream is full): as the sender, post the
    /// next batch that is due first, so the stream drains even when every instance is busy.
    pub(super) async fn fleet_turn_between(&mut self) -> Turn {
        if self.take_lease().await != Some(true) {
            return Turn::Again;
        }
        let Some(found) = self.digest_ref().stream.read().await else {
            return Turn::Again;
        };
        match self.plan(found) {
            Ok(batch) => self.post_batch(batch).await,
            Err(_) => Turn::Again,
        }
    }

    /// At the end of input with the monthly budget spent, nobody can post this instance's
    /// entries this month: it takes them back out of the stream and reports them as not
    /// delivered, as it would have its own alerts. `None`: the budget allows more.
    async fn give_up_if_spent(&mut self) -> Option<Turn> {
        if self.input_open {
            return None;
        }
        if let (Some(link), Some((budget, robot))) = (&self.link, &self.budget) {
            link.load_budget(budget, *robot).await;
        }
        let super::budget_gate::Gate::GiveUp(reason) = self.budget_gate() else {
            return None;
        };
        let Some(entries) = self.digest_ref().stream.withdraw_mine().await else {
            // Redis away: the entries stay there for the fleet.
            return Some(Turn::Done);
        };
        let alerts: Vec<crate::alert::Alert> = entries
            .iter()
            .map(|e| e.to_alert(&self.digest_ref().rules))
            .collect();
        if !alerts.is_empty() {
            let count: u64 = alerts.iter().map(|a| a.count).sum();
            self.report.events_forwarded = self.report.events_forwarded.saturating_sub(count);
            self.report.fail(&alerts, &reason);
        }
        Some(Turn::Done)
    }

    /// One turn of the fleet digest while nothing of this instance's own is pending: as the
    /// sender, post the next batch when it is due; otherwise wait for alerts or the next turn.
    pub(super) async fn fleet_turn(&mut self) -> Turn {
        if let Some(turn) = self.give_up_if_spent().await {
            return turn;
        }
        let timing = self.digest_ref().timing;
        let poll = (timing.gather / 2).clamp(Duration::from_millis(20), Duration::from_secs(1));
        let idle = (timing.lease / 3).max(poll);
        let held = self.take_lease().await;
        if held != Some(true) {
            if !self.input_open && !self.own_entries_left().await {
                return Turn::Done;
            }
            return self.idle_until(Instant::now() + idle).await;
        }
        if let Some((_, at)) = &self.broken
            && Instant::now() < *at
        {
            let at = *at;
            return self.idle_until(at).await;
        }
        let Some(found) = self.digest_ref().stream.read().await else {
            return self.idle_until(Instant::now() + poll).await;
        };
        let batch = match self.plan(found) {
            Ok(batch) => batch,
            // The lease is renewed at each turn: a sender waits at most a third of it.
            Err(Some(wait)) => {
                let wait = wait.min(timing.lease / 3).max(Duration::from_millis(5));
                return self.idle_until(Instant::now() + wait).await;
            }
            Err(None) => {
                if !self.input_open && !self.own_entries_left().await {
                    return Turn::Done;
                }
                return self
                    .idle_until(Instant::now() + poll.min(timing.lease / 3))
                    .await;
            }
        };
        self.post_batch(batch).await
    }

    fn digest_ref(&self) -> &FleetDigest {
        self.digest.as_ref().expect("only with a digest")
    }

    /// The batch to post now: the one begun and not acknowledged (same entries, same msgUuid),
    /// else the oldest entries merged. `Err(Some(wait))`: not due yet; `Err(None)`: nothing.
    fn plan(&self, found: Found) -> Result<Batch, Option<Duration>> {
        let d = self.digest_ref();
        if let Some((uuid, ids)) = found.begun {
            let entries: Vec<(String, FleetEntry)> = found
                .entries
                .into_iter()
                .filter(|(id, _)| ids.contains(id))
                .collect();
            let merged = Merged::of(&entries, &d.rules);
            return Ok(Batch { uuid, ids, merged });
        }
        let Some((first, _)) = found.entries.first() else {
            return Err(None);
        };
        let age = Duration::from_millis(found.now_ms.saturating_sub(id_ms(first)));
        if age < d.timing.gather && self.input_open {
            return Err(Some(d.timing.gather - age));
        }
        let merged = Merged::of(&found.entries, &d.rules);
        let mut ids: Vec<String> = found.unreadable;
        // The message holds the first alerts that fit: only their entries are in the batch.
        let uuid = new_uuid();
        let used = self.rendered(&merged, uuid.clone()).1;
        ids.extend(merged.ids[..used].iter().flatten().cloned());
        Ok(Batch { uuid, ids, merged })
    }

    /// The message for merged fleet alerts (each header names its hosts) and how many it holds.
    fn rendered(&self, merged: &Merged, uuid: String) -> (crate::dingtalk::Message, usize) {
        let hosts: Vec<String> = merged.hosts.iter().map(|h| h.text()).collect();
        let ctx = RenderContext {
            hosts: Some(&hosts),
            ..self.render_context()
        };
        render(&merged.alerts, &ctx, uuid)
    }

    /// Takes a place in the window and a message of the budget, records the batch, posts it,
    /// and removes its entries after errcode 0.
    async fn post_batch(&mut self, batch: Batch) -> Turn {
        if batch.merged.alerts.is_empty() {
            // Only unreadable entries, or entries gone: acknowledge the record.
            let _ = self
                .digest_ref()
                .stream
                .begin(&batch.uuid, &batch.ids)
                .await;
            let _ = self.digest_ref().stream.ack(&batch.uuid, &batch.ids).await;
            return Turn::Again;
        }
        let (message, used) = self.rendered(&batch.merged, batch.uuid.clone());
        // Entries of alerts that did not fit (a batch taken over, rendered smaller) stay.
        let unsent: std::collections::HashSet<&String> =
            batch.merged.ids[used..].iter().flatten().collect();
        let acked: Vec<String> = (batch.ids.iter())
            .filter(|id| !unsent.contains(id))
            .cloned()
            .collect();
        let slot = self.next_slot();
        if !self.wait_until(slot).await {
            return Turn::Done;
        }
        let counted = (self.wall)();
        if let (Some((budget, robot)), Some(link)) = (&self.budget, &self.link) {
            let critical = batch.merged.alerts[..used].iter().any(super::is_critical);
            if !link
                .take_budget(budget, *robot, critical, self.input_open, counted)
                .await
            {
                if let Some(turn) = self.give_up_if_spent().await {
                    return turn;
                }
                // Held by the budget: the entries stay, and go when it allows.
                let recheck =
                    Instant::now() + Duration::from_secs(5).min(self.digest_ref().timing.lease);
                return self.idle_until(recheck).await;
            }
        }
        // Recorded only now that it is posted next: a batch on record is always on its way.
        if self
            .digest_ref()
            .stream
            .begin(&batch.uuid, &batch.ids)
            .await
            != Some(true)
        {
            // The lease was lost, or an instance took its entries back: plan again.
            self.maybe_posted = false;
            self.refund(counted).await;
            return Turn::Again;
        }
        let outcome = self.deliver(&message).await;
        if matches!(
            outcome,
            Outcome::Requeue | Outcome::Broken(_) | Outcome::Spent(_)
        ) {
            self.refund(counted).await;
            if !self.maybe_posted {
                // Certainly not posted: the entries go into a new batch, under a new msgUuid.
                self.digest_ref().stream.drop_batch(&batch.uuid).await;
            }
        }
        match outcome {
            Outcome::Delivered => {
                if self.broken.take().is_some() {
                    tracing::info!(robot = ?self.cfg.robot, "robot accepts messages again");
                }
                if self
                    .digest_ref()
                    .stream
                    .ack(&batch.uuid, &acked)
                    .await
                    .is_none()
                {
                    tracing::warn!(robot = ?self.cfg.robot, "coordination: a digest was posted but Redis went away before its entries were removed; the next sender posts it again under the same msgUuid, which DingTalk ignores");
                }
                self.report.messages_sent += 1;
                self.report.events_sent += message.count;
                tracing::debug!(robot = ?self.cfg.robot, rules = ?message.rules, count = message.count, "fleet digest delivered");
                Turn::Again
            }
            Outcome::Requeue | Outcome::Failed(_) => Turn::Again,
            Outcome::Broken(reason) => {
                self.broken = Some((reason, Instant::now() + self.cfg.send.retry.recheck));
                Turn::Again
            }
            Outcome::Spent(why) => {
                if let (Some((budget, robot)), Some(link)) = (&self.budget, &self.link) {
                    link.mark_spent(budget, *robot, &why).await;
                } else {
                    self.broken = Some((why, Instant::now() + self.cfg.send.retry.recheck));
                }
                Turn::Again
            }
            Outcome::TimedOut => Turn::Done,
        }
    }

    /// Whether the stream still holds entries this instance appended (`false` when Redis is
    /// away: nothing more can be done about them here, they wait in Redis).
    async fn own_entries_left(&self) -> bool {
        let d = self.digest_ref();
        match &d.last_appended {
            None => false,
            Some(id) => d.stream.holds_up_to(id).await.unwrap_or(false),
        }
    }

    /// Waits until `t` or the first alerts to arrive; `Done` when the deadline passed.
    async fn idle_until(&mut self, t: Instant) -> Turn {
        let deadline = self.deadline;
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        tokio::select! {
            () = sleep_until(t) => Turn::Again,
            batch = self.alerts_rx.recv(), if self.input_open => {
                self.on_receive(batch);
                Turn::Again
            }
            () = sleep_until(deadline.unwrap_or(far)), if deadline.is_some() => Turn::Done,
        }
    }

    /// At exit: the lease goes, so another instance takes over at once.
    pub(super) async fn leave_fleet(&mut self) {
        if let Some(d) = &self.digest {
            if d.sender {
                d.stream.release().await;
            }
            if self.own_entries_left().await {
                tracing::warn!(robot = ?self.cfg.robot, "coordination: alerts this instance handed to the fleet are still in Redis at exit; another instance sends them");
            }
        }
    }
}

/// Links a dispatcher to the fleet for robot `r`: its shared window, pause and budget, and
/// (unless `digest: false`) its fleet-wide digest, styled by `rules`.
pub fn join_fleet(
    d: Dispatcher,
    c: &crate::fleet::Coordinator,
    r: &crate::config::RobotConfig,
    rules: &[crate::rules::Rule],
) -> Dispatcher {
    let d = d.with_link(c.robot(&r.name, r.send.rate, r.endpoint.request_timeout));
    match c.digest(&r.name) {
        Some((stream, timing)) => d.with_digest(FleetDigest::new(
            stream,
            Arc::new(FleetRules::new(rules)),
            timing,
        )),
        None => d,
    }
}
