//! `Running`: a `dingtail run` in the background whose output a test reads as it comes, and
//! the small HTTP helpers for its listener.

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::env::TestEnv;

/// A `dingtail run` in the background: its stderr is read line by line as it comes, so a test
/// can wait for a line (`listening on ADDR`, a reload) instead of sleeping.
pub struct Running {
    pub child: std::process::Child,
    pub stdin: Option<std::process::ChildStdin>,
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    stdout: Arc<Mutex<Vec<u8>>>,
}

impl Running {
    pub fn start(env: &TestEnv, args: &[&str]) -> Running {
        let mut child = env.spawn(args);
        let stdin = child.stdin.take();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let mut err = BufReader::new(child.stderr.take().expect("stderr"));
        let mut out = child.stdout.take().expect("stdout");
        let (e, o) = (stderr.clone(), stdout.clone());
        let readers = vec![
            std::thread::spawn(move || {
                let mut line = String::new();
                while err.read_line(&mut line).unwrap_or(0) > 0 {
                    e.lock().unwrap().push(std::mem::take(&mut line));
                }
            }),
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = out.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    o.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            }),
        ];
        Running {
            child,
            stdin,
            stderr,
            readers,
            stdout,
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().concat()
    }

    /// Waits until a stderr line contains `needle` (at least `n` such lines); returns the last.
    pub fn wait_for_line(&mut self, needle: &str, n: usize) -> String {
        let deadline = Instant::now() + LIMIT;
        loop {
            {
                let lines = self.stderr.lock().unwrap();
                let found: Vec<&String> = lines.iter().filter(|l| l.contains(needle)).collect();
                if found.len() >= n {
                    return found[n - 1].clone();
                }
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "dingtail exited ({status}) before `{needle}`: {}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no `{needle}` on stderr: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until stdout contains `needle`.
    pub fn wait_for_stdout(&mut self, needle: &str) {
        let deadline = Instant::now() + LIMIT;
        while !String::from_utf8_lossy(&self.stdout.lock().unwrap()).contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no `{needle}` on stdout: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The address from `listening on ADDR`.
    pub fn listen_addr(&mut self) -> String {
        let line = self.wait_for_line("listening on ", 1);
        line.split("listening on ")
            .nth(1)
            .unwrap()
            .trim()
            .to_owned()
    }

    pub fn write(&mut self, data: &[u8]) {
        self.stdin
            .as_mut()
            .expect("stdin open")
            .write_all(data)
            .unwrap();
    }

    /// Closes stdin (end of input) and waits for the exit: (code, stdout, stderr).
    pub fn finish(mut self) -> (i32, String, String) {
        drop(self.stdin.take());
        let deadline = Instant::now() + LIMIT;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("dingtail did not exit: {}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        for r in self.readers.drain(..) {
            r.join().unwrap();
        }
        let stdout = String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned();
        (status.code().unwrap_or(-1), stdout, self.stderr())
    }
}

/// The longest a test waits for anything before failing.
pub const LIMIT: Duration = Duration::from_secs(60);

pub fn http_get(url: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap())
}

/// The value of one sample (`name{labels}` exactly as written) in a metrics text.
pub fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}
