//! `TestEnv`: runs the real `dingtail` binary the way a user would, in a scratch directory, with a
//! config file, environment variables and stdin of the test's choosing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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
}

/// Waits for a child started by [`TestEnv::spawn`], killing it if it outlives [`RUN_LIMIT`].
pub fn wait(mut child: Child) -> Output {
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let read = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out_t = read(Box::new(stdout));
    let err_t = read(Box::new(stderr));
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
    let stderr = err_t.join().expect("stderr reader");
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
