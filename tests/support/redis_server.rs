//! A real `redis-server` (Debian's package; `.ci/run` installs it) in a scratch directory on a
//! free loopback port, for the tests of `coordination:`. A test that cannot start it fails.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long redis-server may take to say it is ready.
const READY_LIMIT: Duration = Duration::from_secs(20);

/// A running redis-server; stopped when dropped.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    /// More `redis-server` arguments (`--cluster-enabled yes`).
    extra: Vec<String>,
    /// Arguments before all others (a sentinel's config file and `--sentinel`).
    leading: Vec<String>,
    /// The line on stdout that says it is ready.
    ready: &'static str,
}

impl RedisServer {
    /// Starts redis-server on a free port of 127.0.0.1, with the append-only file on (as the
    /// README tells users to run it). Panics, failing the test, when it cannot.
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// [`RedisServer::start`] with more `redis-server` arguments.
    pub fn start_with(extra: &[&str]) -> RedisServer {
        RedisServer::start_in(
            tempfile::tempdir().expect("temp dir"),
            &[],
            extra,
            "Ready to accept connections",
        )
    }

    /// A Redis Sentinel (`redis-server CONF --sentinel`, from the same package) watching
    /// `master` under the name `name`, alone (quorum 1), ready once it says `+monitor`.
    pub fn start_sentinel(master: &RedisServer, name: &str) -> RedisServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "sentinel monitor {name} 127.0.0.1 {port} 1\n\
                 sentinel down-after-milliseconds {name} 1000\n\
                 sentinel failover-timeout {name} 5000\n",
                port = master.port
            ),
        )
        .expect("write sentinel.conf");
        let conf = conf.to_string_lossy().into_owned();
        RedisServer::start_in(dir, &[&conf, "--sentinel"], &[], "+monitor master")
    }

    fn start_in(
        mut dir: tempfile::TempDir,
        leading: &[&str],
        extra: &[&str],
        ready: &'static str,
    ) -> RedisServer {
        let mut last = String::new();
        // Redis cannot listen on port 0: take a free port from the kernel, close it, start
        // Redis on it; another process may take it meanwhile, so try again a few times.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let mut server = RedisServer {
                child: None,
                port,
                dir,
                extra: extra.iter().map(|s| s.to_string()).collect(),
                leading: leading.iter().map(|s| s.to_string()).collect(),
                ready,
            };
            match server.launch() {
                Ok(()) => return server,
                Err(e) => {
                    last = e;
                    dir = server.take_dir();
                }
            }
        }
        panic!("cannot start redis-server: {last}");
    }

    fn take_dir(mut self) -> tempfile::TempDir {
        self.child = None;
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"))
    }

    /// Starts the server on `self.port` and waits for "Ready to accept connections".
    fn launch(&mut self) -> Result<(), String> {
        let mut child = Command::new("redis-server")
            .args(&self.leading)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--protected-mode",
                "no",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!(
                    "redis-server not found or not runnable ({e}); install Debian's redis-server"
                )
            })?;
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        let ready = self.ready;
        std::thread::spawn(move || {
            let mut log = String::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                log.push_str(&line);
                log.push('\n');
                if line.contains(ready) {
                    let _ = tx.send(Ok(()));
                }
            }
            let _ = tx.send(Err(log));
        });
        match rx.recv_timeout(READY_LIMIT) {
            Ok(Ok(())) => {
                self.child = Some(child);
                Ok(())
            }
            Ok(Err(log)) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("redis-server exited: {log}"))
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("redis-server not ready within {READY_LIMIT:?}"))
            }
        }
    }

    /// A one-node Redis Cluster holding every slot, ready (`cluster_state:ok`).
    pub fn start_cluster() -> RedisServer {
        let server = RedisServer::start_with(&["--cluster-enabled", "yes"]);
        let mut c = server.connection();
        let _: () = redis::cmd("CLUSTER")
            .arg("ADDSLOTSRANGE")
            .arg(0)
            .arg(16383)
            .query(&mut c)
            .expect("CLUSTER ADDSLOTSRANGE");
        let until = std::time::Instant::now() + READY_LIMIT;
        loop {
            let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut c).unwrap();
            if info.contains("cluster_state:ok") {
                return server;
            }
            assert!(std::time::Instant::now() < until, "cluster not ok: {info}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its process id while it runs (`None` while stopped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    /// `redis://127.0.0.1:PORT` (no database: for a sentinel).
    pub fn address(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A plain (blocking) connection for the test to look at the keys.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.address())
            .and_then(|c| c.get_connection())
            .expect("connect to the test redis")
    }

    /// Stops the server (SIGKILL: the harshest stop; the append-only file has what it
    /// acknowledged) and waits for it to be gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and directory (the append-only file is read back).
    pub fn restart(&mut self) {
        self.stop();
        self.launch().expect("restart redis-server");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
