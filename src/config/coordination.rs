//! `coordination:`: several dingtail instances that post to the same robots share its limits
//! through Redis (or Valkey). Checked here, used by `crate::fleet`.
//!
//! ```yaml
//! coordination:
//!   redis: "rediss://redis.internal:6380/0"   # redis://, rediss:// (TLS) or unix:///path
//!   password: "${REDIS_PASSWORD}"             # optional; else the URL's own
//!   key_prefix: "dingtail"                    # every key starts with it (default dingtail)
//!   fallback_rate: 2/min                      # per instance while Redis cannot be reached
//!   timeout: 500ms                            # a Redis answer slower than this is "unreachable"
//!   digest: true                              # one message per rule and group for the fleet
//!   gather: 2s                                # the digest sender waits this long from the oldest entry
//!   lease: 10s                                # another instance takes over a silent sender after this
//!   stream_limit: 10000                       # entries a robot's digest stream holds at most
//! ```
//!
//! Or `cluster: [ "redis://node-a:6379", "redis://node-b:6379" ]` instead of `redis:` for Redis
//! Cluster: a robot's keys carry a hash tag (`dingtail:{ops}:sent`) so that each script touches
//! one slot. Or, for Redis Sentinel (the form the `redis` crate's `SentinelClient` takes: the
//! sentinels' addresses and the master's name; it has no URL scheme of its own):
//!
//! ```yaml
//! coordination:
//!   sentinels: [ "redis://s1:26379", "redis://s2:26379" ]   # a sentinel's own password: in its URL
//!   master_name: mymaster
//!   db: 0                                     # the master's database (default 0)
//!   password: "${REDIS_PASSWORD}"             # the master's password
//! ```
//!
//! The sentinels are asked for the master when the first connection is made and again after
//! any failure, so a failover moves the fleet to the new master. The URL and the password are `${VAR}`-expanded and kept as [`Secret`]s: neither is
//! ever printed; errors name the field only.
//!
//! Without `coordination:` nothing changes: every instance counts on its own.

use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{Checker, Rate, expand_env, parse_rate};
use crate::secret::Secret;

/// The default `fallback_rate`: 2 a minute per instance, so ten instances cut off from Redis
/// together still stay within DingTalk's 20 a minute.
pub const DEFAULT_FALLBACK_RATE: Rate = Rate {
    count: 2,
    per: Duration::from_secs(60),
};

/// The default `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);

/// The default `gather`: what the instances close in one window reaches the stream well within.
pub const DEFAULT_GATHER: Duration = Duration::from_secs(2);

/// The default `lease`.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

/// The default `stream_limit`: entries take about 0.5–1 KB each in Redis (JSON with up to
/// `max_lines` example lines, plus the stream's own overhead), so a robot's stream stays within
/// 5–10 MB however long its sender cannot post; it is also what the sender reads in one turn.
pub const DEFAULT_STREAM_LIMIT: usize = 10_000;

/// The largest `stream_limit` accepted (about 1 GB of Redis memory per robot at worst).
const MAX_STREAM_LIMIT: usize = 1_000_000;

/// The longest `gather` and `lease` accepted: alerts wait this long at most for a sender.
const MAX_DIGEST_WAIT: Duration = Duration::from_secs(300);

/// The longest `timeout` accepted: a dispatcher waits this long before it falls back.
const MAX_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the Redis of a fleet is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server (`redis://`, `rediss://`, `unix://`), or a Valkey.
    Single(Secret),
    /// Redis Cluster: the seed nodes.
    Cluster(Vec<Secret>),
    /// Redis Sentinel: the master named `master`, found through the sentinels.
    Sentinel {
        /// The sentinels' URLs (`redis://host:26379`, `rediss://` for TLS to sentinels and master).
        nodes: Vec<Secret>,
        /// The name the sentinels monitor the master under (`sentinel monitor NAME ...`).
        master: String,
        /// The master's database.
        db: i64,
    },
}

/// `coordination:`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coordination {
    /// The server or cluster.
    pub target: RedisTarget,
    /// `password:`, when not in the URL.
    pub password: Option<Secret>,
    /// Every key starts with `PREFIX:`.
    pub key_prefix: String,
    /// How fast each instance sends on its own while Redis cannot be reached.
    pub fallback_rate: Rate,
    /// A Redis call slower than this counts as Redis being unreachable.
    pub timeout: Duration,
    /// Fleet-wide digests: the instances' alerts of a robot go through one sender in Redis.
    pub digest: bool,
    /// The digest sender waits this long from the oldest entry before sending.
    pub gather: Duration,
    /// The digest sender's lease: another instance takes over after this much silence.
    pub lease: Duration,
    /// The most entries a robot's digest stream holds; past it, instances send their alerts
    /// themselves.
    pub stream_limit: usize,
}

