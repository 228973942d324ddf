//! What a replayed log would cost: `dingtail test --replay` prints the messages the rules decide
//! (unpaced), then this forecast: the same messages run through the budget's pacing on the
//! log's clock, per robot and per day, how many the pacing merged into later digests, and what a
//! month at the log's rate would use against the budget.
//!
//! The log usually starts in the middle of a month; the forecast assumes the month so far was
//! spent exactly at the pace ([`Budget::assume_on_pace`]), which is where a steady dingtail
//! stands, so a storm in the log meets the pacing it would meet in production. Pure: it sees only
//! the messages and their times.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use super::month::{Month, shanghai_day};
use super::{Budget, Ledger, Verdict};
use crate::config::Quota;

/// One message the rules would send, as the forecast needs it.
#[derive(Debug, Clone)]
pub struct Planned {
    /// When (on the log's clock).
    pub at: SystemTime,
    /// The robot, by `RobotId` (0 for the config without robots).
    pub robot: usize,
    /// It holds an alert of a `severity: critical` rule.
    pub critical: bool,
    /// Matching lines it stands for.
    pub count: u64,
}

/// One robot's forecast.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RobotForecast {
    /// The robot's name.
    pub name: String,
    /// Messages the rules decide (no pacing).
    pub unpaced: u64,
    /// Messages sent with pacing.
    pub paced: u64,
    /// Matching lines still held at the end that the budget would not let out.
    pub undelivered_lines: u64,
    /// Per Shanghai day: (unpaced, paced).
    pub days: BTreeMap<String, (u64, u64)>,
}

/// The whole forecast; `Display` prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    /// The budget it was measured against.
    pub monthly: u64,
    /// Kept for critical rules.
    pub reserve: u64,
    /// Per robot that had messages.
    pub robots: Vec<RobotForecast>,
    /// From the first message to the last.
    pub span: Duration,
    /// Messages a month at this rate would take (unpaced); `None` when the span is too short.
    pub month_at_rate: Option<u64>,
}

/// Shorter spans are not projected to a month.
const MIN_SPAN: Duration = Duration::from_secs(60);

/// Runs `messages` (in time order) through the budget of `quota` for robots `names`.
pub fn forecast(quota: &Quota, names: &[String], messages: &[Planned]) -> Forecast {
    let mut budget = Budget::new(quota, names, Ledger::default());
    let status = budget.status(messages.first().map_or(SystemTime::UNIX_EPOCH, |m| m.at));
    let mut robots: Vec<RobotForecast> = names
        .iter()
        .map(|n| RobotForecast {
            name: n.clone(),
            ..RobotForecast::default()
        })
        .collect();
    let Some(first) = messages.first() else {
        return Forecast {
            monthly: status.monthly,
            reserve: status.reserve,
            robots: Vec::new(),
            span: Duration::ZERO,
            month_at_rate: None,
        };
    };
    budget.assume_on_pace(first.at);
    let mut sim = Sim {
        budget,
        held: vec![None; names.len()],
        robots: &mut robots,
    };
    for m in messages {
        sim.release_until(m.at);
        let f = &mut sim.robots[m.robot];
        f.unpaced += 1;
        f.days.entry(shanghai_day(m.at)).or_default().0 += 1;
        let held = sim.held[m.robot].get_or_insert(Held {
            since: m.at,
            critical: false,
            lines: 0,
        });
        held.critical |= m.critical;
        held.lines += m.count;
        held.since = m.at;
        sim.try_send(m.robot, m.at, true);
    }
    let last = messages.last().map_or(first.at, |m| m.at);
    sim.release_until(last);
    for robot in 0..names.len() {
        if sim.held[robot].is_some() && !sim.try_send(robot, last, false) {
            let lines = sim.held[robot].take().map_or(0, |h| h.lines);
            sim.robots[robot].undelivered_lines += lines;
        }
    }
    let span = last.duration_since(first.at).unwrap_or_default();
    let total: u64 = robots.iter().map(|r| r.unpaced).sum();
    let month_len = Month::of(first.at).len_ms() as u128;
    let month_at_rate =
        (span >= MIN_SPAN).then(|| (total as u128 * month_len / span.as_millis().max(1)) as u64);
    Forecast {
        monthly: status.monthly,
        reserve: status.reserve,
        robots: robots.into_iter().filter(|r| r.unpaced > 0).collect(),
        span,
        month_at_rate,
    }
}

/// What a robot holds while the pace makes it wait.
#[derive(Debug, Clone, Copy)]
struct Held {
    /// When it was last told to wait (or got its latest message).
    since: SystemTime,
    critical: bool,
    lines: u64,
}

struct Sim<'a> {
    budget: Budget,
    held: Vec<Option<Held>>,
    robots: &'a mut [RobotForecast],
}

