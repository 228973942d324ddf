//! The words of self-alerts: the notice alert, secrets scrubbed, numbers and durations as
//! people read them.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::MAX_PROBLEMS;
use crate::alert::{Alert, AlertKind, Sample};
use crate::style::{Severity, Style};

/// The alert a notice is: header `【dingtail: TITLE】notice host`, then `text`, secrets
/// replaced.
pub(super) fn notice(title: &str, text: &[String], secrets: &[String]) -> Alert {
    let now = SystemTime::now();
    let samples: Vec<Sample> = text
        .iter()
        .map(|l| Sample::from_line(scrub(l, secrets).as_bytes()))
        .collect();
    Alert {
        rule: usize::MAX,
        rule_name: Arc::from(format!("dingtail: {title}")),
        group: None,
        kind: AlertKind::Notice,
        count: 0,
        first: now,
        last: now,
        source: Arc::from("dingtail"),
        other_sources: Vec::new(),
        route: None,
        max_lines: samples.len().max(MAX_PROBLEMS + 3),
        samples,
        captures: Vec::new(),
        style: Arc::new(Style {
            severity: Some(Severity::Warning),
            ..Style::default()
        }),
        silenced: 0,
    }
}

/// `text` with every secret replaced by `***`.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for s in secrets {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "***");
        }
    }
    out
}

pub(super) fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// To the second (news is not about milliseconds).
pub(super) fn round(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs())
}

/// `12,340`.
pub(super) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(super) fn bytes_text(n: u64) -> String {
    format!("{} bytes", thousands(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_secrets_read_well() {
        assert_eq!(thousands(12_340), "12,340");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
        let secrets = vec![
            "https://oapi.dingtalk.com/robot/send?access_token=tok123".to_owned(),
            "tok123".to_owned(),
            "SECabc".to_owned(),
        ];
        assert_eq!(
            scrub(
                "bad https://oapi.dingtalk.com/robot/send?access_token=tok123 tok123 SECabc",
                &secrets
            ),
            "bad *** *** ***"
        );
    }
}
