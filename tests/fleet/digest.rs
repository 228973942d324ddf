//! Fleet-wide digests against a real redis-server: the same rule firing on many processes
//! becomes one message naming the hosts; a sender killed mid-batch is replaced and nothing is
//! lost or posted twice; and the stream stays within `stream_limit` while nobody can post.
//! A test that cannot start redis-server fails.

use std::time::Duration;

use crate::support::emulator::{Emulator, Fault, RobotSpec};
use crate::support::env::{header_counts, wait_until};
use crate::support::fleet::{
    FleetYaml, TOKEN, assert_clean_exits, finish_all, lines_in, start_fleet, stream_len,
    strict_robot, throttled,
};
use crate::support::redis_server::RedisServer;
use redis::Commands;

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn ten_processes_sharing_a_robot_send_one_digest_per_window_naming_the_hosts() {
    let redis = RedisServer::start();
    let emu = strict_robot(5, Duration::from_secs(10));
    let yaml = FleetYaml {
        robot: "    rate: 5/10s\n".into(),
        coordination: "  gather: 2s\n  lease: 1s\n".into(),
        rules: 3,
        ..FleetYaml::new(&emu, &redis, "digest", true)
    }
    .yaml();
    let mut procs = start_fleet(10, &yaml, 0);
    let mut matched = 0;
    for r in 0..3 {
        // Process i sees i + 1 lines of rule r (and noise): 55 lines on 10 hosts.
        for (i, p) in procs.iter_mut().enumerate() {
            let mut text = String::new();
            for k in 0..=i {
                text.push_str(&format!("h{i} #{k} E{r} failed\nh{i} fine\n"));
            }
            p.write(&text);
            matched += i as u64 + 1;
        }
        let posts = emu.wait_for_posts(r + 1, LIMIT);
        let text = posts[r].text();
        assert_eq!(header_counts(&text), vec![(format!("r{r}"), 55)], "{text}");
        assert!(
            text.contains(
                "on 10 hosts: host-9 ×10, host-8 ×9, host-7 ×8, host-6 ×7, host-5 ×6 +5 more"
            ),
            "{text}"
        );
    }
    assert_clean_exits(finish_all(procs), false);
    let posts = emu.posts();
    assert_eq!(throttled(&emu), 0, "the robot was blocked");
    assert_eq!(posts.len(), 3, "one message per window for the whole fleet");
    assert_eq!(lines_in(&posts), matched);
    assert_eq!(stream_len(&redis, "digest"), 0, "every entry acknowledged");
}

#[test]
fn the_digest_sender_killed_mid_batch_loses_nothing_and_posts_nothing_twice() {
    let redis = RedisServer::start();
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN)]);
    // The first message is posted, and its answer held back: its sender dies waiting for it.
    emu.push_fault(TOKEN, Fault::Delay(Duration::from_secs(120)));
    let yaml = FleetYaml {
        robot: "    timeout: { request: 60s }\n".into(),
        coordination: "  gather: 2s\n  lease: 3s\n".into(),
        rules: 2,
        ..FleetYaml::new(&emu, &redis, "kill", true)
    }
    .yaml();
    let mut procs = start_fleet(3, &yaml, 0);
    let mut matched = 0;
    for (i, p) in procs.iter_mut().enumerate() {
        p.write(&format!("h{i} E0 failed\nh{i} E1 failed\nh{i} E1 again\n"));
        matched += 3;
    }
    let first = emu.wait_for_posts(1, LIMIT)[0].clone();
    // The sender is the lease holder (`host:pid:random`): SIGKILL it mid-batch.
    let holder: String = redis.connection().get("kill:{ops}:lease").unwrap();
    let victim: usize = holder
        .strip_prefix("host-")
        .and_then(|h| h.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{holder}"));
    procs.remove(victim).run.kill();
    // Another instance takes the lapsed lease and posts the recorded batch again, under the
    // same msgUuid: DingTalk answers 0 and shows nothing new.
    let requests = emu.wait_for_requests(2, LIMIT);
    assert_eq!(
        requests[1].body.as_ref().unwrap()["msgUuid"],
        first.body["msgUuid"]
    );
    assert!(
        requests[1].duplicate,
        "the second send was the same message"
    );
    assert_clean_exits(finish_all(procs), false);
    let posts = emu.posts();
    assert_eq!(posts.len(), 1, "posted once");
    assert_eq!(lines_in(&posts), matched, "every line of every host, once");
    assert!(
        posts[0].text().contains("on 3 hosts"),
        "{}",
        posts[0].text()
    );
    assert_eq!(
        stream_len(&redis, "kill"),
        0,
        "acknowledged by the new sender"
    );
}

