//! Running dingtail for months: time zones, the metrics and health listener, reloads, silences
//! and mute windows, through the real binary.

mod support;

use support::env::TestEnv;

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
