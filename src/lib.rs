//! dingtail watches logs and tells people on DingTalk when something goes wrong.
//!
//! The pipeline (see `DESIGN.md` in the project notes):
//!
//! ```text
//! sources ─Chunk─▶ matcher ─HitBatch─▶ aggregator ─Routed─▶ dispatcher (one per robot) ─▶ DingTalk
//! ```
//!
//! The map, lowest layer first; a module uses only modules above it in this list (no cycles:
//! `module-cycles` checks it):
//!
//! - vocabulary: [`ids`] (RuleId, RobotId), [`secret`], [`timezone`], [`pii`], [`redact`],
//!   [`style`] (how a rule's messages look), [`alert`] (the neutral alert the renderer takes),
//!   [`ratelimit`] (the rate and the sliding-window limiter).
//! - [`rules`], [`where_expr`], [`mute`]: rules compiled, their `where:` conditions, mute
//!   windows.
//! - [`source`]: stdin and followed files (tail -F, rotation, checkpoints) read in blocks of
//!   whole lines.
//! - [`dingtalk`]: signing, rendering within 20,000 bytes, the HTTP client and errcodes; it takes
//!   an [`dingtalk::Endpoint`] and [`alert::Alert`]s, and knows nothing of files or config.
//! - [`config`]: the YAML file checked into rules, robots (with their endpoints) and inputs.
//! - [`matcher`]: one search per block for all rules (their required literals, or grouped
//!   automata), then which rules match, on the candidate lines only.
//! - [`aggregate`]: windows per rule, exact counts, bounded samples; told the time, never reads
//!   it. Its [`aggregate::Routed`] alerts carry the robot and the file positions they hold.
//! - [`state`]: the alert state carried across restarts (cooldowns, open alerts, absence).
//! - [`budget`]: the monthly message budget: a ledger and the pacing rule the dispatchers ask.
//! - [`fleet`]: with `coordination:`, the rate, throttle pause and budget shared through Redis.
//! - [`dispatch`]: per-robot sliding-window rate limit, merging while waiting, retries;
//!   [`delivery_report`] is what it did.
//! - [`hush`], [`silence`]: silences, mute windows and quiet hours between aggregator and
//!   dispatchers.
//! - [`metrics`], [`listen`], [`reload`], [`operate`]: running as a service.
//! - [`app`]: wires the stages with bounded channels; shutdown is passed in.
//! - [`tester`], [`replay`], [`pretty`]: `dingtail test` and `--replay`.
//! - [`cli`], [`startup`], [`init`], [`manpage`], [`progress`], [`yaml_units`]: the command
//!   line, the start-up line, `init`, the man page, progress on a terminal, YAML units.
//!
//! The core (matching, aggregating, rendering, signing) is synchronous and pure, so it is tested
//! with tables and benchmarked; tokio's runtime is known only by the stages that wait (`app`,
//! `dispatch`, the checkpoint keeper, the listener and the reloader).

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
pub mod fleet;
pub mod hush;
pub mod ids;
pub mod init;
pub mod listen;
pub mod manpage;
pub mod matcher;
pub mod metrics;
pub mod mute;
pub mod new_pattern;
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
pub mod self_alert;
pub mod silence;
pub mod source;
pub mod stale;
pub mod startup;
pub mod state;
pub mod style;
pub mod tester;
pub mod timezone;
pub mod trouble;
pub mod where_expr;
pub mod yaml_units;
