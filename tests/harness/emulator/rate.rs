//! The rate limit: N sends in any sliding window, then a block; judged on a clock the test
//! moves, never by sleeping.

use std::time::Duration;

use crate::support::emulator::{Emulator, RobotSpec};

use super::{post, text, try_post};

#[test]
fn rate_limit_blocks_for_the_block_duration() {
    // Long enough that the real time a loaded machine takes between two requests does not
    // matter: the test moves the emulator's clock itself.
    let per = Duration::from_secs(60);
    let block = Duration::from_secs(600);
    let emu = Emulator::start(vec![RobotSpec::new("tok").rate(3, per).block(block)]);
    let url = emu.webhook("tok");

    // Requests that fail another check are not sends and do not count.
    for _ in 0..5 {
        let reply = try_post(&url, "text/plain", &text("x").to_string()).unwrap();
        assert_eq!(reply.errcode(), Some(43004));
    }
    for i in 0..3 {
        assert_eq!(
            post(&url, &text(&format!("m{i}"))).errcode(),
            Some(0),
            "send {i}"
        );
    }
    let fourth = post(&url, &text("m3"));
    assert_eq!(fourth.errcode(), Some(130101));
    assert!(fourth.errmsg().contains("send too fast"), "{fourth:?}");

    // The window has passed but the block has not: everything is refused.
    emu.advance(per + Duration::from_secs(1));
    assert_eq!(post(&url, &text("m4")).errcode(), Some(130101));
    let bad = try_post(&url, "text/plain", "x").unwrap();
    assert_eq!(
        bad.errcode(),
        Some(130101),
        "blocked before any other check"
    );

    emu.advance(block);
    for i in 5..8 {
        assert_eq!(
            post(&url, &text(&format!("m{i}"))).errcode(),
            Some(0),
            "send {i}"
        );
    }
    let texts: Vec<String> = emu.posts().iter().map(|p| p.text()).collect();
    assert_eq!(texts, ["m0", "m1", "m2", "m5", "m6", "m7"]);
}

#[test]
fn rate_window_is_sliding_not_fixed() {
    // A minute's window on a clock the test moves: real time between requests only adds a
    // little to each step.
    let emu = Emulator::start(vec![
        RobotSpec::new("tok")
            .rate(2, Duration::from_secs(60))
            .block(Duration::ZERO),
    ]);
    let url = emu.webhook("tok");
    assert_eq!(post(&url, &text("a")).errcode(), Some(0));
    emu.advance(Duration::from_secs(40));
    assert_eq!(post(&url, &text("b")).errcode(), Some(0));
    assert_eq!(post(&url, &text("c")).errcode(), Some(130101));
    emu.advance(Duration::from_secs(40));
    // "a" (at 0 s) has left the window, "b" (at 40 s) has not until 100 s.
    assert_eq!(post(&url, &text("d")).errcode(), Some(0));
    assert_eq!(post(&url, &text("e")).errcode(), Some(130101));
    assert_eq!(emu.posts().len(), 3);
    assert_eq!(emu.requests().len(), 5);
}
