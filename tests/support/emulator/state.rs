//! The emulator's state: the robots DingTalk knows, what it received and accepted, and the
//! switches a test turns (outage, clock skew, a clock moved ahead).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{Fault, Post, RequestRecord, RobotSpec};

/// The emulator's whole state, behind one lock: each request is decided atomically.
pub(super) struct State {
    pub(super) robots: HashMap<String, Robot>,
    pub(super) requests: Vec<RequestRecord>,
    pub(super) posts: Vec<Post>,
    pub(super) outage: bool,
    pub(super) clock_offset_ms: i64,
    /// How far the test moved the emulator's rate and block clock ahead of the real one.
    pub(super) ahead: Duration,
}

/// One robot as DingTalk keeps it: its spec, queued faults and rate-limit bookkeeping.
pub(super) struct Robot {
    pub(super) spec: RobotSpec,
    pub(super) faults: VecDeque<Fault>,
    /// When each counted send happened, oldest first, pruned to `spec.per`.
    pub(super) window: VecDeque<Instant>,
    pub(super) blocked_until: Option<Instant>,
    pub(super) seen_uuids: HashSet<String>,
    /// Messages posted, for the monthly quota.
    pub(super) posted: usize,
}

/// The state, even after a panic of another thread held the lock.
pub(super) fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl State {
    /// The state of a fresh emulator serving `robots` (tokens must differ).
    pub(super) fn new(robots: Vec<RobotSpec>) -> State {
        let mut map = HashMap::new();
        for spec in robots {
            let token = spec.token.clone();
            let robot = Robot {
                spec,
                faults: VecDeque::new(),
                window: VecDeque::new(),
                blocked_until: None,
                seen_uuids: HashSet::new(),
                posted: 0,
            };
            assert!(
                map.insert(token.clone(), robot).is_none(),
                "duplicate robot token {token}"
            );
        }
        State {
            robots: map,
            requests: Vec::new(),
            posts: Vec::new(),
            outage: false,
            clock_offset_ms: 0,
            ahead: Duration::ZERO,
        }
    }
}
