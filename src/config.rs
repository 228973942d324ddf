//! The YAML configuration: a raw schema that mirrors the file, and a checked form the rest of the
//! program uses.
//!
//! Loading is two steps, as in Vector: serde fills the raw structs (unknown fields are errors, and
//! every value that can be wrong keeps its line and column through [`Spanned`]); then [`check`]
//! turns them into a [`Config`], collecting *every* problem it finds instead of stopping at the first,
//! so `dingtail check` can list them all at once, each naming file, line, column, rule and field.
//!
//! `${VAR}` is expanded from the environment in robot fields only (where tokens and secrets live).
//! An unset variable is an error that names the variable, never the value of anything around it.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::dingtalk::Endpoint;
use crate::rules::{DEFAULT_MAX_GROUPS, Rule, RuleSpec, Threshold, capture_names};
use crate::secret::Secret;
use crate::style::{MAX_MENTIONS, Mention, MsgType, Severity, Style, Template};
use crate::timezone::Zone;
use crate::yaml_units::{Section, Unit, YamlUnits};

mod coordination;
mod escalate;
mod mute_config;
mod new_patterns;
mod people;
mod pii;
mod quota;
mod routes;
mod stale;
pub use coordination::{Coordination, RedisTarget};
pub use quota::{DEFAULT_MONTHLY, Quota, Reserve};
mod checker;
mod environment;
mod inputs;
pub mod limits;
mod problem;
mod raw;
mod robots;
mod rule;
mod self_alerts;
mod shared_fields;
pub use self_alerts::{DEFAULT_UNREADABLE_FOR, SelfAlerts};

use checker::*;
pub use environment::*;
pub use inputs::*;
use limits::*;
pub use limits::{DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_LINES, DEFAULT_WINDOW, parse_duration_in};
pub use problem::*;
use raw::*;
pub use robots::*;
use rule::*;
use shared_fields::*;

/// The built-in rule set, used when no config file exists: see `rules/default.yaml`.
pub const DEFAULT_RULES: &str = include_str!("../rules/default.yaml");

/// Where the built-in rules are said to come from in messages and errors.
pub const BUILTIN_NAME: &str = "<built-in rules/default.yaml>";

pub use crate::ids::RobotId;

pub use crate::ratelimit::Rate;

/// The whole configuration, checked: robots, rules and global settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from (or [`BUILTIN_NAME`]), for messages.
    pub origin: String,
    /// Robots by [`RobotId`], sorted by name.
    pub robots: Vec<RobotConfig>,
    /// Rules in file order; a rule's index is its `RuleId`.
    pub rules: Vec<Rule>,
    /// `defaults.robot`, or the only robot.
    pub default_robot: Option<RobotId>,
    /// Lines longer than this are matched and quoted on their first `max_line_bytes` bytes.
    pub max_line_bytes: usize,
    /// How `dingtail test --replay` reads the time of a line.
    pub timestamp: Option<TimestampFormat>,
    /// Things that work but deserve attention (e.g. a secret file readable by others).
    pub warnings: Vec<Problem>,
    /// Files to follow (`inputs:`), in file order; paths on the command line add to these.
    pub inputs: Vec<InputConfig>,
    /// `stdin:`: how standard input's lines form events when it is read.
    pub stdin: StdinConfig,
    /// `timezone:`, else `TZ`, else the host's zone: every time in a message is written in it.
    pub timezone: Zone,
    /// `listen:`: where to serve metrics, probes and silences (`--listen` overrides); off when
    /// `None`.
    pub listen: Option<std::net::SocketAddr>,
    /// `mute:`: recurring windows in which rules (or severities) send nothing.
    pub mutes: Vec<crate::mute::MuteWindow>,
    /// `quiet_hours:`: low-severity alerts wait for their end and go out as one digest.
    pub quiet_hours: Option<crate::mute::QuietHours>,
    /// The monthly message budget (`quota:`, `robots.NAME.monthly`); see `crate::budget`.
    pub quota: Quota,
    /// Inputs watched for silence (`stale:`).
    pub stale: StaleInputs,
    /// `self_alerts:`: the robot told about dingtail's own trouble (`None`: only the log).
    pub self_alerts: Option<SelfAlerts>,
    /// `coordination:`: limits shared with other instances through Redis; see `crate::fleet`.
    pub coordination: Option<Coordination>,
    /// `new_patterns:`: new errors found without a rule (its rule, [`crate::new_pattern::RULE_NAME`],
    /// is the last of `rules`); see [`crate::new_pattern`].
    pub new_patterns: Option<crate::new_pattern::Settings>,
}

