//! The monthly message budget: a ledger of messages sent this month and the pacing rule that
//! spreads what is left over the time left.
//!
//! DingTalk counts every robot message against the organisation's monthly quota (3,000 on the
//! free plan) and an admin may cap a robot. At 20 messages a minute one flapping incident spends
//! 3,000 in two and a half hours, and then nothing reaches the group until the 1st. So before
//! each message the dispatcher asks [`Budget::verdict`]: now, later (pacing), or not this month.
//!
//! **The pacing rule.** For a cap `C` (the organisation's `monthly`, or a robot's own) with a
//! reserve `R` for critical rules, let `N = C − R` (what ordinary rules may spend), `d = ⌈N / days
//! in the month⌉` (one day's share, at least 1), and `e` the share of the month elapsed (0 at the
//! 1st 00:00, 1 at the next 1st, Asia/Shanghai). With `used` messages already sent this month, a
//! message may start when
//!
//! ```text
//! ordinary:  used < min(N, ⌊N·e⌋ + d)
//! critical:  used < min(C, ⌊N·e⌋ + d + R)
//! ```
//!
//! so spending never runs more than a day ahead of an even pace, a quiet spell saves up (the
//! allowance grows whether or not it is used, and a storm may then spend the savings at once),
//! and critical rules can always go `R` messages beyond what ordinary rules may. A message that
//! holds any critical alert is critical (the others ride along for free). When the input ends
//! (end of a pipe, a shutdown) the pace is lifted but not the caps: what is held would be lost
//! otherwise, and a message is sent if `used < N` (critical: `used < C`).
//!
//! **Spent.** When the cap is reached, or DingTalk answers with a quota error
//! ([`Budget::mark_spent`]), the robot sends nothing more until the month turns.
//!
//! The month is the natural month in Asia/Shanghai, DingTalk's, whatever the host's zone. This
//! module is pure: it is told the time, and [`LedgerFile`](ledger_file::LedgerFile) keeps the
//! ledger on disk.

pub mod forecast;
pub mod keeper;
pub mod ledger_file;
pub mod month;

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::config::Quota;
pub use keeper::SharedBudget;
pub use month::Month;

/// Messages sent this month, in total and per robot (by name), and the robots DingTalk said
/// are out of quota. What survives a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    /// The month counted, `2026-11`; another month's counts are not this month's.
    pub month: String,
    /// Messages sent by all robots.
    pub total: u64,
    /// Messages sent per robot name.
    #[serde(default)]
    pub robots: BTreeMap<String, u64>,
    /// Robots that DingTalk refused for quota this month, with what it said.
    #[serde(default)]
    pub spent: BTreeMap<String, String>,
}

/// What the budget says about sending a message now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Send.
    Now,
    /// Sending now would spend faster than the pace; the next message may start at `until`.
    Pace {
        /// The earliest time the pace allows.
        until: SystemTime,
    },
    /// Nothing more of this kind this month: the cap is reached or DingTalk said so.
    Spent {
        /// When the month turns.
        until: SystemTime,
        /// Why, for the operator.
        why: String,
    },
}

/// One cap and its reserve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cap {
    cap: u64,
    reserve: u64,
}

impl Cap {
    /// The rule in the module docs, for `used` messages at `now` in `month`.
    fn verdict(
        &self,
        used: u64,
        critical: bool,
        paced: bool,
        month: Month,
        now: SystemTime,
    ) -> Verdict {
        let normal = self.cap - self.reserve;
        let hard = if critical { self.cap } else { normal };
        if used >= hard {
            return Verdict::Spent {
                until: month.end(),
                why: if critical || self.reserve == 0 {
                    format!("the monthly budget is used up ({used} of {})", self.cap)
                } else {
                    format!(
                        "the monthly budget is used up but for the {} kept for critical rules ({used} of {})",
                        self.reserve, self.cap
                    )
                },
            };
        }
        if !paced {
            return Verdict::Now;
        }
        let share = normal.div_ceil(month.days()).max(1);
        let extra = if critical { self.reserve } else { 0 };
        // Smallest k with ⌊N·e⌋ ≥ k that lets `used + 1` through.
        let Some(k) = (used + 1).checked_sub(share + extra).filter(|&k| k > 0) else {
            return Verdict::Now;
        };
        let (len, elapsed) = (month.len_ms(), month.elapsed_ms(now));
        if normal == 0 {
            return Verdict::Pace { until: month.end() };
        }
        // ⌊N·e/L⌋ ≥ k  ⟺  e ≥ ⌈k·L/N⌉ (milliseconds).
        let at = (k as u128 * len as u128).div_ceil(normal as u128) as u64;
        if at <= elapsed {
            Verdict::Now
        } else {
            Verdict::Pace {
                until: month.at_ms(at),
            }
        }
    }

