//! `dingtail run FILES…`: following files like `tail -F`, through the real binary and the
//! DingTalk emulator: appends, rotation (rename, copytruncate, delete), globs, restarts after
//! SIGTERM and SIGKILL, huge lines, odd bytes, multi-line events, `--once`.

mod support;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use support::emulator::{Emulator, RobotSpec};
use support::env::{Output, TestEnv, header_total, signal, wait};

const TOKEN: &str = "tok-follow0123456789";

/// A fast robot at the emulator, 200ms windows, one rule counting `ERROR`.
fn config(emu: &Emulator, window: &str, extra: &str) -> String {
    format!(
        r#"robots:
  ops:
    webhook: "{}"
    rate: 1000/1s
defaults:
  window: {window}
  max_lines: 5
rules:
  - name: err
    match: 'ERROR'
{extra}"#,
        emu.webhook(TOKEN)
    )
}

fn emulator() -> Emulator {
    Emulator::start(vec![
        RobotSpec::new(TOKEN).rate(1000, Duration::from_secs(1)),
    ])
}

/// Matching lines counted by every message so far.
fn total(emu: &Emulator) -> u64 {
    emu.posts().iter().map(|p| header_total(&p.text())).sum()
}

/// Waits until the messages count `n` lines (or the time is up); returns the count.
fn wait_total(emu: &Emulator, n: u64, timeout: Duration) -> u64 {
    let until = Instant::now() + timeout;
    loop {
        let t = total(emu);
        if t >= n || Instant::now() > until {
            return t;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn all_text(emu: &Emulator) -> String {
    emu.posts().iter().map(|p| p.text() + "\n").collect()
}

fn append(path: &Path, text: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Gives a freshly started dingtail time to take up the files present at start.
fn settle() {
    std::thread::sleep(Duration::from_millis(400));
}

/// Starts `dingtail run --state-dir DIR/state PATH` and waits until it is following.
fn follow(env: &TestEnv, path: &Path) -> Child {
    let state = env.dir().join("state");
    let child = env.spawn(&[
        "run",
        "--state-dir",
        state.to_str().unwrap(),
        path.to_str().unwrap(),
    ]);
    settle();
    child
}

fn stop(child: Child) -> Output {
    signal(&child, libc::SIGTERM);
    wait(child)
}

#[test]
fn appended_lines_are_alerted_and_a_glob_gains_a_file() {
    let emu = emulator();
    let env = TestEnv::new().config(&config(&emu, "200ms", ""));
    let logs = env.dir().join("logs");
    fs::create_dir(&logs).unwrap();
    append(&logs.join("a.log"), "ERROR from before the start\n");
    let glob = format!("{}/*.log", logs.display());
    let state = env.dir().join("state");
    let child = env.spawn(&["run", "--state-dir", state.to_str().unwrap(), &glob]);
    settle();

    append(&logs.join("a.log"), "ok\nERROR one\n");
    assert_eq!(wait_total(&emu, 1, Duration::from_secs(5)), 1);
    let first = Instant::now();
    append(&logs.join("a.log"), "ERROR two");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(total(&emu), 1, "a partial line waits for its newline");
    append(&logs.join("a.log"), " done\n");
    // a file that appears later is read from its first byte
    append(&logs.join("b.log"), "ERROR three\nERROR four\n");
    assert_eq!(wait_total(&emu, 4, Duration::from_secs(5)), 4);
    assert!(first.elapsed() < Duration::from_secs(4));

    let out = stop(child);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = all_text(&emu);
    assert!(!text.contains("before the start"), "{text}");
    assert!(text.contains("ERROR two done"), "{text}");
    assert!(text.contains("b.log"), "{text}");
    assert_eq!(total(&emu), 4);
}

/// Writes `n` numbered ERROR lines to `path`, rotating every `every` lines with `rotate`, and
/// writing a few more lines to the old file after the rotation (as a logger does before it
/// reopens).
fn write_with_rotation(
    path: &Path,
    n: usize,
    every: usize,
    pause_before: Duration,
    rotate: impl Fn(usize),
) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for i in 0..n {
        if i > 0 && i % every == 0 {
            std::thread::sleep(pause_before);
            rotate(i / every);
            // racing the rotation: the old handle still gets lines
            for _ in 0..3.min(n - i) {
                writeln!(f, "ERROR line {i}").unwrap();
            }
            f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap();
            std::thread::sleep(Duration::from_millis(30));
        }
        if i % every >= 3 || i < every {
            writeln!(f, "ERROR line {i}").unwrap();
        }
        if i % 50 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[test]
fn rename_rotation_with_writes_racing_it_loses_nothing() {
    let emu = emulator();
    let env = TestEnv::new().config(&config(&emu, "200ms", ""));
    let log = env.dir().join("app.log");
    append(&log, "");
    let child = follow(&env, &log);
    let dir = env.dir().to_owned();
    let log2 = log.clone();
    write_with_rotation(&log, 1000, 200, Duration::ZERO, move |k| {
        fs::rename(&log2, dir.join(format!("app.log.{k}"))).unwrap();
    });
    let got = wait_total(&emu, 1000, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(400));
    let out = stop(child);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(got, 1000, "{}", out.stderr);
    assert_eq!(total(&emu), 1000, "nothing counted twice");
}

#[test]
fn copytruncate_is_read_again_from_the_start() {
    let emu = emulator();
    let env = TestEnv::new().config(&config(&emu, "200ms", ""));
    let log = env.dir().join("app.log");
    append(&log, "");
    let child = follow(&env, &log);
    let dir = env.dir().to_owned();
    let log2 = log.clone();
    write_with_rotation(&log, 600, 200, Duration::from_millis(300), move |k| {
        // copytruncate: copy, then truncate in place (the writer keeps its O_APPEND handle)
        fs::copy(&log2, dir.join(format!("app.log.{k}"))).unwrap();
        OpenOptions::new()
            .write(true)
            .open(&log2)
            .unwrap()
            .set_len(0)
            .unwrap();
    });
    // copytruncate loses lines written after the reader's last look and before the truncation
    // (they are only in the copy): the writer pauses before each rotation so the count is exact.
    let got = wait_total(&emu, 600, Duration::from_secs(10));
    let out = stop(child);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(got, 600, "{}", out.stderr);
    assert!(out.stderr.contains("truncated"), "{}", out.stderr);
}

#[test]
fn a_deleted_file_is_followed_again_when_it_reappears() {
    let emu = emulator();
    let env = TestEnv::new().config(&config(&emu, "200ms", ""));
    let log = env.dir().join("app.log");
    append(&log, "ERROR old\n");
    let child = follow(&env, &log);
    append(&log, "ERROR one\n");
    assert_eq!(wait_total(&emu, 1, Duration::from_secs(5)), 1);
    fs::remove_file(&log).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    append(&log, "ERROR two\nERROR three\n");
    assert_eq!(wait_total(&emu, 3, Duration::from_secs(5)), 3);
    let out = stop(child);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!all_text(&emu).contains("ERROR old"));
}

#[test]
fn a_restart_after_sigterm_neither_rereads_nor_skips() {
    let emu = emulator();
    let env = TestEnv::new().config(&config(&emu, "200ms", ""));
    let log = env.dir().join("app.log");
    append(&log, "ERROR before the first start\n");
    let state = env.dir().join("state");
    let args = [
        "run",
        "--state-dir",
        state.to_str().unwrap(),
        log.to_str().unwrap(),
    ];

    let child = env.spawn(&args);
    settle();
    for i in 0..5 {
        append(&log, &format!("ERROR a{i}\nok\n"));
    }
    assert_eq!(wait_total(&emu, 5, Duration::from_secs(5)), 5);
    // lines racing the signal: read and delivered now, or left for the next run, never both
    for i in 0..50 {
        append(&log, &format!("ERROR b{i}\n"));
    }
    let out = stop(child);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // written while dingtail is down
    for i in 0..7 {
        append(&log, &format!("ERROR c{i}\n"));
    }
    append(&log, "ERROR partial");

    let child = env.spawn(&args);
    settle();
    append(&log, " line\n");
    let got = wait_total(&emu, 63, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(400));
    let out = stop(child);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(got, 63, "{}", all_text(&emu));
    assert_eq!(total(&emu), 63, "no line counted twice");
    let text = all_text(&emu);
    assert!(!text.contains("before the first start"));
    assert!(text.contains("ERROR partial line"), "{text}");
}

#[test]
fn a_restart_after_sigkill_loses_nothing() {
    let emu = emulator();
    // a long window: the hits are still pending, not delivered, when dingtail is killed
    let env = TestEnv::new().config(&config(&emu, "30s", ""));
    let log = env.dir().join("app.log");
    append(&log, "ERROR before\n");
    let state = env.dir().join("state");
    let args = [
        "run",
        "--state-dir",
        state.to_str().unwrap(),
        log.to_str().unwrap(),
    ];

    let mut child = env.spawn(&args);
    settle();
    append(&log, "ok\nERROR one\nok\nERROR two\n");
    // let the checkpoint file be written (every second) with the lines read and held
    std::thread::sleep(Duration::from_millis(1500));
    assert!(state.join("checkpoints.json").exists());
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(total(&emu), 0);
    append(&log, "ERROR three\n");

    let child = env.spawn(&args);
    settle();
    let out = stop(child);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(total(&emu), 3, "{}", all_text(&emu));
    assert!(!all_text(&emu).contains("ERROR before"));
}

/// Peak RSS stays small while a 100 MiB line without newline is read (and its head matched).
#[test]
fn a_100_mib_line_without_newline_keeps_memory_small() {
    let env = TestEnv::new();
    let log = env.dir().join("huge.log");
    {
        let mut f = fs::File::create(&log).unwrap();
        f.write_all(b"ERROR huge ").unwrap();
        let block = vec![b'x'; 1 << 20];
        for _ in 0..100 {
            f.write_all(&block).unwrap();
        }
        f.write_all(b"\nERROR small\n").unwrap();
    }
    let out = env.run(
        &[
            "run",
            "--dry-run",
            "--once",
            "--from-beginning",
            log.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines = out.dry_run_lines();
    let count: u64 = lines.iter().map(|l| l["count"].as_u64().unwrap()).sum();
    assert_eq!(count, 2, "{}", out.stdout);
    assert!(
        out.stderr.contains("1 cut at max_line_bytes"),
        "{}",
        out.stderr
    );
    eprintln!("peak RSS reading a 100 MiB line: {} KiB", out.max_rss_kib);
    assert!(
        out.max_rss_kib > 0 && out.max_rss_kib < 48 * 1024,
        "peak RSS {} KiB",
        out.max_rss_kib
    );
}

#[test]
fn invalid_utf8_nul_and_crlf_are_matched_and_shown() {
    let env = TestEnv::new();
    let log = env.dir().join("odd.log");
    fs::write(
        &log,
        b"ERROR \xff\xfe bytes\r\nok\r\nERROR nul\x00here\r\nERROR no newline at end",
    )
    .unwrap();
    let out = env.run(
        &[
            "run",
            "--dry-run",
            "--once",
            "--from-beginning",
            log.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines = out.dry_run_lines();
    assert_eq!(lines.len(), 1, "{}", out.stdout);
    let text = lines[0]["body"]["text"]["content"].as_str().unwrap();
    assert!(text.contains("×3"), "{text}");
    assert!(text.contains("> ERROR \u{fffd}\u{fffd} bytes\n"), "{text}");
    assert!(text.contains("> ERROR nul\u{fffd}here\n"), "{text}");
    assert!(text.contains("> ERROR no newline at end"), "{text}");
}

#[test]
fn a_java_stack_trace_is_one_event() {
    let emu = emulator();
    let env = TestEnv::new();
    let log = env.dir().join("java.log");
    let env = env.config(&config(
        &emu,
        "200ms",
        &format!(
            "inputs:\n  - path: '{}'\n    multiline: {{ start: '^\\d{{4}}-\\d\\d-\\d\\d', timeout: 300ms }}\n",
            log.display()
        ),
    ));
    fs::write(
        &log,
        "2024-05-01 10:00:00 INFO started\n\
         2024-05-01 10:00:01 ERROR request failed\n\
         java.lang.IllegalStateException: ERROR in payment\n\
         \tat com.shop.Pay.charge(Pay.java:42)\n\
         \tat com.shop.Api.handle(Api.java:7)\n\
         Caused by: java.net.SocketTimeoutException: ERROR timeout\n\
         \t... 12 more\n\
         2024-05-01 10:00:02 INFO next\n",
    )
    .unwrap();
    let state = env.dir().join("state");
    // followed, from the beginning; the last event (INFO next) ends by timeout
    let child = env.spawn(&[
        "run",
        "--from-beginning",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert_eq!(wait_total(&emu, 1, Duration::from_secs(5)), 1);
    append(
        &log,
        "2024-05-01 10:00:03 ERROR second\n\tat x.Y(Y.java:1)\n",
    );
    assert_eq!(wait_total(&emu, 2, Duration::from_secs(5)), 2);
    let out = stop(child);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // the summary counts both: 10 lines written, gathered into 4 events
    assert!(
        out.stderr.contains("read 10 lines as 4 events"),
        "{}",
        out.stderr
    );
    assert_eq!(
        total(&emu),
        2,
        "each event counted once: {}",
        all_text(&emu)
    );
    let text = all_text(&emu);
    assert!(
        text.contains(
            "> 2024-05-01 10:00:01 ERROR request failed\n  \
             java.lang.IllegalStateException: ERROR in payment\n  \
             \tat com.shop.Pay.charge(Pay.java:42)\n"
        ),
        "{text}"
    );
    assert!(text.contains("\n  \t... 12 more"), "{text}");
    assert!(text.contains("\n  \tat x.Y(Y.java:1)"), "{text}");
}

#[test]
fn once_resumes_from_the_checkpoint() {
    let env = TestEnv::new();
    let log = env.dir().join("app.log");
    let state = env.dir().join("state");
    fs::write(&log, "ERROR 1\nERROR 2\n").unwrap();
    let args = [
        "run",
        "--once",
        "--state-dir",
        state.to_str().unwrap(),
        log.to_str().unwrap(),
    ];
    // without a checkpoint a file is read from its end: nothing
    let out = env.run(&args, b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    append(&log, "ERROR 3\nok\n");
    // (no robot in the built-in rules: printed, and the checkpoint moves)
    let out = env.run(&args, b"");
    assert_eq!(out.dry_run_lines().len(), 1, "{}", out.stdout);
    assert!(out.stdout.contains("ERROR 3") && !out.stdout.contains("ERROR 2"));
    let out = env.run(&args, b"");
    assert!(out.stdout.is_empty(), "nothing new: {}", out.stdout);
    // an explicit --dry-run reads the checkpoint but does not move it
    append(&log, "ERROR 4\n");
    let mut dry = args.to_vec();
    dry.insert(1, "--dry-run");
    assert!(env.run(&dry, b"").stdout.contains("ERROR 4"));
    assert!(env.run(&args, b"").stdout.contains("ERROR 4"));
}
