//! A robot's rate limit as DingTalk counts it: at most N messages in *any* sliding window.
//!
//! Why not a token bucket (`governor`): a bucket of N tokens refilling at N per minute lets
//! 2N−1 messages through within one minute (N at once, N−1 as tokens return), and DingTalk answers
//! the 21st message of a minute by blocking the robot for ten minutes. A bucket with a burst of 1
//! (one message every 3 s) does hold the limit, but wastes it when a storm starts, and is still
//! fooled by network jitter (two requests sent 3 s apart can arrive 2.5 s apart). So this keeps
//! the times of the last N sends and allows a new send only once the N-th most recent one is a
//! full window old, counted from when its answer came back (the latest moment DingTalk can have
//! seen it) to when the new request starts (the earliest DingTalk can see it), plus a small
//! margin for clocks that count in whole seconds. A storm then gets its first N messages out at
//! once and the rest exactly as fast as the robot allows, never faster.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

/// How many messages a robot accepts per period (DingTalk: 20 a minute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Messages allowed in any sliding window of `per`.
    pub count: u32,
    /// Length of the window.
    pub per: Duration,
}

impl Default for Rate {
    fn default() -> Self {
        Rate {
            count: 20,
            per: Duration::from_secs(60),
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, humantime::format_duration(self.per))
    }
}

/// Sliding-window limiter for one robot; see the module docs. Pure: it is told the time.
#[derive(Debug, Clone)]
pub struct SlidingWindow {
    limit: usize,
    window: Duration,
    /// When each of the last `limit` sends completed, oldest first.
    sends: VecDeque<Instant>,
    /// Set after DingTalk said "too fast": no send before this.
    paused_until: Option<Instant>,
}

impl SlidingWindow {
    /// A limiter for `rate`, with a margin of a second (or a twentieth of short windows).
    pub fn new(rate: Rate) -> SlidingWindow {
        let margin = (rate.per / 20).min(Duration::from_secs(1));
        SlidingWindow {
            limit: rate.count.max(1) as usize,
            window: rate.per + margin,
            sends: VecDeque::new(),
            paused_until: None,
        }
    }

    /// The earliest moment a new send may start, counting only the rate (not a pause).
    pub fn next_rate_slot(&self, now: Instant) -> Instant {
        if self.sends.len() < self.limit {
            return now;
        }
        (self.sends[self.sends.len() - self.limit] + self.window).max(now)
    }

    /// The earliest moment a new send may start.
    pub fn next_slot(&self, now: Instant) -> Instant {
        let slot = self.next_rate_slot(now);
        match self.paused_until {
            Some(p) => slot.max(p),
            None => slot,
        }
    }

    /// Records a send whose answer arrived (or that gave up) at `completed`. Every attempt
    /// counts: one that failed may still have reached DingTalk.
    pub fn record(&mut self, completed: Instant) {
        self.sends.push_back(completed);
        while self.sends.len() > self.limit {
            self.sends.pop_front();
        }
    }

    /// DingTalk said the robot is blocked: send nothing before `until`.
    pub fn pause(&mut self, until: Instant) {
        self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
    }

    /// Whether a pause is in force at `now`.
    pub fn paused(&self, now: Instant) -> bool {
        self.paused_until.is_some_and(|p| p > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(count: u32, secs: u64) -> Rate {
        Rate {
            count,
            per: Duration::from_secs(secs),
        }
    }

    /// Sends as fast as the limiter allows, each taking `latency`, and checks that no window of
    /// `per` (as DingTalk would count arrivals) ever holds more than `count` sends.
    #[test]
    fn never_more_than_n_in_any_window_even_with_jitter() {
        let t0 = Instant::now();
        let r = rate(20, 60);
        let mut lim = SlidingWindow::new(r);
        let mut now = t0;
        let mut arrivals = Vec::new();
        for i in 0..200u64 {
            now = lim.next_slot(now);
            // the request arrives somewhere between start and answer: worst case alternates
            let latency = Duration::from_millis(if i % 2 == 0 { 900 } else { 10 });
            let arrival = if i % 2 == 0 { now + latency } else { now };
            arrivals.push(arrival);
            now += latency;
            lim.record(now);
        }
        for (i, &a) in arrivals.iter().enumerate() {
            let in_window = arrivals[i..].iter().filter(|&&b| b < a + r.per).count();
            assert!(
                in_window <= 20,
                "{in_window} sends within a minute from send {i}"
            );
        }
        // and the limit is used, not wasted: 200 sends take about 10 windows
        assert!(
            now - t0 < Duration::from_secs(60 * 10 + 30),
            "{:?}",
            now - t0
        );
    }

    #[test]
    fn a_burst_goes_out_at_once_then_waits_a_window() {
        let t0 = Instant::now();
        let mut lim = SlidingWindow::new(rate(3, 10));
        for _ in 0..3 {
            assert_eq!(lim.next_slot(t0), t0);
            lim.record(t0);
        }
        let next = lim.next_slot(t0);
        assert_eq!(next, t0 + Duration::from_millis(10_500));
    }

    #[test]
    fn a_pause_holds_sends_back() {
        let t0 = Instant::now();
        let mut lim = SlidingWindow::new(rate(20, 60));
        lim.pause(t0 + Duration::from_secs(600));
        assert!(lim.paused(t0));
        assert_eq!(lim.next_slot(t0), t0 + Duration::from_secs(600));
        assert_eq!(lim.next_rate_slot(t0), t0);
        assert!(!lim.paused(t0 + Duration::from_secs(601)));
    }
}
