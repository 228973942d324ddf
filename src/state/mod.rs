//! What survives a restart, beside the checkpoints (`source::checkpoint`): the alert state
//! (cooldowns, threshold windows, absence timers, open alerts awaiting "recovered"), written to
//! the state directory.
//!
//! - [`snapshot`]: the alert state as plain serde data, versioned, one struct per rule state —
//!   what the aggregator exports and imports (it never touches a file);
//! - [`alert_state`]: the file that holds it (`alerts.json`), loaded at start and kept by a task;
//! - [`atomic`]: the one way files of the state directory are replaced.

pub mod alert_state;
pub mod atomic;
pub mod snapshot;
