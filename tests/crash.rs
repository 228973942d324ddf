//! Rotation × restart × crash, through the real binary and the DingTalk emulator: a writer
//! appends numbered lines in blocks while logrotate-style rotations happen (rename with lines
//! still going to the old file, and copytruncate), and dingtail is stopped and restarted again
//! and again. The emulator's `×N` totals per block must account for every line written: none
//! lost after SIGKILL (duplicates allowed), none lost and none duplicated after SIGTERM.
//!
//! The writer rotates by itself, between two writes, so copytruncate's inherent gap (lines
//! written between the copy and the truncation exist only in the copy) is excluded by
//! construction; README "Following files" states it.
//!
//! Nothing here waits on the clock: the writer writes a block when told to, and each stop is
//! placed by progress (while a block is being written, once a run has delivered something, or
//! with dingtail down while a block and its rotation are written), so the same kinds of stop
//! happen on a fast machine and on a loaded one.

mod support;

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use support::emulator::{Emulator, RobotSpec};
use support::env::{Running, TestEnv, poll_until};
use support::files::FOLLOWING;

const TOKEN: &str = "tok-crash0123456789ab";
const BLOCKS: usize = 12;
const PER_BLOCK: usize = 300;

fn config(emu: &Emulator) -> String {
    format!(
        r#"robots:
  ops:
    webhook: "{}"
    rate: 1000/1s
defaults:
  window: 300ms
  max_lines: 1
rules:
  - name: err
    match: 'ERROR block=(?P<block>\d+)'
    group_by: [block]
"#,
        emu.webhook(TOKEN)
    )
}

/// Delivered count per block, from the `【err】×N host · block=B` headers.
fn per_block(emu: &Emulator) -> BTreeMap<usize, u64> {
    let mut out = BTreeMap::new();
    for p in emu.posts() {
        for line in p.text().lines() {
            let Some(rest) = line.strip_prefix("【err】×") else {
                continue;
            };
            let n: u64 = rest.split(' ').next().unwrap().parse().unwrap();
            let block: usize = rest
                .split("block=")
                .nth(1)
                .and_then(|b| b.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|b| b.parse().ok())
                .unwrap_or_else(|| panic!("no block in {line:?}"));
            *out.entry(block).or_default() += n;
        }
    }
    out
}

/// Writes every block, one each time `go` says so (and says `done` after it), rotating every
/// two blocks: by rename (a few lines still go to the old file, as from a writer that has not
/// reopened yet) or by copytruncate, in turn.
fn writer(dir: PathBuf, go: mpsc::Receiver<()>, done: mpsc::Sender<usize>) {
    let log = dir.join("app.log");
    let open = || {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap()
    };
    let mut out = open();
    // After a rename, this many more lines go to the old file before the writer reopens.
    let mut reopen_in: Option<usize> = None;
    for block in 0..BLOCKS {
        go.recv().expect("told to write");
        for n in 0..PER_BLOCK {
            // one write per line, as loggers do
            let line = format!("ERROR block={block:03} n={n:04} {}\n", "x".repeat(60));
            out.write_all(line.as_bytes()).unwrap();
            if let Some(k) = reopen_in.as_mut() {
                *k -= 1;
                if *k == 0 {
                    reopen_in = None;
                    out = open();
                }
            }
            if n == PER_BLOCK / 2 && block % 2 == 1 {
                let rotated = dir.join(format!("app.log.{block}"));
                if block % 4 == 1 {
                    fs::rename(&log, rotated).unwrap();
                    reopen_in = Some(3);
                } else {
                    fs::copy(&log, rotated).unwrap();
                    File::options()
                        .write(true)
                        .open(&log)
                        .unwrap()
                        .set_len(0)
                        .unwrap();
                }
            }
        }
        done.send(block).expect("told it was written");
    }
}

