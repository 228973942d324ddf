//! The range of every duration and number a config may give, and the defaults: above zero and at
//! most these. Time arithmetic on instants overflows (and panics) far beyond them, so nothing a
//! config can say makes dingtail panic; the README's tables list them.

use super::*;

use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// `window`, `defaults.window`, `threshold.within`: a window holds hits in memory.
pub const WINDOW: Duration = DAY;
/// `cooldown`, `resolve_after`, `absent.for`.
pub const LONG: Duration = Duration::from_secs(30 * 86_400);
/// `inputs[].multiline.timeout`.
pub const MULTILINE_TIMEOUT: Duration = HOUR;
/// `timeout.connect`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// `timeout.request`.
pub const REQUEST_TIMEOUT: Duration = HOUR;
/// `retry.initial`.
pub const RETRY_INITIAL: Duration = HOUR;
/// `retry.max`, `retry.recheck`, `throttle_pause`, the period of `rate`.
pub const ROBOT_WAIT: Duration = DAY;
/// Largest count of `rate`.
pub const RATE_COUNT: u32 = 10_000;
/// `--shutdown-timeout`.
pub const SHUTDOWN_TIMEOUT: Duration = HOUR;
/// `--line-interval` of `test --replay`.
pub const LINE_INTERVAL: Duration = DAY;

/// Parses a duration (`500ms`, `10s`, `5m`, `1h 30m`) that must be above zero and at most
/// `max`; the error quotes the text only when it is safe to (see [`shown`]).
pub fn parse_duration_in(text: &str, max: Duration) -> Result<Duration, String> {
    match humantime::parse_duration(text.trim()) {
        Ok(d) if d.is_zero() => Err("must be longer than zero".to_owned()),
        Ok(d) if d > max => Err(format!(
            "{} is longer than the longest allowed, {}",
            quoted(text.trim()),
            humantime::format_duration(max)
        )),
        Ok(d) => Ok(d),
        Err(e) => Err(format!(
            "{} is not a duration ({e}); write e.g. 500ms, 10s, 5m",
            quoted(text.trim())
        )),
    }
}

/// Default window when neither the rule nor `defaults` sets one.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);
/// Default number of lines quoted per message.
pub const DEFAULT_MAX_LINES: usize = 20;
/// Default cut-off for very long lines.
pub const DEFAULT_MAX_LINE_BYTES: usize = 64 * 1024;
/// Longest rule name accepted: the name goes into every message header.
pub(super) const MAX_RULE_NAME: usize = 100;
/// Longest template accepted: a template's text goes into every message of its rule.
pub(super) const MAX_TEMPLATE_CHARS: usize = 4000;

/// Longest `threshold.count` and `max_groups`: both size per-rule memory.
pub(super) const MAX_THRESHOLD_COUNT: usize = 100_000;
pub(super) const MAX_GROUPS_LIMIT: usize = 100_000;
