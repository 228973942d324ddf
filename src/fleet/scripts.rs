//! The Lua scripts that make each shared limit one atomic step in Redis, on Redis's own clock.
//!
//! Every script touches the keys of one robot (`PREFIX:{robot}:…`) or the ledger
//! (`PREFIX:{budget}:MONTH`) only, so under Redis Cluster each runs on one slot. Times are
//! milliseconds from Redis's `TIME`, never a host's clock: hosts disagree, Redis is one.

use std::sync::LazyLock;

use redis::Script;

/// May a robot send now? The sliding log of "at most N in any window" as a sorted set of sends,
/// each scored with when its answer came back (an attempt still in flight counts as answered at
/// start + the request timeout, until [`DONE`] rewrites it), and the throttle pause as a key
/// with a TTL.
///
/// `KEYS`: sent, pause. `ARGV`: limit, window ms, member, flight ms.
/// Returns `{1, now}` (granted, counted), `{0, ms}` (the window is full: ask again in ms) or
/// `{2, ms}` (the robot is paused for ms).
pub static SLOT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local paused = redis.call('PTTL', KEYS[2])
if paused > 0 then return {2, paused} end
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local flight = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
if n >= limit then
  local nth = redis.call('ZRANGE', KEYS[1], n - limit, n - limit, 'WITHSCORES')
  return {0, tonumber(nth[2]) + window - now + 1}
end
redis.call('ZADD', KEYS[1], now + flight, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window + flight + 1000)
return {1, now}
",
    )
});

/// The answer to a send came back: its place in the log moves to now (earlier than the
/// pessimistic start + flight it was given).
///
/// `KEYS`: sent. `ARGV`: member.
pub static DONE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZADD', KEYS[1], 'XX', 'CH', now, ARGV[1])
",
    )
});

/// DingTalk said "too fast" (130101/410100): nobody sends to the robot for ms (an existing
/// longer pause stays). Returns the pause left, ms.
///
/// `KEYS`: pause. `ARGV`: ms.
pub static PAUSE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return redis.call('PTTL', KEYS[1])
",
    )
});

/// Counts a message in the month's ledger if all robots together are below the organisation's
/// limit and this robot below its own (`Budget::limits`: the pacing rule as two numbers), and
/// the robot is not marked spent.
///
/// `KEYS`: ledger. `ARGV`: robot, org limit, own limit (-1: none), TTL s.
/// Returns `{taken 0|1, total, robot's, spent 0|1}`.
pub static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local total = tonumber(redis.call('HGET', KEYS[1], 'total') or '0')
local mine = tonumber(redis.call('HGET', KEYS[1], 'robot:' .. ARGV[1]) or '0')
if redis.call('HEXISTS', KEYS[1], 'spent:' .. ARGV[1]) == 1 then return {0, total, mine, 1} end
local own = tonumber(ARGV[3])
if total < tonumber(ARGV[2]) and (own < 0 or mine < own) then
  total = redis.call('HINCRBY', KEYS[1], 'total', 1)
  mine = redis.call('HINCRBY', KEYS[1], 'robot:' .. ARGV[1], 1)
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  return {1, total, mine, 0}
end
return {0, total, mine, 0}
",
    )
});

/// Adds `delta` messages to the ledger (a refund: -1; counts made while Redis was away: +N),
/// never below zero. Returns `{total, robot's}`.
///
/// `KEYS`: ledger. `ARGV`: robot, delta, TTL s.
pub static ADD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local function add(field)
  local v = redis.call('HINCRBY', KEYS[1], field, ARGV[2])
  if v < 0 then redis.call('HSET', KEYS[1], field, 0); v = 0 end
  return v
end
local total = add('total')
local mine = add('robot:' .. ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {total, mine}
",
    )
});

/// DingTalk said the robot's quota is used up: no instance sends to it this month.
///
/// `KEYS`: ledger. `ARGV`: robot, why, TTL s.
pub static SPENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('HSET', KEYS[1], 'spent:' .. ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
",
    )
});

