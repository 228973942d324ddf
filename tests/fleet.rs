//! `coordination:` against a real redis-server: the shared scripts through the library (two
//! coordinators are two instances), then several real dingtail processes posting to one
//! emulated robot. A test that cannot start redis-server fails.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::Child;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};

use dingtail::budget::{Budget, Ledger, Month, SharedBudget};
use dingtail::config::{Coordination, Quota, Rate, RedisTarget, Reserve};
use dingtail::fleet::{Coordinator, RobotLink, Slot};
use dingtail::secret::Secret;
use redis::Commands;
use support::emulator::{Emulator, Fault, Post, RobotSpec};
use support::env::{TestEnv, header_counts, header_total, poll_until, poll_until_async};
use support::redis_server::RedisServer;

const TOKEN: &str = "tok-fleet-0123456789";
const LIMIT: Duration = Duration::from_secs(60);

fn coordination(url: &str, prefix: &str) -> Coordination {
    Coordination {
        target: RedisTarget::Single(Secret::new(url)),
        password: None,
        key_prefix: prefix.to_owned(),
        fallback_rate: Rate {
            count: 2,
            per: Duration::from_secs(60),
        },
        timeout: Duration::from_millis(300),
        digest: true,
        gather: Duration::from_secs(2),
        lease: Duration::from_secs(10),
    }
}

fn link(c: &Coordinator) -> RobotLink {
    let rate = Rate {
        count: 3,
        per: Duration::from_secs(10),
    };
    c.robot("ops", rate, Duration::from_secs(5))
}

fn budget(monthly: u64) -> SharedBudget {
    let quota = Quota {
        monthly,
        reserve: Reserve::Count(0),
        robot_monthly: vec![None],
    };
    SharedBudget::new(
        Budget::new(&quota, &["ops".into()], Ledger::default()),
        None,
    )
}

fn ledger_total(server: &RedisServer, prefix: &str) -> u64 {
    let month = Month::of(SystemTime::now()).to_string();
    let total: Option<u64> = server
        .connection()
        .hget(format!("{prefix}:{{budget}}:{month}"), "total")
        .unwrap();
    total.unwrap_or(0)
}

fn wait_ms(slot: &Slot) -> u128 {
    match slot {
        Slot::Wait(d) => d.as_millis(),
        other => panic!("expected a wait, got {other:?}"),
    }
}

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
    let mut granted = 0;
    while granted < 2 {
        match l.acquire().await {
            Slot::Granted(None) => granted += 1,
            Slot::Wait(d) => tokio::time::sleep(d).await,
            other => panic!("{other:?}"),
        }
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
    assert_eq!(
        slot("t3:{ops}:sent", &mut conn),
        slot("t3:{ops}:pause", &mut conn)
    );
    assert_eq!(ledger_total(&server, "t3"), 2);
}

/// A running dingtail whose stderr is read as it comes, so a test can wait for a line.
struct Proc {
    child: Child,
    stderr: Arc<(Mutex<String>, Condvar)>,
    reader: Option<std::thread::JoinHandle<()>>,
    stdout: Option<std::thread::JoinHandle<String>>,
}

impl Proc {
    fn start(env: &TestEnv) -> Proc {
        Proc::start_with(env, &["run"])
    }

    /// `run ARGS`, with a shutdown timeout long enough for a loaded machine: what is held at
    /// the end of input waits for the shared window, however slow the test host.
    fn start_with(env: &TestEnv, args: &[&str]) -> Proc {
        let mut all = args.to_vec();
        all.extend(["--shutdown-timeout", "90s"]);
        Proc::spawn(env, &all)
    }

