//! The latency from a line appended to a followed file to its message reaching the DingTalk
//! emulator, p50 and p99 over many lines, with a short window (100 ms). A measurement, not a
//! check: it asserts only that every line arrived, never a time. `bench/latency.sh` runs it:
//!
//!     cargo test --release --test latency -- --ignored --nocapture
//!
//! Each line carries its own marker (`PROBE 17 `) and its latency is taken from the post whose
//! text holds that marker, wherever it stands among the posts: the count of posts says nothing
//! (an alert may merge lines, and posts need not arrive in the order the lines were written).

mod support;

use std::time::{Duration, Instant};

use support::emulator::{Emulator, RobotSpec};
use support::env::{TestEnv, wait_until};
use support::files::append;

const TOKEN: &str = "tok-latency0123456789";

#[test]
#[ignore = "a measurement, run by bench/latency.sh"]
fn append_to_post_latency() {
    let samples: usize = std::env::var("LATENCY_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    // The emulated robot's own limit (DingTalk's 20 a minute, then a 10 minute block) would
    // refuse the 21st message: this measures the pipeline, not the robot's rate limit.
    let emu = Emulator::start(vec![
        RobotSpec::new(TOKEN).rate(1_000_000, Duration::from_secs(1)),
    ]);
    let env = TestEnv::new().config(&format!(
        r#"robots:
  ops:
    webhook: "{}"
    rate: 10000/1s
defaults:
  window: 100ms
  max_lines: 20
rules:
  - name: probe
    match: 'PROBE \d+ '
"#,
        emu.webhook(TOKEN)
    ));
    let log = env.dir().join("app.log");
    // Written before the start and read from the beginning: its message says dingtail follows.
    append(&log, "PROBE 0 ready?\n");
    let state = env.dir().join("state");
    let run = env.start(&[
        "run",
        "--from-beginning",
        "--state-dir",
        state.to_str().unwrap(),
        log.to_str().unwrap(),
    ]);
    post_with(&emu, "PROBE 0 ");
    let mut latencies = Vec::with_capacity(samples);
    for i in 1..=samples {
        let marker = format!("PROBE {i} ");
        let before = Instant::now();
        append(&log, &format!("{marker}appended\n"));
        latencies.push(post_with(&emu, &marker).duration_since(before));
    }
    run.signal(libc::SIGTERM);
    let out = run.wait();
    assert_eq!(out.code, 0, "{}", out.stderr);
    latencies.sort();
    let at = |q: f64| {
        latencies[((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1]
    };
    println!(
        "latency append -> POST, window 100ms, {} lines: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        latencies[latencies.len() - 1].as_secs_f64() * 1e3,
    );
}

/// Waits for the post whose text holds `marker` and returns when it reached the emulator.
fn post_with(emu: &Emulator, marker: &str) -> Instant {
    let mut at = None;
    wait_until(&format!("a message with {marker:?}"), || {
        at = emu
            .posts()
            .iter()
            .find(|p| p.text().contains(marker))
            .map(|p| p.at);
        at.is_some()
    });
    at.expect("wait_until returned once it was found")
}