/// `coordination:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCoordination {
    /// `redis://`, `rediss://` or `unix://` URL of one server (`${VAR}` expanded).
    #[serde(default)]
    redis: Option<Spanned<String>>,
    /// Redis Cluster seed nodes, instead of `redis`.
    #[serde(default)]
    cluster: Option<Spanned<Vec<String>>>,
    /// Redis Sentinel: the sentinels' URLs, instead of `redis`.
    #[serde(default)]
    sentinels: Option<Spanned<Vec<String>>>,
    /// Redis Sentinel: the monitored master's name.
    #[serde(default)]
    master_name: Option<Spanned<String>>,
    /// Redis Sentinel: the master's database.
    #[serde(default)]
    db: Option<Spanned<i64>>,
    /// The password, when not in the URL (`${VAR}` expanded).
    #[serde(default)]
    password: Option<Spanned<String>>,
    /// Every key starts with it.
    #[serde(default)]
    key_prefix: Option<Spanned<String>>,
    /// Per instance and robot while Redis cannot be reached.
    #[serde(default)]
    fallback_rate: Option<Spanned<String>>,
    /// A slower Redis answer counts as Redis being away.
    #[serde(default)]
    timeout: Option<Spanned<String>>,
    /// Fleet-wide digests (default true).
    #[serde(default)]
    digest: Option<Spanned<bool>>,
    /// The digest sender waits this long from the oldest entry.
    #[serde(default)]
    gather: Option<Spanned<String>>,
    /// The digest sender's lease.
    #[serde(default)]
    lease: Option<Spanned<String>>,
    /// The most entries a robot's digest stream holds.
    #[serde(default)]
    stream_limit: Option<Spanned<usize>>,
}

