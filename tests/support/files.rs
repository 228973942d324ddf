//! Followed files: writing to them as a logger does, and waiting for the tailer to have taken
//! them up or read them, by what dingtail says on stderr (never by sleeping).
//!
//! Two signals, both from the tailer:
//! - `INFO following files` ([`FOLLOWING`]): said once the files present at start are taken up
//!   and their directories watched; from then on an appended line is seen. The level is part
//!   of the needle: the startup warning for a piped stdin ("standard input is not read while
//!   following files") says the same words earlier, before any file is taken up, and a test
//!   that took it for the signal wrote lines the tailer then skipped (it takes a file present
//!   at start up at its end) and waited for a `read up to` that never came.
//! - `read up to path=P offset=N` (debug, target `dingtail::source…`): said after each read
//!   of a followed file. [`TestEnv::tailer_progress`] turns it on.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use super::env::{TestEnv, poll_until};
use super::running::Running;

/// The tailer's line once it follows every file present at start (see the module docs).
pub const FOLLOWING: &str = " INFO following files";

/// Appends `text` to `path` in one write (creating the file), as a logger does.
pub fn append(path: &Path, text: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    f.write_all(text.as_bytes()).unwrap();
}

impl TestEnv {
    /// The tailer says how far it read each file (`read up to`, at debug level), for
    /// [`read_to_end`]. The filter names the `source` module and not the file the line is
    /// logged from, so it holds however `source/` is split.
    pub fn tailer_progress(self) -> TestEnv {
        self.env("DINGTAIL_LOG", "info,dingtail::source=debug")
    }

    /// Starts `dingtail ARGS` (a `run` that follows files) and waits until it has taken up
    /// the files present and watches them: a line appended after this is seen.
    pub fn start_following(&self, args: &[&str]) -> Running {
        let run = self.start(args);
        run.wait_for(FOLLOWING);
        run
    }
}

/// Waits until dingtail (started with [`TestEnv::tailer_progress`]) has read `path` to its
/// current end, partial last line included. Call it after writing: a file taken up at its
/// end was not read, so nothing says so.
///
/// It is the tailer's latest `read up to` for the path that must name the file's length,
/// not any earlier one: after a truncation the offsets start again from 0, so an old line
/// may name the same number. The line names the path, not the file: across a rotation, where
/// the new file may reach the length the old one had, wait for what was delivered instead.
pub fn read_to_end(run: &Running, path: &Path) {
    let len = std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .len();
    let at = format!("path={}", path.display());
    let to = format!("offset={len}");
    let latest = || {
        run.stderr()
            .lines()
            .rfind(|l| l.contains("read up to") && l.split_whitespace().any(|w| w == at))
            .map(str::to_owned)
    };
    let done = poll_until(|| latest().is_some_and(|l| l.split_whitespace().any(|w| w == to)));
    assert!(
        done,
        "dingtail did not read {} to {len} (latest: {:?}):\n{}",
        path.display(),
        latest(),
        run.stderr()
    );
}