    /// The count below which [`Cap::verdict`] says `Now` (the same rule as one number), so that
    /// a shared ledger can check and count in one atomic step: `used < limit`.
    fn limit(&self, critical: bool, paced: bool, month: Month, now: SystemTime) -> u64 {
        let normal = self.cap - self.reserve;
        let hard = if critical { self.cap } else { normal };
        if !paced {
            return hard;
        }
        let share = normal.div_ceil(month.days()).max(1);
        let extra = if critical { self.reserve } else { 0 };
        hard.min(self.at_pace(month, now) + share + extra)
    }

    /// `⌊N·e⌋`: what an even pace would have spent by `now`.
    fn at_pace(&self, month: Month, now: SystemTime) -> u64 {
        ((self.cap - self.reserve) as u128 * month.elapsed_ms(now) as u128 / month.len_ms() as u128)
            as u64
    }

    /// Messages the pace allows by `now` (ordinary rules), for status lines.
    fn allowance(&self, month: Month, now: SystemTime) -> u64 {
        let normal = self.cap - self.reserve;
        let share = normal.div_ceil(month.days()).max(1);
        let paced =
            (normal as u128 * month.elapsed_ms(now) as u128 / month.len_ms() as u128) as u64;
        (paced + share).min(normal)
    }
}

/// The later of two verdicts: `Spent` over `Pace` over `Now`.
fn stricter(a: Verdict, b: Verdict) -> Verdict {
    match (a, b) {
        (s @ Verdict::Spent { .. }, _) | (_, s @ Verdict::Spent { .. }) => s,
        (Verdict::Pace { until: x }, Verdict::Pace { until: y }) => {
            Verdict::Pace { until: x.max(y) }
        }
        (p @ Verdict::Pace { .. }, Verdict::Now) | (Verdict::Now, p @ Verdict::Pace { .. }) => p,
        (Verdict::Now, Verdict::Now) => Verdict::Now,
    }
}

/// The budget of one config: the organisation's cap, each robot's own, and the ledger.
#[derive(Debug, Clone)]
pub struct Budget {
    org: Cap,
    /// Robot names and caps, by `RobotId`.
    robots: Vec<(String, Option<Cap>)>,
    ledger: Ledger,
}

/// Where the budget stands, for `dingtail check`, the summary and (later) metrics and
/// self-alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The month, `2026-11`.
    pub month: String,
    /// The organisation's cap.
    pub monthly: u64,
    /// Kept for critical rules.
    pub reserve: u64,
    /// Sent this month.
    pub used: u64,
    /// What the pace allows ordinary rules by now.
    pub allowance: u64,
    /// Per robot: name, sent, its own cap, and why it is spent (a quota error) if it is.
    pub robots: Vec<RobotStatus>,
}

/// One robot's part of [`Status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RobotStatus {
    /// The robot.
    pub name: String,
    /// Sent this month.
    pub used: u64,
    /// `robots.NAME.monthly`.
    pub monthly: Option<u64>,
    /// DingTalk said its quota is used up, with this message.
    pub spent: Option<String>,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "budget {}: {} of {} messages used ({} kept for critical rules), pace allows {} by now",
            self.month, self.used, self.monthly, self.reserve, self.allowance
        )?;
        for r in &self.robots {
            write!(f, "; robot {}: {}", r.name, r.used)?;
            if let Some(m) = r.monthly {
                write!(f, " of {m}")?;
            }
            if let Some(why) = &r.spent {
                write!(f, " (DingTalk: quota used up: {why})")?;
            }
        }
        Ok(())
    }
}

