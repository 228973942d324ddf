//! Running dingtail for months: time zones, the metrics and health listener, reloads, silences
//! and mute windows, through the real binary.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use support::emulator::{Emulator, RobotSpec};
use support::env::{TestEnv, header_total, poll_until, signal};
use support::running::{LIMIT, Running, http_get, sample};

const TOKEN: &str = "tok-0123456789abcdef";

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

/// promtool from Debian's `prometheus` package (.ci/run installs it); the test fails without it.
fn promtool_check(text: &str) {
    let promtool = ["promtool", "/usr/bin/promtool"]
        .into_iter()
        .find(|p| Command::new(p).arg("--version").output().is_ok())
        .expect("promtool not found: install Debian's `prometheus` package (.ci/run does)");
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A number in the summary line after `prefix` (`read `, `messages: `).
fn summary_number(stderr: &str, prefix: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("dingtail: read "))
        .unwrap_or_else(|| panic!("no summary in {stderr}"));
    let rest = &line[line
        .find(prefix)
        .unwrap_or_else(|| panic!("{prefix} in {line}"))
        + prefix.len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn metrics_pass_promtool_and_agree_with_the_summary() {
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN)]);
    let yaml = format!(
        "robots:\n  ops:\n    webhook: \"{}\"\nrules:\n  - {{name: err, match: ERROR, window: 50ms}}\n  - {{name: warn, match: WARN, window: 50ms}}\n  - {{name: never, match: NEVER_THERE}}\n",
        emu.webhook(TOKEN)
    );
    let env = TestEnv::new().config(&yaml);
    let mut run = Running::start(&env, &["run", "--listen", "127.0.0.1:0"]);
    let addr = run.listen_addr();
    let mut input = String::new();
    for i in 0..300 {
        input.push_str(match i % 3 {
            0 => "2026 ERROR disk full\n",
            1 => "2026 WARN slow\n",
            _ => "2026 INFO fine\n",
        });
    }
    run.write(input.as_bytes());
    // Wait until DingTalk has every hit: nothing is in flight when the metrics are read.
    assert!(emu.wait_delivered(200) >= 200, "posts: {:?}", emu.posts());
    let (status, ready) = http_get(&format!("http://{addr}/readyz"));
    assert_eq!((status, ready.as_str()), (200, "ready\n"));
    let (status, health) = http_get(&format!("http://{addr}/healthz"));
    assert_eq!((status, health.as_str()), (200, "ok\n"));
    let (status, text) = http_get(&format!("http://{addr}/metrics"));
    assert_eq!(status, 200);
    promtool_check(&text);

    let (code, _, stderr) = run.finish();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        sample(&text, "dingtail_lines_read_total{source=\"-\"}") as u64,
        summary_number(&stderr, "read ")
    );
    assert_eq!(
        sample(&text, "dingtail_bytes_read_total{source=\"-\"}") as u64,
        summary_number(&stderr, "lines (")
    );
    assert_eq!(
        sample(&text, "dingtail_hits_total{rule=\"err\"}") as u64,
        summary_number(&stderr, "err ")
    );
    assert_eq!(
        sample(&text, "dingtail_hits_total{rule=\"warn\"}") as u64,
        summary_number(&stderr, "warn ")
    );
    assert_eq!(sample(&text, "dingtail_hits_total{rule=\"never\"}"), 0.0);
    let sent = emu.posts().len() as u64;
    assert_eq!(summary_number(&stderr, "messages: "), sent);
    assert_eq!(
        sample(
            &text,
            "dingtail_messages_total{robot=\"ops\",result=\"sent\"}"
        ) as u64,
        sent
    );
    assert_eq!(
        sample(
            &text,
            "dingtail_events_total{robot=\"ops\",result=\"sent\"}"
        ) as u64,
        200
    );
    assert_eq!(
        sample(
            &text,
            "dingtail_delivery_latency_seconds_count{robot=\"ops\"}"
        ) as u64,
        sent
    );
    assert_eq!(sample(&text, "dingtail_pending_hits{robot=\"ops\"}"), 0.0);
    assert_eq!(sample(&text, "dingtail_robot_failing{robot=\"ops\"}"), 0.0);
    // The monthly budget, read from the ledger at the scrape: every message sent is counted.
    assert_eq!(sample(&text, "dingtail_budget_monthly_messages"), 3000.0);
    assert_eq!(sample(&text, "dingtail_budget_used_messages") as u64, sent);
    assert_eq!(
        sample(&text, "dingtail_robot_budget_used_messages{robot=\"ops\"}") as u64,
        sent
    );
    assert_eq!(
        sample(&text, "dingtail_robot_budget_spent{robot=\"ops\"}"),
        0.0
    );
}

