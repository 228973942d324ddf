//! The pacing rule in tables, and a whole simulated month of storms and quiet days.

use std::time::{Duration, SystemTime};

use super::*;
use crate::config::{Quota, Reserve};

const HOUR: u64 = 3_600_000;
const DAY: u64 = 24 * HOUR;

fn nov() -> Month {
    Month {
        year: 2026,
        month: 11,
    }
}

fn quota(monthly: u64, reserve: Reserve, robots: Vec<Option<u64>>) -> Quota {
    Quota {
        monthly,
        reserve,
        robot_monthly: robots,
    }
}

fn names(n: usize) -> Vec<String> {
    ["ops", "sec", "db"][..n]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Describes a verdict relative to the month's start: `now`, `pace 3d+0h`, `spent`.
fn describe(v: &Verdict) -> String {
    let at = |t: &SystemTime| {
        let ms = nov().elapsed_ms(*t);
        format!("{}d+{}h", ms / DAY, (ms % DAY) / HOUR)
    };
    match v {
        Verdict::Now => "now".into(),
        Verdict::Pace { until } => format!("pace {}", at(until)),
        Verdict::Spent { until, .. } if *until == nov().end() => "spent".into(),
        Verdict::Spent { until, .. } => format!("spent until {}", at(until)),
    }
}

/// What happens to one message at a time, as a table: (hours into November, robot, critical,
/// paced, "record" to count it when allowed) → the verdict.
fn play(budget: &mut Budget, steps: &[(u64, usize, bool, bool)]) -> Vec<String> {
    steps
        .iter()
        .map(|&(h, robot, critical, paced)| {
            let v = budget.try_record(robot, critical, paced, nov().at_ms(h * HOUR));
            describe(&v)
        })
        .collect()
}

#[test]
fn a_day_s_share_goes_at_once_then_the_pace_holds() {
    // N = 30 − 3 = 27 over 30 days: a day's share is 1; one message per 30/27 days after.
    let mut b = Budget::new(
        &quota(30, Reserve::Percent(10.0), vec![]),
        &names(1),
        Ledger::default(),
    );
    let got = play(
        &mut b,
        &[
            (0, 0, false, true),  // the day's share
            (0, 0, false, true),  // 1 ≥ ⌊27·0⌋ + 1: wait until ⌊27e⌋ = 1, e = 1/27 (26.7 h)
            (26, 0, false, true), // still too early
            (27, 0, false, true), // now
            (27, 0, true, true),  // critical: the reserve of 3 is beyond the pace
            (27, 0, true, true),
            (27, 0, true, true),
            (27, 0, true, true), // the reserve is spent too: critical is paced like the rest
            (27, 0, false, false), // end of input: the pace is lifted, the cap is not
        ],
    );
    assert_eq!(
        got,
        [
            "now",
            "pace 1d+2h",
            "pace 1d+2h",
            "now",
            "now",
            "now",
            "now",
            "pace 2d+5h",
            "now",
        ]
    );
    assert_eq!(b.ledger().total, 6);
}

#[test]
fn a_quiet_spell_saves_up_and_a_storm_may_spend_the_savings() {
    let mut b = Budget::new(
        &quota(3000, Reserve::Percent(10.0), vec![]),
        &names(1),
        Ledger::default(),
    );
    // Ten quiet days: the pace allows 2700 × 10/30 + 90 = 990 by then.
    let at = nov().at_ms(10 * DAY);
    let mut sent = 0;
    while b.try_record(0, false, true, at) == Verdict::Now {
        sent += 1;
    }
    assert_eq!(sent, 990);
    assert_eq!(b.status(at).allowance, 990);
}

#[test]
fn caps_end_the_month_for_ordinary_then_for_critical_rules() {
    let mut b = Budget::new(
        &quota(10, Reserve::Count(2), vec![]),
        &names(1),
        Ledger::default(),
    );
    // Unpaced (end of input) to reach the caps quickly.
    let got = play(&mut b, &[(1, 0, false, false); 9]);
    assert_eq!(got[..8], ["now"; 8]);
    assert_eq!(got[8], "spent", "8 = N: the rest is the reserve");
    let got = play(&mut b, &[(1, 0, true, false); 3]);
    assert_eq!(got, ["now", "now", "spent"]);
    match b.verdict(0, true, true, nov().at_ms(DAY)) {
        Verdict::Spent { why, .. } => assert!(why.contains("used up (10 of 10)"), "{why}"),
        v => panic!("{v:?}"),
    }
    // The month turns: a new ledger.
    let december = nov().end() + Duration::from_secs(1);
    assert_eq!(b.try_record(0, false, true, december), Verdict::Now);
    assert_eq!(b.ledger().month, "2026-12");
    assert_eq!(b.ledger().total, 1);
}

#[test]
fn a_robot_cap_and_the_organisation_both_apply() {
    // The organisation has plenty; robot `sec` may send 31 a month (N = 27, a day's share 1).
    let mut b = Budget::new(
        &quota(3000, Reserve::Percent(10.0), vec![None, Some(30)]),
        &names(2),
        Ledger::default(),
    );
    let got = play(
        &mut b,
        &[
            (0, 1, false, true),
            (0, 1, false, true),
            (0, 0, false, true), // ops is not held back by sec
            (27, 1, false, true),
        ],
    );
    assert_eq!(got, ["now", "pace 1d+2h", "now", "now"]);
    assert_eq!(b.ledger().robots["sec"], 2);
    assert_eq!(b.ledger().total, 3);
    let status = b.status(nov().at_ms(27 * HOUR));
    assert_eq!(status.robots[1].monthly, Some(30));
    assert!(
        status
            .to_string()
            .starts_with("budget 2026-11: 3 of 3000 messages used"),
        "{status}"
    );
}

#[test]
fn a_quota_error_stops_the_robot_until_the_month_turns() {
    let mut b = Budget::new(
        &quota(3000, Reserve::Percent(10.0), vec![]),
        &names(2),
        Ledger::default(),
    );
    let now = nov().at_ms(DAY);
    b.mark_spent(0, "errcode 90030: webhook over limit", now);
    assert_eq!(describe(&b.verdict(0, true, false, now)), "spent");
    assert_eq!(
        b.verdict(1, false, true, now),
        Verdict::Now,
        "only that robot"
    );
    assert_eq!(
        b.verdict(0, false, true, nov().end()),
        Verdict::Now,
        "a new month"
    );
}

#[test]
fn a_refund_takes_back_only_this_month_s_count() {
    let mut b = Budget::new(
        &quota(3000, Reserve::Percent(10.0), vec![]),
        &names(1),
        Ledger::default(),
    );
    let t = nov().at_ms(DAY);
    b.record(0, t);
    b.record(0, t);
    b.refund(0, t, t);
    assert_eq!(b.ledger().total, 1);
    b.refund(0, t, nov().end()); // counted in November, refunded in December: nothing
    assert_eq!(b.ledger().total, 0, "December starts empty");
    assert_eq!(b.ledger().month, "2026-12");
}

#[test]
fn an_older_month_s_ledger_counts_as_empty() {
    let old = Ledger {
        month: "2026-10".into(),
        total: 2999,
        ..Ledger::default()
    };
    let mut b = Budget::new(&quota(3000, Reserve::Percent(10.0), vec![]), &names(1), old);
    assert_eq!(b.verdict(0, false, true, nov().at_ms(0)), Verdict::Now);
    assert_eq!(b.status(nov().at_ms(0)).used, 0);
}

/// A dispatcher on a simulated clock, minute by minute through November: alerts arrive, merge
/// while the budget says wait, and go out when it says now; at the end of the month what is
/// held is sent as at the end of input.
struct Robot {
    /// Lines held, and whether any of them is critical.
    held: u64,
    held_critical: bool,
    /// When the oldest critical alert held arrived (minutes).
    critical_since: Option<u64>,
    delivered: u64,
    messages: u64,
    ordinary_messages: u64,
}

#[test]
fn a_month_of_storms_and_quiet_days_stays_within_budget_keeps_the_reserve_and_loses_nothing() {
    let q = quota(3000, Reserve::Percent(10.0), vec![None, Some(400)]);
    let mut b = Budget::new(&q, &names(2), Ledger::default());
    let minutes = nov().len_ms() / 60_000;
    let mut robots: Vec<Robot> = (0..2)
        .map(|_| Robot {
            held: 0,
            held_critical: false,
            critical_since: None,
            delivered: 0,
            messages: 0,
            ordinary_messages: 0,
        })
        .collect();
    let mut rng = fastrand::Rng::with_seed(13);
    let (mut generated, mut criticals, mut worst_critical_wait) = (0u64, 0u64, 0u64);
    for m in 0..minutes {
        let day = m / 1440;
        // Storms: days 1–2 (ops, every minute), 9–12 (both), 20 (sec); otherwise a quiet
        // trickle, an alert an hour. A critical alert every ~2 days, some inside storms.
        let storm = matches!(day, 1 | 2) || (9..=12).contains(&day) || day == 20;
        for (r, robot) in robots.iter_mut().enumerate() {
            let stormy = storm && (r == 0 || (9..=12).contains(&day) || day == 20);
            let period = if r == 0 { 60 } else { 240 };
            let arrives = if stormy {
                rng.u64(1..40)
            } else {
                u64::from(m % period == 7)
            };
            robot.held += arrives;
            generated += arrives;
            if rng.u32(0..2900) == 0 {
                robot.held += 1;
                generated += 1;
                criticals += 1;
                robot.held_critical = true;
                robot.critical_since.get_or_insert(m);
            }
        }
        let now = nov().at_ms(m * 60_000);
        for (r, robot) in robots.iter_mut().enumerate() {
            if robot.held == 0 {
                continue;
            }
            if b.try_record(r, robot.held_critical, true, now) == Verdict::Now {
                robot.delivered += robot.held;
                robot.messages += 1;
                if !robot.held_critical {
                    robot.ordinary_messages += 1;
                }
                if let Some(since) = robot.critical_since.take() {
                    worst_critical_wait = worst_critical_wait.max(m - since);
                }
                robot.held = 0;
                robot.held_critical = false;
            }
            // Never past the pace plus a day's share (2700/30 = 90) plus the reserve.
            let e = nov().elapsed_ms(now) as u128;
            let pace = (2700 * e / nov().len_ms() as u128) as u64 + 90;
            assert!(b.ledger().total <= pace + 300, "minute {m}");
        }
    }
    // The end of the month (as the end of input): the pace is lifted, the caps are not.
    let last = nov().at_ms(nov().len_ms() - 1);
    for (r, robot) in robots.iter_mut().enumerate() {
        if robot.held > 0 && b.try_record(r, robot.held_critical, false, last) == Verdict::Now {
            robot.delivered += robot.held;
            robot.messages += 1;
            robot.held = 0;
        }
    }
    let sent: u64 = robots.iter().map(|r| r.messages).sum();
    let ordinary: u64 = robots.iter().map(|r| r.ordinary_messages).sum();
    assert!(sent <= 3000, "{sent} messages");
    assert_eq!(b.ledger().total, sent);
    assert!(robots[1].messages <= 400, "sec: {}", robots[1].messages);
    assert!(
        ordinary <= 2700,
        "ordinary messages ate into the reserve: {ordinary}"
    );
    assert!(
        criticals >= 5,
        "the scenario has critical alerts: {criticals}"
    );
    assert_eq!(worst_critical_wait, 0, "a critical alert waited");
    // Every line is in some message.
    assert_eq!(robots.iter().map(|r| r.delivered).sum::<u64>(), generated);
    // And the storms were merged: far more alerts than messages.
    assert!(
        generated > 10 * sent,
        "{generated} lines in {sent} messages"
    );
}

/// `limits` (what a shared ledger checks in Redis) says the same as `verdict` for every count,
/// cap, reserve, severity and time of the month.
#[test]
fn limits_agree_with_the_verdict_for_every_count() {
    for (monthly, reserve, own) in [
        (30, Reserve::Count(3), None),
        (20, Reserve::Count(0), Some(7)),
        (3000, Reserve::Percent(10.0), Some(500)),
        (2, Reserve::Count(1), None),
    ] {
        for hour in (0..30 * 24).step_by(7) {
            let now = nov().at_ms(hour * HOUR + 1234);
            for critical in [false, true] {
                for paced in [false, true] {
                    let q = quota(monthly, reserve, vec![own]);
                    let mut probe = Budget::new(&q, &names(1), Ledger::default());
                    let (org, mine) = probe.limits(0, critical, paced, now).unwrap();
                    for used in 0..=monthly.min(600) {
                        let mut b = Budget::new(&q, &names(1), Ledger::default());
                        b.sync(0, "2026-11", used, used, now);
                        let allowed = used < org && mine.is_none_or(|m| used < m);
                        assert_eq!(
                            b.verdict(0, critical, paced, now) == Verdict::Now,
                            allowed,
                            "monthly {monthly} own {own:?} hour {hour} critical {critical} paced {paced} used {used}"
                        );
                    }
                }
            }
        }
    }
    let mut b = Budget::new(
        &quota(10, Reserve::Count(0), vec![None]),
        &names(1),
        Ledger::default(),
    );
    b.mark_spent(0, "90030", nov().at_ms(DAY));
    assert_eq!(b.limits(0, true, false, nov().at_ms(DAY)), None);
}
