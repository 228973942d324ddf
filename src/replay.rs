//! `dingtail test --replay`: runs a log through the rules on a simulated clock and prints the
//! exact messages the rules would send, so thresholds, cooldowns and absence can be seen in
//! seconds instead of waiting for them.
//!
//! The log is read through the same [`EventReader`] as `run` reads it: with `multiline`, lines
//! are gathered into events (`run`'s setting for the input, see [`Config::multiline_for`]), and
//! an event is matched, counted and quoted as `run` would. The clock follows the log: each
//! event's time is read from its first line with the config's `timestamp: {regex, format}`; an
//! event without a readable time (or every event, without that setting) is placed
//! `line_interval` after the previous one. Time never runs backwards: a line
//! older than the one before it is taken to happen at the same time. Before each line, every
//! timer due by its time runs; at the end, everything pending is flushed as at the end of a pipe.
//!
//! What differs from `run`: no rate limit and no merging while waiting (each batch of alerts
//! that fall due together is rendered on its own), so the output shows what the rules decide,
//! message by message, and nothing is sent. Then a forecast (`crate::budget::forecast`) shows
//! what the monthly budget's pacing would make of those messages.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use chrono::{DateTime, Datelike, Local, NaiveDateTime, TimeZone};
use tokio::time::Instant;

use crate::aggregate::{Aggregator, Routed};
use crate::budget::forecast::{Forecast, Planned, forecast};
use crate::config::{Config, Multiline, TimestampFormat};
use crate::dingtalk::message::render;
use crate::dingtalk::{MAX_BODY_BYTES, RenderContext};
use crate::hush::Hush;
use crate::matcher::Matcher;
use crate::pretty::{Presentation, write_message};
use crate::source::{Chunk, EventReader};
use crate::tester::TestError;

/// One message the rules would send.
#[derive(Debug, Clone)]
pub struct Replayed {
    /// Simulated time it would be sent.
    pub at: SystemTime,
    /// The robot (`None`: the config has no robot).
    pub robot: Option<String>,
    /// The request body.
    pub body: serde_json::Value,
    /// Matching lines it stands for.
    pub count: u64,
    /// It holds an alert of a `severity: critical` rule.
    pub critical: bool,
}

/// Replays `input` (standard input, or a copy of it: its events gathered as `run` would gather
/// stdin's) through `config`'s rules, writing each message to `out` and returning them.
pub fn replay(
    config: &Config,
    input: impl Read,
    out: &mut impl Write,
    host: &str,
    line_interval: Duration,
) -> Result<Vec<Replayed>, TestError> {
    replay_as(
        config,
        input,
        config.multiline_for(None),
        out,
        host,
        line_interval,
        Presentation::MACHINE,
    )
}