/// Checks `coordination:`; `None` when absent or wrong (the problems are in `c`).
pub(super) fn check_coordination(
    c: &mut Checker,
    raw: Option<&Spanned<RawCoordination>>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<Coordination> {
    let raw = raw?;
    let r = &raw.value;
    let ctx = |f: &str| format!("coordination, field '{f}'");
    let url = |text: &str| {
        let u = expand_env(text, env)?;
        check_url(u.trim())?;
        Ok::<_, String>(Secret::new(u.trim()))
    };
    let nodes_of = |c: &mut Checker, nodes: &Spanned<Vec<String>>, field: &str| {
        if nodes.value.is_empty() {
            c.problem(nodes, ctx(field), "lists no node");
            return None;
        }
        let checked: Vec<Option<Secret>> = (nodes.value.iter().enumerate())
            .map(|(i, n)| {
                url(n)
                    .map_err(|e| c.problem(nodes, ctx(field), format!("node {}: {e}", i + 1)))
                    .ok()
            })
            .collect();
        checked.into_iter().collect::<Option<Vec<_>>>()
    };
    let given: Vec<&str> = [
        r.redis.as_ref().map(|_| "redis"),
        r.cluster.as_ref().map(|_| "cluster"),
        r.sentinels.as_ref().map(|_| "sentinels"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if r.sentinels.is_none() {
        let why = "is for Redis Sentinel: give `sentinels:` too";
        if let Some(m) = &r.master_name {
            c.problem(m, ctx("master_name"), why);
        }
        if let Some(d) = &r.db {
            c.problem(d, ctx("db"), why);
        }
    }
    let target = if given.len() > 1 {
        c.problem(
            raw,
            "coordination",
            format!(
                "give one of `redis`, `cluster` or `sentinels`, not {}",
                given.join(" and ")
            ),
        );
        None
    } else if let Some(u) = &r.redis {
        match url(&u.value) {
            Ok(url) => Some(RedisTarget::Single(url)),
            Err(e) => {
                c.problem(u, ctx("redis"), e);
                None
            }
        }
    } else if let Some(nodes) = &r.cluster {
        nodes_of(c, nodes, "cluster").map(RedisTarget::Cluster)
    } else if let Some(nodes) = &r.sentinels {
        let nodes = nodes_of(c, nodes, "sentinels");
        let master = match &r.master_name {
            None => {
                c.problem(
                    raw,
                    ctx("master_name"),
                    "is needed with `sentinels:`: the name the sentinels monitor the master under",
                );
                None
            }
            Some(m) if m.value.trim().is_empty() || m.value.chars().any(char::is_whitespace) => {
                c.problem(
                    m,
                    ctx("master_name"),
                    "must be one word (the name in `sentinel monitor NAME ...`)",
                );
                None
            }
            Some(m) => Some(m.value.clone()),
        };
        let db = match &r.db {
            None => Some(0),
            Some(d) if d.value < 0 => {
                c.problem(d, ctx("db"), "must be 0 or more");
                None
            }
            Some(d) => Some(d.value),
        };
        match (nodes, master, db) {
            (Some(nodes), Some(master), Some(db)) => {
                Some(RedisTarget::Sentinel { nodes, master, db })
            }
            _ => None,
        }
    } else {
        c.problem(
            raw,
            "coordination",
            "needs `redis: \"redis://host:6379/0\"` (or `cluster:` with the nodes, or `sentinels:` with `master_name:`)",
        );
        None
    };
    let password = r
        .password
        .as_ref()
        .and_then(|p| match expand_env(&p.value, env) {
            Ok(v) => Some(Secret::new(v)),
            Err(e) => {
                c.problem(p, ctx("password"), e);
                None
            }
        });
    let key_prefix = match &r.key_prefix {
        None => "dingtail".to_owned(),
        Some(p) => {
            let ok = !p.value.is_empty()
                && p.value.len() <= 64
                && (p.value.chars()).all(|ch| ch.is_ascii_alphanumeric() || "-_.:".contains(ch));
            if !ok {
                c.problem(
                    p,
                    ctx("key_prefix"),
                    "1 to 64 letters, digits, '-', '_', '.' or ':' (no braces: they are the hash tags)",
                );
            }
            p.value.clone()
        }
    };
    let fallback_rate = match &r.fallback_rate {
        None => DEFAULT_FALLBACK_RATE,
        Some(f) => parse_rate(&f.value).unwrap_or_else(|e| {
            c.problem(f, ctx("fallback_rate"), e);
            DEFAULT_FALLBACK_RATE
        }),
    };
    let timeout = match &r.timeout {
        None => DEFAULT_TIMEOUT,
        Some(t) => c
            .duration(t, &ctx("timeout"), MAX_TIMEOUT)
            .unwrap_or(DEFAULT_TIMEOUT),
    };
    let gather = match &r.gather {
        None => DEFAULT_GATHER,
        Some(t) => c
            .duration(t, &ctx("gather"), MAX_DIGEST_WAIT)
            .unwrap_or(DEFAULT_GATHER),
    };
    let lease = match &r.lease {
        None => DEFAULT_LEASE,
        Some(t) => c
            .duration(t, &ctx("lease"), MAX_DIGEST_WAIT)
            .unwrap_or(DEFAULT_LEASE),
    };
    let stream_limit = match &r.stream_limit {
        None => DEFAULT_STREAM_LIMIT,
        Some(n) if n.value == 0 || n.value > MAX_STREAM_LIMIT => {
            c.problem(
                n,
                ctx("stream_limit"),
                format!("must be between 1 and {MAX_STREAM_LIMIT} (entries of about 0.5–1 KB)"),
            );
            DEFAULT_STREAM_LIMIT
        }
        Some(n) => n.value,
    };
    Some(Coordination {
        target: target?,
        password,
        key_prefix,
        fallback_rate,
        timeout,
        digest: r.digest.as_ref().is_none_or(|d| d.value),
        gather,
        lease,
        stream_limit,
    })
}

/// A URL the Redis client understands. The error never quotes it: it may hold a password.
fn check_url(url: &str) -> Result<(), String> {
    let scheme = url.split_once("://").map(|(s, _)| s);
    match scheme {
        Some("redis" | "rediss" | "valkey" | "valkeys" | "unix" | "redis+unix") => {}
        _ => {
            return Err(
                "must start with redis://, rediss:// (TLS) or unix:// (the value is not shown: it may hold a password)"
                    .to_owned(),
            );
        }
    }
    redis::IntoConnectionInfo::into_connection_info(url)
        .map(|_| ())
        .map_err(|e| format!("is not a Redis URL the client accepts ({:?})", e.kind()))
}

#[cfg(test)]
mod tests {
    use super::check_url;

    #[test]
    fn urls_are_checked_without_being_quoted() {
        assert!(check_url("redis://127.0.0.1:6379/0").is_ok());
        assert!(check_url("rediss://:pw@redis.example:6380/1").is_ok());
        assert!(check_url("unix:///run/redis.sock").is_ok());
        let e = check_url("http://user:hunter2@host").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        let e = check_url("redis://:hunter2@host:notaport").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
