//! The latency from a line appended to a followed file to its message reaching the DingTalk
//! emulator, p50 and p99 over many lines, with a short window (100 ms). A measurement, not a
//! check: it asserts only that every line arrived, never a time. `bench/latency.sh` runs it:
//!
//!     cargo test --release --test latency -- --ignored --nocapture

mod support;

use std::time::{Duration, Instant};

use support::emulator::{Emulator, RobotSpec};
use support::env::{TestEnv, signal, wait};
use support::files::append;

const TOKEN: &str = "tok-latency0123456789";

#[test]
#[ignore = "a measurement, run by bench/latency.sh"]
fn append_to_post_latency() {
    let samples: usize = std::env::var("LATENCY_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN)]);
    let env = TestEnv::new().config(&format!(
        r#"robots:
  ops:
    webhook: "{}"
    rate: 10000/1s
defaults:
  window: 100ms
  max_lines: 1
rules:
  - name: probe
    match: 'PROBE \d+'
"#,
        emu.webhook(TOKEN)
    ));
    let log = env.dir().join("app.log");
    // Written before the start and read from the beginning: its message says dingtail follows.
    append(&log, "PROBE 0 ready?\n");
    let state = env.dir().join("state");
    let child = env.spawn(&[
        "run",
        "--from-beginning",
        "--state-dir",
        state.to_str().unwrap(),
        log.to_str().unwrap(),
    ]);
    assert_eq!(emu.wait_for_posts(1, Duration::from_secs(30)).len(), 1);
    let mut latencies = Vec::with_capacity(samples);
    for i in 1..=samples {
        let marker = format!("PROBE {i} ");
        let before = Instant::now();
        append(&log, &format!("{marker}appended\n"));
        let posts = emu.wait_for_posts(i + 1, Duration::from_secs(30));
        let post = posts
            .iter()
            .find(|p| p.text().contains(&marker))
            .unwrap_or_else(|| panic!("no message for line {i}"));
        latencies.push(post.at.duration_since(before));
    }
    signal(&child, libc::SIGTERM);
    let out = wait(child);
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
