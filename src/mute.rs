//! Recurring mute windows and quiet hours (`mute:` and `quiet_hours:` in the config): weekdays
//! and times of day in the configured time zone.
//!
//! A window is a time of day range on some weekdays: `from: "22:00"`, `to: "07:00"` crosses
//! midnight and belongs to the day it starts on (Friday 22:00 to Saturday 07:00 is "friday").
//! `to: "24:00"` is the end of the day. Pure code: told the time, never reads a clock, so
//! `dingtail test --replay` honours windows on its simulated clock.
//!
//! Edges: on a daylight-saving change the wall clock decides (a window from 02:00 to 03:00 on the
//! night the clocks skip that hour is simply not open that night).

use std::time::{Duration, SystemTime};

use chrono::{Datelike, NaiveDateTime, NaiveTime, Timelike};

use crate::style::Severity;
use crate::timezone::Zone;

/// Weekday names the config accepts, Monday first.
pub const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// When a window is open: weekdays and a time-of-day range, in minutes after midnight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Open on these days (Monday = 0) at `from`.
    pub days: [bool; 7],
    /// Opens at this minute of the day (0..1440).
    pub from: u16,
    /// Closes at this minute (1..=1440); at or before `from`: the next day.
    pub to: u16,
}

impl Schedule {
    /// Parses `HH:MM` (`24:00` allowed) into minutes after midnight.
    pub fn parse_time(text: &str) -> Option<u16> {
        let (h, m) = text.trim().split_once(':')?;
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
    }

    /// Parses a weekday name (`mon`, `monday`, any case) into Monday = 0.
    pub fn parse_day(text: &str) -> Option<usize> {
        let t = text.trim().to_ascii_lowercase();
        DAYS.iter()
            .position(|d| t.len() >= 3 && d.starts_with(&t[..3]) && chrono_day(d).starts_with(&t))
    }

    /// Whether the window is open at local wall-clock time `local`.
    pub fn open_at(&self, local: NaiveDateTime) -> bool {
        self.end_of(local).is_some()
    }

    /// If open at `local`: the local time it closes.
    fn end_of(&self, local: NaiveDateTime) -> Option<NaiveDateTime> {
        let day = local.weekday().num_days_from_monday() as usize;
        let minute = (local.hour() * 60 + local.minute()) as u16;
        let at = |date: chrono::NaiveDate, minute: u16| {
            let (d, m) = if minute >= 1440 {
                (date.succ_opt()?, 0)
            } else {
                (date, minute)
            };
            Some(d.and_time(NaiveTime::from_hms_opt(
                u32::from(m / 60),
                u32::from(m % 60),
                0,
            )?))
        };
        let date = local.date();
        if self.from < self.to {
            return (self.days[day] && minute >= self.from && minute < self.to)
                .then(|| at(date, self.to))
                .flatten();
        }
        // Crosses midnight: the evening part today, or the morning part of a window that opened
        // yesterday.
        if self.days[day] && minute >= self.from {
            return at(date.succ_opt()?, self.to);
        }
        let yesterday = (day + 6) % 7;
        (self.days[yesterday] && minute < self.to)
            .then(|| at(date, self.to))
            .flatten()
    }

    /// If open at `t` in `zone`: when it closes.
    pub fn closes_after(&self, zone: Zone, t: SystemTime) -> Option<SystemTime> {
        let end = self.end_of(zone.naive(t))?;
        // A closing time in a DST gap: the first instant after it.
        Some(
            zone.instant(end)
                .or_else(|| zone.instant(end + chrono::Duration::hours(1)))
                .unwrap_or(t + Duration::from_secs(3600)),
        )
    }
}

fn chrono_day(short: &str) -> &'static str {
    match short {
        "mon" => "monday",
        "tue" => "tuesday",
        "wed" => "wednesday",
        "thu" => "thursday",
        "fri" => "friday",
        "sat" => "saturday",
        _ => "sunday",
    }
}

/// One `mute:` entry: while open, the rules (or severities) it names send nothing; their hits
/// are counted and the first message after it says `while silenced: ×N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuteWindow {
    /// A name for logs.
    pub name: String,
    /// Rules it mutes, by name (empty: see `severities`).
    pub rules: Vec<String>,
    /// Severities it mutes (empty and no rules: every rule).
    pub severities: Vec<Severity>,
    /// When it is open.
    pub schedule: Schedule,
}

impl MuteWindow {
    /// Whether this window covers a rule (by name and severity), whatever the time.
    pub fn covers(&self, rule: &str, severity: Option<Severity>) -> bool {
        if self.rules.is_empty() && self.severities.is_empty() {
            return true;
        }
        self.rules.iter().any(|r| r == rule)
            || severity.is_some_and(|s| self.severities.contains(&s))
    }
}

/// `quiet_hours:`: while open, alerts of the listed severities (default: info and warning, and
/// rules without a severity) are held and sent together as one digest when it closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuietHours {
    /// When it is open.
    pub schedule: Schedule,
    /// Severities held.
    pub severities: Vec<Severity>,
    /// Whether rules without a severity are held.
    pub unrated: bool,
}

impl QuietHours {
    /// Whether an alert of this severity waits for the end of quiet hours.
    pub fn holds(&self, severity: Option<Severity>) -> bool {
        match severity {
            Some(s) => self.severities.contains(&s),
            None => self.unrated,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, 0)
            .unwrap()
    }

    #[test]
    fn times_and_days_parse() {
        assert_eq!(Schedule::parse_time("07:30"), Some(450));
        assert_eq!(Schedule::parse_time("24:00"), Some(1440));
        assert_eq!(Schedule::parse_time("24:01"), None);
        assert_eq!(Schedule::parse_time("7"), None);
        assert_eq!(Schedule::parse_day("Sat"), Some(5));
        assert_eq!(Schedule::parse_day("monday"), Some(0));
        assert_eq!(Schedule::parse_day("mo"), None);
        assert_eq!(Schedule::parse_day("monkey"), None);
    }

    #[test]
    fn a_window_across_midnight_belongs_to_the_day_it_starts() {
        let mut days = [false; 7];
        days[4] = true; // friday
        let s = Schedule {
            days,
            from: 22 * 60,
            to: 7 * 60,
        };
        // 2026-11-27 is a Friday.
        assert!(!s.open_at(at(2026, 11, 27, 21, 59)));
        assert!(s.open_at(at(2026, 11, 27, 22, 0)));
        assert!(s.open_at(at(2026, 11, 28, 6, 59)));
        assert!(!s.open_at(at(2026, 11, 28, 7, 0)));
        assert!(!s.open_at(at(2026, 11, 28, 23, 0)), "saturday night");
        let sh = Zone::parse("Asia/Shanghai").unwrap();
        let t = sh.instant(at(2026, 11, 27, 23, 0)).unwrap();
        assert_eq!(
            s.closes_after(sh, t),
            Some(sh.instant(at(2026, 11, 28, 7, 0)).unwrap())
        );
    }
}
