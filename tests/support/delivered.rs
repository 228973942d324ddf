//! What reached DingTalk, read from the emulator's accepted messages: the `【rule】×N` counts
//! every integration test checks, in one place instead of a copy per test file.

use super::emulator::Emulator;
use super::env::{header_counts, header_total, poll_until};

impl Emulator {
    /// Matching lines counted by every message accepted so far (the sum of the `×N` headers).
    pub fn delivered(&self) -> u64 {
        self.posts().iter().map(|p| header_total(&p.text())).sum()
    }

    /// Like [`Emulator::delivered`], for the messages to the robot with `token` only.
    pub fn delivered_to(&self, token: &str) -> u64 {
        (self.posts().iter())
            .filter(|p| p.token == token)
            .map(|p| header_total(&p.text()))
            .sum()
    }

    /// Every `(rule, N)` header of every message so far, sorted (so a test compares them
    /// whatever order the windows closed in).
    pub fn counts(&self) -> Vec<(String, u64)> {
        let mut all: Vec<(String, u64)> = (self.posts().iter())
            .flat_map(|p| header_counts(&p.text()))
            .collect();
        all.sort();
        all
    }

    /// Every message text so far, each followed by a newline.
    pub fn all_text(&self) -> String {
        self.posts().iter().map(|p| p.text() + "\n").collect()
    }

    /// Waits until the messages count at least `n` matching lines, or the wait limit passed;
    /// returns the count either way (more than `n` when a line was counted twice), for the
    /// caller to assert with what dingtail said.
    pub fn wait_delivered(&self, n: u64) -> u64 {
        poll_until(|| self.delivered() >= n);
        self.delivered()
    }
}
