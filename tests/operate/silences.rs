//! Silences: added over the listener and counted, written while nothing runs, and shown in
//! the configured zone.

use crate::support::env::{Output, TestEnv, dry_run_totals};
use crate::support::listener::sample;

fn silence_cmd(env: &TestEnv, args: &[&str]) -> String {
    let out = env.run(args, b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stdout
}

#[test]
fn a_silence_over_the_listener_counts_what_it_covered_and_the_next_message_says_so() {
    let env = TestEnv::new().config("rules:\n  - {name: err, match: ERROR, window: 10ms}\n");
    let mut run = env.start(&["run", "--dry-run", "--listen", "127.0.0.1:0"]);
    let addr = run.listen_addr();
    let added = silence_cmd(
        &env,
        &[
            "silence",
            "add",
            "--listen",
            &addr,
            "--rule",
            "err",
            "--for",
            "1h",
            "--comment",
            "db migration",
        ],
    );
    let id = added.split_whitespace().next().unwrap().to_owned();
    let listed = silence_cmd(&env, &["silence", "list", "--listen", &addr]);
    assert!(
        listed.contains(&id) && listed.contains("db migration"),
        "{listed}"
    );
    assert!(env.dir().join("state/silences.json").exists(), "persisted");
    run.write(b"ERROR one\nERROR two\nERROR three\n");
    run.wait_for_metrics(|text| sample(text, "dingtail_silenced_hits_total{rule=\"err\"}") == 3.0);
    silence_cmd(&env, &["silence", "expire", "--listen", &addr, &id]);
    run.write(b"ERROR four\n");
    run.wait_for_stdout("while silenced");
    let Output { stdout, stderr, .. } = run.finish().success();
    assert!(stdout.contains("while silenced: ×3 (not sent)"), "{stdout}");
    assert_eq!(dry_run_totals(&stdout).get("err"), Some(&1));
    assert!(stderr.contains("matches: err 4"), "{stderr}");
    assert!(stderr.contains("silenced, not sent: err 3"), "{stderr}");
}

#[test]
fn a_silence_written_while_nothing_runs_is_honoured_at_start() {
    let env = TestEnv::new().config("rules:\n  - {name: err, match: ERROR, window: 10ms}\n");
    silence_cmd(&env, &["silence", "add", "--rule", "err", "--for", "1h"]);
    let out = env.run(&["run", "--dry-run"], b"ERROR one\nERROR two\n");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "", "nothing sent");
    assert!(
        out.stderr.contains("silenced, not sent: err 2"),
        "{}",
        out.stderr
    );
}

/// `silence list` writes its times in the config's `timezone:`, whatever the host's zone is, and

#[test]
fn silence_times_are_shown_in_the_configured_zone() {
    let env = TestEnv::new()
        .config("timezone: Asia/Shanghai\nrules:\n  - {name: err, match: ERROR}\n")
        .env("TZ", "UTC");
    let config = env.config_path().to_str().unwrap().to_owned();
    let before = chrono::Utc::now();
    let added = silence_cmd(
        &env,
        &[
            "silence", "add", "-c", &config, "--rule", "err", "--for", "1h",
        ],
    );
    let after = chrono::Utc::now();
    let listed = silence_cmd(&env, &["silence", "list", "-c", &config]);
    assert!(listed.contains("+08:00 (Asia/Shanghai)"), "{listed}");
    assert_eq!(added.trim(), listed.trim());
    // The printed time is the silence's end, read back in Shanghai time.
    let until = listed.split("until ").nth(1).unwrap();
    let end = chrono::DateTime::parse_from_str(&until[..26], "%Y-%m-%d %H:%M:%S %:z").unwrap();
    // an hour from when it was added, to the second it is shown with (however long that took)
    let hour = chrono::Duration::hours(1);
    assert!(
        (before + hour).timestamp() <= end.timestamp()
            && end.timestamp() <= (after + hour).timestamp(),
        "{listed}: not an hour after {before}…{after}"
    );
    assert_eq!(end.offset().local_minus_utc(), 8 * 3600);
}
