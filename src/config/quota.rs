//! `quota:` and `robots.NAME.monthly`: how many DingTalk messages a month the robots may spend.
//!
//! Since 2025-11-19 the custom robots of an organisation share one monthly quota (3,000 messages
//! on the free plan, 50,000 on the professional one), and an admin may also cap a robot. Without
//! `quota:` dingtail assumes the free plan's 3,000 with 10% kept for critical rules: a tool that
//! cannot run dry must not need to be told to be careful. Checked here, used by `crate::budget`.

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::Checker;

/// The free plan's monthly quota, the default.
pub const DEFAULT_MONTHLY: u64 = 3_000;
/// The default reserve: 10%.
pub const DEFAULT_RESERVE: Reserve = Reserve::Percent(10.0);

/// The monthly budget, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Quota {
    /// Messages per natural month (Asia/Shanghai) for all robots of this config together.
    pub monthly: u64,
    /// What only `severity: critical` rules may spend.
    pub reserve: Reserve,
    /// `robots.NAME.monthly`, by `RobotId`: a robot's own cap, inside the organisation's.
    pub robot_monthly: Vec<Option<u64>>,
}

impl Default for Quota {
    fn default() -> Quota {
        Quota {
            monthly: DEFAULT_MONTHLY,
            reserve: DEFAULT_RESERVE,
            robot_monthly: Vec::new(),
        }
    }
}

/// `reserve: 10%` or `reserve: 300`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reserve {
    /// A share of the cap it applies to (0–100).
    Percent(f64),
    /// A number of messages (of the organisation's quota; a robot's own cap keeps the same share).
    Count(u64),
}

impl Reserve {
    /// The messages kept back out of a cap of `cap` (`monthly` is the organisation's quota, for
    /// a `Count` given against it). Never more than `cap`.
    pub fn of(self, cap: u64, monthly: u64) -> u64 {
        let kept = match self {
            Reserve::Percent(p) => (cap as f64 * p / 100.0).ceil() as u64,
            Reserve::Count(n) if cap == monthly => n,
            Reserve::Count(n) => (cap as u128 * n as u128).div_ceil(monthly.max(1) as u128) as u64,
        };
        kept.min(cap)
    }
}

impl std::fmt::Display for Reserve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reserve::Percent(p) => write!(f, "{p}%"),
            Reserve::Count(n) => write!(f, "{n}"),
        }
    }
}

/// `quota:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQuota {
    /// Messages per natural month (Asia/Shanghai) for all robots together.
    #[serde(default)]
    monthly: Option<Spanned<u64>>,
    /// A string so that both `10%` and `300` are accepted (YAML gives the scalar's text).
    #[serde(default)]
    reserve: Option<Spanned<String>>,
}

/// Checks `quota:` and the robots' `monthly` (`(name, value)` in `RobotId` order).
pub(super) fn check_quota(
    c: &mut Checker,
    raw: Option<&Spanned<RawQuota>>,
    robots: &[(&str, Option<&Spanned<u64>>)],
) -> Quota {
    let mut quota = Quota::default();
    if let Some(raw) = raw {
        if let Some(m) = &raw.value.monthly {
            if m.value == 0 {
                c.problem(m, "quota, field 'monthly'", "must be at least 1");
            } else {
                quota.monthly = m.value;
            }
        }
        if let Some(r) = &raw.value.reserve {
            match parse_reserve(&r.value) {
                Ok(Reserve::Count(n)) if n >= quota.monthly => c.problem(
                    r,
                    "quota, field 'reserve'",
                    format!(
                        "keeps all {} messages for critical rules; give less than `monthly`",
                        quota.monthly
                    ),
                ),
                Ok(reserve) => quota.reserve = reserve,
                Err(e) => c.problem(r, "quota, field 'reserve'", e),
            }
        }
    }
    for (name, monthly) in robots {
        quota.robot_monthly.push(match monthly {
            Some(m) if m.value == 0 => {
                c.problem(
                    *m,
                    format!("robot '{name}', field 'monthly'"),
                    "must be at least 1",
                );
                None
            }
            Some(m) => Some(m.value),
            None => None,
        });
    }
    quota
}

/// `10%`, `2.5%` or a count.
fn parse_reserve(text: &str) -> Result<Reserve, String> {
    let text = text.trim();
    let bad = || {
        format!(
            "{} is not a reserve; write a share like 10% or a count like 300",
            super::quoted(text)
        )
    };
    if let Some(p) = text.strip_suffix('%') {
        let p: f64 = p.trim().parse().map_err(|_| bad())?;
        if !(0.0..100.0).contains(&p) {
            return Err(format!(
                "{}: a share from 0% to below 100% (the rest must be usable)",
                super::quoted(text)
            ));
        }
        return Ok(Reserve::Percent(p));
    }
    text.parse().map(Reserve::Count).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_parse_and_apply_to_caps() {
        assert_eq!(parse_reserve("10%"), Ok(Reserve::Percent(10.0)));
        assert_eq!(parse_reserve(" 2.5 %"), Ok(Reserve::Percent(2.5)));
        assert_eq!(parse_reserve("300"), Ok(Reserve::Count(300)));
        assert!(parse_reserve("ten").is_err());
        assert!(parse_reserve("100%").is_err());
        assert!(parse_reserve("-1%").is_err());
        assert_eq!(Reserve::Percent(10.0).of(3000, 3000), 300);
        assert_eq!(Reserve::Percent(10.0).of(10, 10), 1);
        assert_eq!(Reserve::Percent(10.0).of(5, 3000), 1, "rounded up");
        assert_eq!(Reserve::Count(300).of(3000, 3000), 300);
        assert_eq!(
            Reserve::Count(300).of(500, 3000),
            50,
            "the same share of a robot cap"
        );
        assert_eq!(Reserve::Count(0).of(500, 3000), 0);
    }
}
