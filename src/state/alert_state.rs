//! `alerts.json` in the state directory: the alert state ([`AlertSnapshot`]) between runs.
//!
//! Beside the checkpoint file, not inside it, because stdin runs have alert state but no
//! checkpoints, and the two are written by different stages. They stay consistent by order:
//! the checkpoint only moves past a hit once the hit is settled — delivered, or (at a stop) saved
//! here first: the aggregator writes its final snapshot and waits for the write before it lets go
//! of the checkpoint holds of the hits the snapshot carries over (see `app::aggregate`). A crash
//! in between re-reads those lines (a duplicate after a crash, never a loss).
//!
//! While running, a snapshot is written at most once a second when it changed, so after a
//! SIGKILL the next run still knows what was cooling down (as of a second before) and which
//! alerts await "recovered".
//!
//! Written like the other state files ([`JsonFile`]: atomically, keeping `alerts.json.prev` as
//! the last good copy; a file that cannot be parsed is moved to `alerts.json.corrupt` with one
//! warning and the last good copy is used; a file of another format version is one warning and
//! a fresh start) by a [`StateWriter`] that skips a periodic snapshot equal to the last one
//! written. Alert state never stops dingtail from starting: the worst a lost state does is one
//! repeated alert or one "recovered" not sent.

use std::time::Duration;

use super::json_file::{JsonFile, JsonState};
use super::snapshot::{AlertSnapshot, VERSION};
use super::writer::StateWriter;

/// The file's name in the state directory.
pub const ALERTS_FILE: &str = "alerts.json";

/// How often the state is written while it changes.
pub const SAVE_EVERY: Duration = Duration::from_secs(1);

impl JsonState for AlertSnapshot {
    const FILE: &'static str = ALERTS_FILE;
    const WHAT: &'static str = "the alert state";
    const FRESH: &'static str = "alert state starts fresh";
    const VERSION: u32 = VERSION;
    // The time it was taken aside: a snapshot of the same rule states is not written again.
    const UNCHANGED: Option<fn(&Self, &Self) -> bool> =
        Some(|s, last| s.rules == last.rules && s.version == last.version);

    fn version(&self) -> u32 {
        self.version
    }
}

/// `alerts.json` in a state directory (which the caller has locked for this instance).
pub type AlertStore = JsonFile<AlertSnapshot>;

/// The aggregator's handle on the writer task of `alerts.json` (`AlertSaver::spawn(store)`):
/// a periodic snapshot is offered, written unless the writer is busy or nothing changed; the
/// final one is written and waited for.
pub type AlertSaver = StateWriter<AlertSnapshot>;

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::state::snapshot::{GroupState, RuleState};

    fn snap() -> AlertSnapshot {
        let mut s = AlertSnapshot::new(SystemTime::UNIX_EPOCH);
        s.rules.insert(
            "err".into(),
            RuleState {
                shape: "hits".into(),
                groups: [(
                    String::new(),
                    GroupState {
                        alerted: true,
                        ..GroupState::default()
                    },
                )]
                .into(),
                ..RuleState::default()
            },
        );
        s
    }

    #[test]
    fn a_corrupt_file_is_kept_aside_and_the_last_good_copy_used() {
        let dir = tempfile::tempdir().unwrap();
        let store = AlertStore::new(dir.path());
        assert_eq!(store.load(), None);
        store.save(&snap()).unwrap();
        store.save(&snap()).unwrap();
        std::fs::write(store.path(), "{\"version\":1,").unwrap();
        assert_eq!(store.load(), Some(snap()));
        assert!(store.corrupt_path().exists());
    }

    #[test]
    fn another_format_version_starts_fresh_without_moving_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = AlertStore::new(dir.path());
        std::fs::write(
            store.path(),
            r#"{"version":99,"saved_at":"2027-01-15T08:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(store.load(), None);
        assert!(store.path().exists());
    }
}