    fn spawn(env: &TestEnv, args: &[&str]) -> Proc {
        let mut child = env.spawn(args);
        let stderr = Arc::new((Mutex::new(String::new()), Condvar::new()));
        let err = child.stderr.take().unwrap();
        let shared = stderr.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let (text, cv) = &*shared;
                let mut text = text.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
                cv.notify_all();
            }
        });
        let mut out = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut out, &mut s);
            s
        });
        Proc {
            child,
            stderr,
            reader: Some(reader),
            stdout: Some(stdout),
        }
    }

    fn write(&mut self, text: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin open");
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Waits until stderr holds `needle`; returns the rest of its line.
    fn wait_for(&self, needle: &str) -> String {
        let (text, cv) = &*self.stderr;
        let guard = text.lock().unwrap();
        let (guard, timeout) = cv
            .wait_timeout_while(guard, LIMIT, |t| !t.contains(needle))
            .unwrap();
        assert!(!timeout.timed_out(), "no `{needle}` on stderr:\n{guard}");
        let rest = guard.split(needle).nth(1).unwrap_or_default();
        rest.lines().next().unwrap_or_default().to_owned()
    }

    /// Ends the input.
    fn close(&mut self) {
        drop(self.child.stdin.take());
    }

    /// Ends the input and waits for the exit: (code, stderr).
    fn finish(mut self) -> (i32, String) {
        drop(self.child.stdin.take());
        let mut status = None;
        poll_until(|| {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        let status = status.expect("dingtail did not exit");
        self.reader.take().unwrap().join().unwrap();
        self.stdout.take().unwrap().join().unwrap();
        let text = self.stderr.0.lock().unwrap().clone();
        (status.code().unwrap_or(-1), text)
    }
}

/// A config for one instance of the fleet: robot `ops` at the emulator, `coordination:` at the
/// test's Redis, rules `r0`…`r{rules-1}` matching `E<n> ` (each with `rule_extra`).
fn config(
    emu: &Emulator,
    redis: &RedisServer,
    prefix: &str,
    extra: &str,
    rules: usize,
    rule_extra: &str,
) -> String {
    let mut list = String::new();
    for r in 0..rules {
        list.push_str(&format!("  - name: r{r}\n    match: 'E{r} '\n{rule_extra}"));
    }
    format!(
        r#"robots:
  ops:
    webhook: "{webhook}"
    retry: {{ initial: 50ms, max: 200ms, recheck: 400ms }}
{extra}
coordination:
  redis: "{url}"
  key_prefix: "{prefix}"
  timeout: 300ms
  fallback_rate: 1/1s
  digest: false
defaults:
  window: 50ms
  max_lines: 1
rules:
{list}"#,
        webhook = emu.webhook(TOKEN),
        url = redis.url(),
    )
}

fn fleet(n: usize, yaml: &str) -> (Vec<TestEnv>, Vec<Proc>) {
    let envs: Vec<TestEnv> = (0..n)
        .map(|i| {
            TestEnv::new()
                .config(yaml)
                .env("DINGTAIL_HOST", &format!("host-{i}"))
        })
        .collect();
    let procs = envs.iter().map(Proc::start).collect();
    (envs, procs)
}

fn throttled(emu: &Emulator) -> usize {
    emu.requests()
        .iter()
        .filter(|r| matches!(r.errcode, Some(130101 | 410100)))
        .count()
}

fn lines_in(posts: &[Post]) -> u64 {
    posts.iter().map(|p| header_total(&p.text())).sum()
}

/// Round `round`: every process gets one matching line of rule `round % 4` (and noise).
fn round(procs: &mut [Proc], round: usize) -> u64 {
    for (i, p) in procs.iter_mut().enumerate() {
        p.write(&format!(
            "h{i} round {round} E{} failed\nh{i} fine\n",
            round % 4
        ));
    }
    procs.len() as u64
}

#[test]
fn six_processes_sharing_a_robot_keep_its_rate_and_lose_nothing() {
    let redis = RedisServer::start();
    // The robot takes 3 in any second; a 4th blocks it for a minute.
    let emu = Emulator::start(vec![
        RobotSpec::new(TOKEN)
            .rate(3, Duration::from_secs(1))
            .block(Duration::from_secs(60)),
    ]);
    let yaml = config(&emu, &redis, "rate", "    rate: 3/1s", 4, "");
    let (_envs, mut procs) = fleet(6, &yaml);
    for p in &procs {
        p.wait_for("coordination: joined Redis");
    }
    // Every process wants to post at once, three times over.
    let mut matched = 0;
    for r in 0..3 {
        matched += round(&mut procs, r);
        emu.wait_for_posts(3 * (r + 1), LIMIT);
    }
    for p in &mut procs {
        p.close();
    }
    let codes: Vec<(i32, String)> = procs.into_iter().map(Proc::finish).collect();
    for (code, stderr) in &codes {
        assert_eq!(*code, 0, "{stderr}");
        assert!(!stderr.contains("Redis cannot be reached"), "{stderr}");
    }
    let posts = emu.posts();
    assert_eq!(throttled(&emu), 0, "the robot was blocked");
    assert_eq!(lines_in(&posts), matched);
    // The window did its work: no second held more than 3 posts (DingTalk's view).
    for (i, p) in posts.iter().enumerate() {
        let within = posts[i..]
            .iter()
            .filter(|q| q.at < p.at + Duration::from_secs(1))
            .count();
        assert!(within <= 3, "{within} posts within a second");
    }
    assert!(posts.len() >= 6, "{} posts", posts.len());
}

#[test]
fn five_processes_share_a_monthly_budget_of_twenty() {
    let redis = RedisServer::start();
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN)]);
    // 60 rules with long templates: each process needs several messages of 20,000 bytes.
    let template = format!("    template: \"{{count}} {}\"\n", "x".repeat(1_500));
    let quota = "quota: { monthly: 20, reserve: 0 }";
    let yaml = config(&emu, &redis, "budget", quota, 60, &template);
    let (_envs, mut procs) = fleet(5, &yaml);
    let mut matched = 0;
    for (i, p) in procs.iter_mut().enumerate() {
        let mut text = String::new();
        for r in 0..60 {
            text.push_str(&format!("h{i} E{r} failed\n"));
            matched += 1;
        }
        p.write(&text);
    }
    for p in &mut procs {
        p.close();
    }
    let done: Vec<(i32, String)> = procs.into_iter().map(Proc::finish).collect();
    let posts = emu.posts();
    assert_eq!(posts.len(), 20, "the whole budget, and not one more");
    assert_eq!(ledger_total(&redis, "budget"), 20);
    let mut undelivered = 0;
    for (code, stderr) in &done {
        if *code == 0 {
            continue;
        }
        assert_eq!(*code, 1, "{stderr}");
        let line = stderr
            .lines()
            .find(|l| l.contains("not delivered"))
            .unwrap_or_else(|| panic!("{stderr}"));
        undelivered += line
            .split(" with ")
            .nth(1)
            .and_then(|l| l.split(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{line}"));
    }
    assert!(undelivered > 0, "more was wanted than the budget allows");
    assert_eq!(lines_in(&posts) + undelivered, matched);
}

/// `dingtail_coordination_fallback` at `/metrics`.
fn fallback_gauge(addr: &str) -> i64 {
    let mut resp = ureq::get(&format!("http://{addr}/metrics"))
        .call()
        .expect("GET /metrics");
    let text = resp.body_mut().read_to_string().unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("dingtail_coordination_fallback "))
        .unwrap_or_else(|| panic!("no gauge in {text}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn redis_stopped_mid_storm_alerts_keep_flowing_nothing_is_lost_and_processes_rejoin() {
    let mut redis = RedisServer::start();
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN).rate(3, Duration::from_secs(1))]);
    let yaml = config(&emu, &redis, "down", "    rate: 3/1s", 4, "");
    let envs: Vec<TestEnv> = (0..3)
        .map(|i| {
            TestEnv::new()
                .config(&yaml)
                .env("DINGTAIL_HOST", &format!("host-{i}"))
        })
        .collect();
    // The first one also serves /metrics.
    let mut procs = vec![Proc::start_with(
        &envs[0],
        &["run", "--listen", "127.0.0.1:0"],
    )];
    procs.extend(envs[1..].iter().map(Proc::start));
    let addr = procs[0].wait_for("listening on ").trim().to_owned();
    for p in &procs {
        p.wait_for("coordination: joined Redis");
    }
    assert_eq!(fallback_gauge(&addr), 0);
    let mut matched = round(&mut procs, 0);
    emu.wait_for_posts(3, LIMIT);

    // Redis dies. Alerts keep flowing, each process on its own at 1 a second.
    redis.stop();
    let before = emu.posts().len();
    for r in 1..3 {
        matched += round(&mut procs, r);
        emu.wait_for_posts(before + 3 * r, LIMIT);
    }
    for p in &procs {
        p.wait_for("Redis cannot be reached");
    }
    assert_eq!(fallback_gauge(&addr), 1);

    // Redis is back: every process rejoins by itself and pays back what it counted.
    redis.restart();
    for p in &procs {
        p.wait_for("Redis is back; rejoined");
    }
    assert_eq!(fallback_gauge(&addr), 0);
    let before = emu.posts().len();
    matched += round(&mut procs, 3);
    emu.wait_for_posts(before + 1, LIMIT);
    for p in &mut procs {
        p.close();
    }
    let done: Vec<(i32, String)> = procs.into_iter().map(Proc::finish).collect();
    for (code, stderr) in &done {
        assert_eq!(*code, 0, "{stderr}");
    }
    let posts = emu.posts();
    assert_eq!(throttled(&emu), 0);
    assert_eq!(
        lines_in(&posts),
        matched,
        "every matching line in some message"
    );
    // Every message is in the fleet's ledger: those sent in fallback were added on rejoining.
    assert_eq!(ledger_total(&redis, "down"), posts.len() as u64);
}

