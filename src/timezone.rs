//! The time zone every time in a message is written in (and mute windows are read in).
//!
//! Most containers run in UTC while their readers live in UTC+8 ("差8小时"), so the zone is a
//! setting: `timezone: Asia/Shanghai` in the config, else `TZ`, else the host's zone. IANA names
//! are resolved with the tz database compiled into the binary (`chrono-tz`), so a bare container
//! without `/usr/share/zoneinfo` still writes Shanghai time.
//!
//! Edges: a `TZ` that is not an IANA name (a POSIX string such as `CST-8`, or empty) is left to
//! the C library's reading of the host zone ([`Zone::Host`]), as every other program on the host
//! would; a `timezone:` that is not an IANA name is a config error.

use std::fmt;
use std::time::SystemTime;

use chrono::{DateTime, Local, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

/// A time zone: a named IANA zone, or whatever the host's C library says local time is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Zone {
    /// An IANA zone from the compiled-in database.
    Iana(Tz),
    /// The host's local time (`/etc/localtime`), when nothing names a zone.
    #[default]
    Host,
}

impl Zone {
    /// Parses an IANA name (`Asia/Shanghai`, `UTC`); `None` when the database does not know it.
    pub fn parse(name: &str) -> Option<Zone> {
        name.trim().parse::<Tz>().ok().map(Zone::Iana)
    }

    /// The zone used when the config names none: `TZ` when it is an IANA name (with or without
    /// the leading `:` glibc allows), else the host's zone.
    pub fn from_env() -> Zone {
        Zone::from_tz_var(std::env::var("TZ").ok().as_deref())
    }

    /// [`Zone::from_env`] with the value of `TZ` given (for tests).
    pub fn from_tz_var(tz: Option<&str>) -> Zone {
        tz.map(|v| v.strip_prefix(':').unwrap_or(v))
            .and_then(Zone::parse)
            .unwrap_or(Zone::Host)
    }

    /// Formats `t` in this zone with a chrono format string.
    pub fn format(self, t: SystemTime, fmt: &str) -> String {
        match self {
            Zone::Iana(tz) => DateTime::<chrono::Utc>::from(t)
                .with_timezone(&tz)
                .format(fmt)
                .to_string(),
            Zone::Host => DateTime::<Local>::from(t).format(fmt).to_string(),
        }
    }

    /// The wall-clock time (date and time of day) of `t` in this zone.
    pub fn naive(self, t: SystemTime) -> NaiveDateTime {
        match self {
            Zone::Iana(tz) => DateTime::<chrono::Utc>::from(t)
                .with_timezone(&tz)
                .naive_local(),
            Zone::Host => DateTime::<Local>::from(t).naive_local(),
        }
    }

    /// The instant a wall-clock time in this zone stands for; in a DST gap, `None`; in a DST
    /// overlap, the earlier of the two.
    pub fn instant(self, local: NaiveDateTime) -> Option<SystemTime> {
        match self {
            Zone::Iana(tz) => tz
                .from_local_datetime(&local)
                .earliest()
                .map(SystemTime::from),
            Zone::Host => Local
                .from_local_datetime(&local)
                .earliest()
                .map(SystemTime::from),
        }
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Zone::Iana(tz) => write!(f, "{}", tz.name()),
            Zone::Host => write!(f, "host local time"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn shanghai_is_eight_hours_ahead_of_utc_whatever_the_host_says() {
        let zone = Zone::parse("Asia/Shanghai").unwrap();
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_399_600); // 2025-11-29 07:00 UTC
        assert_eq!(zone.format(t, "%Y-%m-%d %H:%M"), "2025-11-29 15:00");
        assert_eq!(
            Zone::parse("UTC").unwrap().format(t, "%H:%M"),
            "07:00",
            "UTC"
        );
    }

    #[test]
    fn tz_variable_is_read_as_an_iana_name_else_the_host_zone() {
        let sh = Zone::parse("Asia/Shanghai").unwrap();
        assert_eq!(Zone::from_tz_var(Some("Asia/Shanghai")), sh);
        assert_eq!(Zone::from_tz_var(Some(":Asia/Shanghai")), sh);
        assert_eq!(Zone::from_tz_var(Some("CST-8")), Zone::Host);
        assert_eq!(Zone::from_tz_var(Some("")), Zone::Host);
        assert_eq!(Zone::from_tz_var(None), Zone::Host);
        assert_eq!(Zone::parse("Mars/Olympus"), None);
    }

    #[test]
    fn wall_clock_round_trips_and_dst_gaps_have_no_instant() {
        let ny = Zone::parse("America/New_York").unwrap();
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_399_600);
        assert_eq!(ny.instant(ny.naive(t)), Some(t));
        let gap = chrono::NaiveDate::from_ymd_opt(2026, 3, 8)
            .unwrap()
            .and_hms_opt(2, 30, 0)
            .unwrap();
        assert_eq!(ny.instant(gap), None);
    }
}
