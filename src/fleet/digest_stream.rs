//! A robot's fleet-wide digest in Redis: the stream every instance appends its closed alerts to,
//! the lease that makes one instance at a time its sender, and the record of the batch being
//! posted (its msgUuid and entry ids), so that a sender taking over after a crash posts the same
//! batch under the same msgUuid and DingTalk shows it once.
//!
//! Keys (one hash tag per robot, so one Cluster slot): `PREFIX:{ROBOT}:digest` (stream, field
//! `e`: a [`FleetEntry`] as JSON; `i` and `n`: the instance that appended it and the append's
//! number), `PREFIX:{ROBOT}:lease` (the sender's token, with a TTL),
//! `PREFIX:{ROBOT}:batch` (hash `uuid`, `ids`).
//!
//! Every call answers `None` when Redis is away (see [`Coordinator`]): the caller then keeps
//! its alerts and sends them itself. An append whose answer was lost may still have reached
//! the stream: its entries carry the instance and the append's number, and the instance takes
//! them back out first thing when Redis answers again ([`DigestStream::withdraw_when_back`]),
//! so an alert is posted by the fleet or by its instance, not by both.
//!
//! The stream is bounded (`stream_limit`, 10,000 entries by default, about 0.5–1 KB each): when
//! the sender cannot post for long (robot blocked or broken, DingTalk down, budget spent), an
//! append that would go past it is refused whole, and the instance keeps those alerts and sends
//! them through its own path (shared window and budget), merging them while it waits; their
//! checkpoint holds stay until they are delivered, so nothing is lost and Redis stays bounded.

use std::time::Duration;

use super::fleet_entry::FleetEntry;
use super::{Coordinator, Doubt, scripts};

/// How the fleet digest is timed and bounded (`coordination: { lease, gather, stream_limit }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestTiming {
    /// The sender's lease: another instance takes over this long after the sender's last turn.
    pub lease: Duration,
    /// How long the sender waits from the oldest entry before sending, so that what the other
    /// instances closed in the same window goes into the same message.
    pub gather: Duration,
    /// The most entries a robot's stream holds: past it, instances keep their alerts and send
    /// them themselves (see [`Appended::Full`]).
    pub limit: usize,
}

/// What became of an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// In the stream, with these ids.
    Ids(Vec<String>),
    /// Refused: the stream holds this many entries, and these would take it past its limit.
    Full(u64),
}

/// Entries read (and merged) at most per turn: with the robot's 20 messages a minute, the fleet
/// drains at most 20 × this many entries a minute (see the README's sizing).
pub const READ_COUNT: usize = 10_000;

/// What the sender found in the stream.
#[derive(Debug, Default)]
pub struct Found {
    /// Redis's clock, ms.
    pub now_ms: u64,
    /// A batch begun and not acknowledged: its msgUuid and entry ids.
    pub begun: Option<(String, Vec<String>)>,
    /// The oldest entries, in order (an entry that does not parse is logged and skipped over,
    /// its id kept so it is removed with the next batch).
    pub entries: Vec<(String, FleetEntry)>,
    /// Ids of entries that could not be read (written by another version?).
    pub unreadable: Vec<String>,
}

/// The ms part of a stream id (`1700000000000-3`): when Redis appended it.
pub fn id_ms(id: &str) -> u64 {
    id.split('-')
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
}

/// One robot's digest stream, lease and batch record.
pub struct DigestStream {
    coord: Coordinator,
    stream: String,
    lease: String,
    batch: String,
    /// This instance's lease token.
    token: String,
}

impl DigestStream {
    pub(super) fn new(coord: Coordinator, robot: &str) -> DigestStream {
        DigestStream {
            stream: coord.key(robot, "digest"),
            lease: coord.key(robot, "lease"),
            batch: coord.key(robot, "batch"),
            token: coord.0.instance.clone(),
            coord,
        }
    }

    /// This instance's name in the lease (`host:pid:random`).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Appends entries (all or none) as append number `seq` of this instance, unless the
    /// stream would grow past `limit`. `None`: Redis did not answer, so whether they are in is
    /// not known ([`DigestStream::withdraw_when_back`]).
    pub async fn append(&self, entries: &[FleetEntry], seq: u64, limit: usize) -> Option<Appended> {
        let mut inv = scripts::APPEND.prepare_invoke();
        inv.key(&self.stream).arg(limit).arg(&self.token).arg(seq);
        for e in entries {
            inv.arg(serde_json::to_string(e).expect("an entry is JSON"));
        }
        let mut answer: Vec<String> = self.coord.script(inv).await?;
        match answer.first().map(String::as_str) {
            Some("ok") => Some(Appended::Ids(answer.split_off(1))),
            Some("full") => Some(Appended::Full(
                answer.get(1).and_then(|n| n.parse().ok()).unwrap_or(0),
            )),
            _ => None,
        }
    }