impl Sim<'_> {
    /// Sends what `robot` holds at `at` if the budget allows; true when sent.
    fn try_send(&mut self, robot: usize, at: SystemTime, paced: bool) -> bool {
        let Some(h) = self.held[robot] else {
            return false;
        };
        if self.budget.try_record(robot, h.critical, paced, at) != Verdict::Now {
            return false;
        }
        self.held[robot] = None;
        let f = &mut self.robots[robot];
        f.paced += 1;
        f.days.entry(shanghai_day(at)).or_default().1 += 1;
        true
    }

    /// Sends every held digest whose time comes by `until`, earliest first (robots share the
    /// organisation's budget, so the order matters).
    fn release_until(&mut self, until: SystemTime) {
        loop {
            let next = (0..self.held.len())
                .filter_map(|r| {
                    let h = self.held[r]?;
                    let at = match self.budget.verdict(r, h.critical, true, h.since) {
                        Verdict::Now => h.since,
                        Verdict::Pace { until } | Verdict::Spent { until, .. } => until,
                    };
                    (at <= until).then_some((at, r))
                })
                .min();
            let Some((at, robot)) = next else {
                return;
            };
            if !self.try_send(robot, at, true)
                && let Some(h) = &mut self.held[robot]
            {
                // Another robot took the budget first: ask again from here (time moves on).
                h.since = at.max(h.since + Duration::from_millis(1));
            }
        }
    }
}

impl fmt::Display for Forecast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "=== forecast against the monthly budget ({} messages, {} kept for critical rules; the month before the log taken as spent at the pace)",
            self.monthly, self.reserve
        )?;
        if self.robots.is_empty() {
            return writeln!(f, "no messages: nothing spent");
        }
        for r in &self.robots {
            writeln!(
                f,
                "robot {}: {} message(s) without pacing, {} with pacing ({} merged into later digests){}",
                r.name,
                r.unpaced,
                r.paced,
                r.unpaced.saturating_sub(r.paced),
                if r.undelivered_lines > 0 {
                    format!(
                        "; {} matching line(s) left undelivered at the end (budget spent)",
                        r.undelivered_lines
                    )
                } else {
                    String::new()
                }
            )?;
            for (day, (unpaced, paced)) in &r.days {
                writeln!(f, "  {day}: {unpaced} → {paced}")?;
            }
        }
        let total: u64 = self.robots.iter().map(|r| r.unpaced).sum();
        let span = humantime::format_duration(Duration::from_secs(self.span.as_secs()));
        match self.month_at_rate {
            Some(n) => {
                let pct = n as f64 * 100.0 / self.monthly as f64;
                writeln!(
                    f,
                    "a month at this rate: {total} message(s) in {span} → about {n} a month, {pct:.0}% of the budget of {}{}",
                    self.monthly,
                    if n > self.monthly {
                        ": pacing holds it to the budget by merging"
                    } else {
                        ""
                    }
                )
            }
            None => writeln!(
                f,
                "a month at this rate: {total} message(s) within {span}, too short a span to project"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Reserve;

    fn quota(monthly: u64) -> Quota {
        Quota {
            monthly,
            reserve: Reserve::Percent(10.0),
            robot_monthly: Vec::new(),
        }
    }

    #[test]
    fn a_storm_in_a_replayed_log_is_paced_and_projected() {
        // Mid-month, a storm of one message a minute for three hours, then one critical.
        let t0 = Month {
            year: 2026,
            month: 11,
        }
        .at_ms(14 * 86_400_000);
        let mut msgs: Vec<Planned> = (0..180)
            .map(|i| Planned {
                at: t0 + Duration::from_secs(60 * i),
                robot: 0,
                critical: false,
                count: 2,
            })
            .collect();
        msgs.push(Planned {
            at: t0 + Duration::from_secs(60 * 180),
            robot: 0,
            critical: true,
            count: 1,
        });
        let f = forecast(&quota(3000), &["ops".to_owned()], &msgs);
        let r = &f.robots[0];
        assert_eq!(r.unpaced, 181);
        // At pace, a day's share (90) is all that may go ahead of the pace in three hours,
        // plus what three hours add (2700 × 3/720 ≈ 11), plus the critical one from the reserve.
        assert!(r.paced >= 95 && r.paced <= 105, "{}", r.paced);
        assert_eq!(r.undelivered_lines, 0);
        assert_eq!(r.days.values().map(|d| d.0).sum::<u64>(), 181);
        // 181 messages in 3 hours → 181 × 240 a month.
        assert_eq!(f.month_at_rate, Some(181 * 240));
        let text = f.to_string();
        assert!(
            text.contains("robot ops: 181 message(s) without pacing"),
            "{text}"
        );
        assert!(
            text.contains("about 43440 a month, 1448% of the budget of 3000"),
            "{text}"
        );
    }

    #[test]
    fn a_spent_budget_leaves_lines_undelivered_in_the_forecast() {
        let t0 = Month {
            year: 2026,
            month: 11,
        }
        .at_ms(0);
        let msgs: Vec<Planned> = (0..20)
            .map(|i| Planned {
                at: t0 + Duration::from_secs(i),
                robot: 0,
                critical: false,
                count: 1,
            })
            .collect();
        let f = forecast(&quota(4), &["ops".to_owned()], &msgs);
        let r = &f.robots[0];
        // N = 3, a day's share 1: one goes at once, the rest merge; at the end the pace is
        // lifted and the held digest goes (2 of N = 3 used).
        assert_eq!((r.unpaced, r.paced, r.undelivered_lines), (20, 2, 0));
        assert_eq!(f.month_at_rate, None);
        // N = 1: the first goes, and the rest cannot go even at the end.
        let q = Quota {
            reserve: Reserve::Count(1),
            ..quota(2)
        };
        let f = forecast(&q, &["ops".to_owned()], &msgs);
        let r = &f.robots[0];
        assert_eq!((r.unpaced, r.paced, r.undelivered_lines), (20, 1, 19));
        assert!(
            f.to_string()
                .contains("19 matching line(s) left undelivered")
        );
    }
}