#[test]
fn readyz_says_so_while_a_robot_fails_permanently() {
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN).secret("SECright")]);
    let yaml = format!(
        "robots:\n  ops:\n    webhook: \"{}\"\n    secret: SECwrong\nrules:\n  - {{name: err, match: ERROR, window: 10ms}}\n",
        emu.webhook(TOKEN)
    );
    let env = TestEnv::new().config(&yaml);
    let mut run = Running::start(
        &env,
        &["run", "--listen", "127.0.0.1:0", "--shutdown-timeout", "1s"],
    );
    let addr = run.listen_addr();
    run.write(b"ERROR x\n");
    emu.wait_for_requests(1, LIMIT);
    run.wait_for_line("holding this robot's alerts", 1);
    // The log line comes just before the robot is marked failing: wait for the probe to say so.
    let readyz = || http_get(&format!("http://{addr}/readyz"));
    poll_until(|| readyz().0 != 200);
    let (status, body) = readyz();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("robot failing permanently: ops"), "{body}");
    let (_, text) = http_get(&format!("http://{addr}/metrics"));
    assert_eq!(sample(&text, "dingtail_robot_failing{robot=\"ops\"}"), 1.0);
    assert_eq!(sample(&text, "dingtail_pending_hits{robot=\"ops\"}"), 1.0);
    assert!(
        text.lines().any(|l| l
            .starts_with("dingtail_dingtalk_errcodes_total{robot=\"ops\",errcode=\"310000\"} 1")),
        "{text}"
    );
    let (code, _, _) = run.finish();
    assert_eq!(code, 1);
}

/// The dry-run messages' `【rule】×N` totals, per rule.
fn printed_totals(stdout: &str) -> std::collections::BTreeMap<String, u64> {
    let mut totals = std::collections::BTreeMap::new();
    for line in stdout.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let text = v["body"]["text"]["content"].as_str().unwrap_or_default();
        for (rule, n) in support::env::header_counts(text) {
            *totals.entry(rule).or_default() += n;
        }
    }
    totals
}

