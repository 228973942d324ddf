//! `new_patterns.json` in the state directory: the templates `new_patterns:` remembers
//! ([`TemplateMemory`]) between runs, so a restart does not announce every known error again.
//!
//! Its own file, beside `alerts.json`, because it has its own life: it changes when a new
//! template is seen (or a known one is seen a minute later than last saved), and can hold
//! thousands of entries a snapshot of the alert state does not need. Written like the other
//! state files ([`JsonFile`]: atomically, keeping `new_patterns.json.prev` as the last good
//! copy) by a [`StateWriter`], at most once a second while it changes (the memory's generation
//! says whether it did) and once at the stop. A file that cannot be parsed is
//! moved to `new_patterns.json.corrupt` with one warning and the last good copy is used; a file
//! of another format version is one warning and a fresh start (every template is new once
//! more). It never stops dingtail from starting.

use std::io;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::memory::{Remembered, TemplateMemory};
use crate::state::json_file::{JsonFile, JsonState};
use crate::state::writer::StateWriter;

/// The file's name in the state directory.
pub const TEMPLATES_FILE: &str = "new_patterns.json";

/// The format version this dingtail writes.
pub const VERSION: u32 = 1;

/// The file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateFile {
    /// Format version ([`VERSION`]).
    pub version: u32,
    /// When it was written (Unix seconds).
    pub saved_at: u64,
    /// Every template remembered, sorted by template.
    pub templates: Vec<Remembered>,
}

impl TemplateFile {
    /// What `memory` holds, as of `now`.
    pub fn of(memory: &TemplateMemory, now: SystemTime) -> TemplateFile {
        TemplateFile {
            version: VERSION,
            saved_at: super::memory::unix_secs(now),
            templates: memory.export(),
        }
    }
}

impl JsonState for TemplateFile {
    const FILE: &'static str = TEMPLATES_FILE;
    const WHAT: &'static str = "the new-pattern memory";
    const FRESH: &'static str = "every template is new once more";
    const VERSION: u32 = VERSION;

    fn version(&self) -> u32 {
        self.version
    }
}

/// `new_patterns.json` in a state directory (which the caller has locked for this instance).
pub type TemplateStore = JsonFile<TemplateFile>;

/// The aggregator task's handle on the writer task ([`TemplateSaver::spawn`]).
#[derive(Debug)]
pub struct TemplateSaver {
    writer: StateWriter<TemplateFile>,
    /// The memory's generation last offered: an unchanged memory is not offered again.
    offered: Option<u64>,
}

impl TemplateSaver {
    /// Starts the writer task for `store`.
    pub fn spawn(store: TemplateStore) -> TemplateSaver {
        TemplateSaver {
            writer: StateWriter::spawn(store),
            offered: None,
        }
    }

    /// Offers the memory as of `now` (call it at most once a second): written when it changed
    /// since the last offer taken, unless the writer is busy (the next offer carries it).
    pub fn offer(&mut self, memory: &mut TemplateMemory, now: SystemTime) {
        memory.prune(now);
        if self.offered == Some(memory.generation()) {
            return;
        }
        if self.writer.offer(TemplateFile::of(memory, now)) {
            self.offered = Some(memory.generation());
        }
    }

    /// Writes the memory a last time and waits for the writer to finish.
    pub async fn finish(self, memory: &mut TemplateMemory, now: SystemTime) -> io::Result<()> {
        memory.prune(now);
        self.writer.finish(TemplateFile::of(memory, now)).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn memory() -> TemplateMemory {
        let mut m = TemplateMemory::new(100, Duration::from_secs(86_400));
        m.see("ERROR db <IP> timeout", SystemTime::now());
        m
    }

    #[test]
    fn a_saved_memory_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = TemplateStore::new(dir.path());
        assert_eq!(store.load(), None);
        let file = TemplateFile::of(&memory(), SystemTime::now());
        store.save(&file).unwrap();
        assert_eq!(store.load(), Some(file));
    }

    #[test]
    fn a_corrupt_file_is_kept_aside_and_the_last_good_copy_used() {
        let dir = tempfile::tempdir().unwrap();
        let store = TemplateStore::new(dir.path());
        let file = TemplateFile::of(&memory(), SystemTime::now());
        store.save(&file).unwrap();
        store.save(&file).unwrap();
        std::fs::write(store.path(), "{\"version\":1,\"templates\":[{").unwrap();
        assert_eq!(store.load(), Some(file));
        assert!(store.corrupt_path().exists());
        assert!(!store.path().exists());
    }

    #[test]
    fn another_format_version_starts_fresh_without_moving_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = TemplateStore::new(dir.path());
        std::fs::write(
            store.path(),
            r#"{"version":99,"saved_at":0,"templates":[]}"#,
        )
        .unwrap();
        assert_eq!(store.load(), None);
        assert!(store.path().exists());
    }

    #[tokio::test]
    async fn the_saver_writes_changes_and_the_last_state_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let store = TemplateStore::new(dir.path());
        let mut saver = TemplateSaver::spawn(store.clone());
        let mut m = memory();
        saver.offer(&mut m, SystemTime::now());
        m.see("NullPointerException at <HOST>", SystemTime::now());
        saver.finish(&mut m, SystemTime::now()).await.unwrap();
        let back = store.load().unwrap();
        assert_eq!(back.templates.len(), 2);
    }
}
