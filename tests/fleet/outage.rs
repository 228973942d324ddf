//! Redis goes away in the middle of a storm (a real redis-server, SIGKILLed, then started again
//! on its append-only file): alerts keep flowing in fallback, nothing is lost, and the
//! processes rejoin; with fleet digests and without. A test that cannot start redis-server
//! fails.

use std::time::Duration;

use crate::support::emulator::{Emulator, RobotSpec};
use crate::support::env::{header_counts, wait_until};
use crate::support::fleet::{
    FleetYaml, TOKEN, assert_clean_exits, finish_all, ledger_total, lines_in, round, start_fleet,
    stream_len, throttled,
};
use crate::support::redis_server::RedisServer;

const LIMIT: Duration = Duration::from_secs(60);
const FALLBACK: &str = "dingtail_coordination_fallback";

/// Three processes share a robot that takes 3 a second. Redis is killed (with digests: while
/// the stream holds the first round's entries, not yet sent) and stays down until every
/// process has said so and two rounds went out in fallback; then it is started again and the
/// processes rejoin. Every matching line is in exactly one message, the robot is never
/// blocked, the ledger counts every message, and the entries kept through the outage are sent
/// once, by the fleet.
fn redis_stopped_mid_storm(digest: bool, prefix: &str) {
    let mut redis = RedisServer::start();
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN).rate(3, Duration::from_secs(1))]);
    let yaml = FleetYaml {
        robot: "    rate: 3/1s\n".into(),
        // The first round waits in the stream (gather) long enough to be there when Redis dies.
        coordination: "  gather: 5s\n  lease: 2s\n".into(),
        ..FleetYaml::new(&emu, &redis, prefix, digest)
    }
    .yaml();
    // The first one also serves /metrics.
    let mut procs = start_fleet(3, &yaml, 1);
    assert_eq!(procs[0].metric(FALLBACK), Some(0.0));
    let mut matched = round(&mut procs, 0);
    if digest {
        wait_until("the first round in the stream", || {
            stream_len(&redis, prefix) == 3
        });
    } else {
        emu.wait_for_posts(3, LIMIT);
    }
    let before = emu.posts().len();

    // Redis dies. Alerts keep flowing, each process on its own at 1 a second.
    redis.stop();
    if digest {
        assert_eq!(before, 0, "the first round was still in the stream");
    }
    for r in 1..3 {
        matched += round(&mut procs, r);
        emu.wait_for_posts(before + 3 * r, LIMIT);
    }
    for p in &procs {
        p.wait_for("Redis cannot be reached");
    }
    assert_eq!(procs[0].metric(FALLBACK), Some(1.0));

    // Redis is back: every process rejoins by itself and pays back what it counted.
    redis.restart();
    for p in &procs {
        p.wait_for("Redis is back; rejoined");
    }
    assert_eq!(procs[0].metric(FALLBACK), Some(0.0));
    let before = emu.posts().len();
    matched += round(&mut procs, 3);
    emu.wait_for_posts(before + 1, LIMIT);
    assert_clean_exits(finish_all(procs), true);
    let posts = emu.posts();
    assert_eq!(throttled(&emu), 0);
    assert_eq!(
        lines_in(&posts),
        matched,
        "every matching line in exactly one message"
    );
    // Every message is in the fleet's ledger: those sent in fallback were added on rejoining.
    assert_eq!(ledger_total(&redis, prefix), posts.len() as u64);
    if digest {
        // The first round, kept in Redis through the outage, went out once, as one digest.
        let r0: Vec<String> = (posts.iter().map(|p| p.text()))
            .filter(|t| header_counts(t).iter().any(|(rule, _)| rule == "r0"))
            .collect();
        assert_eq!(r0.len(), 1, "{r0:?}");
        assert!(r0[0].contains("【r0】×3 on 3 hosts"), "{}", r0[0]);
        assert_eq!(stream_len(&redis, prefix), 0, "every entry acknowledged");
    }
}

#[test]
fn redis_stopped_mid_storm_alerts_keep_flowing_nothing_is_lost_and_processes_rejoin() {
    redis_stopped_mid_storm(false, "down");
}

#[test]
fn redis_stopped_mid_storm_with_digests_kept_entries_are_sent_once_after_rejoining() {
    redis_stopped_mid_storm(true, "down-digest");
}
