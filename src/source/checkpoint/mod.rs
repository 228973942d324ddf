//! Where dingtail stopped in each followed file: one state file, and the task that keeps it.
//!
//! The promise is "at least once, never lost": a file's checkpoint moves past a line only once
//! that line can no longer cause a lost alert. A line is safe when the aggregator has counted the
//! chunk it came in and either it matched nothing, or every alert counting it is *settled*
//! (delivered, or reported undelivered at exit). So the keeper learns two things:
//!
//! - from the aggregator, for every chunk of a followed file, [`PositionUpdate::Progress`]: the chunk is
//!   counted, and how many alerts now hold its start ([`Routed::holds`](crate::aggregate::Routed::holds));
//! - from the dispatchers, the holds of every alert they settle.
//!
//! A file's safe offset is the start of the earliest chunk still held, else the end of the last
//! chunk counted. The two arrive on different channels, so a release may be seen before its
//! registration: counts are signed and only a positive count holds.
//!
//! Both channels are unbounded because the keeper must never slow the pipeline down, and they
//! cannot grow without bound: the keeper does nothing but bookkeeping in memory (the file write
//! runs on a blocking thread), at most one `Progress` exists per chunk (≤ 256 KiB of input), and
//! at most one settle message per message sent or reported.
//!
//! ## Why a ledger, not snapshots
//!
//! Two designs give "no line lost": this ledger (Vector's ordered finalizer: positions are
//! registered when counted and released when delivered, and one owner computes each file's safe
//! offset), or snapshots (read offsets and the whole alert state written together, Flink-style).
//! We keep the ledger because the alert state it would have to snapshot includes what each
//! dispatcher holds in flight (merged pending alerts, a message being retried with its
//! `msgUuid`): snapshotting that consistently means stopping every stage at a barrier, and a
//! restored in-flight message can still be sent twice. The ledger needs none of that: it only
//! ever makes the checkpoint *later*, so its failure mode is a re-read (a duplicate after
//! SIGKILL), never a skip. Its memory is bounded by merging: an alert holds at most one position
//! per file (the earliest), and merged alerts release the later ones at once.
//!
//! ## Files by identity
//!
//! Entries are per file, not per path: a file rotated away stays in the state file (under the
//! path it was followed at, with its device, inode and fingerprint) until everything it holds is
//! settled, so a restart finds it among the files of its directory and reads it to its end
//! (see `source::tail`). The state also records the patterns followed, so a file that a followed
//! pattern gained while dingtail was stopped is read from its first byte.
//!
//! ## The state directory
//!
//! It is locked (`flock` on `lock`) by the instance that uses it; a second instance gets
//! [`StoreError::Locked`]. It is probed for writing at start ([`StoreError::Unwritable`]), so a
//! read-only mount fails at once instead of silently never moving the checkpoint.
//!
//! The state file is JSON, written at most once a second when something moved, and once more at
//! the end, atomically ([`crate::state::atomic`]): write a temporary file, fsync it, move the
//! current file to `checkpoints.json.prev` (the last good copy), rename the temporary over it,
//! fsync the directory. A crash leaves the old or the new file, never a mix; a file that cannot be parsed
//! (a disk error, a hand edit) is moved aside to `checkpoints.json.corrupt` with a warning and
//! the last good copy is used: never a crash loop under a supervisor.
//!
//! The parts: `identity.rs` (what makes a file the same file), `state_file.rs` (the file's
//! format, the state directory, loading and recovery), `ledger.rs` (the safe offset of each
//! file), `positions.rs` (what the metrics read), `keeper.rs` (the task that writes the file).

mod identity;
mod keeper;
mod ledger;
mod positions;
mod state_file;

pub use identity::{FINGERPRINT_BYTES, Identity, compressed, compressed_file};
pub use keeper::keep;
pub use ledger::{Keeper, PositionUpdate};
pub use positions::{Position, Positions};
pub use state_file::{
    CORRUPT_FILE, Entry, LOCK_FILE, PREV_FILE, STATE_FILE, Saved, Store, StoreError, state_dir,
};

#[cfg(test)]
mod tests;
