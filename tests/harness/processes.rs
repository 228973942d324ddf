//! A failing test leaves nothing behind: a dingtail ([`Running`]) or a redis-server
//! ([`RedisServer`]) held by a test that panics is killed and reaped while the panic unwinds,
//! so its ports, files and state directory are free for the next test.
//!
//! [`Running`]: crate::support::running::Running

use std::net::TcpStream;
use std::sync::mpsc;

use crate::support::env::TestEnv;
use crate::support::redis_server::RedisServer;

/// Whether a process with this id exists (a zombie, not yet reaped, still does).
fn exists(pid: u32) -> bool {
    let pid = i32::try_from(pid).expect("pid fits");
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    if rc == 0 {
        return true;
    }
    let err = std::io::Error::last_os_error();
    assert_eq!(
        err.raw_os_error(),
        Some(libc::ESRCH),
        "kill({pid}, 0): {err}"
    );
    false
}

/// Runs `test` on a thread of its own, as the test harness does, and returns what it sent
/// before it panicked.
fn in_a_failing_test<T: Send + 'static>(test: impl FnOnce(mpsc::Sender<T>) + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let failed = std::thread::Builder::new()
        .name("a failing test (this panic is expected)".into())
        .spawn(move || test(tx))
        .expect("spawn the failing test")
        .join();
    assert!(failed.is_err(), "the test was meant to panic");
    rx.try_recv().expect("what the failing test sent")
}

#[test]
fn a_dingtail_held_by_a_panicking_test_is_killed_and_reaped() {
    let env = TestEnv::new().config("rules:\n  - {name: err, match: ERROR}\n");
    let (pid, addr, stdin) = in_a_failing_test(move |tx| {
        let mut run = env.start(&["run", "--listen", "127.0.0.1:0"]);
        let addr = run.listen_addr();
        assert!(exists(run.id()));
        // Its standard input stays open here: the end of input is not what stops it.
        tx.send((run.id(), addr, run.stdin())).unwrap();
        panic!("an assertion failed");
    });
    assert!(!exists(pid), "dingtail {pid} outlived its test");
    assert!(
        TcpStream::connect(&addr).is_err(),
        "its listener {addr} is still open"
    );
    drop(stdin);
}

#[test]
fn a_redis_server_held_by_a_panicking_test_is_stopped() {
    let (pid, port) = in_a_failing_test(|tx| {
        let redis = RedisServer::start();
        let pid = redis.pid().expect("started");
        assert!(exists(pid));
        tx.send((pid, redis.port())).unwrap();
        panic!("an assertion failed");
    });
    assert!(!exists(pid), "redis-server {pid} outlived its test");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "its port {port} is still open"
    );
}