/// [`replay`], with `multiline` gathering lines into events (`None`: every line is one), and
/// printing each message for people when `p.human` (see [`crate::pretty`]); the messages
/// returned are the same.
pub fn replay_as(
    config: &Config,
    input: impl Read,
    multiline: Option<&Multiline>,
    out: &mut impl Write,
    host: &str,
    line_interval: Duration,
    p: Presentation,
) -> Result<Vec<Replayed>, TestError> {
    let matcher = Matcher::new(&config.rules, config.max_line_bytes)?;
    let mut reader = EventReader::new(config.max_line_bytes, multiline);
    let mut state: Option<Clock> = None;
    let mut agg: Option<Aggregator> = None;
    let mut sent = Vec::new();
    let source: Arc<str> = Arc::from("-");
    // Mute windows and quiet hours on the simulated clock (and silences of the state
    // directory, when there is one: they end at real times, which a replay of today's log meets).
    let silences = crate::source::checkpoint::state_dir(None)
        .ok()
        .and_then(|d| crate::silence::Silences::open(Some(&d)).ok())
        .unwrap_or_default();
    let mut hush = Hush::new(
        silences,
        config.mutes.clone(),
        config.quiet_hours.clone(),
        config.timezone,
    );
    // `new_patterns:` on the simulated clock, remembering nothing from before.
    let mut sieve = crate::new_pattern::Sieve::fresh(config.new_patterns.as_ref(), &config.rules);
    let mut read_lines = 0u64;
    // Read once: a yearless timestamp is placed by this day, however long the replay takes.
    let today = Local::now();
    let mut step = |(event, line_joins): (Bytes, Vec<u32>),
                    out: &mut dyn Write,
                    sent: &mut Vec<Replayed>|
     -> io::Result<()> {
        // An event's time is its first line's.
        let first_line = line_joins
            .first()
            .map_or(&event[..], |&j| &event[..j as usize]);
        let wall = line_time(config.timestamp.as_ref(), first_line, today);
        let clock = state.get_or_insert_with(|| Clock::start(wall));
        let now = clock.advance(wall, line_interval);
        let agg = agg.get_or_insert_with(|| {
            Aggregator::new(&config.rules, clock.t0, clock.wall_at(clock.t0))
        });
        loop {
            let quiet_end = hush.next_deadline().filter(|&d| d <= clock.wall_at(now));
            let due = agg.next_deadline().filter(|&d| d <= now);
            match (due, quiet_end) {
                (Some(d), q) if q.is_none_or(|q| clock.wall_at(d) <= q) => {
                    let (alerts, _) = hush.filter(agg.expire(d), clock.wall_at(d));
                    emit(alerts, clock.wall_at(d), config, host, p, out, sent)?;
                }
                (_, Some(q)) => emit(hush.due(q, false), q, config, host, p, out, sent)?,
                (None, None) => break,
                (Some(_), None) => unreachable!("matched by the first arm"),
            }
        }
        let chunk = Chunk {
            source: source.clone(),
            data: event,
            end_offset: 0,
            read_at: clock.wall_at(now),
            mark: None,
            line_joins,
        };
        read_lines += 1 + chunk.line_joins.len() as u64;
        let mut batch = matcher.match_chunk(&chunk);
        chunk.set_lines_apart(batch.hits.iter_mut().map(|h| &mut h.line));
        if let Some(s) = &mut sieve {
            s.sift(&mut batch, now);
        }
        let (alerts, _) = hush.filter(agg.add(&batch, now), clock.wall_at(now));
        emit(alerts, clock.wall_at(now), config, host, p, out, sent)
    };
    reader.read_all(input, TestError::Read, |block, _| {
        for event in block.each_event() {
            step(event, out, &mut sent)?;
        }
        Ok(())
    })?;
    let clock = state.get_or_insert_with(|| Clock::start(None));
    let agg = agg
        .get_or_insert_with(|| Aggregator::new(&config.rules, clock.t0, clock.wall_at(clock.t0)));
    let end = clock.now;
    let (mut alerts, _) = hush.filter(agg.flush(end), clock.wall_at(end));
    alerts.extend(hush.due(clock.wall_at(end), true));
    emit(alerts, clock.wall_at(end), config, host, p, out, &mut sent)?;
    let silenced: Vec<String> = hush
        .silenced()
        .iter()
        .map(|(r, n)| format!("{r} {n}"))
        .collect();
    let held: Vec<String> = agg
        .held_below_threshold()
        .iter()
        .zip(&config.rules)
        .filter(|(n, _)| **n > 0)
        .map(|(n, r)| format!("{} {n}", r.name))
        .collect();
    writeln!(
        out,
        "=== {} message(s), {} matching {} in them{}{}",
        sent.len(),
        sent.iter().map(|m| m.count).sum::<u64>(),
        if reader.gathers_events() {
            "event(s)"
        } else {
            "line(s)"
        },
        if silenced.is_empty() {
            String::new()
        } else {
            format!("; silenced, not sent: {}", silenced.join(", "))
        },
        if held.is_empty() {
            String::new()
        } else {
            format!(
                "; below threshold at the end, not sent: {}",
                held.join(", ")
            )
        }
    )?;
    if let Some(s) = &sieve {
        // one header per alert, in merged messages too
        let header = format!("【{}】", crate::new_pattern::RULE_NAME);
        let alerts: usize = (sent.iter())
            .map(|m| {
                (m.body["text"]["content"].as_str())
                    .or_else(|| m.body["markdown"]["text"].as_str())
                    .map_or(0, |t| t.matches(&header).count())
            })
            .sum();
        let line = crate::new_pattern::replay_summary(s, read_lines, alerts);
        writeln!(out, "{line}")?;
    }
    write!(out, "{}", budget_forecast(config, &sent))?;
    Ok(sent)
}

/// The replayed messages run through the monthly budget's pacing.
fn budget_forecast(config: &Config, sent: &[Replayed]) -> Forecast {
    let mut names: Vec<String> = config.robots.iter().map(|r| r.name.clone()).collect();
    if names.is_empty() {
        names.push("(none)".to_owned());
    }
    let planned: Vec<Planned> = sent
        .iter()
        .map(|m| Planned {
            at: m.at,
            robot: m
                .robot
                .as_deref()
                .and_then(|n| config.robot_id(n))
                .unwrap_or(0),
            critical: m.critical,
            count: m.count,
        })
        .collect();
    forecast(&config.quota, &names, &planned)
}

/// The simulated clock: `t0` is the first line's time.
struct Clock {
    t0: Instant,
    wall0: SystemTime,
    now: Instant,
}

impl Clock {
    fn start(wall: Option<SystemTime>) -> Clock {
        let t0 = Instant::now();
        Clock {
            t0,
            wall0: wall.unwrap_or_else(SystemTime::now),
            now: t0,
        }
    }

