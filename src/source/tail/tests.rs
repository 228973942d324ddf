//! The tailer driven by hand through rotations, copies, stops and crashes, with the checkpoint
//! keeper, counting every line read.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::*;
use crate::source::checkpoint::Keeper;
use crate::source::{Chunk, Mark};

/// One run of the tailer driven by hand: each [`Run::step`] is one look at every path, no
/// threads, no sleeps. Every chunk is "counted" at once; `hold` makes the next chunks stay
/// held (an alert in its window) until [`Run::settle`].
struct Run {
    tailer: Tailer,
    chunk_rx: mpsc::Receiver<Chunk>,
    updates_rx: mpsc::UnboundedReceiver<PositionUpdate>,
    keeper: Keeper,
    /// Lines read, in order.
    lines: Vec<String>,
    /// Lines delivered (read and not held, or held and settled since), in order: what a
    /// SIGKILL leaves delivered.
    delivered: Vec<String>,
    hold: bool,
    /// Chunks held, and their lines.
    held: Vec<(Mark, Vec<String>)>,
    /// The state file a SIGKILL would leave after each thing the keeper was told (it may
    /// write after any of them), with how many lines were delivered by then.
    kill_points: Vec<(Vec<Entry>, usize)>,
}

/// The state that survives between runs (what the state file would hold).
#[derive(Default, Clone)]
struct State {
    entries: Vec<Entry>,
    patterns: Vec<String>,
}

impl Run {
    fn start(patterns: &[&Path], state: &State) -> Run {
        Run::start_with(patterns, state, None)
    }

    fn start_with(patterns: &[&Path], state: &State, multiline: Option<Multiline>) -> Run {
        let (chunk_tx, chunk_rx) = mpsc::channel(100_000);
        let (updates_tx, updates_rx) = mpsc::unbounded_channel();
        let cfg = TailConfig {
            inputs: patterns
                .iter()
                .map(|p| Input {
                    pattern: p.to_string_lossy().into_owned(),
                    multiline: multiline.clone(),
                })
                .collect(),
            max_line: 1 << 20,
            start: Start::End,
            once: false,
            checkpoints: state.entries.clone(),
            known_patterns: state.patterns.clone(),
            trouble: crate::trouble::Reporter::default(),
            unreadable_for: Duration::from_secs(300),
        };
        let mut run = Run {
            tailer: Tailer::new(cfg, chunk_tx, updates_tx),
            chunk_rx,
            updates_rx,
            keeper: Keeper::new(state.entries.clone()),
            lines: Vec::new(),
            delivered: Vec::new(),
            hold: false,
            held: Vec::new(),
            kill_points: Vec::new(),
        };
        run.kill_point();
        run.step();
        let _ = run.tailer.updates_tx.send(PositionUpdate::Started);
        run.drain();
        run
    }

    /// One look at everything (a rescan included), then the pipeline catches up.
    fn step(&mut self) {
        self.tailer.scan();
        for i in 0..self.tailer.followed.len() {
            self.tailer.check_path(i, usize::MAX);
        }
        self.drain();
    }

    /// Retired files are finished now, as after their quiet time.
    fn quiet(&mut self) {
        for w in &mut self.tailer.followed {
            for o in &mut w.retired {
                o.active_at = Instant::now() - ROTATE_GRACE;
            }
        }
        self.step();
    }

    fn drain(&mut self) {
        // Events first: Opened before the chunks of that file are counted.
        while let Ok(e) = self.updates_rx.try_recv() {
            self.tell(e);
        }
        while let Ok(c) = self.chunk_rx.try_recv() {
            let text = String::from_utf8(c.data.to_vec()).unwrap();
            let lines: Vec<String> = text.lines().map(str::to_owned).collect();
            self.lines.extend(lines.iter().cloned());
            let mark = c.mark.unwrap();
            let holds = u32::from(self.hold && !c.data.is_empty());
            if holds > 0 {
                self.held.push((mark, lines));
            } else {
                self.delivered.extend(lines);
            }
            self.tell(PositionUpdate::Progress {
                mark,
                end: c.end_offset,
                holds,
            });
            while let Ok(e) = self.updates_rx.try_recv() {
                self.tell(e);
            }
        }
    }