/// Appends closed alerts to a robot's digest stream, all or none, unless that would take it
/// past its limit (`stream_limit`: the sender cannot post for long, and Redis's memory must not
/// grow without bound). Each entry carries the appending instance and the append's number, so
/// that the instance can take its entries back ([`WITHDRAW`]).
///
/// `KEYS`: stream. `ARGV`: limit, instance, append number, then the entries (JSON).
/// Returns `{'ok', id…}`, or `{'full', length}` when the entries do not fit.
pub static APPEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local len = redis.call('XLEN', KEYS[1])
if len + #ARGV - 3 > tonumber(ARGV[1]) then return {'full', tostring(len)} end
local out = {'ok'}
for i = 4, #ARGV do
  out[#out + 1] = redis.call('XADD', KEYS[1], '*', 'e', ARGV[i], 'i', ARGV[2], 'n', ARGV[3])
end
return out
",
    )
});

/// Takes an instance's entries back out of the stream (those of one append, or all of them),
/// except those of the batch being posted: after an append whose answer was lost (the instance
/// sent the alerts itself meanwhile), and at the end of input when the budget is spent (the
/// instance reports them as not delivered). Returns the entries taken (JSON).
///
/// `KEYS`: stream, batch. `ARGV`: instance, append number (empty: any).
pub static WITHDRAW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local busy = {}
local ids = redis.call('HGET', KEYS[2], 'ids')
if ids then for _, id in ipairs(cjson.decode(ids)) do busy[id] = true end end
local out = {}
for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
  local f, v = e[2], {}
  for i = 1, #f, 2 do v[f[i]] = f[i + 1] end
  if v['i'] == ARGV[1] and (ARGV[2] == '' or v['n'] == ARGV[2]) and not busy[e[1]] then
    redis.call('XDEL', KEYS[1], e[1])
    out[#out + 1] = v['e']
  end
end
return out
",
    )
});

/// Takes or renews a robot's sender lease: granted when free or already this instance's.
///
/// `KEYS`: lease. `ARGV`: token, ttl ms. Returns 1 (held) or 0.
pub static LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]); return 1 end
if not cur then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]); return 1 end
return 0
",
    )
});

/// Gives a lease up, if still this instance's. `KEYS`: lease. `ARGV`: token.
pub static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
",
    )
});

/// What the sender finds: Redis's time, the batch begun and not acknowledged (its msgUuid and
/// entry ids, as JSON, or empty strings), then the oldest entries as id, JSON, id, JSON…
///
/// `KEYS`: stream, batch. `ARGV`: count.
pub static READ: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[2], 'uuid', 'ids')
local out = {now, b[1] or '', b[2] or ''}
for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', ARGV[1])) do
  local f = e[2]
  for i = 1, #f, 2 do
    if f[i] == 'e' then out[#out + 1] = e[1]; out[#out + 1] = f[i + 1] end
  end
end
return out
",
    )
});

/// Records a batch before it is posted (its msgUuid and entry ids), if this instance still
/// holds the lease and every entry is still in the stream (an instance may have taken its own
/// back meanwhile: the batch is then planned again).
///
/// `KEYS`: lease, batch, stream. `ARGV`: token, uuid, ids JSON. Returns 1, 0 (lease lost) or
/// -1 (an entry is gone).
pub static BEGIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[2], 'uuid') ~= ARGV[2] then
  for _, id in ipairs(cjson.decode(ARGV[3])) do
    if #redis.call('XRANGE', KEYS[3], id, id) == 0 then return -1 end
  end
end
redis.call('HSET', KEYS[2], 'uuid', ARGV[2], 'ids', ARGV[3])
return 1
",
    )
});

/// The batch was posted (errcode 0): its entries go, and the record. Only the batch recorded
/// under this msgUuid is acknowledged (a sender whose lease lapsed may finish late).
///
/// `KEYS`: stream, batch. `ARGV`: uuid, then the ids. Returns the entries deleted, or -1.
pub static ACK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HGET', KEYS[2], 'uuid') ~= ARGV[1] then return -1 end
redis.call('DEL', KEYS[2])
local n = 0
for i = 2, #ARGV do n = n + redis.call('XDEL', KEYS[1], ARGV[i]) end
return n
",
    )
});

/// DingTalk certainly did not post the batch: its record goes (the entries stay, for a new
/// batch under a new msgUuid). `KEYS`: batch. `ARGV`: uuid.
pub static DROP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HGET', KEYS[1], 'uuid') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
",
    )
});
