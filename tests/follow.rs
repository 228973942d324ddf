//! `dingtail run FILES…`: following files like `tail -F`, through the real binary and the
//! DingTalk emulator: appends, rotation (rename, copytruncate, delete), globs, restarts after
//! SIGTERM and SIGKILL, huge lines, odd bytes, multi-line events, `--once`.

mod support;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use support::emulator::{Emulator, RobotSpec};
use support::env::{Output, TestEnv, poll_until};
use support::files::{append, read_to_end};
use support::running::Running;

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

/// A scratch directory with `config`, where the tailer says how far it read (see
/// [`read_to_end`]).
fn test_env(config: &str) -> TestEnv {
    TestEnv::new().config(config).tailer_progress()
}

/// Starts `dingtail run --state-dir DIR/state ARGS…` and waits until it follows the files.
fn start(env: &TestEnv, args: &[&str]) -> Running {
    let state = env.dir().join("state");
    let mut all = vec!["run", "--state-dir", state.to_str().unwrap()];
    all.extend_from_slice(args);
    env.start_following(&all)
}

fn stop(run: Running) -> Output {
    run.signal(libc::SIGTERM);
    run.wait()
}

#[test]
fn appended_lines_are_alerted_and_a_glob_gains_a_file() {
    let emu = emulator();
    let env = test_env(&config(&emu, "200ms", ""));
    let logs = env.dir().join("logs");
    fs::create_dir(&logs).unwrap();
    let a = logs.join("a.log");
    append(&a, "ERROR from before the start\n");
    let run = start(&env, &[&format!("{}/*.log", logs.display())]);

    append(&a, "ok\nERROR one\n");
    assert_eq!(emu.wait_delivered(1), 1, "{}", run.stderr());
    // a partial line waits for its newline: read now, but only a line once " done" comes
    // (else "ERROR two" would be quoted alone below)
    append(&a, "ERROR two");
    read_to_end(&run, &a);
    append(&a, " done\n");
    // a file that appears later is read from its first byte
    append(&logs.join("b.log"), "ERROR three\nERROR four\n");
    assert_eq!(emu.wait_delivered(4), 4, "{}", run.stderr());

    let out = stop(run);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = emu.all_text();
    assert!(!text.contains("before the start"), "{text}");
    assert!(text.contains("> ERROR two done"), "{text}");
    assert!(!text.contains("> ERROR two\n"), "{text}");
    assert!(text.contains("b.log"), "{text}");
    assert_eq!(emu.delivered(), 4);
}

/// Writes `n` numbered ERROR lines to `path`, rotating every `every` lines with `rotate`, and
/// writing a few more lines to the old file after the rotation (as a logger does before it
/// reopens). Before each rotation it calls `before_rotation` with the number of lines written
/// so far (the tests wait there until they were delivered: a file written and rotated away
/// between two looks of the tailer's is not one it can know of, under `tail -F` as here), and
/// after it (with the rotation's number) `after_rotation`.
fn write_with_rotation(
    path: &Path,
    n: usize,
    every: usize,
    before_rotation: impl Fn(u64),
    rotate: impl Fn(usize),
    after_rotation: impl Fn(usize),
) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for i in 0..n {
        if i > 0 && i % every == 0 {
            before_rotation(i as u64);
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
            after_rotation(i / every);
        }
        if i % every >= 3 || i < every {
            writeln!(f, "ERROR line {i}").unwrap();
        }
    }
}

#[test]
fn rename_rotation_with_writes_racing_it_loses_nothing() {
    let emu = emulator();
    let env = test_env(&config(&emu, "200ms", ""));
    let log = env.dir().join("app.log");
    append(&log, "");
    let run = start(&env, &[log.to_str().unwrap()]);
    let dir = env.dir().to_owned();
    write_with_rotation(
        &log,
        1000,
        200,
        |written| assert_eq!(emu.wait_delivered(written), written, "{}", run.stderr()),
        |k| fs::rename(&log, dir.join(format!("app.log.{k}"))).unwrap(),
        |_| {},
    );
    let got = emu.wait_delivered(1000);
    // stopped, it has delivered all it read: a line read twice would show now
    let out = stop(run);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(got, 1000, "{}", out.stderr);
    assert_eq!(emu.delivered(), 1000, "nothing counted twice");
}

