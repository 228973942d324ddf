//! `Running`: a `dingtail` the test started ([`TestEnv::start`]) and reads as it goes, so the
//! test waits for what dingtail says (a line on stderr or stdout) instead of sleeping. It is
//! the one handle on a dingtail process in tests/support: whatever way the test ends (a
//! failed assertion included), dropping it kills and reaps the process, so a failing test
//! leaves no dingtail behind holding its ports, files or state directory.
//!
//! [`TestEnv::start`]: super::env::TestEnv::start

use std::io::{Read, Write};
use std::process::{Child, ChildStdin};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::env::{Output, WAIT_LIMIT};

/// The longest a run may take to exit once the test waits for it (instead of hanging CI).
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// A `dingtail` process with its standard error and output read as they come. Killed
/// (SIGKILL) and reaped when dropped, unless it was waited for.
pub struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: Arc<Stream>,
    stdout: Arc<Stream>,
    readers: Vec<JoinHandle<()>>,
}

/// What one of the child's output streams said so far, and whether it ended.
#[derive(Default)]
struct Stream {
    text: Mutex<(Vec<u8>, bool)>,
    grew: Condvar,
}

impl Stream {
    /// Starts a thread reading `r` into a new stream.
    fn read(r: Option<impl Read + Send + 'static>) -> (Arc<Stream>, Option<JoinHandle<()>>) {
        let stream = Arc::new(Stream::default());
        let Some(mut r) = r else {
            stream.text.lock().unwrap().1 = true;
            return (stream, None);
        };
        let s = stream.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                let n = r.read(&mut buf).unwrap_or(0);
                let mut t = s.text.lock().unwrap_or_else(|e| e.into_inner());
                if n == 0 {
                    t.1 = true;
                    s.grew.notify_all();
                    return;
                }
                t.0.extend_from_slice(&buf[..n]);
                s.grew.notify_all();
            }
        });
        (stream, Some(reader))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.text.lock().unwrap().0).into_owned()
    }

    /// Waits until `found` finds something in the text so far (`Some`), or `None` once the
    /// stream ended or [`WAIT_LIMIT`] passed without it.
    fn wait_for<T>(&self, mut found: impl FnMut(&str) -> Option<T>) -> Option<T> {
        let until = Instant::now() + WAIT_LIMIT;
        let mut t = self.text.lock().unwrap();
        loop {
            if let Some(v) = found(&String::from_utf8_lossy(&t.0)) {
                return Some(v);
            }
            let now = Instant::now();
            if t.1 || now >= until {
                return None;
            }
            t = self.grew.wait_timeout(t, until - now).unwrap().0;
        }
    }

    /// The bytes read so far, once the stream ended.
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut self.text.lock().unwrap().0)
    }
}

impl Running {
    /// Takes charge of `child` (started with its standard streams piped): reads its stderr
    /// and stdout as they come, and kills it when dropped.
    pub fn new(mut child: Child) -> Running {
        let stdin = child.stdin.take();
        let (stderr, err_reader) = Stream::read(child.stderr.take());
        let (stdout, out_reader) = Stream::read(child.stdout.take());
        Running {
            child,
            stdin,
            stderr,
            stdout,
            readers: err_reader.into_iter().chain(out_reader).collect(),
        }
    }

    /// Its standard input, for a writer of the test's own (once).
    pub fn stdin(&mut self) -> ChildStdin {
        self.stdin.take().expect("stdin taken once")
    }

    /// Writes `data` to its standard input.
    pub fn write(&mut self, data: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(data).expect("write to dingtail's stdin");
    }

    /// Closes its standard input: the end of input.
    pub fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Standard error so far.
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Standard output so far.
    pub fn stdout(&self) -> String {
        self.stdout.text()
    }

    /// Waits until standard error has said `needle` on at least `n` lines; panics (showing
    /// what it said) after [`WAIT_LIMIT`] or when dingtail ended first.
    pub fn wait_for_nth(&self, needle: &str, n: usize) {
        self.nth_line(needle, n);
    }

    /// Waits until standard error has said `needle`.
    pub fn wait_for(&self, needle: &str) {
        self.nth_line(needle, 1);
    }

    /// Waits for the `n`th whole line of standard error that contains `needle` and returns it
    /// (never cut short: only lines that ended count).
    fn nth_line(&self, needle: &str, n: usize) -> String {
        let nth = |text: &str| {
            (text.split_inclusive('\n'))
                .filter(|l| l.ends_with('\n') && l.contains(needle))
                .nth(n - 1)
                .map(|l| l.trim_end().to_owned())
        };
        self.stderr.wait_for(nth).unwrap_or_else(|| {
            panic!(
                "dingtail did not say {needle:?} {n} time(s):\n{}",
                self.stderr()
            )
        })
    }

    /// Waits until standard output contains `needle`.
    pub fn wait_for_stdout(&self, needle: &str) {
        let found = self.stdout.wait_for(|t| t.contains(needle).then_some(()));
        assert!(
            found.is_some(),
            "no {needle:?} on stdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
    }

    /// The address it listens on (`--listen 127.0.0.1:0`), from `listening on ADDR`.
    pub fn listen_addr(&self) -> String {
        let line = self.nth_line("listening on ", 1);
        line.split("listening on ")
            .nth(1)
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Sends a signal.
    pub fn signal(&self, sig: i32) {
        let pid = i32::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill(2) with a pid we own and a valid signal number has no memory effects.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Kills it (SIGKILL) and waits for it to be gone.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        self.child.wait().expect("reap dingtail");
    }

    /// Closes its standard input (the end of input) and waits for it to exit, like
    /// [`Running::wait`].
    pub fn finish(mut self) -> Output {
        self.close_stdin();
        self.wait()
    }

    /// Waits for it to exit (killing it and failing past a limit) with what it wrote. Its
    /// standard input is left as it is: close it first ([`Running::finish`]) or signal it.
    pub fn wait(mut self) -> Output {
        let start = Instant::now();
        let pid = self.child.id();
        // Peak RSS is read from /proc (VmHWM, the high-water mark of the exec'd program) while
        // the child runs: the child's rusage would also count the test process's pages it was
        // forked with.
        let mut max_rss_kib = 0;
        let status = loop {
            if let Some(hwm) = vm_hwm_kib(pid) {
                max_rss_kib = max_rss_kib.max(hwm);
            }
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if start.elapsed() > RUN_LIMIT {
                panic!(
                    "dingtail did not exit within {RUN_LIMIT:?}:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        for r in self.readers.drain(..) {
            r.join().expect("output reader");
        }
        let stdout_bytes = self.stdout.take();
        Output {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout_bytes).into_owned(),
            stderr: String::from_utf8_lossy(&self.stderr.take()).into_owned(),
            stdout_bytes,
            max_rss_kib,
            elapsed: start.elapsed(),
        }
    }
}

impl Drop for Running {
    /// Kills and reaps the process unless it was waited for: the test failed (or forgot it),
    /// and nothing it started may outlive it. Never panics (it runs while a panic unwinds).
    fn drop(&mut self) {
        // Both are no-ops once the child was reaped: std remembers its status and never
        // signals a pid it no longer owns.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The VmHWM line of /proc/PID/status, in KiB (`None` once the process is gone).
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
