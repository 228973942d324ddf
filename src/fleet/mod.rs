//! A fleet that shares its robots: with `coordination:`, every dingtail instance posting to a
//! robot asks Redis (or Valkey) "may I send now?", so 30 sidecars beside 30 replicas together
//! keep the robot's 20 a minute, its throttle pause and the organisation's monthly budget, as
//! one process would.
//!
//! **What is shared, and how.** Each limit is one Lua script ([`scripts`]), atomic in Redis and
//! timed by Redis's own `TIME`:
//! - the sliding window of a robot ("at most N in any window", counted as
//!   [`SlidingWindow`](crate::ratelimit::SlidingWindow) counts: from each answer, with the same
//!   margin): every attempt takes a place in a sorted set before it is posted and moves it to
//!   the time of its answer after ([`RobotLink::acquire`], [`RobotLink::completed`]); an
//!   instance killed mid-request leaves its place at start + request timeout, the pessimistic
//!   end;
//! - the throttle pause after 130101/410100: one key with a TTL, set by whichever instance
//!   was told, obeyed by all;
//! - the monthly ledger: a hash per month (`total`, `robot:NAME`, `spent:NAME`); the pacing
//!   rule is turned into two limits (`Budget::limits`) and the script checks and counts in one
//!   step, so two instances cannot both take the last message. Refunds (DingTalk certainly did
//!   not post) are taken back the same way. The month and the pace are computed from the host's
//!   clock (they move by hours; a few seconds of skew do not matter), the window from Redis's.
//!
//! Keys: `PREFIX:{ROBOT}:sent`, `PREFIX:{ROBOT}:pause`, `PREFIX:{budget}:YYYY-MM`. The braces
//! are Redis Cluster hash tags: each script touches one slot. Instances that share a prefix
//! must give a robot the same name (the name is the key).
//!
//! **When Redis cannot be reached** (refused, reset, or slower than `timeout`): the instance
//! says so on stderr once, sets `dingtail_coordination_fallback` to 1, and sends on its own:
//! each robot first waits one whole window of its `rate` (the fleet may have filled the window
//! just before Redis went away, and nobody can tell how much), then sends at most
//! `fallback_rate` (default 2 a minute) on top of its own `rate`, the
//! throttle pause and the budget counted locally from the last counts Redis gave. Alerts keep
//! gathering and merging as during any wait, so nothing is lost. Every `PROBE_EVERY` it tries
//! Redis again; when Redis answers, the messages it counted meanwhile are added to Redis's ledger
//! first (no count is lost in either direction), then it says "rejoined" and the shared limits
//! apply again. What fallback cannot promise, and the README says: with K instances cut off at
//! once the robot may get K × `fallback_rate` (choose it so that this stays within 20 a minute),
//! and each instance spends the budget it last saw, so K instances may together overspend by
//! what they send during the outage (at most K × `fallback_rate` × its length).
//!
//! **Persistence.** The ledger is only as durable as Redis: with RDB snapshots alone a Redis
//! restart forgets the messages counted since the last snapshot. Run it with
//! `appendonly yes` (`appendfsync everysec` loses at most a second). The window and the pause are
//! short-lived and need no persistence.

pub mod digest_stream;
pub mod fleet_entry;
pub mod robot_link;
pub mod scripts;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{FromRedisValue, IntoConnectionInfo, RedisResult, ScriptInvocation, Value};
use tokio::time::Instant;

use crate::config::{Coordination, RedisTarget};
pub use digest_stream::{DigestStream, DigestTiming};
pub use robot_link::{RobotLink, Slot};

/// While Redis is away, it is tried again at most this often.
pub const PROBE_EVERY: Duration = Duration::from_secs(2);

/// How long a month's ledger is kept in Redis after its last change.
const LEDGER_TTL_SECS: u64 = 40 * 86_400;

/// Why coordination could not be set up (at start; a Redis outage later is not an error).
#[derive(Debug, thiserror::Error)]
pub enum CoordinationError {
    /// The URL or the cluster nodes were refused by the client (the URL is never shown).
    #[error("coordination: cannot use the Redis address ({0})")]
    Address(String),
}

