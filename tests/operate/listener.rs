//! The metrics and health listener (`--listen`): metrics that promtool accepts and that agree
//! with the summary, and `/readyz` while a robot fails.

use crate::support::emulator::{Emulator, RobotSpec};
use crate::support::env::{TestEnv, WAIT_LIMIT, poll_until};
use crate::support::listener::{http_get, sample, scrape};

use super::{TOKEN, promtool_check, summary_number};

#[test]
fn metrics_pass_promtool_and_agree_with_the_summary() {
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN)]);
    let yaml = format!(
        "robots:\n  ops:\n    webhook: \"{}\"\nrules:\n  - {{name: err, match: ERROR, window: 50ms}}\n  - {{name: warn, match: WARN, window: 50ms}}\n  - {{name: never, match: NEVER_THERE}}\n",
        emu.webhook(TOKEN)
    );
    let env = TestEnv::new().config(&yaml);
    let mut run = env.start(&["run", "--listen", "127.0.0.1:0"]);
    let addr = run.listen_addr();
    let mut input = String::new();
    for i in 0..300 {
        input.push_str(match i % 3 {
            0 => "2026 ERROR disk full\n",
            1 => "2026 WARN slow\n",
            _ => "2026 INFO fine\n",
        });
    }
    run.write(input.as_bytes());
    // Wait until DingTalk has every hit: nothing is in flight when the metrics are read.
    assert!(emu.wait_delivered(200) >= 200, "posts: {:?}", emu.posts());
    let (status, ready) = http_get(&format!("http://{addr}/readyz"));
    assert_eq!((status, ready.as_str()), (200, "ready\n"));
    let (status, health) = http_get(&format!("http://{addr}/healthz"));
    assert_eq!((status, health.as_str()), (200, "ok\n"));
    let (status, text) = http_get(&format!("http://{addr}/metrics"));
    assert_eq!(status, 200);
    promtool_check(&text);

    let stderr = run.finish().success().stderr;
    assert_eq!(
        sample(&text, "dingtail_lines_read_total{source=\"-\"}") as u64,
        summary_number(&stderr, "read ")
    );
    assert_eq!(
        sample(&text, "dingtail_bytes_read_total{source=\"-\"}") as u64,
        summary_number(&stderr, "lines (")
    );
    assert_eq!(
        sample(&text, "dingtail_hits_total{rule=\"err\"}") as u64,
        summary_number(&stderr, "err ")
    );
    assert_eq!(
        sample(&text, "dingtail_hits_total{rule=\"warn\"}") as u64,
        summary_number(&stderr, "warn ")
    );
    assert_eq!(sample(&text, "dingtail_hits_total{rule=\"never\"}"), 0.0);
    let sent = emu.posts().len() as u64;
    assert_eq!(summary_number(&stderr, "messages: "), sent);
    assert_eq!(
        sample(
            &text,
            "dingtail_messages_total{robot=\"ops\",result=\"sent\"}"
        ) as u64,
        sent
    );
    assert_eq!(
        sample(
            &text,
            "dingtail_events_total{robot=\"ops\",result=\"sent\"}"
        ) as u64,
        200
    );
    assert_eq!(
        sample(
            &text,
            "dingtail_delivery_latency_seconds_count{robot=\"ops\"}"
        ) as u64,
        sent
    );
    assert_eq!(sample(&text, "dingtail_pending_hits{robot=\"ops\"}"), 0.0);
    assert_eq!(sample(&text, "dingtail_robot_failing{robot=\"ops\"}"), 0.0);
    // The monthly budget, read from the ledger at the scrape: every message sent is counted.
    assert_eq!(sample(&text, "dingtail_budget_monthly_messages"), 3000.0);
    assert_eq!(sample(&text, "dingtail_budget_used_messages") as u64, sent);
    assert_eq!(
        sample(&text, "dingtail_robot_budget_used_messages{robot=\"ops\"}") as u64,
        sent
    );
    assert_eq!(
        sample(&text, "dingtail_robot_budget_spent{robot=\"ops\"}"),
        0.0
    );
}

#[test]
fn readyz_says_so_while_a_robot_fails_permanently() {
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN).secret("SECright")]);
    let yaml = format!(
        "robots:\n  ops:\n    webhook: \"{}\"\n    secret: SECwrong\nrules:\n  - {{name: err, match: ERROR, window: 10ms}}\n",
        emu.webhook(TOKEN)
    );
    let env = TestEnv::new().config(&yaml);
    let mut run = env.start(&["run", "--listen", "127.0.0.1:0", "--shutdown-timeout", "1s"]);
    let addr = run.listen_addr();
    run.write(b"ERROR x\n");
    emu.wait_for_requests(1, WAIT_LIMIT);
    run.wait_for("holding this robot's alerts");
    // The log line comes just before the robot is marked failing: wait for the probe to say so.
    let readyz = || http_get(&format!("http://{addr}/readyz"));
    poll_until(|| readyz().0 != 200);
    let (status, body) = readyz();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("robot failing permanently: ops"), "{body}");
    let text = scrape(&addr);
    assert_eq!(sample(&text, "dingtail_robot_failing{robot=\"ops\"}"), 1.0);
    assert_eq!(sample(&text, "dingtail_pending_hits{robot=\"ops\"}"), 1.0);
    assert!(
        text.lines().any(|l| l
            .starts_with("dingtail_dingtalk_errcodes_total{robot=\"ops\",errcode=\"310000\"} 1")),
        "{text}"
    );
    assert_eq!(run.finish().code, 1);
}
