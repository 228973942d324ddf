//! What the rules find and count, through the real binary: thresholds, groups, templates,
//! the rule packs, `redact:`, `where:`, `new_patterns:`, routes and escalation, and the
//! summary's byte counts. One test binary, a module per concern.

#[path = "../support/mod.rs"]
mod support;

mod new_patterns;
mod on_call;
mod packs;
mod pii;
mod routes;
mod summary_bytes;
mod where_cond;
