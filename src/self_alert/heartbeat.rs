//! `heartbeat.json` in the state directory: when dingtail was last alive, whether it stopped
//! cleanly, and which month's low budget it already told.

use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::text::unix;

/// The file in the state directory.
pub const HEARTBEAT_FILE: &str = "heartbeat.json";

/// What `heartbeat.json` holds.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Heartbeat {
    /// Last time dingtail was seen running (Unix seconds).
    pub alive_at: u64,
    /// When it stopped cleanly (Unix seconds), if it did.
    #[serde(default)]
    pub stopped_at: Option<u64>,
    /// The month (`2026-11`) whose low budget was already told.
    #[serde(default)]
    pub budget_told: Option<String>,
}

impl Heartbeat {
    /// Reads the heartbeat in `dir` (`None`: none, or unreadable: then nothing is known).
    pub fn read(dir: &Path) -> Option<Heartbeat> {
        let text = std::fs::read(dir.join(HEARTBEAT_FILE)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Writes it atomically (a temporary file renamed over the old one).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let tmp = dir.join(format!("{HEARTBEAT_FILE}.tmp"));
        std::fs::write(
            &tmp,
            serde_json::to_vec(self).expect("plain data serializes"),
        )?;
        std::fs::rename(tmp, dir.join(HEARTBEAT_FILE))
    }
}

/// Marks a clean stop in `dir`'s heartbeat (at the end of a run), keeping what it knew.
pub fn write_stopped(dir: &Path) {
    let mut h = Heartbeat::read(dir).unwrap_or_default();
    let now = unix(SystemTime::now());
    h.alive_at = now;
    h.stopped_at = Some(now);
    if let Err(e) = h.write(dir) {
        tracing::warn!(dir = %dir.display(), "cannot write {HEARTBEAT_FILE}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heartbeat_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Heartbeat::read(dir.path()), None);
        let h = Heartbeat {
            alive_at: 5,
            stopped_at: None,
            budget_told: Some("2026-11".into()),
        };
        h.write(dir.path()).unwrap();
        assert_eq!(Heartbeat::read(dir.path()), Some(h));
        write_stopped(dir.path());
        let after = Heartbeat::read(dir.path()).unwrap();
        assert_eq!(after.stopped_at, Some(after.alive_at));
        assert_eq!(after.budget_told.as_deref(), Some("2026-11"));
    }
}
