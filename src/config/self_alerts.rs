//! `self_alerts:` in the config: which robot hears about dingtail's own trouble, and when a
//! trouble is worth a message. Checked into [`SelfAlerts`]; the watching is `crate::self_alert`.

use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::Checker;

/// How long a followed file may stay unreadable before a robot is told (the promise).
pub const DEFAULT_UNREADABLE_FOR: Duration = Duration::from_secs(5 * 60);
/// A stop shorter than this is a restart, not news.
pub const DEFAULT_RESTART_GAP: Duration = Duration::from_secs(60);
/// The monthly budget is "running low" once this share of it is used.
pub const DEFAULT_BUDGET_LOW_PERCENT: u8 = 80;

/// `self_alerts:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSelfAlerts {
    /// `robot:` the robot told about dingtail's own trouble.
    robot: Spanned<String>,
    /// `unreadable_for:` how long a followed file may stay unreadable before it is reported.
    #[serde(default)]
    unreadable_for: Option<Spanned<String>>,
    /// `restart_gap:` a start this long after the last sign of life is reported.
    #[serde(default)]
    restart_gap: Option<Spanned<String>>,
    /// `budget_low:` the share of the monthly budget used at which it is reported.
    #[serde(default)]
    budget_low: Option<Spanned<String>>,
}

/// `self_alerts:` checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfAlerts {
    /// The robot (by name) that dingtail's own news goes to; news about that robot failing goes
    /// to another one.
    pub robot: String,
    /// `unreadable_for` (default 5m): a followed file unreadable this long is reported.
    pub unreadable_for: Duration,
    /// `restart_gap` (default 1m): a start this long after the last sign of life is reported.
    pub restart_gap: Duration,
    /// `budget_low` (default `80%`): the monthly budget is reported once this much is used.
    pub budget_low_percent: u8,
}

/// Checks `self_alerts:` against the robots defined (`robots`: their names).
pub(super) fn check_self_alerts(
    c: &mut Checker,
    raw: Option<&Spanned<RawSelfAlerts>>,
    robots: &[&str],
) -> Option<SelfAlerts> {
    let raw = &raw?.value;
    let robot = raw.robot.value.trim().to_owned();
    let mut ok = true;
    if !robots.contains(&robot.as_str()) {
        let known = if robots.is_empty() {
            "no robot is defined under `robots:`".to_owned()
        } else {
            format!("defined robots: {}", robots.join(", "))
        };
        c.problem(
            &raw.robot,
            "field 'self_alerts.robot'",
            format!("unknown robot `{robot}` ({known})"),
        );
        ok = false;
    }
    let mut duration = |v: &Option<Spanned<String>>, field: &str, default: Duration| match v {
        None => Some(default),
        Some(v) => c.duration(
            v,
            &format!("field 'self_alerts.{field}'"),
            Duration::from_secs(7 * 86_400),
        ),
    };
    let unreadable_for = duration(
        &raw.unreadable_for,
        "unreadable_for",
        DEFAULT_UNREADABLE_FOR,
    );
    let restart_gap = duration(&raw.restart_gap, "restart_gap", DEFAULT_RESTART_GAP);
    let budget_low_percent = match &raw.budget_low {
        None => Some(DEFAULT_BUDGET_LOW_PERCENT),
        Some(v) => {
            let n = v
                .value
                .trim()
                .trim_end_matches('%')
                .trim()
                .parse::<u8>()
                .ok();
            match n.filter(|n| (1..=100).contains(n)) {
                Some(n) => Some(n),
                None => {
                    c.problem(
                        v,
                        "field 'self_alerts.budget_low'",
                        "expected a share of the monthly budget between 1% and 100%, such as 80%",
                    );
                    None
                }
            }
        }
    };
    match (ok, unreadable_for, restart_gap, budget_low_percent) {
        (true, Some(unreadable_for), Some(restart_gap), Some(budget_low_percent)) => {
            Some(SelfAlerts {
                robot,
                unreadable_for,
                restart_gap,
                budget_low_percent,
            })
        }
        _ => None,
    }
}
