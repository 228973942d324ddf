//! Set-up shared by the `coordination:` tests (`tests/fleet_*.rs`): coordinators through the
//! library (two coordinators are two instances), a fleet of real dingtail processes posting to
//! one emulated robot, the config they share, and what the tests read back from Redis.

use std::process::ChildStdin;
use std::time::{Duration, Instant, SystemTime};

use dingtail::budget::{Budget, Ledger, Month, SharedBudget};
use dingtail::config::{Coordination, Quota, Rate, RedisTarget, Reserve};
use dingtail::fleet::{Coordinator, RobotLink, Slot};
use dingtail::secret::Secret;
use redis::Commands;

use super::emulator::{Emulator, Post, RobotSpec};
use super::env::{Output, TestEnv, WAIT_LIMIT, header_total, poll_until};
use super::listener::metric;
use super::redis_server::RedisServer;
use super::running::Running;

/// The robot's access token at the emulator.
pub const TOKEN: &str = "tok-fleet-0123456789";

/// `coordination:` as the library takes it: one Redis at `url`, keys under `prefix`, a short
/// timeout, `fallback_rate` 2 a minute, digests on.
pub fn coordination(url: &str, prefix: &str) -> Coordination {
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
        stream_limit: 10_000,
    }
}

/// Robot `ops` of coordinator `c`: 3 in any 10 s, requests of at most 5 s.
pub fn link(c: &Coordinator) -> RobotLink {
    let rate = Rate {
        count: 3,
        per: Duration::from_secs(10),
    };
    c.robot("ops", rate, Duration::from_secs(5))
}