    /// A new append number of this instance.
    pub fn next_seq(&self) -> u64 {
        self.coord
            .0
            .sequence
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Append `seq` got no answer and its alerts are sent by this instance: when Redis answers
    /// again, before anything else, whatever of it reached the stream is taken back out, so
    /// the fleet does not post it a second time.
    pub fn withdraw_when_back(&self, seq: u64) {
        self.coord.doubt(Doubt {
            stream: self.stream.clone(),
            batch: self.batch.clone(),
            token: self.token.clone(),
            seq,
        });
    }

    /// Takes this instance's entries not in the batch being posted back out of the stream (at
    /// the end of input, when they cannot be posted); the alerts they held.
    pub async fn withdraw_mine(&self) -> Option<Vec<FleetEntry>> {
        let mut inv = scripts::WITHDRAW.prepare_invoke();
        inv.key(&self.stream)
            .key(&self.batch)
            .arg(&self.token)
            .arg("");
        let raw: Vec<String> = self.coord.script(inv).await?;
        Some(
            raw.iter()
                .filter_map(|json| serde_json::from_str(json).ok())
                .collect(),
        )
    }

    /// Takes or renews the sender's lease for `ttl`: `Some(true)` while this instance holds it.
    pub async fn lease(&self, ttl: Duration) -> Option<bool> {
        let mut inv = scripts::LEASE.prepare_invoke();
        inv.key(&self.lease)
            .arg(&self.token)
            .arg(ttl.as_millis().max(1) as u64);
        self.coord.script::<i64>(inv).await.map(|v| v == 1)
    }

    /// Gives the lease up (at exit), so another instance takes over at once.
    pub async fn release(&self) {
        let mut inv = scripts::RELEASE.prepare_invoke();
        inv.key(&self.lease).arg(&self.token);
        let _: Option<i64> = self.coord.script(inv).await;
    }

    /// Reads the oldest entries and the batch begun, if any.
    pub async fn read(&self) -> Option<Found> {
        let mut inv = scripts::READ.prepare_invoke();
        inv.key(&self.stream).key(&self.batch).arg(READ_COUNT);
        let raw: Vec<String> = self.coord.script(inv).await?;
        let mut it = raw.into_iter();
        let now_ms = it.next()?.parse().ok()?;
        let (uuid, ids) = (it.next()?, it.next()?);
        let begun = (!uuid.is_empty()).then(|| {
            let ids: Vec<String> = serde_json::from_str(&ids).unwrap_or_default();
            (uuid, ids)
        });
        let mut found = Found {
            now_ms,
            begun,
            ..Found::default()
        };
        while let (Some(id), Some(json)) = (it.next(), it.next()) {
            match serde_json::from_str::<FleetEntry>(&json) {
                Ok(e) => found.entries.push((id, e)),
                Err(e) => {
                    tracing::warn!(%id, "coordination: a digest entry cannot be read ({e}); it is removed");
                    found.unreadable.push(id);
                }
            }
        }
        Some(found)
    }

    /// Records the batch about to be posted; `Some(false)` when the lease was lost meanwhile
    /// or an entry was taken back (plan again).
    pub async fn begin(&self, uuid: &str, ids: &[String]) -> Option<bool> {
        let mut inv = scripts::BEGIN.prepare_invoke();
        inv.key(&self.lease)
            .key(&self.batch)
            .key(&self.stream)
            .arg(&self.token)
            .arg(uuid)
            .arg(serde_json::to_string(ids).expect("ids are JSON"));
        self.coord.script::<i64>(inv).await.map(|v| v == 1)
    }

    /// The batch was posted: removes its entries and its record. `Some(false)`: another sender
    /// had taken the batch over (it acknowledges it).
    pub async fn ack(&self, uuid: &str, ids: &[String]) -> Option<bool> {
        let mut inv = scripts::ACK.prepare_invoke();
        inv.key(&self.stream).key(&self.batch).arg(uuid);
        for id in ids {
            inv.arg(id);
        }
        self.coord.script::<i64>(inv).await.map(|n| n >= 0)
    }

    /// The batch was certainly not posted: forgets its msgUuid (its entries stay).
    pub async fn drop_batch(&self, uuid: &str) {
        let mut inv = scripts::DROP.prepare_invoke();
        inv.key(&self.batch).arg(uuid);
        let _: Option<i64> = self.coord.script(inv).await;
    }

    /// Whether an entry appended at or before `id` is still in the stream.
    pub async fn holds_up_to(&self, id: &str) -> Option<bool> {
        let first: Vec<redis::Value> = self
            .coord
            .call(
                redis::cmd("XRANGE")
                    .arg(&self.stream)
                    .arg("-")
                    .arg(id)
                    .arg("COUNT")
                    .arg(1),
            )
            .await?;
        Some(!first.is_empty())
    }
}
