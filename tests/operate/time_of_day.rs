//! Time of day: messages written in the configured zone, mute windows and quiet hours
//! replayed on the log's own clock.

use crate::support::env::{TestEnv, header_counts, header_total};
use crate::support::replay::{TIMESTAMP, replayed};

/// The zone the configs name; the log (and TZ) say UTC.
const ZONE: &str = "timezone: Asia/Shanghai\n";

/// The host (and the log) say UTC; the config says Shanghai: messages say Shanghai time.
#[test]
fn message_times_are_written_in_the_configured_zone() {
    let yaml = "timezone: Asia/Shanghai\ntimestamp:\n  regex: '^(\\S+ \\S+)'\n  format: '%Y-%m-%d %H:%M:%S'\nrules:\n  - {name: err, match: ERROR, window: 1s}\n";
    let env = TestEnv::new().config(yaml).env("TZ", "UTC");
    let out = env.run(
        &["test", "--replay"],
        b"2026-01-01 00:00:00 ERROR disk full\n2026-01-01 00:00:01 ERROR disk full\n",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("2026-01-01 08:00:00 · stdin"),
        "{}",
        out.stdout
    );
    // Without `timezone:`, TZ decides (an IANA name, from the compiled-in database).
    let yaml = yaml.replace("timezone: Asia/Shanghai\n", "");
    let env = TestEnv::new().config(&yaml).env("TZ", "UTC");
    let out = env.run(
        &["test", "--replay"],
        b"2026-01-01 00:00:00 ERROR disk full\n",
    );
    assert!(
        out.stdout.contains("2026-01-01 00:00:00 · stdin"),
        "{}",
        out.stdout
    );
}

#[test]
fn replay_honours_a_mute_window_in_the_configured_zone_and_counts_what_it_covered() {
    // 10:00–11:00 in Shanghai is 02:00–03:00 in the log's UTC.
    let yaml = format!(
        "{ZONE}{TIMESTAMP}rules:\n  - {{name: err, match: ERROR, window: 1s}}\nmute:\n  - {{name: batch, rules: [err], from: '10:00', to: '11:00'}}\n"
    );
    let env = TestEnv::new().config(&yaml).env("TZ", "UTC");
    let log = "2026-01-05 01:59:00 ERROR a\n2026-01-05 02:00:00 ERROR b\n2026-01-05 02:10:00 ERROR c\n2026-01-05 02:59:00 ERROR d\n2026-01-05 03:00:05 ERROR e\n";
    let out = env.run(&["test", "--replay"], log.as_bytes());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let msgs = replayed(&out.stdout);
    assert_eq!(msgs.len(), 2, "{}", out.stdout);
    assert_eq!(header_total(&msgs[0].1), 1);
    assert_eq!(header_total(&msgs[1].1), 1);
    assert!(
        msgs[1].0.starts_with("2026-01-05 11:00:05"),
        "{}",
        out.stdout
    );
    assert!(
        msgs[1].1.contains("while silenced: ×3 (not sent)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("silenced, not sent: err 3"),
        "{}",
        out.stdout
    );
}

#[test]
fn replay_holds_low_severity_alerts_in_quiet_hours_and_sends_one_digest_at_their_end() {
    let yaml = format!(
        "{ZONE}{TIMESTAMP}rules:\n  - {{name: warn, match: WARN, window: 1s, severity: warning}}\n  - {{name: crit, match: CRIT, window: 1s, severity: critical}}\nquiet_hours: {{from: '22:00', to: '08:00'}}\n"
    );
    let env = TestEnv::new().config(&yaml).env("TZ", "Asia/Shanghai");
    let log = "2026-01-05 23:00:00 WARN a\n2026-01-05 23:30:00 WARN b\n2026-01-05 23:45:00 CRIT c\n2026-01-06 09:00:00 INFO d\n";
    let out = env.run(&["test", "--replay"], log.as_bytes());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let msgs = replayed(&out.stdout);
    assert_eq!(msgs.len(), 2, "{}", out.stdout);
    assert!(
        msgs[0].0.starts_with("2026-01-05 23:45:0"),
        "{}",
        out.stdout
    );
    assert_eq!(header_counts(&msgs[0].1), [("crit".to_owned(), 1)]);
    assert!(
        msgs[1].0.starts_with("2026-01-06 08:00:00"),
        "{}",
        out.stdout
    );
    assert_eq!(header_total(&msgs[1].1), 2, "{}", out.stdout);
}
