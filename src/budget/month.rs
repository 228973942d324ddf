//! The natural month as DingTalk counts it: in Asia/Shanghai, whatever the host's zone.
//!
//! A fixed UTC+08:00 rather than a zone database: China has kept UTC+8 without daylight saving
//! since 1991, so the offset is exact for every month dingtail can see, and no tz data needs to
//! ship with the binary.

use std::fmt;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeZone};

/// UTC+08:00, Asia/Shanghai (no DST since 1991).
pub fn shanghai() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("a valid offset")
}

/// A calendar month in Asia/Shanghai.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    /// The year.
    pub year: i32,
    /// 1–12.
    pub month: u32,
}

impl Month {
    /// The month `t` falls in.
    pub fn of(t: SystemTime) -> Month {
        let local: DateTime<FixedOffset> =
            DateTime::<chrono::Utc>::from(t).with_timezone(&shanghai());
        Month {
            year: local.year(),
            month: local.month(),
        }
    }

    /// The month after this one.
    pub fn next(self) -> Month {
        if self.month == 12 {
            Month {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Month {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// The 1st, 00:00 Shanghai.
    pub fn start(self) -> SystemTime {
        let date = NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("a valid month");
        let midnight = date.and_hms_opt(0, 0, 0).expect("midnight");
        shanghai()
            .from_local_datetime(&midnight)
            .single()
            .expect("a fixed offset is unambiguous")
            .into()
    }

    /// The next month's start.
    pub fn end(self) -> SystemTime {
        self.next().start()
    }

    /// Days in the month.
    pub fn days(self) -> u64 {
        self.len_ms() / 86_400_000
    }

    /// Length in milliseconds.
    pub fn len_ms(self) -> u64 {
        self.end()
            .duration_since(self.start())
            .unwrap_or_default()
            .as_millis() as u64
    }

    /// Milliseconds from the start to `t`, clamped to the month.
    pub fn elapsed_ms(self, t: SystemTime) -> u64 {
        let ms = t
            .duration_since(self.start())
            .unwrap_or_default()
            .as_millis() as u64;
        ms.min(self.len_ms())
    }

    /// The time `ms` milliseconds after the start.
    pub fn at_ms(self, ms: u64) -> SystemTime {
        self.start() + Duration::from_millis(ms)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// `2026-12-01 00:00 +08:00`: a time as the operator reads it next to the month.
pub fn shanghai_time(t: SystemTime) -> String {
    DateTime::<chrono::Utc>::from(t)
        .with_timezone(&shanghai())
        .format("%Y-%m-%d %H:%M %:z")
        .to_string()
}

/// `2026-11-29`: the Shanghai day of `t`.
pub fn shanghai_day(t: SystemTime) -> String {
    DateTime::<chrono::Utc>::from(t)
        .with_timezone(&shanghai())
        .format("%Y-%m-%d")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> SystemTime {
        DateTime::parse_from_rfc3339(s).unwrap().into()
    }

    #[test]
    fn the_month_turns_at_midnight_in_shanghai_not_in_utc() {
        // 2026-11-30 16:00 UTC is 2026-12-01 00:00 in Shanghai.
        assert_eq!(
            Month::of(utc("2026-11-30T15:59:59Z")).to_string(),
            "2026-11"
        );
        assert_eq!(
            Month::of(utc("2026-11-30T16:00:00Z")).to_string(),
            "2026-12"
        );
        let nov = Month {
            year: 2026,
            month: 11,
        };
        assert_eq!(nov.start(), utc("2026-10-31T16:00:00Z"));
        assert_eq!(nov.end(), utc("2026-11-30T16:00:00Z"));
        assert_eq!(nov.days(), 30);
        assert_eq!(
            Month {
                year: 2028,
                month: 2
            }
            .days(),
            29
        );
        assert_eq!(
            Month {
                year: 2026,
                month: 12
            }
            .next()
            .to_string(),
            "2027-01"
        );
        assert_eq!(shanghai_time(nov.end()), "2026-12-01 00:00 +08:00");
        assert_eq!(nov.elapsed_ms(utc("2026-12-05T00:00:00Z")), nov.len_ms());
        assert_eq!(nov.elapsed_ms(utc("2020-01-01T00:00:00Z")), 0);
    }
}
