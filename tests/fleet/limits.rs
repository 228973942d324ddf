//! `coordination:` shares a robot's limits against a real redis-server: its window, its throttle
//! pause and the monthly budget, through the library (two coordinators are two instances) and
//! through real dingtail processes posting to one emulated robot; and `check` on the section.
//! A test that cannot start redis-server fails.

use std::time::{Duration, SystemTime};

use crate::support::emulator::{Emulator, RobotSpec};
use crate::support::env::{TestEnv, poll_until_async};
use crate::support::fleet::{
    FleetYaml, TOKEN, assert_at_most_per_second, assert_clean_exits, budget, coordination,
    finish_all, granted, ledger_total, lines_in, link, round, start_fleet, stream_len,
    strict_robot, throttled, wait_ms,
};
use crate::support::redis_server::RedisServer;
use dingtail::config::{Rate, RedisTarget};
use dingtail::fleet::{Coordinator, Slot};
use dingtail::secret::Secret;

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn two_instances_share_one_window_one_pause_and_one_ledger() {
    let server = RedisServer::start();
    let a = Coordinator::new(&coordination(&server.url(), "t1"), "host-a", None).unwrap();
    let b = Coordinator::new(&coordination(&server.url(), "t1"), "host-b", None).unwrap();
    let (la, lb) = (link(&a), link(&b));

    // 3 in any 10 s, whoever asks.
    let Slot::Granted(Some(first)) = la.acquire().await else {
        panic!("first slot")
    };
    assert!(matches!(lb.acquire().await, Slot::Granted(Some(_))));
    assert!(matches!(la.acquire().await, Slot::Granted(Some(_))));
    // The places of attempts in flight count until start + 5 s (flight) + 10.5 s (window).
    let full = wait_ms(&lb.acquire().await);
    assert!(full > 14_000, "{full} ms");
    // The first answer came back: its place moves to now, the wait shrinks to about a window.
    la.completed(Some(first)).await;
    let after = wait_ms(&lb.acquire().await);
    assert!(after < full && after > 9_000, "{after} ms");
    assert!(a.is_up() && b.is_up());

    // A throttle pause told to one instance holds the other.
    la.pause(Duration::from_secs(30)).await;
    match lb.acquire().await {
        Slot::Paused(d) => assert!(d > Duration::from_secs(25), "{d:?}"),
        other => panic!("expected a pause, got {other:?}"),
    }

    // A monthly budget of 7: two instances asking in turn get 7 messages in all.
    let (ba, bb) = (budget(7), budget(7));
    let now = SystemTime::now();
    let mut taken = 0;
    for i in 0..12 {
        let (l, bud) = if i % 2 == 0 { (&la, &ba) } else { (&lb, &bb) };
        if l.take_budget(bud, 0, false, false, now).await {
            taken += 1;
        }
    }
    assert_eq!(taken, 7);
    assert_eq!(ledger_total(&server, "t1"), 7);
    // Each instance's view took the shared counts: both see the budget spent.
    assert_eq!(ba.status(now).used, 7);
    assert_eq!(bb.status(now).used, 7);
    // A refund (DingTalk certainly did not post) gives one back, to anyone.
    la.refund(&ba, 0, now).await;
    assert_eq!(ledger_total(&server, "t1"), 6);
    assert!(lb.take_budget(&bb, 0, false, false, now).await);
    assert!(!la.take_budget(&ba, 0, false, false, now).await);
    // A quota error told to one instance stops the robot for all.
    lb.mark_spent(&bb, 0, "90030 webhook over limit").await;
    la.refund(&ba, 0, now).await;
    assert!(!la.take_budget(&ba, 0, true, false, now).await);
    assert!(ba.status(now).robots[0].spent.is_some());
    // A new instance starts from the fleet's counts, not from its own ledger file.
    let fresh = budget(7);
    la.load_budget(&fresh, 0).await;
    assert_eq!(fresh.status(now).used, ledger_total(&server, "t1"));
    assert!(fresh.status(now).robots[0].spent.is_some());
}

