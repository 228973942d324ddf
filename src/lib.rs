//! dingtail watches logs and tells people on DingTalk when something goes wrong.
//!
//! The pipeline (see `DESIGN.md` in the project notes):
//!
//! ```text
//! sources ─Chunk─▶ matcher ─HitBatch─▶ aggregator ─Routed─▶ dispatcher (one per robot) ─▶ DingTalk
//! ```
//!
//! The map, lowest layer first. A module uses only the layers above its own, and within a layer
//! only the modules listed before it (no cycles: `module-cycles` checks it). Read it top down to
//! learn the vocabulary before the machinery:
//!
//! 1. **Vocabulary**, depending on nothing of ours: [`ids`] (RuleId, RobotId), [`secret`] (a
//!    value no `Debug` or log prints), [`timezone`], [`pii`] and [`redact`] (what is masked),
//!    [`style`] (how a rule's messages look), [`alert`] (the neutral alert the renderer takes),
//!    [`ratelimit`] (the rate and the sliding-window limiter), [`trouble`] (dingtail's own
//!    trouble, reported without knowing who listens), [`state`] (files that survive a restart,
//!    replaced atomically), [`yaml_units`] (a YAML file cut into units, for error reports).
//! 2. **Rules**: [`where_expr`] (`where:` conditions), [`route`], [`escalate`], [`rules`] (one
//!    `Rule` type at two stages: as the config says it, and compiled), [`mute`] (mute windows,
//!    quiet hours), [`stale`] (inputs that fall silent).
//! 3. [`source`]: stdin and followed files (tail -F, rotation, identity) read in blocks of whole
//!    lines or multi-line events, through the one [`source::EventReader`] that `test` and
//!    `--replay` read with too, and the checkpoints that say how far each file is safely done.
//! 4. [`dingtalk`]: signing, rendering within 20,000 bytes, the HTTP client and errcodes; it takes
//!    a [`dingtalk::Endpoint`] and [`alert::Alert`]s, and knows nothing of files, rules or config.
//! 5. [`config`]: the YAML file checked into rules, robots (with their endpoints) and inputs;
//!    every problem at once, each at its file, line and column.
//! 6. **The core**: [`matcher`] (one search per block for all rules, then which rules match, on
//!    the candidate lines only; synchronous), [`aggregate`] (windows, thresholds, exact counts,
//!    bounded samples; told the time, never reads it; its [`aggregate::Routed`] alerts carry the
//!    robot and the file positions they hold).
//! 7. **Delivery**: [`budget`] (the monthly message budget), [`delivery_report`] (what a
//!    dispatcher did), [`silence`] (silences), [`fleet`] (with `coordination:`, limits shared
//!    through Redis), [`metrics`], [`dispatch`] (one per robot: rate limit, merging while waiting,
//!    retries), [`hush`] (silences, mute windows and quiet hours between aggregator and
//!    dispatchers).
//! 8. **Running as a service**: [`listen`] (metrics, probes, the silences API), [`reload`]
//!    (SIGHUP and `--watch-config`), [`operate`], [`self_alert`] (dingtail's trouble told to a
//!    robot), [`progress`] (a long read on a terminal).
//! 9. **Commands**: [`cli`] (clap definitions only), [`pretty`] (dry-run output for people),
//!    [`tester`] and [`replay`] (`dingtail test`, `--replay`), [`app`] (`dingtail run`: wires the
//!    stages with bounded channels; shutdown is passed in), [`init`], [`startup`] (the start-up
//!    line), [`manpage`]. `main.rs` parses the command line and maps errors to exit codes.
//!
//! The core (matching, aggregating, rendering, signing) is synchronous and pure, so it is tested
//! with tables and benchmarked; it never awaits (the aggregator is told `tokio::time::Instant`s,
//! so tests can pause the clock). The tasks that wait are the stages `app` wires, `dispatch`,
//! the checkpoint keeper, the alert-state saver, `fleet`, the listener, the reloader and the
//! self-alert task; the stdin reader, the tail thread and the matcher are plain threads that
//! talk to them through tokio's channels.

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