#[test]
fn sighup_reloads_under_load_refuses_bad_configs_and_loses_no_count() {
    const ERR: &str = "  - {name: err, match: ERROR, window: 20ms}\n";
    const WARN: &str =
        "  - {name: warn, match: WARN, window: 20ms, threshold: {count: 100000, within: 1h}}\n";
    let env = TestEnv::new().config(&format!("rules:\n{ERR}"));
    let path = env.config_path().to_owned();
    let mut run = Running::start(&env, &["run", "--dry-run", "--listen", "127.0.0.1:0"]);
    let addr = run.listen_addr();
    let mut stdin = run.stdin.take().unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_w = stop.clone();
    let lines_read = {
        let addr = addr.clone();
        move || {
            let (_, text) = http_get(&format!("http://{addr}/metrics"));
            text.lines()
                .find_map(|l| l.strip_prefix("dingtail_lines_read_total{source=\"-\"} "))
                .map_or(0, |n| n.trim().parse::<u64>().unwrap())
        }
    };
    // Lines until told to stop, at dingtail's pace (at most 200 ahead of what it has read);
    // returns how many of each it wrote.
    let read_w = lines_read.clone();
    let writer = std::thread::spawn(move || {
        let (mut errors, mut warns) = (0u64, 0u64);
        let mut i = 0u64;
        while !stop_w.load(std::sync::atomic::Ordering::Relaxed) {
            let line = match i % 3 {
                0 => {
                    errors += 1;
                    format!("{i} ERROR db down\n")
                }
                1 => {
                    warns += 1;
                    format!("{i} WARN slow\n")
                }
                _ => format!("{i} INFO fine\n"),
            };
            stdin.write_all(line.as_bytes()).unwrap();
            i += 1;
            if i % 20 == 0 {
                stdin.flush().unwrap();
                assert!(poll_until(|| read_w() + 200 >= i), "reading stopped");
            }
        }
        (errors, warns)
    });
    for i in 0..10 {
        // Reload while lines flow: wait until another 100 were read.
        let seen = lines_read();
        assert!(
            poll_until(|| lines_read() >= seen + 100),
            "lines stopped flowing"
        );
        let yaml = if i % 2 == 0 {
            // Invalid: an unclosed group and a window that is no duration.
            format!("rules:\n{ERR}  - {{name: bad, match: '(oops', window: soon}}\n")
        } else if (i / 2) % 2 == 0 {
            // `warn` holds its hits below a threshold never met: removing it must deliver them.
            format!("rules:\n{ERR}{WARN}")
        } else {
            format!("rules:\n{ERR}")
        };
        std::fs::write(&path, yaml).unwrap();
        signal(&run.child, libc::SIGHUP);
        run.wait_for_line("config reload", i + 1);
    }
    let (_, text) = http_get(&format!("http://{addr}/metrics"));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (errors, warns) = writer.join().unwrap();
    let (code, stdout, stderr) = run.finish();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stderr.matches("config reloaded (SIGHUP)").count(),
        5,
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("refused, still running").count(),
        5,
        "{stderr}"
    );
    // Every problem of a refused config is named, with its place.
    assert!(stderr.contains("rule 'bad', field 'window'"), "{stderr}");
    assert!(stderr.contains("rule 'bad', field 'match'"), "{stderr}");
    assert_eq!(
        sample(&text, "dingtail_config_reloads_total{result=\"applied\"}"),
        5.0
    );
    assert_eq!(
        sample(&text, "dingtail_config_reloads_total{result=\"refused\"}"),
        5.0
    );
    assert_eq!(sample(&text, "dingtail_config_last_reload_successful"), 1.0);
    let totals = printed_totals(&stdout);
    assert_eq!(totals.get("err").copied(), Some(errors), "{stderr}");
    assert_eq!(summary_number(&stderr, "err "), errors);
    // `warn` was in force for part of the run: every hit it counted went out (it was removed
    // twice and in force at the end: what it held then is below its threshold, so reported).
    let warn_matched = summary_number(&stderr, "warn ");
    assert!(
        warn_matched > 0 && warn_matched < warns,
        "{warn_matched} of {warns}"
    );
    let held = stderr
        .split("below threshold, not sent: warn ")
        .nth(1)
        .map_or(0, |r| {
            r.split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap()
        });
    assert_eq!(
        totals.get("warn").copied().unwrap_or(0) + held,
        warn_matched,
        "{stderr}"
    );
    assert!(
        totals.get("warn").copied().unwrap_or(0) > 0,
        "removed rules deliver: {stderr}"
    );
}