#[tokio::test]
async fn without_redis_an_instance_sends_at_the_fallback_rate_and_pays_its_counts_back() {
    let mut server = RedisServer::start();
    let c = Coordinator::new(&coordination(&server.url(), "t2"), "host-a", None).unwrap();
    let rate = Rate {
        count: 3,
        per: Duration::from_secs(1),
    };
    let l = c.robot("ops", rate, Duration::from_secs(5));
    let b = budget(100);
    let now = SystemTime::now();
    assert!(matches!(l.acquire().await, Slot::Granted(Some(_))));
    assert!(l.take_budget(&b, 0, false, false, now).await);
    assert_eq!(ledger_total(&server, "t2"), 1);

    server.stop();
    // Fallback: first a whole window of the robot (1.05 s) in case the fleet filled it, then
    // 2 a minute from this instance, counted locally.
    let first = wait_ms(&l.acquire().await);
    assert!(!c.is_up());
    assert!(first > 500 && first <= 1_050, "{first} ms");
    for _ in 0..2 {
        assert_eq!(granted(&l).await, None, "counted locally");
    }
    let wait = wait_ms(&l.acquire().await);
    assert!(
        wait > 0 && wait <= 2_000,
        "asks again by the next probe: {wait} ms"
    );
    for _ in 0..3 {
        assert!(l.take_budget(&b, 0, false, false, now).await);
    }
    l.refund(&b, 0, now).await;
    assert_eq!(b.status(now).used, 3);

    // Redis comes back (its append-only file kept the 1): the instance rejoins by itself and
    // adds the 2 it counted meanwhile.
    server.restart();
    assert!(poll_until_async(|| c.is_up()).await, "never rejoined");
    assert_eq!(ledger_total(&server, "t2"), 3);
    assert!(matches!(l.acquire().await, Slot::Granted(Some(_))));
}

#[tokio::test]
async fn under_redis_cluster_a_robot_s_keys_share_a_slot_and_the_scripts_run() {
    let server = RedisServer::start_cluster();
    let mut cfg = coordination(&server.url(), "t3");
    cfg.target = RedisTarget::Cluster(vec![Secret::new(server.url())]);
    let c = Coordinator::new(&cfg, "host-a", None).unwrap();
    let l = link(&c);
    for _ in 0..3 {
        assert!(matches!(l.acquire().await, Slot::Granted(Some(_))));
    }
    assert!(matches!(l.acquire().await, Slot::Wait(_)));
    let b = budget(2);
    let now = SystemTime::now();
    assert!(l.take_budget(&b, 0, false, false, now).await);
    assert!(l.take_budget(&b, 0, false, false, now).await);
    assert!(!l.take_budget(&b, 0, false, false, now).await);
    assert!(c.is_up());
    // The keys of one robot hash to one slot (the scripts that touch two of them need it).
    let mut conn = server.connection();
    let slot = |key: &str, conn: &mut redis::Connection| -> i64 {
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(conn)
            .unwrap()
    };
    for suffix in ["pause", "digest", "lease", "batch"] {
        assert_eq!(
            slot("t3:{ops}:sent", &mut conn),
            slot(&format!("t3:{{ops}}:{suffix}"), &mut conn)
        );
    }
    assert_eq!(ledger_total(&server, "t3"), 2);
}

#[test]
fn six_processes_sharing_a_robot_keep_its_rate_and_lose_nothing() {
    let redis = RedisServer::start();
    let emu = strict_robot(3, Duration::from_secs(1));
    let yaml = FleetYaml {
        robot: "    rate: 3/1s\n".into(),
        ..FleetYaml::new(&emu, &redis, "rate", false)
    }
    .yaml();
    let mut procs = start_fleet(6, &yaml, 0);
    // Every process wants to post at once, three times over.
    let mut matched = 0;
    for r in 0..3 {
        matched += round(&mut procs, r);
        emu.wait_for_posts(3 * (r + 1), LIMIT);
    }
    assert_clean_exits(finish_all(procs), false);
    let posts = emu.posts();
    assert_eq!(throttled(&emu), 0, "the robot was blocked");
    assert_eq!(lines_in(&posts), matched);
    // The window did its work: no second held more than 3 posts (DingTalk's view).
    assert_at_most_per_second(&posts, 3);
    assert!(posts.len() >= 6, "{} posts", posts.len());
}