/// The connection, made when first needed and made again after a failure.
enum Conn {
    Single(ConnectionManager),
    Cluster {
        client: Box<ClusterClient>,
        conn: tokio::sync::Mutex<Option<ClusterConnection>>,
    },
    /// Through Redis Sentinel: the connection to the master the sentinels name, asked again
    /// after any failure (a failover moves the master).
    Sentinel {
        client: Box<tokio::sync::Mutex<SentinelClient>>,
        conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    },
}

/// Whether Redis answers.
#[derive(Debug, Clone, Copy)]
enum Health {
    Up,
    /// Away since; try again at `probe_at`.
    Down {
        probe_at: Instant,
    },
}

struct Inner {
    conn: Conn,
    prefix: String,
    timeout: Duration,
    fallback_rate: crate::config::Rate,
    /// `host:pid:random`, to name this instance's places in the windows.
    instance: String,
    sequence: AtomicU64,
    health: Mutex<Health>,
    /// Messages counted locally while Redis was away, by (month, robot), to add when it is back.
    owed: Mutex<Vec<(String, String, i64)>>,
    /// Digest appends whose answer was lost, to take back out when Redis answers again.
    doubts: Mutex<Vec<Doubt>>,
    /// Scrubbed from error texts, whatever the client puts in them.
    password: Option<String>,
    on_fallback: Option<FallbackHook>,
    /// The fleet-wide digest's timing (`None`: `digest: false`).
    digest: Option<DigestTiming>,
}

/// Told `true` when the instance falls back, `false` when it rejoins (the metrics gauge
/// `dingtail_coordination_fallback`; a hook, so this module need not know the metrics).
pub type FallbackHook = Arc<dyn Fn(bool) + Send + Sync>;

/// The run's link to its fleet's Redis; cheap to clone. See the module docs.
#[derive(Clone)]
pub struct Coordinator(Arc<Inner>);

