//! `TestEnv`: runs the real `dingtail` binary the way a user would, in a scratch directory, with a
//! config file, environment variables and stdin of the test's choosing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// [`TestEnv::start`]'s handle, also named from here (tests/crash.rs imports it so).
pub use super::running::Running;

/// A scratch directory, a config and environment for running `dingtail`.
pub struct TestEnv {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    config: Option<PathBuf>,
}

/// What a finished `dingtail` run left behind.
#[derive(Debug)]
pub struct Output {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
    /// Raw standard output.
    pub stdout_bytes: Vec<u8>,
    /// Peak resident memory of the process, KiB, as last seen (polled every few ms).
    pub max_rss_kib: u64,
    /// From the start of waiting to exit.
    pub elapsed: Duration,
}

impl Output {
    /// Asserts dingtail exited with status 0 (showing its stderr when not); returns the output.
    pub fn success(self) -> Output {
        assert_eq!(self.code, 0, "{}", self.stderr);
        self
    }

    /// The `--dry-run` lines, parsed.
    pub fn dry_run_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

impl TestEnv {
    /// An empty scratch directory, no config (so the built-in rules apply).
    pub fn new() -> TestEnv {
        TestEnv {
            dir: tempfile::tempdir().expect("temp dir"),
            env: Vec::new(),
            config: None,
        }
    }

    /// Writes `yaml` as the config file and passes it with `-c`.
    pub fn config(mut self, yaml: &str) -> TestEnv {
        let path = self.dir.path().join("rules.yaml");
        std::fs::write(&path, yaml).expect("write config");
        self.config = Some(path);
        self
    }

    /// Sets an environment variable for the run.
    pub fn env(mut self, key: &str, value: &str) -> TestEnv {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The scratch directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The config file's path.
    pub fn config_path(&self) -> &Path {
        self.config.as_deref().expect("no config written")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dingtail"));
        let sub = args.first().copied();
        cmd.args(args.iter().take(1));
        if let (Some(config), Some("run" | "check" | "test" | "send")) = (&self.config, sub) {
            cmd.arg("-c").arg(config);
        }
        cmd.args(args.iter().skip(1));
        cmd.current_dir(self.dir.path())
            .env_remove("DINGTAIL_CONFIG")
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .env_remove("ALL_PROXY")
            .env("DINGTAIL_HOST", "test-host")
            // Checkpoints stay in the scratch directory unless a test says otherwise.
            .env("STATE_DIRECTORY", self.dir.path().join("state"))
            .env("DINGTAIL_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `dingtail ARGS` with `input` on stdin (then end of input) and waits for it.
    pub fn run(&self, args: &[&str], input: &[u8]) -> Output {
        let mut run = self.start(args);
        let mut stdin = run.stdin();
        let input = input.to_vec();
        let writer = std::thread::spawn(move || {
            // The binary may exit early (usage errors): a broken pipe is fine.
            let _ = stdin.write_all(&input);
        });
        let out = run.wait();
        writer.join().expect("stdin writer");
        out
    }

    /// Starts `dingtail ARGS` (standard input, output and error piped) and reads what it
    /// says as it comes, so the test can wait for it instead of sleeping; the process is
    /// killed when the [`Running`] is dropped, so a failing test leaves nothing behind.
    pub fn start(&self, args: &[&str]) -> Running {
        Running::new(self.spawn(args))
    }

    /// Starts `dingtail ARGS` with stdin, stdout and stderr piped, as a bare [`Child`], for
    /// [`TestEnv::start`] to wrap.
    fn spawn(&self, args: &[&str]) -> Child {
        self.command(args).spawn().expect("start dingtail")
    }
}

/// The longest a test waits for something dingtail should say or do before it fails.
pub const WAIT_LIMIT: Duration = Duration::from_secs(60);

/// Polls `ok` until it holds; panics with `what` after [`WAIT_LIMIT`]. For conditions that no
/// line of dingtail's announces (a file written, a request that reached the emulator).
pub fn wait_until(what: &str, ok: impl FnMut() -> bool) {
    assert!(poll_until(ok), "waited {WAIT_LIMIT:?} for {what}");
}

/// Polls `ok` until it holds (`true`) or [`WAIT_LIMIT`] passed (`false`), for a test that
/// shows in detail what is missing.
pub fn poll_until(mut ok: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + WAIT_LIMIT;
    while !ok() {
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// [`poll_until`] for async tests: polls `ok` without blocking the runtime (the condition may
/// wait on a task of the test's own runtime), `true` once it holds, `false` after
/// [`WAIT_LIMIT`].
pub async fn poll_until_async(mut ok: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + WAIT_LIMIT;
    while !ok() {
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

/// The `【rule】×N` totals per rule of the messages a `--dry-run` printed (one JSON body a
/// line) on `stdout`.
pub fn dry_run_totals(stdout: &str) -> std::collections::BTreeMap<String, u64> {
    let mut totals = std::collections::BTreeMap::new();
    for line in stdout.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let text = v["body"]["text"]["content"].as_str().unwrap_or_default();
        for (rule, n) in header_counts(text) {
            *totals.entry(rule).or_default() += n;
        }
    }
    totals
}

/// The sum of every `【rule】×N` header in a message text.
pub fn header_total(text: &str) -> u64 {
    header_counts(text).iter().map(|(_, n)| n).sum()
}

/// Every `【rule】×N` header in a message text, in order.
pub fn header_counts(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix('【')?;
            let (rule, rest) = rest.split_once('】')?;
            let n = rest.strip_prefix('×')?.split(' ').next()?.parse().ok()?;
            Some((rule.to_owned(), n))
        })
        .collect()
}