#[test]
fn watch_config_follows_a_configmap_symlink_swap() {
    let env = TestEnv::new();
    let dir = env.dir().join("config");
    let version = |n: u32, yaml: &str| {
        let d = dir.join(format!("..2026_11_29_{n}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("dingtail.yaml"), yaml).unwrap();
        d
    };
    let v1 = version(1, "rules:\n  - {name: old, match: OLD, window: 10ms}\n");
    std::os::unix::fs::symlink(v1.file_name().unwrap(), dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/dingtail.yaml", dir.join("dingtail.yaml")).unwrap();
    let config = dir.join("dingtail.yaml");
    let mut run = Running::start(
        &env,
        &[
            "run",
            "-c",
            config.to_str().unwrap(),
            "--dry-run",
            "--watch-config",
        ],
    );
    run.wait_for_line("watching the config", 1);
    run.write(b"NEW one\nOLD one\n");
    run.wait_for_stdout("【old】×1");
    // What kubelet does: write the new version, point a new symlink at it, rename it over ..data.
    let v2 = version(2, "rules:\n  - {name: new, match: NEW, window: 10ms}\n");
    std::os::unix::fs::symlink(v2.file_name().unwrap(), dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    std::fs::remove_dir_all(&v1).unwrap();
    run.wait_for_line("config reloaded (config file changed)", 1);
    run.write(b"NEW two\nOLD two\n");
    let (code, stdout, stderr) = run.finish();
    assert_eq!(code, 0, "{stderr}");
    let totals = printed_totals(&stdout);
    assert_eq!(totals.get("old"), Some(&1), "{stdout}\n{stderr}");
    assert_eq!(totals.get("new"), Some(&1), "{stdout}\n{stderr}");
}

#[test]
fn a_robot_fixed_by_a_reload_delivers_what_it_held() {
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN).secret("SECright")]);
    let yaml = |secret: &str| {
        format!(
            "robots:\n  ops:\n    webhook: \"{}\"\n    secret: {secret}\nrules:\n  - {{name: err, match: ERROR, window: 10ms}}\n",
            emu.webhook(TOKEN)
        )
    };
    let env = TestEnv::new().config(&yaml("SECwrong"));
    let mut run = Running::start(&env, &["run", "--listen", "127.0.0.1:0"]);
    run.listen_addr();
    run.write(b"ERROR one\nERROR two\n");
    run.wait_for_line("holding this robot's alerts", 1);
    std::fs::write(env.config_path(), yaml("SECright")).unwrap();
    signal(&run.child, libc::SIGHUP);
    run.wait_for_line("config reloaded", 1);
    let posts = emu.wait_for_posts(1, LIMIT);
    assert_eq!(header_total(&posts[0].text()), 2, "{}", posts[0].text());
    let (code, _, stderr) = run.finish();
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("messages: 1 sent, 0 failed"), "{stderr}");
    assert!(!stderr.contains("SECright"), "{stderr}");
}

const REPLAY_HEAD: &str =
    "timezone: Asia/Shanghai\ntimestamp:\n  regex: '^(\\S+ \\S+)'\n  format: '%Y-%m-%d %H:%M:%S'\n";

/// Replay messages: (header time, text).
fn replayed(stdout: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("--- ") {
            out.push((rest.split(" · ").next().unwrap().to_owned(), String::new()));
        } else if line.starts_with("===") {
            break;
        } else if let Some(last) = out.last_mut() {
            last.1.push_str(line);
            last.1.push('\n');
        }
    }
    out
}

