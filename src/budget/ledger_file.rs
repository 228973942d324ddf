//! The ledger on disk: `budget.json` in the state directory, beside (never inside) the
//! checkpoint file, so the two can change independently.
//!
//! Written before every message is sent (and after a refund or a quota error), atomically: write
//! a temporary file, fsync it, rename it over the old one, fsync the directory. A crash leaves
//! the old or the new ledger, never a mix; since a message is counted before it goes out, a crash
//! can only make the ledger count a message that was never sent (over-count), never miss one.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Ledger;

/// The ledger's file name in the state directory.
pub const LEDGER_FILE: &str = "budget.json";

/// Why the ledger cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The state directory cannot be created.
    #[error("cannot create the state directory {}: {source}", .dir.display())]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file exists but cannot be read or parsed. Not ignored: starting from zero would
    /// under-count the month.
    #[error("cannot read the budget ledger {}: {message} (fix or remove it; removing it forgets this month's count)", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// What the file holds.
#[derive(Serialize, Deserialize)]
struct LedgerDoc {
    version: u32,
    #[serde(flatten)]
    ledger: Ledger,
}

/// `budget.json` in a state directory.
#[derive(Debug, Clone)]
pub struct LedgerFile {
    dir: PathBuf,
}

impl LedgerFile {
    /// The ledger file in `dir`, creating the directory.
    pub fn open(dir: &Path) -> Result<LedgerFile, LedgerError> {
        std::fs::create_dir_all(dir).map_err(|source| LedgerError::CreateDir {
            dir: dir.to_owned(),
            source,
        })?;
        Ok(LedgerFile {
            dir: dir.to_owned(),
        })
    }

    /// The ledger file in `dir`, without creating anything (to read it, as `dingtail check`).
    pub fn at(dir: &Path) -> LedgerFile {
        LedgerFile {
            dir: dir.to_owned(),
        }
    }

    /// The file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(LEDGER_FILE)
    }

    /// The saved ledger; an empty one when there is no file yet.
    pub fn load(&self) -> Result<Ledger, LedgerError> {
        let path = self.path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Ledger::default()),
            Err(e) => {
                return Err(LedgerError::Read {
                    path,
                    message: e.to_string(),
                });
            }
        };
        let doc: LedgerDoc = serde_json::from_slice(&bytes).map_err(|e| LedgerError::Read {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Ok(doc.ledger)
    }

    /// Replaces the file atomically (write, fsync, rename, fsync the directory).
    pub fn save(&self, ledger: &Ledger) -> io::Result<()> {
        let doc = LedgerDoc {
            version: 1,
            ledger: ledger.clone(),
        };
        let tmp = self.dir.join(format!("{LEDGER_FILE}.tmp"));
        let mut f = File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(&doc).map_err(io::Error::other)?)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, self.path())?;
        File::open(&self.dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ledger_survives_a_save_and_a_bad_file_is_an_error_not_a_zero() {
        let dir = tempfile::tempdir().unwrap();
        let file = LedgerFile::open(&dir.path().join("state")).unwrap();
        assert_eq!(file.load().unwrap(), Ledger::default());
        let mut ledger = Ledger {
            month: "2026-11".into(),
            total: 7,
            ..Ledger::default()
        };
        ledger.robots.insert("ops".into(), 7);
        ledger.spent.insert("ops".into(), "errcode 90030".into());
        file.save(&ledger).unwrap();
        assert_eq!(file.load().unwrap(), ledger);
        assert!(!file.dir.join("budget.json.tmp").exists());
        std::fs::write(file.path(), b"{\"version\":1,\"month\":").unwrap();
        let e = file.load().unwrap_err().to_string();
        assert!(e.contains("budget.json"), "{e}");
    }
}
