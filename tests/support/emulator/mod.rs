//! An in-process emulator of a DingTalk custom robot webhook.
//!
//! Integration tests run the real `dingtail` binary and point its webhook at
//! this emulator over loopback. The emulator checks every request the way
//! DingTalk does (token, Content-Type, signature, timestamp window, body size,
//! message shape, keywords, rate limit and block, `msgUuid` idempotency; see
//! `/work/shared/dingtalk-api.md`), records what it saw, and can be told to
//! misbehave (per-robot [`Fault`]s, a global outage, a skewed clock).
//!
//! The server listens on `127.0.0.1:0` only and runs on its own thread with
//! its own tokio runtime, so tests stay plain synchronous `#[test]` functions.
//! Dropping the [`Emulator`] shuts the server down.
//!
//! Order of checks for `POST /robot/send` (each failure answers HTTP 200 with
//! `{"errcode":N,"errmsg":"..."}`):
//! 1. global outage: HTTP 503 (no fault is consumed);
//!    (other paths answer HTTP 404, other methods HTTP 405, in plain text);
//! 2. unknown or missing `access_token`: 300001;
//! 3. the robot's next queued [`Fault`], if any, is consumed;
//! 4. robot blocked by the rate limit: 130101;
//! 5. Content-Type not `application/json...`: 43004;
//! 6. signature (robots with a secret): duplicated, missing or stale
//!    `timestamp`, missing or wrong `sign`: 310000;
//! 7. body over 20,000 bytes: 460101;
//! 8. body not a JSON object or no `msgtype`: 40035; unknown `msgtype`:
//!    400105; `text.content`, `markdown.title` or `markdown.text` missing: 40035;
//! 9. keywords (robots with keywords): 310000;
//!    then the monthly quota (robots with [`RobotSpec::quota_after`]): once the
//!    robot has posted N messages, every send gets the quota error (90030 by
//!    default) and nothing is posted or counted;
//! 10. rate limit: only requests that passed 1-9 count (they are "sends",
//!     including `msgUuid` duplicates). The one that would be number N+1
//!     within the sliding window gets 130101 and starts the block;
//! 11. a `msgUuid` already accepted: errcode 0 but no second [`Post`].
//!
//! The parts: [`RobotSpec`] and [`Fault`] (robot.rs) are what a test says; [`Post`] and
//! [`RequestRecord`] (record.rs) what it reads back; rules.rs is how DingTalk judges a
//! request, http.rs the server around it, state.rs what they share.

mod http;
mod record;
mod robot;
mod rules;
mod state;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use record::{Post, RequestRecord};
pub use robot::{Fault, RobotSpec};
#[allow(unused_imports)] // each test binary uses a part of them
pub use rules::{MAX_BODY_BYTES, TIMESTAMP_WINDOW_MS, expected_sign};

use state::{State, lock};

/// A running emulator: an HTTP server on 127.0.0.1 plus the shared state the
/// test inspects and steers. Dropping it stops the server.
pub struct Emulator {
    state: Arc<Mutex<State>>,
    server: http::Server,
}

impl Emulator {
    /// Starts a server on 127.0.0.1 (a free port) serving these robots.
    pub fn start(robots: Vec<RobotSpec>) -> Emulator {
        let state = Arc::new(Mutex::new(State::new(robots)));
        let server = http::Server::start(state.clone());
        Emulator { state, server }
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// The unsigned webhook URL for a robot, as DingTalk hands it out.
    pub fn webhook(&self, token: &str) -> String {
        format!("{}/robot/send?access_token={token}", self.base_url())
    }

    /// Accepted messages, oldest first.
    pub fn posts(&self) -> Vec<Post> {
        self.lock().posts.clone()
    }

    /// Every request received, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.lock().requests.clone()
    }

    /// Queues a fault for the robot's next request (FIFO).
    pub fn push_fault(&self, token: &str, fault: Fault) {
        let mut state = self.lock();
        let robot = state
            .robots
            .get_mut(token)
            .unwrap_or_else(|| panic!("push_fault: no robot with token {token}"));
        robot.faults.push_back(fault);
    }

    /// While on, every request gets HTTP 503 and nothing else happens.
    pub fn set_outage(&self, on: bool) {
        self.lock().outage = on;
    }

    /// Shifts the emulator's wall clock (used for the timestamp check) by this
    /// many milliseconds; positive means DingTalk's clock is ahead.
    pub fn set_clock_offset_ms(&self, ms: i64) {
        self.lock().clock_offset_ms = ms;
    }

    /// Moves the clock that rate windows and blocks are judged by (and requests are stamped
    /// with) ahead by `by`, so a test steps through a window instead of sleeping through it.
    pub fn advance(&self, by: Duration) {
        self.lock().ahead += by;
    }

    /// Waits until at least `n` posts were accepted or `timeout` passed;
    /// returns the posts it has either way.
    pub fn wait_for_posts(&self, n: usize, timeout: Duration) -> Vec<Post> {
        self.wait_until(timeout, |s| s.posts.len() >= n);
        self.posts()
    }

    /// Waits until at least `n` requests arrived or `timeout` passed; returns
    /// the records it has either way.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<RequestRecord> {
        self.wait_until(timeout, |s| s.requests.len() >= n);
        self.requests()
    }

    fn wait_until(&self, timeout: Duration, done: impl Fn(&State) -> bool) {
        let deadline = Instant::now() + timeout;
        while !done(&self.lock()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}
