//! File-system events that wake the tailer: the directories of the patterns and of every
//! followed path are watched through `notify`; where that fails, the tailer polls.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;

use super::{POLL, Wake};

/// The directory part of a pattern before its first glob character (`/var/log/app/*.log` →
/// `/var/log/app`); for a plain path, its directory.
pub(super) fn fixed_dir(pattern: &str) -> Option<PathBuf> {
    let cut = pattern.find(['*', '?', '[']).unwrap_or(pattern.len());
    let fixed = &pattern[..cut];
    let dir = if cut == pattern.len() {
        Path::new(fixed).parent()?
    } else {
        match fixed.rfind('/') {
            Some(i) => Path::new(&fixed[..i.max(1)]),
            None => Path::new("."),
        }
    };
    Some(if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir.to_owned()
    })
}

/// Directory watches through `notify`; when they cannot be set up, the tailer polls.
pub(super) struct DirWatcher {
    inner: Option<notify::RecommendedWatcher>,
    watching: HashSet<PathBuf>,
    failed: bool,
}

impl DirWatcher {
    pub(super) fn new(wake_tx: std_mpsc::Sender<Wake>) -> DirWatcher {
        use notify::event::{EventKind, ModifyKind};
        let handler = move |res: notify::Result<notify::Event>| {
            let wake = match res {
                Ok(e) => match e.kind {
                    EventKind::Access(_) => return,
                    EventKind::Create(_)
                    | EventKind::Remove(_)
                    | EventKind::Modify(ModifyKind::Name(_)) => Wake::Names,
                    _ => Wake::Contents,
                },
                Err(_) => Wake::Names,
            };
            let _ = wake_tx.send(wake);
        };
        let inner = match notify::recommended_watcher(handler) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(
                    "file-system events unavailable ({e}); polling every {}ms",
                    POLL.as_millis()
                );
                None
            }
        };
        DirWatcher {
            inner,
            watching: HashSet::new(),
            failed: false,
        }
    }

    /// Whether events can be relied on for every directory of interest.
    pub(super) fn working(&self) -> bool {
        self.inner.is_some() && !self.failed
    }

    pub(super) fn watch(&mut self, dirs: HashSet<PathBuf>) {
        use notify::Watcher as _;
        let Some(inner) = &mut self.inner else {
            return;
        };
        self.failed = false;
        for dir in dirs {
            if self.watching.contains(&dir) {
                continue;
            }
            match inner.watch(&dir, notify::RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.watching.insert(dir);
                }
                Err(e) => {
                    tracing::debug!(dir = %dir.display(), "cannot watch ({e}); polling");
                    self.failed = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_dirs_of_patterns() {
        assert_eq!(fixed_dir("/var/log/app/*.log"), Some("/var/log/app".into()));
        assert_eq!(
            fixed_dir("/var/log/nginx/error.log"),
            Some("/var/log/nginx".into())
        );
        assert_eq!(fixed_dir("app.log"), Some(".".into()));
        assert_eq!(fixed_dir("*.log"), Some(".".into()));
        assert_eq!(fixed_dir("/x*"), Some("/".into()));
    }
}