#[test]
fn replay_honours_a_mute_window_in_the_configured_zone_and_counts_what_it_covered() {
    // 10:00–11:00 in Shanghai is 02:00–03:00 in the log's UTC.
    let yaml = format!(
        "{REPLAY_HEAD}rules:\n  - {{name: err, match: ERROR, window: 1s}}\nmute:\n  - {{name: batch, rules: [err], from: '10:00', to: '11:00'}}\n"
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
        "{REPLAY_HEAD}rules:\n  - {{name: warn, match: WARN, window: 1s, severity: warning}}\n  - {{name: crit, match: CRIT, window: 1s, severity: critical}}\nquiet_hours: {{from: '22:00', to: '08:00'}}\n"
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
    assert_eq!(
        support::env::header_counts(&msgs[0].1),
        [("crit".to_owned(), 1)]
    );
    assert!(
        msgs[1].0.starts_with("2026-01-06 08:00:00"),
        "{}",
        out.stdout
    );
    assert_eq!(header_total(&msgs[1].1), 2, "{}", out.stdout);
}

fn silence_cmd(env: &TestEnv, args: &[&str]) -> String {
    let out = env.run(args, b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stdout
}

#[test]
fn a_silence_over_the_listener_counts_what_it_covered_and_the_next_message_says_so() {
    let env = TestEnv::new().config("rules:\n  - {name: err, match: ERROR, window: 10ms}\n");
    let mut run = Running::start(&env, &["run", "--dry-run", "--listen", "127.0.0.1:0"]);
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
    wait_for_metrics(&run, &addr, |text| {
        sample(text, "dingtail_silenced_hits_total{rule=\"err\"}") == 3.0
    });
    silence_cmd(&env, &["silence", "expire", "--listen", &addr, &id]);
    run.write(b"ERROR four\n");
    run.wait_for_stdout("while silenced");
    let (code, stdout, stderr) = run.finish();
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("while silenced: ×3 (not sent)"), "{stdout}");
    assert_eq!(printed_totals(&stdout).get("err"), Some(&1));
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
/// says which zone it is.
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

/// Waits until a scrape of `addr` satisfies `ok`; returns that scrape.
fn wait_for_metrics(run: &Running, addr: &str, ok: impl Fn(&str) -> bool) -> String {
    let scrape = || http_get(&format!("http://{addr}/metrics")).1;
    let done = poll_until(|| ok(&scrape()));
    let text = scrape();
    assert!(done, "{text}\n{}", run.stderr());
    text
}

/// A reload that changes `inputs:` follows the added ones and lets the removed ones go with
/// their checkpoints kept: added back, a file resumes where it was left, so nothing written
/// meanwhile is lost or read twice. The files metrics say which files are followed.
#[test]
fn a_reload_follows_added_inputs_and_lets_removed_ones_go_keeping_their_place() {
    let env = TestEnv::new();
    let (a, b) = (env.dir().join("a.log"), env.dir().join("b.log"));
    std::fs::write(&a, "start\n").unwrap();
    std::fs::write(&b, "start\n").unwrap();
    let config = |input: &std::path::Path| {
        format!(
            "inputs:\n  - path: '{}'\nrules:\n  - {{name: err, match: ERROR, window: 10ms}}\n",
            input.display()
        )
    };
    let env = env.config(&config(&a));
    let append = |p: &std::path::Path, text: &str| {
        use std::io::Write as _;
        std::fs::OpenOptions::new()
            .append(true)
            .open(p)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    };
    let followed = |text: &str, p: &std::path::Path| {
        text.contains(&format!(
            "dingtail_checkpoint_lag_bytes{{file=\"{}\"}}",
            p.display()
        )) && text.contains("dingtail_files_followed 1")
    };
    let mut run = Running::start(&env, &["run", "--dry-run", "--listen", "127.0.0.1:0"]);
    let addr = run.listen_addr();
    wait_for_metrics(&run, &addr, |t| followed(t, &a));
    append(&a, "ERROR a1\n");
    run.wait_for_stdout("ERROR a1");

    std::fs::write(env.config_path(), config(&b)).unwrap();
    signal(&run.child, libc::SIGHUP);
    let lag_of_a = format!("dingtail_checkpoint_lag_bytes{{file=\"{}\"}}", a.display());
    let text = wait_for_metrics(&run, &addr, |t| followed(t, &b) && !t.contains(&lag_of_a));
    promtool_check(&text);
    append(&a, "ERROR a2\n");
    append(&b, "ERROR b1\n");
    run.wait_for_stdout("ERROR b1");

    std::fs::write(env.config_path(), config(&a)).unwrap();
    signal(&run.child, libc::SIGHUP);
    run.wait_for_stdout("ERROR a2");
    // Everything delivered: the checkpoint is at the end of the file.
    wait_for_metrics(&run, &addr, |t| {
        t.contains(&format!(
            "dingtail_checkpoint_lag_bytes{{file=\"{}\"}} 0",
            a.display()
        ))
    });
    signal(&run.child, libc::SIGTERM);
    let (code, stdout, stderr) = run.finish();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        printed_totals(&stdout).get("err"),
        Some(&3),
        "{stdout}\n{stderr}"
    );
    assert!(stderr.contains("input removed by the reload"), "{stderr}");
}