    /// Moves to the line's time (never backwards), or one interval on when it has none. Log
    /// times are anyone's: arithmetic saturates (the clock stays put) instead of overflowing.
    fn advance(&mut self, wall: Option<SystemTime>, interval: Duration) -> Instant {
        let next = match wall {
            Some(w) => self
                .t0
                .checked_add(w.duration_since(self.wall0).unwrap_or_default())
                .unwrap_or(self.now),
            None if self.now == self.t0 && interval.is_zero() => self.t0,
            None => self.now.checked_add(interval).unwrap_or(self.now),
        };
        self.now = self.now.max(next);
        self.now
    }

    fn wall_at(&self, t: Instant) -> SystemTime {
        self.wall0
            .checked_add(t.saturating_duration_since(self.t0))
            .unwrap_or(self.wall0)
    }
}

/// Renders alerts that fell due together, per robot, exactly as a dispatcher would.
fn emit(
    alerts: Vec<Routed>,
    at: SystemTime,
    config: &Config,
    host: &str,
    p: Presentation,
    out: &mut dyn Write,
    sent: &mut Vec<Replayed>,
) -> io::Result<()> {
    let mut robots: Vec<Option<usize>> = alerts.iter().map(|a| a.robot).collect();
    robots.dedup();
    robots.sort_unstable();
    robots.dedup();
    for robot in robots {
        let mut rest: Vec<Routed> = alerts
            .iter()
            .filter(|a| a.robot == robot)
            .cloned()
            .collect();
        let robot_cfg = robot.map(|r| &config.robots[r]);
        let ctx = RenderContext {
            host,
            keyword: robot_cfg.and_then(|r| r.send.keyword.as_deref()),
            max_body: MAX_BODY_BYTES,
            zone: config.timezone,
            hosts: None,
        };
        while !rest.is_empty() {
            let (message, used) = render(&rest, &ctx, "replay".to_owned());
            let critical = rest
                .drain(..used)
                .any(|a| a.style.severity == Some(crate::style::Severity::Critical));
            let body: serde_json::Value =
                serde_json::from_str(&message.body).expect("rendered bodies are JSON");
            let text = body["text"]["content"]
                .as_str()
                .or_else(|| body["markdown"]["text"].as_str())
                .unwrap_or_default();
            if p.human {
                let when = config
                    .timezone
                    .format(at, "%Y-%m-%d %H:%M:%S%.3f")
                    .to_string();
                write_message(
                    out,
                    p,
                    robot_cfg.map(|r| r.name.as_str()),
                    &message.rules,
                    message.count,
                    &body,
                    Some(&when),
                )?;
            } else {
                writeln!(
                    out,
                    "--- {} · robot {} · {}",
                    config.timezone.format(at, "%Y-%m-%d %H:%M:%S%.3f"),
                    robot_cfg.map_or("(none)", |r| r.name.as_str()),
                    body["msgtype"].as_str().unwrap_or_default()
                )?;
                writeln!(out, "{text}")?;
                if let Some(at) = body.get("at") {
                    writeln!(out, "(at: {at})")?;
                }
            }
            sent.push(Replayed {
                at,
                robot: robot_cfg.map(|r| r.name.clone()),
                body,
                count: message.count,
                critical,
            });
        }
    }
    Ok(())
}

/// The time written in a line, by the config's `timestamp` setting, `now` being the day a
/// yearless timestamp is placed by.
fn line_time(
    format: Option<&TimestampFormat>,
    line: &[u8],
    now: DateTime<Local>,
) -> Option<SystemTime> {
    let f = format?;
    let caps = f.regex.captures(line)?;
    let m = caps.name("ts").or_else(|| caps.get(1))?;
    let text = std::str::from_utf8(m.as_bytes()).ok()?.trim();
    parse_time(text, &f.format, now)
}

/// How many years back a yearless date is looked for: Feb 29 recurs within eight.
const YEARS_BACK: i32 = 8;

/// Parses with a strftime format: with a zone if it has one, else as local time. A format
/// without a year (syslog) gets the most recent year, as of `now`, that puts the line at most a
/// day in the future and in which the date exists: a December log replayed in January is last
/// year's, and `Feb 29` read on 2028-02-26 is 2024's (not 2028's, three days ahead).
pub fn parse_time(text: &str, format: &str, now: DateTime<Local>) -> Option<SystemTime> {
    if let Ok(t) = DateTime::parse_from_str(text, format) {
        return Some(t.into());
    }
    let naive = NaiveDateTime::parse_from_str(text, format)
        .ok()
        .or_else(|| {
            if format.contains("%Y") || format.contains("%y") {
                return None;
            }
            let latest = now.naive_local() + chrono::Duration::days(1);
            let with_year = |year: i32| {
                NaiveDateTime::parse_from_str(&format!("{year} {text}"), &format!("%Y {format}"))
                    .ok()
            };
            (now.year() - YEARS_BACK..=now.year())
                .rev()
                .filter_map(with_year)
                .find(|t| *t <= latest)
        })?;
    Local
        .from_local_datetime(&naive)
        .earliest()
        .map(SystemTime::from)
}

