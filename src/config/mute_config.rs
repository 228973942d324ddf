//! `mute:` and `quiet_hours:` in the config, checked into [`MuteWindow`]s and [`QuietHours`].

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::Checker;
use crate::mute::{DAYS, MuteWindow, QuietHours, Schedule};
use crate::style::Severity;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMute {
    /// A name for the window, for people reading the config.
    #[serde(default)]
    name: Option<Spanned<String>>,
    /// Rules it mutes.
    #[serde(default)]
    rules: Vec<Spanned<String>>,
    /// Severities it mutes.
    #[serde(default)]
    severities: Vec<Spanned<String>>,
    /// Days it applies on (default: every day).
    #[serde(default)]
    days: Vec<Spanned<String>>,
    /// Start, `HH:MM` in the config's zone.
    from: Spanned<String>,
    /// End, `HH:MM` (`24:00` is midnight); before `from`, it runs past midnight.
    to: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQuietHours {
    /// Days they apply on (default: every day).
    #[serde(default)]
    days: Vec<Spanned<String>>,
    /// Start, `HH:MM` in the config's zone.
    from: Spanned<String>,
    /// End, `HH:MM`; before `from`, they run past midnight.
    to: Spanned<String>,
    /// Severities held for the digest (default: info, warning and rules without one).
    #[serde(default)]
    severities: Option<Vec<Spanned<String>>>,
}

fn schedule(
    c: &mut Checker,
    days: &[Spanned<String>],
    from: &Spanned<String>,
    to: &Spanned<String>,
    ctx: &dyn Fn(&str) -> String,
) -> Option<Schedule> {
    let mut open = [days.is_empty(); 7];
    let mut ok = true;
    for d in days {
        match Schedule::parse_day(&d.value) {
            Some(i) => open[i] = true,
            None => {
                c.problem(
                    d,
                    ctx("days"),
                    format!("`{}` is not a weekday ({})", d.value, DAYS.join(", ")),
                );
                ok = false;
            }
        }
    }
    let mut time = |raw: &Spanned<String>, field: &str| {
        let t = Schedule::parse_time(&raw.value);
        if t.is_none() {
            c.problem(
                raw,
                ctx(field),
                format!(
                    "`{}` is not a time of day; write HH:MM, e.g. 22:00",
                    raw.value
                ),
            );
        }
        t
    };
    let (f, t) = (time(from, "from"), time(to, "to"));
    let (Some(from_m), Some(to_m)) = (f, t) else {
        return None;
    };
    if from_m == to_m || from_m >= 1440 {
        c.problem(
            to,
            ctx("to"),
            "must differ from `from` (00:00 to 24:00 is the whole day)",
        );
        return None;
    }
    ok.then_some(Schedule {
        days: open,
        from: from_m,
        to: to_m,
    })
}

fn severities(
    c: &mut Checker,
    raw: &[Spanned<String>],
    ctx: &dyn Fn(&str) -> String,
) -> Vec<Severity> {
    raw.iter()
        .filter_map(|s| {
            let v = Severity::parse(&s.value);
            if v.is_none() {
                c.problem(
                    s,
                    ctx("severities"),
                    format!(
                        "unknown severity `{}` ({})",
                        s.value,
                        Severity::NAMES.join(", ")
                    ),
                );
            }
            v
        })
        .collect()
}

/// Checks `mute:` entries; `rules` are the config's rule names.
pub(super) fn check_mutes(
    c: &mut Checker,
    raw: &[Spanned<RawMute>],
    rules: &[&str],
) -> Vec<MuteWindow> {
    let mut out = Vec::new();
    for (i, m) in raw.iter().enumerate() {
        let m = &m.value;
        let name = m
            .name
            .as_ref()
            .map_or_else(|| format!("mute {}", i + 1), |n| n.value.clone());
        let ctx = |field: &str| format!("mute '{name}', field '{field}'");
        for r in &m.rules {
            if !rules.contains(&r.value.as_str()) {
                c.problem(r, ctx("rules"), format!("no rule named `{}`", r.value));
            }
        }
        let sev = severities(c, &m.severities, &ctx);
        if let Some(s) = schedule(c, &m.days, &m.from, &m.to, &ctx) {
            out.push(MuteWindow {
                name: name.clone(),
                rules: m.rules.iter().map(|r| r.value.clone()).collect(),
                severities: sev,
                schedule: s,
            });
        }
    }
    out
}

/// Checks `quiet_hours:`; default severities: info and warning (and rules without one).
pub(super) fn check_quiet_hours(
    c: &mut Checker,
    raw: Option<&Spanned<RawQuietHours>>,
) -> Option<QuietHours> {
    let q = &raw?.value;
    let ctx = |field: &str| format!("quiet_hours, field '{field}'");
    let (sev, unrated) = match &q.severities {
        Some(list) => (severities(c, list, &ctx), false),
        None => (vec![Severity::Info, Severity::Warning], true),
    };
    let s = schedule(c, &q.days, &q.from, &q.to, &ctx)?;
    Some(QuietHours {
        schedule: s,
        severities: sev,
        unrated,
    })
}