#[test]
fn check_names_coordination_mistakes_and_never_shows_the_password() {
    let env = TestEnv::new()
        .config(
            "robots:\n  ops:\n    webhook: \"http://127.0.0.1:1/robot/send?access_token=t\"\n\
             coordination:\n  redis: \"http://:hunter2@127.0.0.1:6379\"\n  key_prefix: \"a{b}\"\n  fallback_rate: fast\nrules: []\n",
        )
        .env("REDIS_PASSWORD", "hunter2");
    let out = env.run(&["check"], b"");
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("coordination, field 'redis'"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("coordination, field 'key_prefix'"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("coordination, field 'fallback_rate'"),
        "{}",
        out.stderr
    );
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

    // A replica of the master, known to the sentinel, then promoted.
    let replica =
        RedisServer::start_with(&["--replicaof", "127.0.0.1", &master.port().to_string()]);
    let mut s = sentinel.connection();
    assert!(
        poll_until_async(|| {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut replica.connection())
                .unwrap();
            let known: Vec<redis::Value> = redis::cmd("SENTINEL")
                .arg("REPLICAS")
                .arg("mymaster")
                .query(&mut s)
                .unwrap();
            info.contains("master_link_status:up") && !known.is_empty()
        })
        .await,
        "the sentinel never saw the replica"
    );
    let copied: u64 = replica.connection().zcard(key).unwrap();
    assert_eq!(copied, 1);
    // Until the sentinel has read the replica's own INFO it answers NOGOODSLAVE: ask again.
    assert!(
        poll_until_async(|| {
            let r: redis::RedisResult<()> = redis::cmd("SENTINEL")
                .arg("FAILOVER")
                .arg("mymaster")
                .query(&mut s);
            r.is_ok()
        })
        .await,
        "the sentinel never accepted the failover"
    );
    assert!(
        poll_until_async(|| {
            let addr: Vec<String> = redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg("mymaster")
                .query(&mut s)
                .unwrap();
            let role: Vec<redis::Value> =
                redis::cmd("ROLE").query(&mut replica.connection()).unwrap();
            addr.get(1) == Some(&replica.port().to_string())
                && matches!(role.first(), Some(redis::Value::BulkString(r)) if r == b"master")
        })
        .await,
        "no failover"
    );
    // The coordinator may fall back for a moment (the old master refuses writes); it asks the
    // sentinel again and takes its places on the new master.
    let mut granted_there = false;
    let until = std::time::Instant::now() + LIMIT;
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

/// A config for a fleet-wide digest: robot `ops` (with `robot_extra`), rules `r0`…, a short
/// lease and `gather`.
fn digest_config(
    emu: &Emulator,
    redis: &RedisServer,
    prefix: &str,
    robot_extra: &str,
    rules: usize,
    lease: &str,
) -> String {
    let mut list = String::new();
    for r in 0..rules {
        list.push_str(&format!("  - name: r{r}\n    match: 'E{r} '\n"));
    }
    format!(
        r#"robots:
  ops:
    webhook: "{webhook}"
    retry: {{ initial: 50ms, max: 200ms, recheck: 400ms }}
{robot_extra}
coordination:
  redis: "{url}"
  key_prefix: "{prefix}"
  timeout: 300ms
  fallback_rate: 1/1s
  gather: 2s
  lease: {lease}
defaults:
  window: 50ms
  max_lines: 1
rules:
{list}"#,
        webhook = emu.webhook(TOKEN),
        url = redis.url(),
    )
}

/// Entries left in a robot's digest stream.
fn stream_len(server: &RedisServer, prefix: &str) -> u64 {
    server
        .connection()
        .xlen(format!("{prefix}:{{ops}}:digest"))
        .unwrap()
}

#[test]
fn ten_processes_sharing_a_robot_send_one_digest_per_window_naming_the_hosts() {
    let redis = RedisServer::start();
    // The robot takes 5 in any 10 s; a 6th blocks it for a minute.
    let emu = Emulator::start(vec![
        RobotSpec::new(TOKEN)
            .rate(5, Duration::from_secs(10))
            .block(Duration::from_secs(60)),
    ]);
    let yaml = digest_config(&emu, &redis, "digest", "    rate: 5/10s", 3, "1s");
    let (_envs, mut procs) = fleet(10, &yaml);
    for p in &procs {
        p.wait_for("coordination: joined Redis");
    }
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
    for p in &mut procs {
        p.close();
    }
    let done: Vec<(i32, String)> = procs.into_iter().map(Proc::finish).collect();
    for (code, stderr) in &done {
        assert_eq!(*code, 0, "{stderr}");
        assert!(!stderr.contains("Redis cannot be reached"), "{stderr}");
    }
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
    let yaml = digest_config(
        &emu,
        &redis,
        "kill",
        "    timeout: { request: 60s }",
        2,
        "3s",
    );
    let (_envs, mut procs) = fleet(3, &yaml);
    for p in &procs {
        p.wait_for("coordination: joined Redis");
    }
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
    let mut killed = procs.remove(victim);
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
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
    for p in &mut procs {
        p.close();
    }
    for (code, stderr) in procs.into_iter().map(Proc::finish) {
        assert_eq!(code, 0, "{stderr}");
    }
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