/// A monthly budget of `monthly` for robot `ops` alone, no reserve.
pub fn budget(monthly: u64) -> SharedBudget {
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

/// The month's total in the fleet's ledger under `prefix`.
pub fn ledger_total(server: &RedisServer, prefix: &str) -> u64 {
    let month = Month::of(SystemTime::now()).to_string();
    let total: Option<u64> = server
        .connection()
        .hget(format!("{prefix}:{{budget}}:{month}"), "total")
        .unwrap();
    total.unwrap_or(0)
}

/// The wait a full window answers, in ms.
pub fn wait_ms(slot: &Slot) -> u128 {
    match slot {
        Slot::Wait(d) => d.as_millis(),
        other => panic!("expected a wait, got {other:?}"),
    }
}

/// Asks `link` for a place until it is granted, waiting each time as long as the answer says
/// (that wait is the limiter's contract: asking earlier only hears "wait" again); panics after
/// [`WAIT_LIMIT`]. Returns the place.
pub async fn granted(link: &RobotLink) -> Option<String> {
    let until = Instant::now() + WAIT_LIMIT;
    loop {
        match link.acquire().await {
            Slot::Granted(place) => return place,
            Slot::Wait(d) => {
                assert!(Instant::now() + d < until, "no place within {WAIT_LIMIT:?}");
                tokio::time::sleep(d).await;
            }
            Slot::Paused(d) => panic!("the robot is paused for {d:?}"),
        }
    }
}

/// Entries left in robot `ops`'s digest stream.
pub fn stream_len(server: &RedisServer, prefix: &str) -> u64 {
    server
        .connection()
        .xlen(format!("{prefix}:{{ops}}:digest"))
        .unwrap()
}

/// What a fleet of dingtail processes runs: robot `ops` at the emulator, `coordination:` at
/// the test's Redis (or its sentinels), rules `r0`…`r{rules-1}` matching `E<n> `. Build it with
/// struct update syntax from [`FleetYaml::new`].
pub struct FleetYaml {
    /// The robot's webhook.
    pub webhook: String,
    /// The lines of `coordination:` that say where Redis is (`redis: "…"`, or `sentinels:`…).
    pub target: String,
    /// `key_prefix`.
    pub prefix: String,
    /// Fleet-wide digests.
    pub digest: bool,
    /// More lines under `coordination:` (`gather: 2s`, `stream_limit: 4`…).
    pub coordination: String,
    /// More lines under the robot (`rate: 3/1s`), each indented by four spaces.
    pub robot: String,
    /// More top-level lines (`quota: …`).
    pub top: String,
    /// How many rules.
    pub rules: usize,
    /// More lines under each rule, each indented by four spaces.
    pub rule: String,
}

impl FleetYaml {
    /// Robot `ops` at `emu`, Redis `redis`, keys under `prefix`, 4 rules, digests as `digest`
    /// says.
    pub fn new(emu: &Emulator, redis: &RedisServer, prefix: &str, digest: bool) -> FleetYaml {
        FleetYaml {
            webhook: emu.webhook(TOKEN),
            target: format!("  redis: \"{}\"\n", redis.url()),
            prefix: prefix.to_owned(),
            digest,
            coordination: String::new(),
            robot: String::new(),
            top: String::new(),
            rules: 4,
            rule: String::new(),
        }
    }

    /// The config file.
    pub fn yaml(&self) -> String {
        let mut rules = String::new();
        for r in 0..self.rules {
            rules.push_str(&format!(
                "  - name: r{r}\n    match: 'E{r} '\n{}",
                self.rule
            ));
        }
        format!(
            "robots:\n  ops:\n    webhook: \"{webhook}\"\n    retry: {{ initial: 50ms, max: 200ms, recheck: 400ms }}\n{robot}\
             {top}\ncoordination:\n{target}  key_prefix: \"{prefix}\"\n  timeout: 300ms\n  fallback_rate: 1/1s\n  digest: {digest}\n{coordination}\
             defaults:\n  window: 50ms\n  max_lines: 1\nrules:\n{rules}",
            webhook = self.webhook,
            robot = self.robot,
            top = self.top,
            target = self.target,
            prefix = self.prefix,
            digest = self.digest,
            coordination = self.coordination,
        )
    }
}

/// One dingtail process of a fleet, its input open until [`Member::finish`].
pub struct Member {
    /// The process, its stderr read as it comes.
    pub run: Running,
    stdin: Option<ChildStdin>,
    /// Its `--listen` address, when started with one.
    pub addr: Option<String>,
    /// Keeps its scratch directory (config, state) while it runs.
    _env: TestEnv,
}

impl Member {
    /// Starts `dingtail run` with `yaml` as host `host` (with `--listen` when `listen`), and a
    /// shutdown timeout long enough for a loaded machine: what is held at the end of input
    /// waits for the shared window, however slow the test host.
    pub fn start(yaml: &str, host: &str, listen: bool) -> Member {
        let env = TestEnv::new().config(yaml).env("DINGTAIL_HOST", host);
        let mut args = vec!["run", "--shutdown-timeout", "90s"];
        if listen {
            args.extend(["--listen", "127.0.0.1:0"]);
        }
        let mut run = env.start(&args);
        let stdin = Some(run.stdin());
        let addr = listen.then(|| run.listen_addr());
        Member {
            run,
            stdin,
            addr,
            _env: env,
        }
    }

    /// Writes lines to its input.
    pub fn write(&mut self, text: &str) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("input open");
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Waits until stderr says `needle`.
    pub fn wait_for(&self, needle: &str) {
        self.run.wait_for(needle);
    }

    /// Ends its input.
    pub fn close(&mut self) {
        drop(self.stdin.take());
    }

    /// Ends its input and waits for the exit.
    pub fn finish(mut self) -> Output {
        self.close();
        self.run.wait()
    }

    /// A metric it serves (started with `listen`).
    pub fn metric(&self, series: &str) -> Option<f64> {
        metric(self.addr.as_deref().expect("started with --listen"), series)
    }
}

/// `n` processes with `yaml`, hosts `host-0`…, each joined to Redis; the first `listening`
/// also serve `/metrics`.
pub fn start_fleet(n: usize, yaml: &str, listening: usize) -> Vec<Member> {
    let members: Vec<Member> = (0..n)
        .map(|i| Member::start(yaml, &format!("host-{i}"), i < listening))
        .collect();
    for m in &members {
        m.wait_for("coordination: joined Redis");
    }
    members
}

/// Ends every input, then waits for every exit.
pub fn finish_all(members: Vec<Member>) -> Vec<Output> {
    let mut members = members;
    for m in &mut members {
        m.close();
    }
    members.into_iter().map(Member::finish).collect()
}

/// Round `round`: every process gets one matching line of rule `round % 4` (and noise).
pub fn round(members: &mut [Member], round: usize) -> u64 {
    for (i, m) in members.iter_mut().enumerate() {
        m.write(&format!(
            "h{i} round {round} E{} failed\nh{i} fine\n",
            round % 4
        ));
    }
    members.len() as u64
}

/// The emulator with robot [`TOKEN`] taking `n` messages in any `per`: one more is answered
/// 130101 and blocks it for a minute, as DingTalk does.
pub fn strict_robot(n: u32, per: Duration) -> Emulator {
    Emulator::start(vec![
        RobotSpec::new(TOKEN)
            .rate(n, per)
            .block(Duration::from_secs(60)),
    ])
}

/// Every process exited 0, and (unless `fell_back_ok`) never lost Redis.
pub fn assert_clean_exits(outs: Vec<Output>, fell_back_ok: bool) {
    for out in outs {
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(
            fell_back_ok || !out.stderr.contains("Redis cannot be reached"),
            "{}",
            out.stderr
        );
    }
}

/// Requests the robot answered with "too fast" (130101/410100).
pub fn throttled(emu: &Emulator) -> usize {
    emu.requests()
        .iter()
        .filter(|r| matches!(r.errcode, Some(130101 | 410100)))
        .count()
}

/// Matching lines the posts account for (their `【rule】×N` headers).
pub fn lines_in(posts: &[Post]) -> u64 {
    posts.iter().map(|p| header_total(&p.text())).sum()
}

/// No second (by the emulator's clock) held more than `n` posts.
pub fn assert_at_most_per_second(posts: &[Post], n: usize) {
    for (i, p) in posts.iter().enumerate() {
        let within = posts[i..]
            .iter()
            .filter(|q| q.at < p.at + Duration::from_secs(1))
            .count();
        assert!(within <= n, "{within} posts within a second");
    }
}

/// A replica of `master`, in sync and known to `sentinel`, then promoted by a failover
/// (`SENTINEL FAILOVER`); returns once the sentinel names it master and it says so itself.
pub fn fail_over(master: &RedisServer, sentinel: &RedisServer, name: &str) -> RedisServer {
    let replica =
        RedisServer::start_with(&["--replicaof", "127.0.0.1", &master.port().to_string()]);
    let mut s = sentinel.connection();
    assert!(
        poll_until(|| {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut replica.connection())
                .unwrap();
            let known: Vec<redis::Value> = redis::cmd("SENTINEL")
                .arg("REPLICAS")
                .arg(name)
                .query(&mut s)
                .unwrap();
            info.contains("master_link_status:up") && !known.is_empty()
        }),
        "the sentinel never saw the replica"
    );
    // Until the sentinel has read the replica's own INFO it answers NOGOODSLAVE: ask again.
    assert!(
        poll_until(|| {
            let r: redis::RedisResult<()> = redis::cmd("SENTINEL")
                .arg("FAILOVER")
                .arg(name)
                .query(&mut s);
            r.is_ok()
        }),
        "the sentinel never accepted the failover"
    );
    assert!(
        poll_until(|| {
            let addr: Vec<String> = redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(name)
                .query(&mut s)
                .unwrap();
            let role: Vec<redis::Value> =
                redis::cmd("ROLE").query(&mut replica.connection()).unwrap();
            addr.get(1) == Some(&replica.port().to_string())
                && matches!(role.first(), Some(redis::Value::BulkString(r)) if r == b"master")
        }),
        "no failover"
    );
    replica
}