fn torture(sig: i32) {
    let emu = Emulator::start(vec![
        RobotSpec::new(TOKEN).rate(1000, Duration::from_secs(1)),
    ]);
    let env = TestEnv::new().config(&config(&emu));
    let logs = env.dir().join("logs");
    fs::create_dir(&logs).unwrap();
    File::create(logs.join("app.log")).unwrap();
    let state = env.dir().join("state");
    // the glob also follows the rotated names: a file created and rotated away entirely while
    // dingtail was down is then still read (README "Following files")
    let log = logs.join("app.log*");
    let args = [
        "run",
        "--state-dir",
        state.to_str().unwrap(),
        log.to_str().unwrap(),
    ];
    // Started: every run rewrites the state file (a new inode) once it has taken its files up,
    // after its signal handlers are in place.
    let checkpoints = state.join("checkpoints.json");
    let start = |env: &TestEnv| {
        let before = fs::metadata(&checkpoints).map(|m| m.ino()).ok();
        let run = env.start(&args);
        run.wait_for(FOLLOWING);
        let saved = poll_until(|| fs::metadata(&checkpoints).map(|m| m.ino()).ok() != before);
        assert!(saved, "no checkpoint written:\n{}", run.stderr());
        run
    };
    // What each run said, shown when a line is missing.
    let said = std::cell::RefCell::new(Vec::<String>::new());
    let stop = |run: Running| {
        run.signal(sig);
        let out = run.wait();
        if sig == libc::SIGTERM {
            assert_eq!(out.code, 0, "{}", out.stderr);
        }
        said.borrow_mut().push(out.stderr);
    };
    // A first run takes the empty file up, so every later line is after its checkpoint.
    let first = start(&env);
    first.signal(libc::SIGTERM);
    let out = first.wait();
    assert_eq!(out.code, 0, "{}", out.stderr);

    let (go, go_rx) = mpsc::channel();
    let (done_tx, done) = mpsc::channel();
    let w = {
        let dir = logs.clone();
        std::thread::spawn(move || writer(dir, go_rx, done_tx))
    };
    for block in 0..BLOCKS {
        match block % 3 {
            // chaos, not synchronisation: the stop lands wherever the run is in reading and
            // delivering the block being written
            0 => {
                let run = start(&env);
                go.send(()).unwrap();
                stop(run);
                done.recv().unwrap();
            }
            // stopped after this run delivered some of the block
            1 => {
                let run = start(&env);
                let before = emu.posts().len();
                go.send(()).unwrap();
                done.recv().unwrap();
                let posted = poll_until(|| emu.posts().len() > before);
                assert!(posted, "nothing delivered:\n{}", run.stderr());
                stop(run);
            }
            // written (and rotated, blocks 5 and 11) while dingtail is down
            _ => {
                go.send(()).unwrap();
                done.recv().unwrap();
            }
        }
    }
    w.join().unwrap();
    // A last run reads what is left and delivers it.
    let run = start(&env);
    let complete = || {
        let got = per_block(&emu);
        (0..BLOCKS).all(|b| got.get(&b).is_some_and(|&n| n >= PER_BLOCK as u64))
    };
    // (on a loss this gives up after the wait limit and the counts below say what is missing)
    poll_until(complete);
    run.signal(libc::SIGTERM);
    let out = run.wait();
    assert_eq!(out.code, 0, "{}", out.stderr);

    let got = per_block(&emu);
    let lost: Vec<(usize, u64)> = (0..BLOCKS)
        .filter_map(|b| {
            let n = got.get(&b).copied().unwrap_or(0);
            (n < PER_BLOCK as u64).then(|| (b, PER_BLOCK as u64 - n))
        })
        .collect();
    if !lost.is_empty() {
        said.borrow_mut().push(out.stderr);
        let story: Vec<String> = said
            .borrow()
            .iter()
            .enumerate()
            .flat_map(|(i, text)| {
                text.lines()
                    .filter(|l| !l.contains("read up to"))
                    .map(move |l| format!("run {i}: {l}"))
                    .collect::<Vec<_>>()
            })
            .collect();
        panic!(
            "lost per block: {lost:?} (got {got:?}); what the runs said:\n{}",
            story.join("\n")
        );
    }
    // After SIGTERM nothing repeats either: a copytruncate copy found while it is still being
    // written waits until it is complete, so it is read from where its original was read to.
    if sig == libc::SIGTERM {
        let dup: Vec<(usize, u64)> = got
            .iter()
            .filter(|&(_, &n)| n > PER_BLOCK as u64)
            .map(|(&b, &n)| (b, n - PER_BLOCK as u64))
            .collect();
        assert!(
            dup.is_empty(),
            "duplicated per block after SIGTERM: {dup:?}"
        );
    }
}

#[test]
fn sigkill_restarts_across_rotations_lose_nothing() {
    torture(libc::SIGKILL);
}

#[test]
fn sigterm_restarts_across_rotations_lose_nothing() {
    torture(libc::SIGTERM);
}