    /// The keeper is told `e` (and could write the state file right after).
    fn tell(&mut self, e: PositionUpdate) {
        self.keeper.apply(e);
        self.kill_point();
    }

    fn kill_point(&mut self) {
        self.kill_points
            .push((self.keeper.entries(), self.delivered.len()));
    }

    fn settle(&mut self) {
        for (mark, lines) in std::mem::take(&mut self.held) {
            self.delivered.extend(lines);
            self.keeper.settled(&[mark]);
            self.kill_point();
        }
    }

    /// SIGTERM: everything read is settled (delivered or reported), the state written.
    fn stop(mut self, patterns: &[&Path]) -> (State, Vec<String>) {
        self.settle();
        self.crash(patterns)
    }

    /// SIGKILL: the state as last written, holds and all, and the lines delivered (held ones
    /// were not).
    fn crash(self, patterns: &[&Path]) -> (State, Vec<String>) {
        let state = State {
            entries: self.keeper.entries(),
            patterns: patterns_of(patterns),
        };
        (state, self.delivered)
    }
}

fn patterns_of(patterns: &[&Path]) -> Vec<String> {
    patterns
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

/// Truncates `path` in place, as `copytruncate` does (same inode, size 0).
fn truncate(path: &Path) {
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(0)
        .unwrap();
}

fn append(path: &Path, from: usize, to: usize) {
    let mut f = File::options()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for n in from..to {
        writeln!(f, "line {n:06} {}", "x".repeat(40)).unwrap();
    }
}

fn numbered(lines: &[String]) -> BTreeMap<usize, usize> {
    let mut seen = BTreeMap::new();
    for l in lines {
        let n: usize = l[5..11].parse().unwrap();
        *seen.entry(n).or_default() += 1;
    }
    seen
}

/// Every line of `range` seen exactly once.
fn exactly_once(lines: &[String], range: std::ops::Range<usize>) {
    let seen = numbered(lines);
    let missing: Vec<usize> = range.clone().filter(|n| !seen.contains_key(n)).collect();
    let twice: Vec<usize> = seen
        .iter()
        .filter(|&(_, &c)| c > 1)
        .map(|(&n, _)| n)
        .collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    assert!(twice.is_empty(), "duplicated: {twice:?}");
    assert_eq!(seen.len(), range.len(), "only the lines written");
}

/// Every line of `range` seen at least once (after a crash, duplicates are allowed).
fn at_least_once(lines: &[String], range: std::ops::Range<usize>) {
    let seen = numbered(lines);
    let missing: Vec<usize> = range.filter(|n| !seen.contains_key(n)).collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
}

#[test]
fn a_copytruncate_copy_seen_while_it_is_being_written_is_not_read_twice() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let copy = dir.path().join("app.log.1");
    append(&log, 0, 10);
    let pattern = dir.path().join("app.log*");
    let pats = [pattern.as_path()];
    let mut run = Run::start(&pats, &State::default());
    append(&log, 10, 30);
    run.step();
    // `cp` has created the copy and written part of it when the tailer looks: less than a
    // fingerprint, then more than a fingerprint but less than the original was read to
    let content = std::fs::read(&log).unwrap();
    for part in [0, 100, 600] {
        std::fs::write(&copy, &content[..part]).unwrap();
        run.step();
    }
    std::fs::write(&copy, &content).unwrap();
    truncate(&log);
    append(&log, 30, 40);
    run.step();
    let (_, lines) = run.stop(&pats);
    exactly_once(&lines, 10..40);
}

#[test]
fn a_file_renamed_while_stopped_is_read_to_its_end_under_its_new_name() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, 0, 10);
    let pats = [log.as_path()];
    let mut run = Run::start(&pats, &State::default());
    append(&log, 10, 20);
    run.step();
    let (state, mut lines) = run.stop(&pats);
    // stopped: more lines to the old file, then it is renamed and a new one created
    append(&log, 20, 30);
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    append(&log, 30, 40);
    let mut run = Run::start(&pats, &state);
    append(&log, 40, 50);
    run.step();
    let (_, more) = run.stop(&pats);
    lines.extend(more);
    exactly_once(&lines, 10..50);
}

