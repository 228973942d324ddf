//! The command line (clap definitions only; `main.rs` acts on them).

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{limits, parse_duration_in};

use clap::{Args, Parser, Subcommand};

/// Watches logs and tells people on DingTalk when something goes wrong.
#[derive(Debug, Parser)]
#[command(name = "dingtail", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read logs, match rules, send batched alerts (the main job).
    Run(RunArgs),
    /// Validate the config: exit 0 with a summary, or 2 with every problem found.
    Check(ConfigArg),
    /// Show which lines match which rules, and how often; sends nothing.
    Test(TestArgs),
    /// Send one text message now and print DingTalk's answer.
    Send(SendArgs),
    /// Quiet a rule for a while (a running instance over its listener, else the state directory).
    #[command(subcommand)]
    Silence(SilenceCommand),
}

/// `dingtail silence …`.
#[derive(Debug, Subcommand)]
pub enum SilenceCommand {
    /// Silence a rule (or one group of it) for a while.
    Add(SilenceAddArgs),
    /// List the silences in force.
    List(SilenceTarget),
    /// End a silence now.
    Expire {
        /// Where the silences are.
        #[command(flatten)]
        target: SilenceTarget,
        /// The silence's id (from `add` or `list`).
        id: String,
    },
}

/// Which silences: a running instance's, or the state directory's.
#[derive(Debug, Clone, Args)]
pub struct SilenceTarget {
    /// The config option (its `listen:` names the running instance).
    #[command(flatten)]
    pub config: ConfigArg,
    /// The running instance's listener [default: the config's `listen:`]; when nothing answers
    /// there, the state directory's file is changed.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// The state directory [default: as `run`].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// `dingtail silence add`.
#[derive(Debug, Args)]
pub struct SilenceAddArgs {
    /// Where the silences are.
    #[command(flatten)]
    pub target: SilenceTarget,
    /// The rule to silence.
    #[arg(long)]
    pub rule: String,
    /// Only the group with this `group_by` value (`KEY=VALUE`).
    #[arg(long, value_name = "KEY=VALUE")]
    pub group: Option<String>,
    /// How long (`30m`, `2h`).
    #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Why (shown by `list`).
    #[arg(long, default_value = "")]
    pub comment: String,
}

/// Where the config comes from.
#[derive(Debug, Clone, Args)]
pub struct ConfigArg {
    /// Config file [default: $DINGTAIL_CONFIG, then ./dingtail.yaml, then the built-in rules].
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `dingtail run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The config file option.
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print each message as a JSON line instead of sending it.
    #[arg(long)]
    pub dry_run: bool,
    /// Copy every input line, unchanged, to stdout.
    #[arg(long, conflicts_with = "dry_run")]
    pub tee: bool,
    /// After input ends or a signal, time allowed to deliver what is pending; what is still
    /// pending then is reported as not delivered (exit 1).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = shutdown_timeout)]
    pub shutdown_timeout: Duration,
    /// Files or globs to follow like `tail -F` (added to the config's `inputs`); none: stdin.
    #[arg(value_name = "PATH")]
    pub paths: Vec<String>,
    /// Read files present at start from their first byte, ignoring any checkpoint.
    #[arg(long)]
    pub from_beginning: bool,
    /// Read every file to its current end, deliver, and exit (no following).
    #[arg(long)]
    pub once: bool,
    /// Where the checkpoint file lives [default: $STATE_DIRECTORY, then
    /// $XDG_STATE_HOME/dingtail, then ~/.local/state/dingtail].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Serve /metrics, /healthz, /readyz and the silences API on this address (e.g.
    /// 127.0.0.1:9177; port 0 picks one) [default: the config's `listen:`, else off].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Reload the config when its file changes (SIGHUP always reloads); watches the file's
    /// directory, so a Kubernetes ConfigMap update (a symlink swap) is seen.
    #[arg(long)]
    pub watch_config: bool,
}

/// `dingtail test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// The config file option.
    #[command(flatten)]
    pub config: ConfigArg,
    /// Log file to read [default: stdin].
    pub path: Option<PathBuf>,
    /// Print the exact messages the rules would send, on a clock taken from the lines'
    /// timestamps (config `timestamp:`), so thresholds, cooldowns and absence show in seconds.
    #[arg(long)]
    pub replay: bool,
    /// With --replay: time between lines that have no readable timestamp.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = line_interval, requires = "replay")]
    pub line_interval: Duration,
}

/// `dingtail send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// The config file option.
    #[command(flatten)]
    pub config: ConfigArg,
    /// Robot to send to [default: defaults.robot, or the only robot].
    #[arg(long, value_name = "NAME")]
    pub robot: Option<String>,
    /// The message text.
    pub text: String,
}

/// `--shutdown-timeout`: zero (give up at once) up to [`limits::SHUTDOWN_TIMEOUT`].
fn shutdown_timeout(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text.trim()) {
        Ok(d) if d.is_zero() => Ok(d),
        _ => parse_duration_in(text, limits::SHUTDOWN_TIMEOUT),
    }
}

/// `--line-interval`: above zero, up to [`limits::LINE_INTERVAL`].
fn line_interval(text: &str) -> Result<Duration, String> {
    parse_duration_in(text, limits::LINE_INTERVAL)
}
