//! One robot's shared limits, as its dispatcher asks them: a place in the window before each
//! attempt, the throttle pause, the monthly ledger. Redis answers while it can; otherwise the
//! local fallback does (see the module docs of `crate::fleet`).

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::{Coordinator, LEDGER_TTL_SECS, scripts};
use crate::budget::{Month, SharedBudget, Verdict};
use crate::config::Rate;
use crate::ratelimit::SlidingWindow;

/// The answer to "may this robot's next attempt start now?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// Yes; report the answer with [`RobotLink::completed`] and this place (`None`: counted
    /// locally, in fallback).
    Granted(Option<String>),
    /// The window is full: ask again after this long.
    Wait(Duration),
    /// DingTalk blocked the robot (told to some instance): nobody sends for this long.
    Paused(Duration),
}

/// A robot's link to the fleet; shared by its dispatcher's tasks.
pub struct RobotLink {
    coord: Coordinator,
    name: String,
    sent_key: String,
    pause_key: String,
    limit: u32,
    /// The window with the same margin as [`SlidingWindow`].
    window: Duration,
    /// The longest one attempt can take (its place stays at start + this if nobody says).
    flight: Duration,
    /// The limit while Redis is away: `fallback_rate`.
    fallback: Mutex<SlidingWindow>,
    /// When this robot last had to ask the fallback after asking Redis: the fleet's sends just
    /// before the outage are unknown here, so the first send alone waits a whole window.
    alone_since: Mutex<Option<Instant>>,
}

impl RobotLink {
    pub(super) fn new(coord: Coordinator, name: &str, rate: Rate, flight: Duration) -> RobotLink {
        let margin = (rate.per / 20).min(Duration::from_secs(1));
        RobotLink {
            sent_key: coord.key(name, "sent"),
            pause_key: coord.key(name, "pause"),
            fallback: Mutex::new(SlidingWindow::new(coord.0.fallback_rate)),
            alone_since: Mutex::new(None),
            coord,
            name: name.to_owned(),
            limit: rate.count.max(1),
            window: rate.per + margin,
            flight,
        }
    }

    /// Whether Redis answers (false: this instance is in fallback).
    pub fn shared(&self) -> bool {
        self.coord.is_up()
    }