fn crash_after_rotation(glob: bool, copytruncate: bool) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let old = dir.path().join("app.log.1");
    append(&log, 0, 10);
    let pattern = dir.path().join("app.log*");
    let pats = if glob {
        [pattern.as_path()]
    } else {
        [log.as_path()]
    };
    let (state, _) = Run::start(&pats, &State::default()).stop(&pats);
    let mut run = Run::start(&pats, &state);
    // an alert gathers these lines: held
    run.hold = true;
    append(&log, 10, 30);
    run.step();
    if copytruncate {
        std::fs::copy(&log, &old).unwrap();
        truncate(&log);
    } else {
        std::fs::rename(&log, &old).unwrap();
    }
    append(&log, 30, 40);
    run.step();
    run.quiet(); // the old file read to its end and closed
    // killed after anything its keeper was told
    no_kill_point_loses(&run, &[], &pats, 10..40);
    let (state, mut lines) = run.crash(&pats);
    let mut run = Run::start(&pats, &state);
    append(&log, 40, 50);
    run.step();
    // the restart killed after anything its keeper was told
    no_kill_point_loses(&run, &lines, &pats, 10..50);
    let (_, more) = run.stop(&pats);
    lines.extend(more);
    at_least_once(&lines, 10..50);
}

#[test]
fn a_crash_while_an_alert_holds_lines_of_a_renamed_file_loses_nothing() {
    crash_after_rotation(false, false);
}

#[test]
fn a_crash_while_an_alert_holds_lines_of_a_renamed_file_loses_nothing_under_a_glob() {
    crash_after_rotation(true, false);
}

#[test]
fn a_crash_while_an_alert_holds_lines_of_a_copytruncated_file_loses_nothing() {
    crash_after_rotation(false, true);
}

#[test]
fn a_crash_while_an_alert_holds_lines_of_a_copytruncated_file_loses_nothing_under_a_glob() {
    crash_after_rotation(true, true);
}

#[test]
fn a_stop_during_a_rotation_neither_loses_nor_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, 0, 10);
    let pats = [log.as_path()];
    let mut run = Run::start(&pats, &State::default());
    append(&log, 10, 20);
    run.step();
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    append(&log, 20, 30);
    run.step(); // the old file is retired, not yet quiet
    let (state, mut lines) = run.stop(&pats);
    // the writer had not reopened yet: more lines went to the old file
    let mut f = File::options()
        .append(true)
        .open(dir.path().join("app.log.1"))
        .unwrap();
    writeln!(f, "line {:06} {}", 30, "x".repeat(40)).unwrap();
    let mut run = Run::start(&pats, &state);
    append(&log, 31, 40);
    run.step();
    let (_, more) = run.stop(&pats);
    lines.extend(more);
    exactly_once(&lines, 10..40);
}

#[test]
fn a_file_a_glob_gains_while_stopped_is_read_from_its_first_byte() {
    let dir = tempfile::tempdir().unwrap();
    let pattern = dir.path().join("*.log");
    let pats = [pattern.as_path()];
    append(&dir.path().join("a.log"), 0, 10);
    let run = Run::start(&pats, &State::default());
    let (state, mut lines) = run.stop(&pats);
    append(&dir.path().join("b.log"), 10, 20);
    let mut run = Run::start(&pats, &state);
    run.step();
    let (_, more) = run.stop(&pats);
    lines.extend(more);
    exactly_once(&lines, 10..20);
}

#[test]
fn a_file_reached_by_two_paths_is_followed_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let link = dir.path().join("link.log");
    append(&log, 0, 1);
    std::os::unix::fs::symlink(&log, &link).unwrap();
    let dotted = dir.path().join(".").join("app.log");
    let pats = [log.as_path(), link.as_path(), dotted.as_path()];
    let mut run = Run::start(&pats, &State::default());
    append(&log, 1, 20);
    run.step();
    run.step();
    let (_, lines) = run.stop(&pats);
    exactly_once(&lines, 1..20);
}

#[test]
fn compressed_files_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let pattern = dir.path().join("app.log*");
    let pats = [pattern.as_path()];
    let mut run = Run::start(&pats, &State::default());
    for (name, magic) in [
        ("app.log.2.gz", &[0x1f, 0x8b, 8, 0][..]),
        ("app.log.3.zst", &[0x28, 0xb5, 0x2f, 0xfd]),
        ("app.log.4.xz", &[0xfd, b'7', b'z', b'X', b'Z', 0]),
        ("app.log.5.bz2", b"BZh9"),
    ] {
        let mut bytes = magic.to_vec();
        bytes.extend_from_slice(b"line 999999 binary\n");
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    append(&dir.path().join("app.log"), 0, 5);
    run.step();
    run.step();
    let (_, lines) = run.stop(&pats);
    exactly_once(&lines, 0..5);
}