#[test]
fn copytruncate_is_read_again_from_the_start() {
    let emu = emulator();
    let env = test_env(&config(&emu, "200ms", ""));
    let log = env.dir().join("app.log");
    append(&log, "");
    let run = start(&env, &[log.to_str().unwrap()]);
    let dir = env.dir().to_owned();
    // copytruncate loses lines written after the reader's last look and before the truncation
    // (they are only in the copy): the writer waits until everything was delivered before each
    // rotation, so the count is exact.
    write_with_rotation(
        &log,
        600,
        200,
        |written| assert_eq!(emu.wait_delivered(written), written, "{}", run.stderr()),
        |k| {
            // copytruncate: copy, then truncate in place (the writer keeps its O_APPEND handle)
            fs::copy(&log, dir.join(format!("app.log.{k}"))).unwrap();
            OpenOptions::new()
                .write(true)
                .open(&log)
                .unwrap()
                .set_len(0)
                .unwrap();
        },
        // The writer goes straight on: a truncation it has already written back to the size
        // of the tailer's last look (each file here has the same length), or past the offset
        // read to, is still seen, by the first bytes, compared at every look.
        |_| {},
    );
    let got = emu.wait_delivered(600);
    let out = stop(run);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(got, 600, "{}", out.stderr);
    assert_eq!(emu.delivered(), 600, "nothing counted twice");
    assert!(out.stderr.contains("truncated"), "{}", out.stderr);
}

#[test]
fn a_deleted_file_is_followed_again_when_it_reappears() {
    let emu = emulator();
    let env = test_env(&config(&emu, "200ms", ""));
    let log = env.dir().join("app.log");
    append(&log, "ERROR old\n");
    let run = start(&env, &[log.to_str().unwrap()]);
    append(&log, "ERROR one\n");
    assert_eq!(emu.wait_delivered(1), 1, "{}", run.stderr());
    fs::remove_file(&log).unwrap();
    run.wait_for("file gone; following it again when it reappears");
    append(&log, "ERROR two\nERROR three\n");
    assert_eq!(emu.wait_delivered(3), 3, "{}", run.stderr());
    let out = stop(run);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!emu.all_text().contains("ERROR old"));
}

#[test]
fn a_restart_after_sigterm_neither_rereads_nor_skips() {
    let emu = emulator();
    let env = test_env(&config(&emu, "200ms", ""));
    let log = env.dir().join("app.log");
    append(&log, "ERROR before the first start\n");
    let args = [log.to_str().unwrap()];

    let run = start(&env, &args);
    for i in 0..5 {
        append(&log, &format!("ERROR a{i}\nok\n"));
    }
    assert_eq!(emu.wait_delivered(5), 5, "{}", run.stderr());
    // lines racing the signal: read and delivered now, or left for the next run, never both
    for i in 0..50 {
        append(&log, &format!("ERROR b{i}\n"));
    }
    let out = stop(run);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // written while dingtail is down
    for i in 0..7 {
        append(&log, &format!("ERROR c{i}\n"));
    }
    append(&log, "ERROR partial");

    let run = start(&env, &args);
    // every whole line delivered (the partial one is not a line yet), then its end: it goes
    // out on its own, so its message shows it whole
    assert_eq!(emu.wait_delivered(62), 62, "{}", run.stderr());
    append(&log, " line\n");
    let got = emu.wait_delivered(63);
    let out = stop(run);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(got, 63, "{}", emu.all_text());
    assert_eq!(emu.delivered(), 63, "no line counted twice");
    let text = emu.all_text();
    assert!(!text.contains("before the first start"));
    assert!(text.contains("ERROR partial line"), "{text}");
}

#[test]
fn a_restart_after_sigkill_loses_nothing() {
    let emu = emulator();
    // a long window: the hits are still pending, not delivered, when dingtail is killed
    let env = test_env(&config(&emu, "30s", ""));
    let log = env.dir().join("app.log");
    append(&log, "ERROR before\n");
    let args = [log.to_str().unwrap()];
    let checkpoints = env.dir().join("state/checkpoints.json");

    let run = start(&env, &args);
    append(&log, "ok\nERROR one\nok\nERROR two\n");
    // read and held (the window is open), not delivered: the checkpoint, written when the
    // file was taken up, stays before them
    read_to_end(&run, &log);
    let named = format!("{:?}", log.display().to_string());
    let saved = poll_until(|| fs::read_to_string(&checkpoints).is_ok_and(|t| t.contains(&named)));
    assert!(saved, "no checkpoint for {named}:\n{}", run.stderr());
    run.kill();
    assert_eq!(emu.delivered(), 0);
    append(&log, "ERROR three\n");

    let run = start(&env, &args);
    let out = stop(run);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(emu.delivered(), 3, "{}", emu.all_text());
    assert!(!emu.all_text().contains("ERROR before"));
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
    // followed, from the beginning; the last event (INFO next) ends by timeout
    let run = start(&env, &["--from-beginning"]);
    assert_eq!(emu.wait_delivered(1), 1, "{}", run.stderr());
    append(
        &log,
        "2024-05-01 10:00:03 ERROR second\n\tat x.Y(Y.java:1)\n",
    );
    assert_eq!(emu.wait_delivered(2), 2, "{}", run.stderr());
    let out = stop(run);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // the summary counts both: 10 lines written, gathered into 4 events
    assert!(
        out.stderr.contains("read 10 lines as 4 events"),
        "{}",
        out.stderr
    );
    assert_eq!(
        emu.delivered(),
        2,
        "each event counted once: {}",
        emu.all_text()
    );
    let text = emu.all_text();
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