    /// Asks for a place in the robot's window (Redis's clock), or the fallback's.
    pub async fn acquire(&self) -> Slot {
        let member = self.coord.member();
        let mut inv = scripts::SLOT.prepare_invoke();
        inv.key(&self.sent_key)
            .key(&self.pause_key)
            .arg(self.limit)
            .arg(self.window.as_millis() as u64)
            .arg(&member)
            .arg(self.flight.as_millis() as u64);
        let answer = self.coord.script::<(i64, i64)>(inv).await;
        if answer.is_some() {
            *self.alone_since.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        match answer {
            Some((1, _)) => Slot::Granted(Some(member)),
            Some((2, ms)) => Slot::Paused(Duration::from_millis(ms.max(1) as u64)),
            Some((_, ms)) => Slot::Wait(Duration::from_millis(ms.max(1) as u64)),
            None => self.acquire_alone(),
        }
    }

    /// The fallback: this instance's own `fallback_rate` for the robot, starting a whole
    /// window after Redis went away (the window may be full of the fleet's sends).
    fn acquire_alone(&self) -> Slot {
        let now = Instant::now();
        let since = *self
            .alone_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(now);
        let mut lim = self.fallback.lock().unwrap_or_else(|e| e.into_inner());
        let at = lim.next_slot(now).max(since + self.window);
        if at > now {
            // Redis is tried again before this wait is over if the probe is due sooner.
            return Slot::Wait((at - now).min(super::PROBE_EVERY));
        }
        lim.record(now);
        Slot::Granted(None)
    }

    /// The answer to an attempt came back: its place moves to now.
    pub async fn completed(&self, place: Option<String>) {
        let Some(member) = place else {
            return;
        };
        let mut inv = scripts::DONE.prepare_invoke();
        inv.key(&self.sent_key).arg(&member);
        // If Redis is away now, the place stays at start + flight: later, never earlier.
        let _: Option<i64> = self.coord.script(inv).await;
    }

    /// DingTalk said "too fast": every instance leaves the robot alone for `pause`.
    pub async fn pause(&self, pause: Duration) {
        let mut inv = scripts::PAUSE.prepare_invoke();
        inv.key(&self.pause_key)
            .arg(pause.as_millis().max(1) as u64);
        let _: Option<i64> = self.coord.script(inv).await;
    }

    /// Counts a message in the fleet's ledger if the budget allows it now (checked and counted
    /// in one step in Redis); `budget` (robot `robot`) takes the shared counts. In fallback,
    /// `budget` alone decides and the count is owed to Redis.
    pub async fn take_budget(
        &self,
        budget: &SharedBudget,
        robot: usize,
        critical: bool,
        paced: bool,
        now: SystemTime,
    ) -> bool {
        let month = Month::of(now).to_string();
        let Some((org, own)) = budget.limits(robot, critical, paced, now) else {
            return false;
        };
        let mut inv = scripts::TAKE.prepare_invoke();
        inv.key(self.coord.ledger_key(&month))
            .arg(&self.name)
            .arg(org)
            .arg(own.map_or(-1, |o| o as i64))
            .arg(LEDGER_TTL_SECS);
        match self.coord.script::<(i64, u64, u64, i64)>(inv).await {
            Some((taken, total, mine, spent)) => {
                budget.sync(robot, &month, total, mine, now);
                if spent == 1 {
                    budget.mark_spent(robot, "another instance was told so by DingTalk", now);
                }
                taken == 1
            }
            None => {
                let ok = budget.try_record(robot, critical, paced, now) == Verdict::Now;
                if ok {
                    self.coord.owe(&month, &self.name, 1);
                }
                ok
            }
        }
    }

    /// Takes the fleet's counts of this month into `budget` at start, so that the local view
    /// the dispatcher asks first is Redis's (a ledger file from runs without coordination may
    /// say otherwise). Redis away: the local view stays until Redis answers.
    pub async fn load_budget(&self, budget: &SharedBudget, robot: usize) {
        let now = SystemTime::now();
        let month = Month::of(now).to_string();
        let answer: Option<(Option<u64>, Option<u64>, Option<String>)> = self
            .coord
            .call(
                redis::cmd("HMGET")
                    .arg(self.coord.ledger_key(&month))
                    .arg("total")
                    .arg(format!("robot:{}", self.name))
                    .arg(format!("spent:{}", self.name)),
            )
            .await;
        if let Some((total, mine, spent)) = answer {
            budget.sync(robot, &month, total.unwrap_or(0), mine.unwrap_or(0), now);
            if let Some(why) = spent {
                budget.mark_spent(robot, &why, now);
            }
        }
    }

    /// Takes back a message counted at `counted` that DingTalk certainly did not post.
    pub async fn refund(&self, budget: &SharedBudget, robot: usize, counted: SystemTime) {
        let now = SystemTime::now();
        let month = Month::of(counted).to_string();
        if Month::of(now).to_string() != month {
            return;
        }
        let mut inv = scripts::ADD.prepare_invoke();
        inv.key(self.coord.ledger_key(&month))
            .arg(&self.name)
            .arg(-1)
            .arg(LEDGER_TTL_SECS);
        match self.coord.script::<(u64, u64)>(inv).await {
            Some((total, mine)) => budget.sync(robot, &month, total, mine, now),
            None => {
                budget.refund(robot, counted, now);
                self.coord.owe(&month, &self.name, -1);
            }
        }
    }

    /// DingTalk said the robot's quota is used up: no instance sends to it this month.
    pub async fn mark_spent(&self, budget: &SharedBudget, robot: usize, why: &str) {
        let now = SystemTime::now();
        budget.mark_spent(robot, why, now);
        let mut inv = scripts::SPENT.prepare_invoke();
        inv.key(self.coord.ledger_key(&Month::of(now).to_string()))
            .arg(&self.name)
            .arg(why)
            .arg(LEDGER_TTL_SECS);
        let _: Option<i64> = self.coord.script(inv).await;
    }
}
