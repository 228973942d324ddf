//! What survives a restart, beside the checkpoints (`source::checkpoint`): the alert state
//! (cooldowns, threshold windows, absence timers, open alerts awaiting "recovered"), written to
//! the state directory.
//!
//! - [`snapshot`]: the alert state as plain serde data, versioned, one struct per rule state —
//!   what the aggregator exports and imports (it never touches a file);
//! - [`alert_state`]: the file that holds it (`alerts.json`), loaded at start and kept by a task;
//! - [`json_file`]: one JSON file of the state directory, loaded with one warning at most and
//!   replaced atomically (alerts.json here, new_patterns.json in `new_pattern`);
//! - [`writer`]: the task that writes such a file while running, one save in flight;
//! - [`atomic`]: the one way files of the state directory are replaced.

pub mod alert_state;
pub mod atomic;
pub mod json_file;
pub mod snapshot;
pub mod writer;
