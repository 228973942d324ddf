//! dingtail watches logs and tells people on DingTalk when something goes wrong.
//!
//! The pipeline (see `DESIGN.md` in the project notes):
//!
//! ```text
//! sources ─Chunk─▶ matcher ─HitBatch─▶ aggregator ─Alert─▶ dispatcher (one per robot) ─▶ DingTalk
//! ```
//!
//! - [`source`]: stdin (and later followed files) read in blocks of whole lines.
//! - [`matcher`]: one search per block for all rules (their required literals, or grouped
//!   automata), then which rules match, on the candidate lines only.
//! - [`aggregate`]: windows per rule, exact counts, bounded samples; told the time, never reads it.
//! - [`dispatch`]: per-robot sliding-window rate limit, merging while waiting, retries.
//! - [`budget`]: the monthly message budget: a ledger and the pacing rule the dispatchers ask.
//! - [`dingtalk`]: signing, rendering within 20,000 bytes, the HTTP client and errcodes.
//! - [`app`]: wires the stages with bounded channels and owns shutdown.
//!
//! The core (matching, aggregating, rendering, signing) is synchronous and pure, so it is tested
//! with tables and benchmarked; only `app` and `dispatch` know tokio's runtime.

#![warn(missing_docs)]

pub mod aggregate;
pub mod alert;
pub mod app;
pub mod budget;
pub mod cli;
pub mod config;
pub mod delivery_report;
pub mod dingtalk;
pub mod dispatch;
pub mod escalate;
pub mod hush;
pub mod ids;
pub mod init;
pub mod listen;
pub mod manpage;
pub mod matcher;
pub mod metrics;
pub mod mute;
pub mod operate;
pub mod pii;
pub mod pretty;
pub mod progress;
pub mod ratelimit;
pub mod redact;
pub mod reload;
pub mod replay;
pub mod route;
pub mod rules;
pub mod secret;
pub mod silence;
pub mod source;
pub mod stale;
pub mod startup;
pub mod style;
pub mod tester;
pub mod timezone;
pub mod where_expr;
pub mod yaml_units;
