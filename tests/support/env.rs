//! `TestEnv`: runs the real `dingtail` binary the way a user would, in a scratch directory, with a
//! config file, environment variables and stdin of the test's choosing.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
    /// The `--dry-run` lines, parsed.
    pub fn dry_run_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

/// The longest any one run may take before the test fails (instead of hanging CI).
const RUN_LIMIT: Duration = Duration::from_secs(120);

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
        let mut child = self.spawn(args);
        let mut stdin = child.stdin.take().expect("stdin");
        let input = input.to_vec();
        let writer = std::thread::spawn(move || {
            // The binary may exit early (usage errors): a broken pipe is fine.
            let _ = stdin.write_all(&input);
        });
        let out = wait(child);
        writer.join().expect("stdin writer");
        out
    }

    /// Starts `dingtail ARGS` with stdin, stdout and stderr piped; the caller feeds and waits.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args).spawn().expect("start dingtail")
    }

    /// Starts `dingtail ARGS` like [`TestEnv::spawn`], reading its standard error as it comes,
    /// so the test can wait for what dingtail says instead of sleeping.
    pub fn start(&self, args: &[&str]) -> Running {
        let mut child = self.spawn(args);
        let stderr = child.stderr.take().expect("stderr");
        let seen: Arc<Seen> = Arc::default();
        let reader = {
            let seen = seen.clone();
            std::thread::spawn(move || seen.read_from(stderr))
        };
        Running {
            child,
            seen,
            reader,
        }
    }
}

/// The longest a test waits for something dingtail should say or do before it fails.
pub const WAIT_LIMIT: Duration = Duration::from_secs(60);

/// Standard error read so far, and whether it ended.
#[derive(Default)]
struct Seen {
    text: Mutex<(Vec<u8>, bool)>,
    grew: Condvar,
}

impl Seen {
    fn read_from(&self, mut r: impl Read) {
        let mut buf = [0u8; 8192];
        loop {
            let n = r.read(&mut buf).unwrap_or(0);
            let mut t = self.text.lock().unwrap();
            if n == 0 {
                t.1 = true;
                self.grew.notify_all();
                return;
            }
            t.0.extend_from_slice(&buf[..n]);
            self.grew.notify_all();
        }
    }
}

/// A `dingtail` started by [`TestEnv::start`].
pub struct Running {
    child: Child,
    seen: Arc<Seen>,
    reader: JoinHandle<()>,
}

impl Running {
    /// Its standard input (once).
    pub fn stdin(&mut self) -> ChildStdin {
        self.child.stdin.take().expect("stdin taken once")
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Standard error so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.seen.text.lock().unwrap().0).into_owned()
    }

    /// Waits until standard error has said `needle` at least `n` times; panics (showing what
    /// it said) after [`WAIT_LIMIT`] or when dingtail ended first.
    pub fn wait_for_nth(&self, needle: &str, n: usize) {
        let until = Instant::now() + WAIT_LIMIT;
        let mut t = self.seen.text.lock().unwrap();
        loop {
            if String::from_utf8_lossy(&t.0).matches(needle).count() >= n {
                return;
            }
            let now = Instant::now();
            if t.1 || now >= until {
                panic!(
                    "dingtail did not say {needle:?} {n} time(s):\n{}",
                    String::from_utf8_lossy(&t.0)
                );
            }
            t = self.seen.grew.wait_timeout(t, until - now).unwrap().0;
        }
    }

    /// Waits until standard error has said `needle`.
    pub fn wait_for(&self, needle: &str) {
        self.wait_for_nth(needle, 1);
    }

    /// The address it listens on (`--listen 127.0.0.1:0`), from `listening on ADDR`.
    pub fn listen_addr(&self) -> String {
        self.wait_for("listening on ");
        let text = self.stderr();
        let line = text.lines().find(|l| l.contains("listening on ")).unwrap();
        line.split("listening on ")
            .nth(1)
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Waits until the matcher has counted `n` lines of standard input (the listener's
    /// `dingtail_lines_read_total`; start it with `--listen 127.0.0.1:0`).
    pub fn wait_for_lines_read(&self, n: u64) {
        let addr = self.listen_addr();
        let read = || metric(&addr, "dingtail_lines_read_total{source=\"-\"}").unwrap_or(0.0);
        let mut last = 0.0;
        assert!(
            poll_until(|| {
                last = read();
                last >= n as f64
            }),
            "{last} of {n} lines read:\n{}",
            self.stderr()
        );
    }

    /// Sends a signal.
    pub fn signal(&self, sig: i32) {
        signal(&self.child, sig);
    }

    /// Kills it (SIGKILL) and waits for it to be gone.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let _ = self.reader.join();
    }

    /// Waits for it to exit, like [`wait`].
    pub fn wait(self) -> Output {
        let Running {
            child,
            seen,
            reader,
        } = self;
        finish(child, move || {
            reader.join().expect("stderr reader");
            std::mem::take(&mut seen.text.lock().unwrap().0)
        })
    }
}

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

/// One sample (`name{labels}` exactly as written) of the metrics served at `addr`.
pub fn metric(addr: &str, series: &str) -> Option<f64> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let text = agent
        .get(&format!("http://{addr}/metrics"))
        .call()
        .ok()?
        .body_mut()
        .read_to_string()
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))?
        .trim()
        .parse()
        .ok()
}

/// Waits for a child started by [`TestEnv::spawn`], killing it if it outlives [`RUN_LIMIT`].
pub fn wait(mut child: Child) -> Output {
    let stderr = child.stderr.take().expect("stderr");
    let err_t = read_all(stderr);
    finish(child, move || err_t.join().expect("stderr reader"))
}

fn read_all(mut r: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Waits for the child to exit (killing it past [`RUN_LIMIT`]), with its stdout and the
/// stderr `stderr` gives once it has exited.
fn finish(mut child: Child, stderr: impl FnOnce() -> Vec<u8>) -> Output {
    let stdout = child.stdout.take().expect("stdout");
    let out_t = read_all(stdout);
    let start = Instant::now();
    let pid = child.id();
    // Peak RSS is read from /proc (VmHWM, the high-water mark of the exec'd program) while the
    // child runs: the child's rusage would also count the test process's pages it was forked
    // with.
    let mut max_rss_kib = 0;
    let status = loop {
        if let Some(hwm) = vm_hwm_kib(pid) {
            max_rss_kib = max_rss_kib.max(hwm);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            panic!("dingtail did not finish within {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout_bytes = out_t.join().expect("stdout reader");
    let stderr = stderr();
    Output {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout_bytes).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        stdout_bytes,
        max_rss_kib,
        elapsed: start.elapsed(),
    }
}

/// The VmHWM line of /proc/PID/status, in KiB (`None` once the process is gone).
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Sends a signal to a running child.
pub fn signal(child: &Child, sig: i32) {
    let pid = i32::try_from(child.id()).expect("pid fits");
    // SAFETY: kill(2) with a pid we own and a valid signal number has no memory effects.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill failed");
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
