//! `coordination:` through Redis Sentinel (`redis-server --sentinel`, from the same Debian
//! package), with a real failover: the library follows the master, and dingtail processes
//! sharing a robot lose nothing and keep its window across it. A test that cannot start
//! redis-server fails.

use std::time::Duration;

use crate::support::env::{WAIT_LIMIT, poll_until_async, wait_until};
use crate::support::fleet::{
    FleetYaml, assert_at_most_per_second, assert_clean_exits, coordination, fail_over, finish_all,
    lines_in, link, round, start_fleet, stream_len, strict_robot, throttled,
};
use crate::support::redis_server::RedisServer;
use dingtail::config::RedisTarget;
use dingtail::fleet::{Coordinator, Slot};
use dingtail::secret::Secret;
use redis::Commands;

/// Through Redis Sentinel: the coordinator finds the master by asking the sentinel, and after a
/// failover (`SENTINEL FAILOVER`, to a replica) it finds the new master and shares the window
/// there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_sentinel_the_master_is_found_and_followed_after_a_failover() {
    let master = RedisServer::start();
    let sentinel = RedisServer::start_sentinel(&master, "mymaster");
    let mut cfg = coordination(&master.url(), "t9");
    cfg.target = RedisTarget::Sentinel {
        nodes: vec![Secret::new(sentinel.address())],
        master: "mymaster".into(),
        db: 0,
    };
    let c = Coordinator::new(&cfg, "host-a", None).unwrap();
    let l = link(&c);
    let key = "t9:{ops}:sent";
    assert!(matches!(l.acquire().await, Slot::Granted(Some(_))));
    let on_master: u64 = master.connection().zcard(key).unwrap();
    assert_eq!(on_master, 1, "the place was taken on the master");

    // A replica of the master, known to the sentinel, then promoted (the test's own waits
    // block: they run beside the coordinator's tasks, not on them).
    let replica = tokio::task::block_in_place(|| fail_over(&master, &sentinel, "mymaster"));
    let copied: u64 = replica.connection().zcard(key).unwrap();
    assert_eq!(copied, 1, "the place was replicated");
    // The coordinator may fall back for a moment (the old master refuses writes); it asks the
    // sentinel again and takes its places on the new master.
    let mut granted_there = false;
    let until = std::time::Instant::now() + WAIT_LIMIT;
    while !granted_there {
        assert!(
            std::time::Instant::now() < until,
            "never rejoined on the new master"
        );
        let slot = l.acquire().await;
        let there: u64 = replica.connection().zcard(key).unwrap();
        granted_there = matches!(slot, Slot::Granted(Some(_))) && there >= 2 && c.is_up();
        if !granted_there {
            // In fallback: wait for the coordinator's own probe to rejoin (through the
            // sentinel, to whichever master it names now).
            poll_until_async(|| c.is_up()).await;
        }
    }
}

/// Three dingtail processes configured with `sentinels:` share a robot that takes 3 a second
/// (a 4th blocks it for a minute), with fleet digests. The master is failed over between two
/// storms: the processes follow it (falling back for a moment if they notice), the robot is
/// never blocked, and every matching line is posted once.
#[test]
fn processes_through_sentinel_follow_a_failover_and_lose_nothing() {
    let master = RedisServer::start();
    let sentinel = RedisServer::start_sentinel(&master, "mymaster");
    let emu = strict_robot(3, Duration::from_secs(1));
    let yaml = FleetYaml {
        target: format!(
            "  sentinels: [\"{}\"]\n  master_name: mymaster\n",
            sentinel.address()
        ),
        robot: "    rate: 3/1s\n".into(),
        coordination: "  gather: 300ms\n  lease: 1s\n".into(),
        ..FleetYaml::new(&emu, &master, "sentinel", true)
    }
    .yaml();
    let mut procs = start_fleet(3, &yaml, 0);
    let mut matched = 0;
    for r in 0..2 {
        matched += round(&mut procs, r);
        emu.wait_for_posts(r + 1, WAIT_LIMIT);
    }
    wait_until("the stream drained on the master", || {
        stream_len(&master, "sentinel") == 0
    });

    let replica = fail_over(&master, &sentinel, "mymaster");
    // Each process notices on its next call (the old master, now a replica, refuses writes),
    // falls back, and rejoins on the master the sentinel names now.
    let rejoined = |text: &str| {
        let rejoins = text.matches("Redis is back; rejoined").count();
        rejoins > 0 && text.matches("Redis cannot be reached").count() == rejoins
    };
    wait_until("every process on the new master", || {
        procs.iter().all(|p| rejoined(&p.run.stderr()))
    });
    let before = emu.posts().len();
    for r in 2..4 {
        matched += round(&mut procs, r);
        emu.wait_for_posts(before + r - 1, WAIT_LIMIT);
    }
    assert_clean_exits(finish_all(procs), true);
    let posts = emu.posts();
    assert_eq!(throttled(&emu), 0, "the robot was blocked");
    assert_eq!(lines_in(&posts), matched, "every matching line, once");
    assert_at_most_per_second(&posts, 3);
    assert_eq!(
        stream_len(&replica, "sentinel"),
        0,
        "every entry acknowledged"
    );
}