#[cfg(test)]
mod tests {
    use chrono::Duration as ChronoDuration;

    use super::*;

    /// A local time, as the replay's "now".
    fn local(y: i32, mo: u32, d: u32, h: u32) -> DateTime<Local> {
        Local
            .with_ymd_and_hms(y, mo, d, h, 0, 0)
            .earliest()
            .unwrap()
    }

    #[test]
    fn a_yearless_timestamp_is_never_placed_in_the_future() {
        let format = "%b %d %H:%M:%S";
        let year_of = |text: &str, now| -> Option<(i32, u32, u32)> {
            let t: DateTime<Local> = parse_time(text, format, now)?.into();
            assert!(t <= now + ChronoDuration::days(1), "{t} after {now}");
            Some((t.year(), t.month(), t.day()))
        };
        // today and a little ahead of today: this year
        assert_eq!(
            year_of("Feb 26 10:00:00", local(2028, 2, 26, 12)),
            Some((2028, 2, 26))
        );
        assert_eq!(
            year_of("Feb 27 10:00:00", local(2028, 2, 26, 12)),
            Some((2028, 2, 27))
        );
        // three days ahead: last year's
        assert_eq!(
            year_of("Mar 01 10:00:00", local(2028, 2, 27, 12)),
            Some((2027, 3, 1))
        );
        // a December log replayed in January
        assert_eq!(
            year_of("Dec 31 23:59:59", local(2027, 1, 1, 0)),
            Some((2026, 12, 31))
        );
        // Feb 29 ahead in a leap year, or in a year without one: the last Feb 29 that was
        assert_eq!(
            year_of("Feb 29 10:00:00", local(2028, 2, 26, 12)),
            Some((2024, 2, 29))
        );
        assert_eq!(
            year_of("Feb 29 10:00:00", local(2026, 11, 29, 12)),
            Some((2024, 2, 29))
        );
        assert_eq!(
            year_of("Feb 29 10:00:00", local(2028, 3, 1, 12)),
            Some((2028, 2, 29))
        );
        // not a date at all
        assert_eq!(year_of("Feb 30 10:00:00", local(2028, 3, 1, 12)), None);
    }

    #[test]
    fn events_are_replayed_whole_and_counted_once() {
        let config = crate::config::parse_str(
            "stdin:\n  multiline: { start: '^\\d{4}-' }\n\
             timestamp: { regex: '^(\\S+ \\S+)', format: '%Y-%m-%d %H:%M:%S' }\n\
             rules:\n  - { name: exc, match: 'Exception|^\\s+at ', window: 1m }\n",
            "t.yaml",
            &|_| None,
        )
        .unwrap();
        let input = "2031-05-01 10:00:00 ERROR java.lang.IllegalStateException: boom\n\
                     \tat a.B(C.java:1)\n\
                     2031-05-01 10:00:10 ERROR again\n\
                     \tat d.E(F.java:2)\n";
        let mut out = Vec::new();
        let sent = replay(&config, input.as_bytes(), &mut out, "h", Duration::ZERO).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(sent.len(), 1, "{out}");
        assert_eq!(sent[0].count, 2, "one per event: {out}");
        assert!(
            out.contains("IllegalStateException: boom\n  \tat a.B(C.java:1)\n"),
            "the event's lines, apart: {out}"
        );
        assert!(out.contains("2 matching event(s)"), "{out}");
        // line by line, each stack frame is a hit of its own
        let mut out = Vec::new();
        let sent = replay_as(
            &config,
            input.as_bytes(),
            None,
            &mut out,
            "h",
            Duration::ZERO,
            Presentation::MACHINE,
        )
        .unwrap();
        assert_eq!(sent.iter().map(|m| m.count).sum::<u64>(), 3);
    }

    #[test]
    fn a_timestamp_with_a_year_or_a_zone_is_taken_as_written() {
        let now = local(2028, 2, 26, 12);
        let t: DateTime<Local> = parse_time("2031-05-01 10:00:00", "%Y-%m-%d %H:%M:%S", now)
            .unwrap()
            .into();
        assert_eq!((t.year(), t.month(), t.day()), (2031, 5, 1));
        let t = parse_time("2031-05-01T10:00:00+08:00", "%Y-%m-%dT%H:%M:%S%z", now).unwrap();
        assert_eq!(
            t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
            1_935_367_200
        );
    }
}