impl Coordinator {
    /// A coordinator for `cfg` (no connection is made yet: a Redis that is down at start means
    /// fallback, not a failed start). `host` names this instance; `on_fallback` hears when it
    /// falls back and rejoins.
    pub fn new(
        cfg: &Coordination,
        host: &str,
        on_fallback: Option<FallbackHook>,
    ) -> Result<Coordinator, CoordinationError> {
        let password = cfg.password.as_ref().map(|p| p.expose().to_owned());
        let info = |url: &str| {
            let mut info = url
                .into_connection_info()
                .map_err(|e| CoordinationError::Address(format!("{:?}", e.kind())))?;
            if let Some(p) = &password {
                let settings = info.redis_settings().clone().set_password(p);
                info = info.set_redis_settings(settings);
            }
            Ok::<_, CoordinationError>(info)
        };
        let conn = match &cfg.target {
            RedisTarget::Single(url) => {
                let client = redis::Client::open(info(url.expose())?)
                    .map_err(|e| CoordinationError::Address(format!("{:?}", e.kind())))?;
                let manager_cfg = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(cfg.timeout))
                    .set_response_timeout(Some(cfg.timeout))
                    .set_number_of_retries(0);
                Conn::Single(
                    ConnectionManager::new_lazy_with_config(client, manager_cfg)
                        .map_err(|e| CoordinationError::Address(format!("{:?}", e.kind())))?,
                )
            }
            RedisTarget::Cluster(nodes) => {
                let infos = nodes
                    .iter()
                    .map(|n| info(n.expose()))
                    .collect::<Result<Vec<_>, _>>()?;
                let client = ClusterClient::builder(infos)
                    .connection_timeout(cfg.timeout)
                    .response_timeout(cfg.timeout)
                    .retries(0)
                    .build()
                    .map_err(|e| CoordinationError::Address(format!("{:?}", e.kind())))?;
                Conn::Cluster {
                    client: Box::new(client),
                    conn: tokio::sync::Mutex::new(None),
                }
            }
            RedisTarget::Sentinel { nodes, master, db } => {
                let address =
                    |e: redis::RedisError| CoordinationError::Address(format!("{:?}", e.kind()));
                // A sentinel's own password is in its URL; `password:` is the master's.
                let infos = nodes
                    .iter()
                    .map(|n| n.expose().into_connection_info().map_err(address))
                    .collect::<Result<Vec<_>, _>>()?;
                let tls = nodes.iter().any(|n| n.expose().starts_with("rediss://"));
                let mut redis_info = redis::RedisConnectionInfo::default().set_db(*db);
                if let Some(p) = &password {
                    redis_info = redis_info.set_password(p);
                }
                let mut node =
                    SentinelNodeConnectionInfo::default().set_redis_connection_info(redis_info);
                if tls {
                    node = node.set_tls_mode(redis::TlsMode::Secure);
                }
                let client =
                    SentinelClient::build(infos, master, Some(node), SentinelServerType::Master)
                        .map_err(address)?;
                Conn::Sentinel {
                    client: Box::new(tokio::sync::Mutex::new(client)),
                    conn: tokio::sync::Mutex::new(None),
                }
            }
        };
        Ok(Coordinator(Arc::new(Inner {
            conn,
            prefix: cfg.key_prefix.clone(),
            timeout: cfg.timeout,
            fallback_rate: cfg.fallback_rate,
            instance: format!("{host}:{}:{:08x}", std::process::id(), fastrand::u32(..)),
            sequence: AtomicU64::new(0),
            health: Mutex::new(Health::Up),
            owed: Mutex::new(Vec::new()),
            doubts: Mutex::new(Vec::new()),
            password,
            on_fallback,
            digest: cfg.digest.then_some(DigestTiming {
                lease: cfg.lease,
                gather: cfg.gather,
                limit: cfg.stream_limit,
            }),
        })))
    }

    /// Says hello to Redis at start: `coordination: joined Redis` on stderr, or the fallback
    /// warning. Never fails: alerting starts either way.
    pub async fn join(&self) {
        let pong: Option<String> = self.call(&mut redis::cmd("PING")).await;
        if pong.is_some() {
            tracing::info!(prefix = %self.0.prefix, instance = %self.0.instance, "coordination: joined Redis; robots' rate, throttle pause and monthly budget are shared with the fleet");
        }
    }

    /// The link of robot `name` (its `rate`, and `flight`: the longest a request may take).
    pub fn robot(&self, name: &str, rate: crate::config::Rate, flight: Duration) -> RobotLink {
        RobotLink::new(self.clone(), name, rate, flight)
    }

    /// Robot `name`'s fleet-wide digest stream and its timing (`None` with `digest: false`).
    pub fn digest(&self, name: &str) -> Option<(DigestStream, DigestTiming)> {
        Some((DigestStream::new(self.clone(), name), self.0.digest?))
    }

    /// `PREFIX:{tag}:suffix` with braces in `tag` replaced (they would end the hash tag).
    fn key(&self, tag: &str, suffix: &str) -> String {
        let tag: String = tag
            .chars()
            .map(|c| if c == '{' || c == '}' { '_' } else { c })
            .collect();
        format!("{}:{{{tag}}}:{suffix}", self.0.prefix)
    }

    /// The month's ledger key.
    fn ledger_key(&self, month: &str) -> String {
        self.key("budget", month)
    }

    /// A new name for a place in a window.
    fn member(&self) -> String {
        let n = self.0.sequence.fetch_add(1, Ordering::Relaxed);
        format!("{}:{n}", self.0.instance)
    }

    /// Whether Redis is being relied on now (false: fallback).
    pub fn is_up(&self) -> bool {
        matches!(*self.health(), Health::Up)
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.0.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs a script; `None` when Redis is away (fallback). See [`Coordinator::attempt`].
    async fn script<T: FromRedisValue>(&self, inv: ScriptInvocation<'_>) -> Option<T> {
        self.typed(self.attempt(&Req::Script(inv)).await)
    }

    /// Runs a command; `None` when Redis is away.
    async fn call<T: FromRedisValue>(&self, cmd: &mut redis::Cmd) -> Option<T> {
        self.typed(self.attempt(&Req::Cmd(cmd.clone())).await)
    }

    /// The answer as `T`; an answer of another shape (a script of another version in Redis?) is
    /// logged and taken as Redis being away.
    fn typed<T: FromRedisValue>(&self, value: Option<Value>) -> Option<T> {
        match redis::from_redis_value(value?) {
            Ok(v) => Some(v),
            Err(e) => {
                self.went_down(&format!("unexpected answer: {e}"), !self.is_up());
                None
            }
        }
    }

    /// Runs `op` on the connection, within `timeout`. While Redis is away, returns `None` at
    /// once until the next probe is due; then adds what was counted meanwhile and, if that
    /// works, rejoins.
    async fn attempt(&self, req: &Req<'_>) -> Option<Value> {
        let was_down = match *self.health() {
            Health::Up => false,
            Health::Down { probe_at } if Instant::now() < probe_at => return None,
            Health::Down { .. } => true,
        };
        if was_down {
            // Probe: appends in doubt are taken back and the counts owed added first, so the
            // stream and the ledger are right before this instance asks anything else.
            if let Err(e) = self.withdraw_doubts().await {
                self.went_down(&e, true);
                return None;
            }
            if let Err(e) = self.pay_owed().await {
                self.went_down(&e, true);
                return None;
            }
        }
        match self.with_conn(req).await {
            Ok(v) => {
                let rejoined = {
                    let mut health = self.health();
                    let down = matches!(*health, Health::Down { .. });
                    *health = Health::Up;
                    down
                };
                if rejoined {
                    if let Some(hook) = &self.0.on_fallback {
                        hook(false);
                    }
                    tracing::warn!(
                        "coordination: Redis is back; rejoined the fleet (counts made meanwhile were added to its ledger)"
                    );
                }
                Some(v)
            }
            Err(e) => {
                self.went_down(&e, was_down);
                None
            }
        }
    }

    /// Runs `op` on a connection (made if needed), within the timeout.
    async fn with_conn(&self, req: &Req<'_>) -> Result<Value, String> {
        // Boxed: the future nests deep enough to exceed the compiler's layout depth otherwise.
        let work = Box::pin(async {
            match &self.0.conn {
                Conn::Single(m) => {
                    let mut c = AnyConn::Single(m.clone());
                    req.run(&mut c).await.map_err(|e| e.to_string())
                }
                Conn::Cluster { client, conn } => {
                    let mut guard = conn.lock().await;
                    if guard.is_none() {
                        *guard = Some(
                            client
                                .get_async_connection()
                                .await
                                .map_err(|e| e.to_string())?,
                        );
                    }
                    let mut c = AnyConn::Cluster(guard.clone().expect("just made"));
                    drop(guard);
                    let out = req.run(&mut c).await;
                    if out.is_err() {
                        // Made again on the next call: the topology may have changed.
                        *conn.lock().await = None;
                    }
                    out.map_err(|e| e.to_string())
                }
                Conn::Sentinel { client, conn } => {
                    let mut guard = conn.lock().await;
                    if guard.is_none() {
                        let made = client.lock().await.get_async_connection().await;
                        *guard = Some(made.map_err(|e| format!("through the sentinels: {e}"))?);
                    }
                    let mut c = AnyConn::Master(guard.clone().expect("just made"));
                    drop(guard);
                    let out = req.run(&mut c).await;
                    if out.is_err() {
                        // The sentinels are asked again on the next call: after a failover
                        // the old master is gone or a read-only replica.
                        *conn.lock().await = None;
                    }
                    out.map_err(|e| e.to_string())
                }
            }
        });
        match tokio::time::timeout(self.0.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "no answer within {}",
                humantime::format_duration(self.0.timeout)
            )),
        }
    }

    /// Redis failed: fall back (said once per outage).
    fn went_down(&self, error: &str, already: bool) {
        let error = match &self.0.password {
            Some(p) if !p.is_empty() => error.replace(p.as_str(), "***"),
            _ => error.to_owned(),
        };
        *self.health() = Health::Down {
            probe_at: Instant::now() + PROBE_EVERY,
        };
        if !already {
            if let Some(hook) = &self.0.on_fallback {
                hook(true);
            }
            let rate = self.0.fallback_rate;
            tracing::error!(
                "coordination: Redis cannot be reached ({error}); falling back: each robot sends on its own at most {rate} from this instance, counts are kept and added to Redis's ledger when it is back"
            );
            // Rejoin as soon as Redis answers, even if no alert comes to ask it.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let me = self.clone();
                rt.spawn(async move {
                    while !me.is_up() {
                        tokio::time::sleep(PROBE_EVERY).await;
                        let _: Option<String> = me.call(&mut redis::cmd("PING")).await;
                    }
                });
            }
        }
    }

    /// Remembers a message counted locally while Redis is away (`delta` -1 for a refund).
    fn owe(&self, month: &str, robot: &str, delta: i64) {
        let mut owed = self.0.owed.lock().unwrap_or_else(|e| e.into_inner());
        match owed.iter_mut().find(|(m, r, _)| m == month && r == robot) {
            Some(entry) => entry.2 += delta,
            None => owed.push((month.to_owned(), robot.to_owned(), delta)),
        }
    }

    /// Remembers a digest append whose answer was lost (see [`Doubt`]).
    fn doubt(&self, doubt: Doubt) {
        (self.0.doubts.lock().unwrap_or_else(|e| e.into_inner())).push(doubt);
    }

    /// Takes the appends in doubt back out of their streams; those not done stay in doubt.
    async fn withdraw_doubts(&self) -> Result<(), String> {
        let doubts = std::mem::take(&mut *self.0.doubts.lock().unwrap_or_else(|e| e.into_inner()));
        let mut left = doubts.into_iter();
        while let Some(d) = left.next() {
            let mut inv = scripts::WITHDRAW.prepare_invoke();
            inv.key(&d.stream).key(&d.batch).arg(&d.token).arg(d.seq);
            match self.with_conn(&Req::Script(inv)).await {
                Ok(Value::Array(taken)) if !taken.is_empty() => {
                    tracing::info!(
                        entries = taken.len(),
                        "coordination: alerts appended to a digest stream just as Redis went away were sent by this instance meanwhile; taken back out of the stream"
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    let mut doubts = self.0.doubts.lock().unwrap_or_else(|e| e.into_inner());
                    doubts.push(d);
                    doubts.extend(left);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Adds the counts owed to Redis's ledger; what could not be added stays owed.
    async fn pay_owed(&self) -> Result<(), String> {
        let owed = std::mem::take(&mut *self.0.owed.lock().unwrap_or_else(|e| e.into_inner()));
        let mut left = owed.clone();
        for (i, (month, robot, delta)) in owed.iter().enumerate() {
            if *delta == 0 {
                continue;
            }
            let key = self.ledger_key(month);
            let mut inv = scripts::ADD.prepare_invoke();
            inv.key(&key).arg(robot).arg(*delta).arg(LEDGER_TTL_SECS);
            let paid = self.with_conn(&Req::Script(inv)).await;
            if let Err(e) = paid {
                let mut owed = self.0.owed.lock().unwrap_or_else(|e| e.into_inner());
                for (m, r, d) in left.drain(i..) {
                    owed.push((m, r, d));
                }
                return Err(e);
            }
        }
        Ok(())
    }
}

/// A digest append that got no answer (Redis went away, or answered too late): its alerts are
/// sent by the instance itself, so whatever of it reached the stream is taken back out when
/// Redis answers again. The window in which a sender could post it first is the time from
/// Redis's return to this instance's first call (at most [`PROBE_EVERY`]); what can happen
/// then is that its lines are counted twice, never that they are lost.
struct Doubt {
    stream: String,
    batch: String,
    token: String,
    seq: u64,
}

/// What is asked of Redis.
enum Req<'a> {
    Script(ScriptInvocation<'a>),
    Cmd(redis::Cmd),
}

impl Req<'_> {
    async fn run(&self, c: &mut AnyConn) -> RedisResult<Value> {
        match self {
            Req::Script(inv) => inv.invoke_async(c).await,
            Req::Cmd(cmd) => cmd.query_async(c).await,
        }
    }
}

/// One server's connection or the cluster's, as one type the client's commands and scripts run
/// on.
enum AnyConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    /// The master found through the sentinels.
    Master(MultiplexedConnection),
}

impl ConnectionLike for AnyConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, Value> {
        match self {
            AnyConn::Single(c) => c.req_packed_command(cmd),
            AnyConn::Cluster(c) => c.req_packed_command(cmd),
            AnyConn::Master(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        match self {
            AnyConn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            AnyConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            AnyConn::Master(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            AnyConn::Single(c) => c.get_db(),
            AnyConn::Cluster(c) => c.get_db(),
            AnyConn::Master(c) => c.get_db(),
        }
    }
}