impl Budget {
    /// The budget for `quota` and these robots (names by `RobotId`), starting from `ledger` (an
    /// older month's ledger counts as empty).
    pub fn new(quota: &Quota, robots: &[String], ledger: Ledger) -> Budget {
        let org = Cap {
            cap: quota.monthly,
            reserve: quota.reserve.of(quota.monthly, quota.monthly),
        };
        let robots = robots
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let cap = quota.robot_monthly.get(i).copied().flatten().map(|m| Cap {
                    cap: m,
                    reserve: quota.reserve.of(m, quota.monthly),
                });
                (name.clone(), cap)
            })
            .collect();
        Budget {
            org,
            robots,
            ledger,
        }
    }

    /// The ledger as it stands (to be saved).
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Starts a new ledger when `now` is in a later month than the ledger's.
    fn roll(&mut self, now: SystemTime) -> Month {
        let month = Month::of(now);
        if self.ledger.month != month.to_string() {
            self.ledger = Ledger {
                month: month.to_string(),
                ..Ledger::default()
            };
        }
        month
    }

    /// May `robot` send a message now? `critical`: the message holds a critical alert;
    /// `paced`: input is flowing (false at the end of input: the caps hold, the pace does not).
    pub fn verdict(
        &mut self,
        robot: usize,
        critical: bool,
        paced: bool,
        now: SystemTime,
    ) -> Verdict {
        let month = self.roll(now);
        let (name, cap) = &self.robots[robot];
        if let Some(why) = self.ledger.spent.get(name) {
            return Verdict::Spent {
                until: month.end(),
                why: format!("DingTalk said the quota is used up ({why})"),
            };
        }
        let org = self
            .org
            .verdict(self.ledger.total, critical, paced, month, now);
        match cap {
            None => org,
            Some(cap) => {
                let used = self.ledger.robots.get(name).copied().unwrap_or(0);
                let own = match cap.verdict(used, critical, paced, month, now) {
                    Verdict::Spent { until, why } => Verdict::Spent {
                        until,
                        why: format!("{why} (robot {name}'s own `monthly`)"),
                    },
                    v => v,
                };
                stricter(org, own)
            }
        }
    }

    /// The counts below which `robot` may send now: (all robots, the robot's own cap), for a
    /// ledger kept elsewhere (Redis, see `crate::fleet`) that checks `total < org` and
    /// `mine < own` and counts in one step. `None` when DingTalk said the robot's quota is
    /// used up.
    pub fn limits(
        &mut self,
        robot: usize,
        critical: bool,
        paced: bool,
        now: SystemTime,
    ) -> Option<(u64, Option<u64>)> {
        let month = self.roll(now);
        let (name, cap) = &self.robots[robot];
        if self.ledger.spent.contains_key(name) {
            return None;
        }
        let org = self.org.limit(critical, paced, month, now);
        Some((org, cap.map(|c| c.limit(critical, paced, month, now))))
    }

    /// Takes the counts of a shared ledger for `month` (`2026-11`): all robots, and `robot`'s.
    /// Counts of another month than `now`'s are ignored.
    pub fn sync(&mut self, robot: usize, month: &str, total: u64, mine: u64, now: SystemTime) {
        if self.roll(now).to_string() != month {
            return;
        }
        self.ledger.total = total;
        let name = self.robots[robot].0.clone();
        self.ledger.robots.insert(name, mine);
    }

    /// Counts a message of `robot` if the budget allows it now (checked and counted in one
    /// step, so robots sharing the budget cannot both take the last message).
    pub fn try_record(
        &mut self,
        robot: usize,
        critical: bool,
        paced: bool,
        now: SystemTime,
    ) -> Verdict {
        let v = self.verdict(robot, critical, paced, now);
        if v == Verdict::Now {
            self.record(robot, now);
        }
        v
    }

    /// Counts a message of `robot`, whatever the verdict (`dingtail send`, a message already out).
    pub fn record(&mut self, robot: usize, now: SystemTime) {
        self.roll(now);
        self.ledger.total += 1;
        *self
            .ledger
            .robots
            .entry(self.robots[robot].0.clone())
            .or_default() += 1;
    }

    /// Takes back a message counted at `counted` that DingTalk certainly did not post (it
    /// answered with an error). A message counted in an earlier month stays there.
    pub fn refund(&mut self, robot: usize, counted: SystemTime, now: SystemTime) {
        let month = self.roll(now);
        if Month::of(counted) != month {
            return;
        }
        self.ledger.total = self.ledger.total.saturating_sub(1);
        if let Some(n) = self.ledger.robots.get_mut(&self.robots[robot].0) {
            *n = n.saturating_sub(1);
        }
    }

    /// DingTalk answered `robot` with a quota error: it sends nothing more this month.
    pub fn mark_spent(&mut self, robot: usize, why: &str, now: SystemTime) {
        self.roll(now);
        let name = self.robots[robot].0.clone();
        self.ledger.spent.insert(name, why.to_owned());
    }

    /// Where the budget stands at `now`.
    pub fn status(&mut self, now: SystemTime) -> Status {
        let month = self.roll(now);
        Status {
            month: month.to_string(),
            monthly: self.org.cap,
            reserve: self.org.reserve,
            used: self.ledger.total,
            allowance: self.org.allowance(month, now),
            robots: self
                .robots
                .iter()
                .map(|(name, cap)| RobotStatus {
                    name: name.clone(),
                    used: self.ledger.robots.get(name).copied().unwrap_or(0),
                    monthly: cap.map(|c| c.cap),
                    spent: self.ledger.spent.get(name).cloned(),
                })
                .collect(),
        }
    }

    /// Fills the ledger as if the month so far had been spent exactly at the pace (for the
    /// replay forecast, which starts in the middle of a month).
    pub fn assume_on_pace(&mut self, now: SystemTime) {
        let month = self.roll(now);
        self.ledger.total = self.org.at_pace(month, now);
        for (name, cap) in &self.robots {
            let used = cap.as_ref().map_or(0, |c| c.at_pace(month, now));
            self.ledger.robots.insert(name.clone(), used);
        }
    }
}

#[cfg(test)]
mod tests;