/// Five processes, each with 40 alerts of its own rules (2,500-byte templates: about seven fit
/// in a message, so the fleet wants some 30 messages), share a monthly budget of 20: exactly
/// 20 are posted, and every other matching line is reported as not delivered by the process
/// that counted it; with digests too (the processes take back what they handed to the fleet).
fn five_processes_share_a_monthly_budget_of_twenty(digest: bool, prefix: &str) {
    let redis = RedisServer::start();
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN)]);
    let yaml = FleetYaml {
        top: "quota: { monthly: 20, reserve: 0 }\n".into(),
        coordination: "  gather: 200ms\n  lease: 1s\n".into(),
        rules: 200,
        rule: format!("    template: \"{{count}} {}\"\n", "x".repeat(2_500)),
        ..FleetYaml::new(&emu, &redis, prefix, digest)
    }
    .yaml();
    let mut procs = start_fleet(5, &yaml, 0);
    let mut matched = 0;
    for (i, p) in procs.iter_mut().enumerate() {
        let mut text = String::new();
        for r in i * 40..(i + 1) * 40 {
            text.push_str(&format!("h{i} E{r} failed\n"));
            matched += 1;
        }
        p.write(&text);
    }
    let done = finish_all(procs);
    let posts = emu.posts();
    assert_eq!(posts.len(), 20, "the whole budget, and not one more");
    assert_eq!(ledger_total(&redis, prefix), 20);
    let mut undelivered = 0;
    for out in &done {
        if out.code == 0 {
            continue;
        }
        assert_eq!(out.code, 1, "{}", out.stderr);
        let line = (out.stderr.lines())
            .find(|l| l.contains("not delivered"))
            .unwrap_or_else(|| panic!("{}", out.stderr));
        undelivered += line
            .split(" with ")
            .nth(1)
            .and_then(|l| l.split(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{line}"));
    }
    assert!(undelivered > 0, "more was wanted than the budget allows");
    assert_eq!(lines_in(&posts) + undelivered, matched);
    if digest {
        assert_eq!(
            stream_len(&redis, prefix),
            0,
            "every entry sent or taken back"
        );
    }
}

#[test]
fn five_processes_share_a_monthly_budget_of_twenty_each_sending_its_own() {
    five_processes_share_a_monthly_budget_of_twenty(false, "budget");
}

#[test]
fn five_processes_share_a_monthly_budget_of_twenty_through_the_fleet_digest() {
    five_processes_share_a_monthly_budget_of_twenty(true, "budget-digest");
}

#[test]
fn check_names_coordination_mistakes_and_never_shows_the_password() {
    let env = TestEnv::new()
        .config(
            "robots:\n  ops:\n    webhook: \"http://127.0.0.1:1/robot/send?access_token=t\"\n\
             coordination:\n  redis: \"http://:hunter2@127.0.0.1:6379\"\n  key_prefix: \"a{b}\"\n  fallback_rate: fast\n  stream_limit: 0\nrules: []\n",
        )
        .env("REDIS_PASSWORD", "hunter2");
    let out = env.run(&["check"], b"");
    assert_eq!(out.code, 2, "{}", out.stderr);
    for field in ["redis", "key_prefix", "fallback_rate", "stream_limit"] {
        let needle = format!("coordination, field '{field}'");
        assert!(out.stderr.contains(&needle), "{needle}: {}", out.stderr);
    }
    assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);

    let missing = TestEnv::new()
        .config("coordination:\n  redis: \"redis://:${NOPE}@127.0.0.1:6379\"\nrules: []\n");
    let out = missing.run(&["check"], b"");
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("NOPE is not set"), "{}", out.stderr);

    // Sentinel: `sentinels:` needs `master_name:`; a bad sentinel URL is named, not shown.
    let sentinel = TestEnv::new().config(
        "coordination:\n  sentinels: [ \"redis://127.0.0.1:26379\", \"http://:hunter2@x\" ]\n  password: \"${REDIS_PASSWORD}\"\nrules: []\n",
    ).env("REDIS_PASSWORD", "hunter2");
    let out = sentinel.run(&["check"], b"");
    assert_eq!(out.code, 2, "{}", out.stderr);
    for needle in [
        "coordination, field 'master_name'",
        "coordination, field 'sentinels'",
        "node 2:",
    ] {
        assert!(out.stderr.contains(needle), "{needle}: {}", out.stderr);
    }
    assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
    let stray = TestEnv::new().config(
        "coordination:\n  redis: \"redis://127.0.0.1:6379\"\n  master_name: mymaster\nrules: []\n",
    );
    let out = stray.run(&["check"], b"");
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("coordination, field 'master_name'"),
        "{}",
        out.stderr
    );
}