#[test]
fn a_multiline_checkpoint_follows_a_busy_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let pats = [log.as_path()];
    let ml = Multiline {
        start: regex::bytes::Regex::new("^line 0000[0-9]0").unwrap(),
        max_lines: 500,
        timeout: Duration::from_secs(3600),
    };
    let mut run = Run::start_with(&pats, &State::default(), Some(ml));
    let mut last = 0;
    for round in 0..5 {
        append(&log, round * 10, round * 10 + 10);
        run.step();
        let now = run.keeper.safe_offset(&log.to_string_lossy()).unwrap();
        // round 0: its event is pending at offset 0; later rounds end the one before
        assert!(
            round == 0 || now > last,
            "round {round}: the checkpoint moved ({last} → {now})"
        );
        last = now;
    }
}

/// Starts a run from every state file `killed` could have left (one per thing its keeper was
/// told), lets it read on and stop; with what was delivered before, nothing of `range` is
/// missing.
fn no_kill_point_loses(
    killed: &Run,
    delivered_before: &[String],
    pats: &[&Path],
    range: std::ops::Range<usize>,
) {
    for (k, (entries, delivered)) in killed.kill_points.iter().enumerate() {
        let state = State {
            entries: entries.clone(),
            patterns: patterns_of(pats),
        };
        let mut next = Run::start(pats, &state);
        next.step();
        let (_, more) = next.stop(pats);
        let mut all = delivered_before.to_vec();
        all.extend_from_slice(&killed.delivered[..*delivered]);
        all.extend(more);
        let seen = numbered(&all);
        let missing: Vec<usize> = range.clone().filter(|n| !seen.contains_key(n)).collect();
        assert!(
            missing.is_empty(),
            "killed after the keeper's step {k} of {}: lost {missing:?}; its state: {entries:#?}",
            killed.kill_points.len()
        );
    }
}

/// A copytruncate while an alert holds lines of the original, the copy taken up (under a glob)
/// where the original was read to, then SIGKILL: the held lines are in the copy, before that.
fn copytruncate_while_held(dir: &Path, pats: &[&Path]) -> Run {
    let log = dir.join("app.log");
    append(&log, 0, 10);
    let (state, _) = Run::start(pats, &State::default()).stop(pats);
    let mut run = Run::start(pats, &state);
    run.hold = true;
    append(&log, 10, 30);
    run.step();
    run.hold = false;
    std::fs::copy(&log, dir.join("app.log.1")).unwrap();
    truncate(&log);
    append(&log, 30, 40);
    run.step();
    run
}

#[test]
fn a_kill_anywhere_around_a_copytruncate_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pattern = dir.path().join("app.log*");
    let pats = [pattern.as_path()];
    let run = copytruncate_while_held(dir.path(), &pats);
    no_kill_point_loses(&run, &[], &pats, 10..40);
}

#[test]
fn a_kill_while_a_restart_takes_up_a_truncated_file_and_its_copy_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pattern = dir.path().join("app.log*");
    let pats = [pattern.as_path()];
    let (state, delivered) = copytruncate_while_held(dir.path(), &pats).crash(&pats);
    // The restart takes up `app.log` (same inode, new content) and then the copy: a kill may
    // land after the first is written and before the second.
    let mut run = Run::start(&pats, &state);
    append(&dir.path().join("app.log"), 40, 50);
    run.step();
    no_kill_point_loses(&run, &delivered, &pats, 10..50);
}

#[test]
fn a_copytruncate_back_to_the_same_size_between_two_looks_is_seen() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let pats = [log.as_path()];
    let mut run = Run::start(&pats, &State::default());
    append(&log, 0, 10);
    run.step();
    // truncated, and as many bytes written again (other lines) before the next look
    truncate(&log);
    append(&log, 10, 20);
    run.step();
    let (_, lines) = run.stop(&pats);
    exactly_once(&lines, 0..20);
}
