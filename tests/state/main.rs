//! What survives a restart, through the real binary: the state directory (its lock, a corrupt
//! checkpoint) and the alert state (cooldowns, recoveries, absences, escalations). One test
//! binary, a module per concern.

#[path = "../support/mod.rs"]
mod support;

mod alerts;
mod directory;
