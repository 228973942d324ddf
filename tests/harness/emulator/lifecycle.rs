//! The emulator's own life: waiting for what it received, and stopping when dropped even
//! while it holds an answer.

use std::time::{Duration, Instant};

use crate::support::emulator::{Emulator, Fault, RobotSpec};
use crate::support::env::WAIT_LIMIT;

use super::{post, text, try_post};

#[test]
fn wait_for_posts_polls_until_enough_or_timeout() {
    let emu = Emulator::start(vec![RobotSpec::new("tok")]);
    let url = emu.webhook("tok");
    let sender = std::thread::spawn(move || {
        for i in 0..2 {
            post(&url, &text(&format!("m{i}")));
        }
    });
    let posts = emu.wait_for_posts(2, Duration::from_secs(10));
    assert_eq!(posts.len(), 2);
    sender.join().unwrap();

    let started = Instant::now();
    let posts = emu.wait_for_posts(3, Duration::from_millis(200));
    assert_eq!(posts.len(), 2);
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(emu.wait_for_requests(2, Duration::from_secs(1)).len(), 2);
}

#[test]
fn dropping_the_emulator_stops_the_server() {
    let emu = Emulator::start(vec![RobotSpec::new("tok")]);
    let url = emu.webhook("tok");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    // A held answer must not keep the server alive.
    // (held for a day: were the drop to wait for it, the test would never end)
    emu.push_fault("tok", Fault::Delay(Duration::from_secs(86_400)));
    let held = {
        let url = url.clone();
        std::thread::spawn(move || try_post(&url, "application/json", &text("x").to_string()))
    };
    emu.wait_for_requests(1, WAIT_LIMIT);
    drop(emu);
    assert!(held.join().unwrap().is_err());
    assert!(try_post(&url, "application/json", &text("x").to_string()).is_err());
}