/// DingTalk is down, so the digest sender cannot post: the stream grows to its limit of 4
/// entries and no further; the instances whose alerts do not fit say so (stderr and
/// `dingtail_fleet_digest_full` and a self-alert) and keep them. When DingTalk is back, the stream drains and
/// every matching line is posted once, by the fleet or by its own instance.
#[test]
fn a_full_digest_stream_stops_growing_and_the_instances_send_their_own() {
    let redis = RedisServer::start();
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN)]);
    emu.set_outage(true);
    let yaml = FleetYaml {
        robot: "    rate: 50/1s\n".into(),
        coordination: "  gather: 100ms\n  lease: 1s\n  stream_limit: 4\n".into(),
        top: "self_alerts:\n  robot: ops\n".into(),
        rules: 3,
        ..FleetYaml::new(&emu, &redis, "full", true)
    }
    .yaml();
    let mut procs = start_fleet(3, &yaml, 3);
    let mut matched = 0;
    // Two rounds of three rules on every process: 18 alerts for a stream of 4.
    for r in 0..2 {
        for (i, p) in procs.iter_mut().enumerate() {
            p.write(&format!(
                "h{i} #{r} E0 failed\nh{i} #{r} E1 failed\nh{i} #{r} E2 failed\n"
            ));
            matched += 3;
        }
        // Wait until every process has counted the round (its alerts closed and handed on).
        for p in &procs {
            p.run.wait_for_lines_read(3 * (r as u64 + 1));
        }
    }
    let full = |p: &crate::support::fleet::Member| p.run.stderr().contains("digest stream is full");
    wait_until("an instance to find the stream full", || {
        procs.iter().any(full)
    });
    let len = stream_len(&redis, "full");
    assert!((1..=4).contains(&len), "{len} entries");
    // ... and tell `self_alerts:` (sent once DingTalk is back, below)
    let told = "self-alert: coordination: robot ops's fleet digest stream is full";
    wait_until("the self-alert of a full stream", || {
        procs
            .iter()
            .filter(|p| full(p))
            .all(|p| p.run.stderr().contains(told))
    });
    // The gauge says what stderr said last.
    for p in &procs {
        let said = p.run.stderr();
        let full_now = said.rfind("digest stream is full") > said.rfind("has room again");
        // (a robot whose stream was never full has no series yet)
        let gauge = p.metric("dingtail_fleet_digest_full{robot=\"ops\"}");
        assert_eq!(
            gauge.unwrap_or(0.0),
            if full_now { 1.0 } else { 0.0 },
            "{said}"
        );
    }
    // While DingTalk is down nothing has been posted, and the stream stayed within its limit.
    assert!(emu.posts().is_empty());
    assert!(stream_len(&redis, "full") <= 4);

    emu.set_outage(false);
    wait_until("every line posted", || lines_in(&emu.posts()) >= matched);
    assert_clean_exits(finish_all(procs), false);
    let posts = emu.posts();
    assert_eq!(lines_in(&posts), matched, "every line once");
    assert!(
        posts
            .iter()
            .any(|p| p.text().contains("fleet digest stream is full")),
        "the self-alert reached the robot"
    );
    assert_eq!(stream_len(&redis, "full"), 0, "the stream drained");
}
