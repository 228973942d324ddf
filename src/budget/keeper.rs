//! The budget shared by every dispatcher of a run, with its ledger file.
//!
//! One organisation-wide quota means one ledger for all robots: the dispatchers share a
//! [`SharedBudget`] (a mutex around the pure [`Budget`]; each call is short and never awaits),
//! and every change that counts a message is on disk before the message goes out.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use super::ledger_file::{LedgerError, LedgerFile};
use super::{Budget, Status, Verdict};
use crate::config::Config;

/// A failing ledger write is logged at most this often.
const WRITE_ERROR_REPEAT: Duration = Duration::from_secs(60);

struct Inner {
    budget: Budget,
    file: Option<LedgerFile>,
    last_write_error: Option<SystemTime>,
}

/// The run's budget, shared by its dispatchers; cheap to clone.
#[derive(Clone)]
pub struct SharedBudget(Arc<Mutex<Inner>>);

impl SharedBudget {
    /// The budget of `config`, its ledger loaded from `file` (`None`: kept in memory only).
    pub fn open(config: &Config, file: Option<LedgerFile>) -> Result<SharedBudget, LedgerError> {
        let ledger = match &file {
            Some(f) => f.load()?,
            None => Default::default(),
        };
        let names: Vec<String> = config.robots.iter().map(|r| r.name.clone()).collect();
        Ok(SharedBudget::new(
            Budget::new(&config.quota, &names, ledger),
            file,
        ))
    }

    /// Shares `budget`, saving its ledger to `file`.
    pub fn new(budget: Budget, file: Option<LedgerFile>) -> SharedBudget {
        SharedBudget(Arc::new(Mutex::new(Inner {
            budget,
            file,
            last_write_error: None,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// See [`Budget::verdict`].
    pub fn verdict(&self, robot: usize, critical: bool, paced: bool, now: SystemTime) -> Verdict {
        self.lock().budget.verdict(robot, critical, paced, now)
    }

    /// Counts a message if the budget allows it now, and saves the ledger before returning
    /// [`Verdict::Now`]: the caller sends only after that.
    pub fn try_record(
        &self,
        robot: usize,
        critical: bool,
        paced: bool,
        now: SystemTime,
    ) -> Verdict {
        let mut inner = self.lock();
        let v = inner.budget.try_record(robot, critical, paced, now);
        if v == Verdict::Now {
            inner.save(now);
        }
        v
    }

    /// Counts a message whatever the budget says (`dingtail send`: the user asked for it) and
    /// saves the ledger; returns what the budget would have said.
    pub fn record_anyway(&self, robot: usize, now: SystemTime) -> Verdict {
        let mut inner = self.lock();
        let v = inner.budget.verdict(robot, true, false, now);
        inner.budget.record(robot, now);
        inner.save(now);
        v
    }

    /// See [`Budget::limits`].
    pub fn limits(
        &self,
        robot: usize,
        critical: bool,
        paced: bool,
        now: SystemTime,
    ) -> Option<(u64, Option<u64>)> {
        self.lock().budget.limits(robot, critical, paced, now)
    }

    /// See [`Budget::sync`]; the ledger file keeps the shared counts too.
    pub fn sync(&self, robot: usize, month: &str, total: u64, mine: u64, now: SystemTime) {
        let mut inner = self.lock();
        inner.budget.sync(robot, month, total, mine, now);
        inner.save(now);
    }

    /// See [`Budget::refund`].
    pub fn refund(&self, robot: usize, counted: SystemTime, now: SystemTime) {
        let mut inner = self.lock();
        inner.budget.refund(robot, counted, now);
        inner.save(now);
    }

    /// See [`Budget::mark_spent`].
    pub fn mark_spent(&self, robot: usize, why: &str, now: SystemTime) {
        let mut inner = self.lock();
        inner.budget.mark_spent(robot, why, now);
        inner.save(now);
    }

    /// See [`Budget::status`]: what metrics and self-alerts will read.
    pub fn status(&self, now: SystemTime) -> Status {
        self.lock().budget.status(now)
    }
}

impl Inner {
    /// Saves the ledger. A failure does not stop alerting (a message not sent for want of a
    /// disk is worse than one the file misses); it is logged, at most once a minute.
    fn save(&mut self, now: SystemTime) {
        let Some(file) = &self.file else {
            return;
        };
        if let Err(e) = file.save(self.budget.ledger()) {
            let quiet = self
                .last_write_error
                .is_some_and(|t| now.duration_since(t).unwrap_or_default() < WRITE_ERROR_REPEAT);
            if !quiet {
                self.last_write_error = Some(now);
                tracing::error!(path = %file.path().display(), "cannot write the budget ledger (a restart would forget messages sent): {e}");
            }
        }
    }
}
