//! Reloading the config (SIGHUP, `--watch-config`) while dingtail runs: bad configs refused,
//! no count lost, a fixed robot delivering what it held, inputs added and removed.

use std::io::Write;
use std::sync::Arc;

use crate::support::emulator::{Emulator, RobotSpec};
use crate::support::env::{Output, TestEnv, WAIT_LIMIT, dry_run_totals, header_total, poll_until};
use crate::support::listener::{metric, sample, scrape};

use super::{TOKEN, promtool_check, summary_number};

#[test]
fn sighup_reloads_under_load_refuses_bad_configs_and_loses_no_count() {
    const ERR: &str = "  - {name: err, match: ERROR, window: 20ms}\n";
    const WARN: &str =
        "  - {name: warn, match: WARN, window: 20ms, threshold: {count: 100000, within: 1h}}\n";
    let env = TestEnv::new().config(&format!("rules:\n{ERR}"));
    let path = env.config_path().to_owned();
    let mut run = env.start(&["run", "--dry-run", "--listen", "127.0.0.1:0"]);
    let addr = run.listen_addr();
    let mut stdin = run.stdin();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_w = stop.clone();
    let lines_read = {
        let addr = addr.clone();
        move || metric(&addr, "dingtail_lines_read_total{source=\"-\"}").map_or(0, |n| n as u64)
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
            if i.is_multiple_of(20) {
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
        run.signal(libc::SIGHUP);
        run.wait_for_nth("config reload", i + 1);
    }
    let text = scrape(&addr);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (errors, warns) = writer.join().unwrap();
    let Output { stdout, stderr, .. } = run.finish().success();
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
    let totals = dry_run_totals(&stdout);
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
    let mut run = env.start(&[
        "run",
        "-c",
        config.to_str().unwrap(),
        "--dry-run",
        "--watch-config",
    ]);
    run.wait_for("watching the config");
    run.write(b"NEW one\nOLD one\n");
    run.wait_for_stdout("【old】×1");
    // What kubelet does: write the new version, point a new symlink at it, rename it over ..data.
    let v2 = version(2, "rules:\n  - {name: new, match: NEW, window: 10ms}\n");
    std::os::unix::fs::symlink(v2.file_name().unwrap(), dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    std::fs::remove_dir_all(&v1).unwrap();
    run.wait_for("config reloaded (config file changed)");
    run.write(b"NEW two\nOLD two\n");
    let Output { stdout, stderr, .. } = run.finish().success();
    let totals = dry_run_totals(&stdout);
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
    let mut run = env.start(&["run", "--listen", "127.0.0.1:0"]);
    run.listen_addr();
    run.write(b"ERROR one\nERROR two\n");
    run.wait_for("holding this robot's alerts");
    std::fs::write(env.config_path(), yaml("SECright")).unwrap();
    run.signal(libc::SIGHUP);
    run.wait_for("config reloaded");
    let posts = emu.wait_for_posts(1, WAIT_LIMIT);
    assert_eq!(header_total(&posts[0].text()), 2, "{}", posts[0].text());
    let stderr = run.finish().success().stderr;
    assert!(stderr.contains("messages: 1 sent, 0 failed"), "{stderr}");
    assert!(!stderr.contains("SECright"), "{stderr}");
}

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
    let run = env.start(&["run", "--dry-run", "--listen", "127.0.0.1:0"]);
    run.wait_for_metrics(|t| followed(t, &a));
    append(&a, "ERROR a1\n");
    run.wait_for_stdout("ERROR a1");

    std::fs::write(env.config_path(), config(&b)).unwrap();
    run.signal(libc::SIGHUP);
    let lag_of_a = format!("dingtail_checkpoint_lag_bytes{{file=\"{}\"}}", a.display());
    let text = run.wait_for_metrics(|t| followed(t, &b) && !t.contains(&lag_of_a));
    promtool_check(&text);
    append(&a, "ERROR a2\n");
    append(&b, "ERROR b1\n");
    run.wait_for_stdout("ERROR b1");

    std::fs::write(env.config_path(), config(&a)).unwrap();
    run.signal(libc::SIGHUP);
    run.wait_for_stdout("ERROR a2");
    // Everything delivered: the checkpoint is at the end of the file.
    run.wait_for_metrics(|t| {
        t.contains(&format!(
            "dingtail_checkpoint_lag_bytes{{file=\"{}\"}} 0",
            a.display()
        ))
    });
    run.signal(libc::SIGTERM);
    let Output { stdout, stderr, .. } = run.finish().success();
    assert_eq!(
        dry_run_totals(&stdout).get("err"),
        Some(&3),
        "{stdout}\n{stderr}"
    );
    assert!(stderr.contains("input removed by the reload"), "{stderr}");
}