/// One `inputs:` entry, checked: files to follow and how their lines form events.
#[derive(Debug, Clone)]
pub struct InputConfig {
    /// A path or a glob (`/var/log/app/*.log`), as written.
    pub path: String,
    /// How lines gather into multi-line events (stack traces); `None`: every line is an event.
    pub multiline: Option<Multiline>,
}

/// Inputs watched for silence (`inputs[].stale`, `stdin.stale`): see [`crate::stale`].
pub type StaleInputs = Vec<crate::stale::StaleInput>;

pub use crate::source::multiline::{
    DEFAULT_MULTILINE_MAX_LINES, DEFAULT_MULTILINE_TIMEOUT, Multiline,
};

impl Config {
    /// Finds a robot by name.
    pub fn robot_id(&self, name: &str) -> Option<RobotId> {
        self.robots.iter().position(|r| r.name == name)
    }

    /// What the tailer follows: the config's `inputs:` and then `cli_paths` (`dingtail run
    /// PATH…`, every line an event). Empty when neither names a file: then stdin is read.
    pub fn follow_list(&self, cli_paths: &[String]) -> Vec<crate::source::tail::Input> {
        use crate::source::tail::Input;
        let configured = self.inputs.iter().map(|i| Input {
            pattern: i.path.clone(),
            multiline: i.multiline.clone(),
        });
        let given = cli_paths.iter().map(|p| Input {
            pattern: p.clone(),
            multiline: None,
        });
        configured.chain(given).collect()
    }

    /// Parses and checks the built-in rules (which must always be valid: a test makes sure).
    pub fn builtin() -> Config {
        parse_str(DEFAULT_RULES, BUILTIN_NAME, &|_| None)
            .expect("the built-in rules/default.yaml is valid")
    }
}

/// Reads and checks a config file, expanding `${VAR}` from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_str(&text, &path.display().to_string(), &|name| {
        std::env::var(name).ok()
    })
}

/// Parses and checks YAML text; `origin` names it in errors and `env` resolves `${VAR}`.
///
/// This is the one function that knows which YAML library is used. serde stops at the first
/// schema error (an unknown field, a wrong type), so when the whole file does not deserialize,
/// it is split into units (each robot, rule, input and other top-level key, see
/// [`YamlUnits`]) and each is deserialized alone: the schema errors of every unit are reported,
/// and the units that deserialize are checked as usual, so one run of `dingtail check` lists
/// every problem, schema and semantic, each at its line and column.
pub fn parse_str(
    text: &str,
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    parse_with(text, origin, env, &read_secret_file)
}

/// [`parse_str`], reading `webhook_file`/`secret_file`s with `read_file` (the checker itself
/// reads nothing: the environment and the files come in from here).
pub fn parse_with(
    text: &str,
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
    read_file: &dyn Fn(&Path) -> std::io::Result<SecretFile>,
) -> Result<Config, ConfigError> {
    let first = match serde_saphyr::from_str::<RawConfig>(text) {
        Ok(raw) => return check(raw, origin, env, read_file, &[]),
        Err(e) => schema_problem(&e, origin),
    };
    let Some(units) = YamlUnits::split(text) else {
        return Err(ConfigError::Invalid(vec![first]));
    };
    let mut merged = RawConfig::default();
    let mut problems = Vec::new();
    let mut broken_robots = Vec::new();
    for unit in &units.units {
        // A unit with a schema error is tried again without the line at fault (as often as that
        // helps), so its other fields, schema and semantic, are checked too.
        let mut unit_text = units.text(unit);
        for _ in 0..MAX_SCHEMA_RETRIES {
            match serde_saphyr::from_str::<RawConfig>(&unit_text) {
                Ok(part) => {
                    merged.absorb(part);
                    break;
                }
                Err(e) => {
                    let mut p = schema_problem(&e, origin);
                    p.context = unit_context(unit, &unit_text, p.line, p.column);
                    let line = p.line as usize;
                    // The same field may fail twice as its lines are taken away: say it once.
                    if !problems
                        .iter()
                        .any(|q: &Problem| q.context == p.context && q.message == p.message)
                    {
                        problems.push(p);
                    }
                    if !blank_line(&mut unit_text, line, unit) {
                        if let Section::Robot(name) = &unit.section {
                            broken_robots.push(name.clone());
                        }
                        break;
                    }
                }
            }
        }
    }
    if problems.is_empty() {
        // Every unit is fine alone but the whole is not (e.g. a key given twice).
        problems.push(first);
    }
    if let Err(ConfigError::Invalid(more)) = check(merged, origin, env, read_file, &broken_robots) {
        problems.extend(more);
    }
    problems.sort_by_key(|p| (p.line, p.column));
    problems.dedup();
    Err(ConfigError::Invalid(problems))
}

#[cfg(test)]
mod tests;
