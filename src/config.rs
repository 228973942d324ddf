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

mod mute_config;
use crate::yaml_units::{Section, Unit, YamlUnits};

mod escalate;
mod people;
mod pii;
mod quota;
mod routes;
mod stale;
pub use quota::{DEFAULT_MONTHLY, Quota, Reserve};

/// The built-in rule set, used when no config file exists: see `rules/default.yaml`.
pub const DEFAULT_RULES: &str = include_str!("../rules/default.yaml");

/// Where the built-in rules are said to come from in messages and errors.
pub const BUILTIN_NAME: &str = "<built-in rules/default.yaml>";

pub use crate::ids::RobotId;

pub use crate::ratelimit::Rate;

/// A DingTalk group robot, checked. Its [`Endpoint`] holds the webhook, secret and proxy as
/// [`Secret`]s, so no `Debug`, log line or error can print them.
#[derive(Debug, Clone)]
pub struct RobotConfig {
    /// The name the config gives it; used in messages to the operator.
    pub name: String,
    /// Where and how its messages are posted: what the DingTalk client takes.
    pub endpoint: Endpoint,
    /// A security keyword that every message must contain.
    pub keyword: Option<String>,
    /// The robot's rate limit.
    pub rate: Rate,
    /// Where alerts go while DingTalk has this robot blocked for sending too fast.
    pub fallback: Option<RobotId>,
    /// Backoff for failed sends.
    pub retry: Retry,
    /// How long to leave the robot alone after DingTalk says it sends too fast.
    pub throttle_pause: Duration,
}

/// How failed sends are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// First wait after a retryable failure (network, 5xx, errcode -1).
    pub initial: Duration,
    /// Longest wait; waits double up to this.
    pub max: Duration,
    /// After a permanent error (bad token, secret, disabled robot), try the robot again this often
    /// while following input (someone may fix the robot); errors repeat at most this often.
    pub recheck: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            recheck: Duration::from_secs(300),
        }
    }
}

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

    /// Parses and checks the built-in rules (which must always be valid: a test makes sure).
    pub fn builtin() -> Config {
        parse_str(DEFAULT_RULES, BUILTIN_NAME, &|_| None)
            .expect("the built-in rules/default.yaml is valid")
    }
}

/// One thing wrong with a config file, located as precisely as the YAML allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// File name as given by the user.
    pub file: String,
    /// 1-based line, 0 when unknown.
    pub line: u64,
    /// 1-based column, 0 when unknown.
    pub column: u64,
    /// Where in the config: `rule 'nginx-5xx', field 'match'`, `robot 'ops', field 'secret'`.
    pub context: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if self.context.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.context, self.message)
        }
    }
}

/// Why a configuration could not be loaded. The caller branches on it only to pick the exit
/// status (all are usage errors, 2), but `Invalid` carries the list `dingtail check` prints.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The path as given.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read but is wrong; every problem found is listed.
    #[error("{}", display_problems(.0))]
    Invalid(Vec<Problem>),
}

fn display_problems(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
    lines.join("\n")
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
    let first = match serde_saphyr::from_str::<RawConfig>(text) {
        Ok(raw) => return check(raw, origin, env, &[]),
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
    if let Err(ConfigError::Invalid(more)) = check(merged, origin, env, &broken_robots) {
        problems.extend(more);
    }
    problems.sort_by_key(|p| (p.line, p.column));
    problems.dedup();
    Err(ConfigError::Invalid(problems))
}

/// How many schema errors one unit (a rule, a robot…) may report.
const MAX_SCHEMA_RETRIES: usize = 16;

/// Empties line `line` (1-based) of a unit's text, and the lines nested under it, so the unit
/// can be tried again without them.
/// False when that would not help or would change the unit's shape: no such line, an empty
/// one, the unit's first lines (its key, a list item's `- `), or a line that starts an item.
fn blank_line(text: &mut String, line: usize, unit: &Unit) -> bool {
    let first_own = unit.lines.last().map_or(0, |r| *r.start());
    let Some(content) = text.split('\n').nth(line.wrapping_sub(1)) else {
        return false;
    };
    let shape = content.trim_start().starts_with('-') || line <= first_own;
    let keeps_first = unit.lines.iter().any(|r| *r.start() == line);
    if line == 0 || content.trim().is_empty() || shape || keeps_first {
        return false;
    }
    // The line goes with everything nested under it (a block scalar, a nested mapping).
    let indent = |l: &str| l.len() - l.trim_start().len();
    let own = indent(content);
    let lines: Vec<&str> = text.split('\n').collect();
    let mut end = line; // 1-based, inclusive
    while let Some(next) = lines.get(end) {
        if next.trim().is_empty() || indent(next) > own {
            end += 1;
        } else {
            break;
        }
    }
    let blanked: Vec<&str> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if (line..=end).contains(&(i + 1)) {
                ""
            } else {
                l
            }
        })
        .collect();
    *text = blanked.join("\n");
    true
}

/// `rule 'x', field 'y'` for a schema error at `line:column` of a unit: the unit names the rule,
/// robot or input, the text at the location names the field (the key whose value starts there,
/// or the key itself).
fn unit_context(unit: &Unit, text: &str, line: u64, column: u64) -> String {
    let owner = match &unit.section {
        Section::Rule(i) => match &unit.name {
            Some(n) => format!("rule '{n}'"),
            None => format!("rule {}", i + 1),
        },
        Section::Robot(name) => format!("robot '{name}'"),
        Section::Input(i) => format!("input {}", i + 1),
        Section::Key(_) => String::new(),
    };
    let lines: Vec<&str> = text.lines().collect();
    let at = (line as usize).saturating_sub(1);
    let field = lines.get(at).and_then(|l| {
        field_at(l, (column as usize).saturating_sub(1)).or_else(|| {
            // Inside a value (a block scalar's text): the key of the nearest line above that
            // is indented less.
            let indent = |l: &str| l.len() - l.trim_start().len();
            let own = indent(l);
            lines[..at]
                .iter()
                .rev()
                .find(|p| !p.trim().is_empty() && indent(p) < own)
                .and_then(|p| field_at(p, p.find(':').unwrap_or(0) + 1))
        })
    });
    match (owner.is_empty(), field) {
        (true, None) => String::new(),
        (true, Some(f)) => format!("field '{f}'"),
        (false, None) => owner,
        (false, Some(f)) => format!("{owner}, field '{f}'"),
    }
}

/// The YAML key at or just before character `col` of `line`.
fn field_at(line: &str, col: usize) -> Option<String> {
    let is_key = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    let chars: Vec<char> = line.chars().collect();
    let col = col.min(chars.len());
    let before: String = chars[..col].iter().collect();
    let before = before.trim_end();
    let key: String = if let Some(b) = before.strip_suffix(':') {
        let rev: String = b.chars().rev().take_while(|c| is_key(*c)).collect();
        rev.chars().rev().collect()
    } else {
        // The key itself (an unknown field is located at its name).
        let word: String = chars[col..].iter().take_while(|c| is_key(**c)).collect();
        let after = chars[col + word.chars().count()..]
            .iter()
            .collect::<String>();
        if after.trim_start().starts_with(':') {
            word
        } else {
            String::new()
        }
    };
    (!key.is_empty()).then_some(key)
}

/// A serde-saphyr error as a [`Problem`], its message scrubbed of values that should not be
/// quoted (see [`shown`]).
fn schema_problem(e: &serde_saphyr::Error, origin: &str) -> Problem {
    let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
    Problem {
        file: origin.to_owned(),
        line,
        column,
        context: String::new(),
        message: plain(&scrub(&first_line(&e.without_snippet().to_string()))),
    }
}

/// A few of serde-saphyr's terse messages in the words of the config's reader.
fn plain(message: &str) -> String {
    match message {
        m if m.starts_with("invalid u") || m.starts_with("invalid i") => {
            "must be a whole number (in range)".to_owned()
        }
        "expected mapping start" => "must be a mapping (`key: value` lines or `{…}`)".to_owned(),
        "expected sequence start" => "must be a list (`- item` lines or `[…]`)".to_owned(),
        m => m.to_owned(),
    }
}

/// serde-saphyr's message repeats the location on its first line; keep only the message.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message).trim();
    // "... at line 3 column 5" is redundant next to our "file:3:5:" prefix.
    match line.rfind(" at line ") {
        Some(i) => line[..i].to_owned(),
        None => line.to_owned(),
    }
}

/// Replaces every quoted value in a library's message (`"…"` or `` `…` ``) that [`shown`] would
/// not quote with `…`: a secret pasted into a numeric field must not be quoted back.
fn scrub(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find(['"', '`']) {
        let quote = rest[i..].chars().next().expect("found");
        out.push_str(&rest[..i + 1]);
        let after = &rest[i + 1..];
        match after.find(quote) {
            Some(end) => {
                let inner = &after[..end];
                out.push_str(if shown(inner) { inner } else { "…" });
                out.push(quote);
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(if shown(after) { after } else { "…" });
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Longest value a config error quotes back.
const MAX_SHOWN_CHARS: usize = 40;

/// Whether a config error may quote `value`: short, on one line, with nothing invisible, and
/// not shaped like a credential (a `SEC…` secret, a URL with a token, a long run of token
/// characters). Values of secret-bearing fields and `${VAR}` expansions are never passed here.
fn shown(value: &str) -> bool {
    let longest_word = value
        .split(|c: char| !(c.is_ascii_alphanumeric() || "+/=_-%".contains(c)))
        .map(str::len)
        .max()
        .unwrap_or(0);
    value.chars().count() <= MAX_SHOWN_CHARS
        && !value.chars().any(crate::dingtalk::neutral::is_hazard)
        && !value.trim_start().starts_with("SEC")
        && !value.contains("access_token")
        && longest_word < 24
}

/// `` `value` `` when [`shown`] allows it, else `the value`, for messages like "… is not a
/// duration".
fn quoted(value: &str) -> String {
    if shown(value) {
        format!("`{value}`")
    } else {
        "the value".to_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// Raw schema: what the YAML file says, field for field.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    robots: BTreeMap<String, Spanned<RawRobot>>,
    #[serde(default)]
    defaults: Option<RawDefaults>,
    #[serde(default)]
    rules: Vec<Spanned<RawRule>>,
    #[serde(default)]
    max_line_bytes: Option<Spanned<usize>>,
    #[serde(default)]
    timestamp: Option<RawTimestamp>,
    #[serde(default)]
    inputs: Vec<Spanned<RawInput>>,
    #[serde(default)]
    timezone: Option<Spanned<String>>,
    #[serde(default)]
    listen: Option<Spanned<String>>,
    #[serde(default)]
    mute: Vec<Spanned<mute_config::RawMute>>,
    #[serde(default)]
    quiet_hours: Option<Spanned<mute_config::RawQuietHours>>,
    #[serde(default)]
    quota: Option<Spanned<quota::RawQuota>>,
    #[serde(default)]
    redact: Option<pii::RawRedact>,
    #[serde(default)]
    people: BTreeMap<String, Spanned<RawMention>>,
    #[serde(default)]
    routes: Vec<Spanned<routes::RawRoute>>,
    #[serde(default)]
    stdin: Option<stale::RawStdin>,
}

impl RawConfig {
    /// Adds the parts of a config holding one unit (see [`parse_str`]).
    fn absorb(&mut self, part: RawConfig) {
        self.robots.extend(part.robots);
        self.rules.extend(part.rules);
        self.inputs.extend(part.inputs);
        self.defaults = self.defaults.take().or(part.defaults);
        self.max_line_bytes = self.max_line_bytes.take().or(part.max_line_bytes);
        self.timestamp = self.timestamp.take().or(part.timestamp);
        self.quota = self.quota.take().or(part.quota);
        self.redact = self.redact.take().or(part.redact);
        self.timezone = self.timezone.take().or(part.timezone);
        self.listen = self.listen.take().or(part.listen);
        self.mute.extend(part.mute);
        self.quiet_hours = self.quiet_hours.take().or(part.quiet_hours);
        self.people.extend(part.people);
        self.routes.extend(part.routes);
        self.stdin = self.stdin.take().or(part.stdin);
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    path: Spanned<String>,
    #[serde(default)]
    multiline: Option<Spanned<RawMultiline>>,
    #[serde(default)]
    stale: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMultiline {
    start: Spanned<String>,
    #[serde(default)]
    max_lines: Option<Spanned<usize>>,
    #[serde(default)]
    timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRobot {
    #[serde(default)]
    webhook: Option<Spanned<String>>,
    #[serde(default)]
    webhook_file: Option<Spanned<String>>,
    #[serde(default)]
    secret: Option<Spanned<String>>,
    #[serde(default)]
    secret_file: Option<Spanned<String>>,
    #[serde(default)]
    keyword: Option<Spanned<String>>,
    #[serde(default)]
    rate: Option<Spanned<String>>,
    #[serde(default)]
    fallback: Option<Spanned<String>>,
    #[serde(default)]
    proxy: Option<Spanned<String>>,
    #[serde(default)]
    timeout: Option<RawTimeouts>,
    #[serde(default)]
    retry: Option<RawRetry>,
    #[serde(default)]
    throttle_pause: Option<Spanned<String>>,
    #[serde(default)]
    monthly: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    #[serde(default)]
    connect: Option<Spanned<String>>,
    #[serde(default)]
    request: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    #[serde(default)]
    initial: Option<Spanned<String>>,
    #[serde(default)]
    max: Option<Spanned<String>>,
    #[serde(default)]
    recheck: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    #[serde(default)]
    robot: Option<Spanned<String>>,
    #[serde(default)]
    window: Option<Spanned<String>>,
    #[serde(default)]
    max_lines: Option<Spanned<usize>>,
    /// Mentions by severity: `critical: {mobiles: [...]}`.
    #[serde(default)]
    mention: BTreeMap<String, Spanned<people::RawMentionRef>>,
    #[serde(default)]
    msgtype: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Spanned<String>,
    #[serde(rename = "match", default)]
    pattern: Option<Spanned<String>>,
    #[serde(default)]
    exclude: Vec<Spanned<String>>,
    #[serde(default)]
    window: Option<Spanned<String>>,
    #[serde(default)]
    max_lines: Option<Spanned<usize>>,
    #[serde(default)]
    robot: Option<Spanned<OneOrMany>>,
    #[serde(default)]
    severity: Option<Spanned<String>>,
    #[serde(default)]
    threshold: Option<Spanned<RawThreshold>>,
    #[serde(default)]
    cooldown: Option<Spanned<String>>,
    #[serde(default)]
    group_by: Vec<Spanned<String>>,
    #[serde(default)]
    max_groups: Option<Spanned<usize>>,
    #[serde(default)]
    template: Option<Spanned<String>>,
    #[serde(default)]
    mention: Option<Spanned<people::RawMentionRef>>,
    #[serde(default)]
    msgtype: Option<Spanned<String>>,
    #[serde(default)]
    field: Option<Spanned<String>>,
    #[serde(default, rename = "where")]
    condition: Option<Spanned<String>>,
    #[serde(default)]
    resolve_after: Option<Spanned<String>>,
    #[serde(default)]
    absent: Option<Spanned<RawAbsent>>,
    #[serde(default)]
    escalate: Option<Spanned<Vec<escalate::RawStep>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThreshold {
    count: Spanned<usize>,
    within: Spanned<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMention {
    #[serde(default)]
    mobiles: Vec<Spanned<String>>,
    #[serde(default)]
    user_ids: Vec<Spanned<String>>,
    #[serde(default)]
    all: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAbsent {
    #[serde(rename = "match")]
    pattern: Spanned<String>,
    #[serde(rename = "for")]
    duration: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimestamp {
    regex: Spanned<String>,
    format: Spanned<String>,
}

/// `robot: ops` or `robot: [ops, security]`.
#[derive(Debug)]
struct OneOrMany(Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a robot name or a list of robot names")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_owned()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element::<String>()? {
                    out.push(v);
                }
                Ok(OneOrMany(out))
            }
        }
        d.deserialize_any(Visit)
    }
}

// ---------------------------------------------------------------------------------------------
// Checking: raw → Config, gathering every problem.

/// The range of every duration: above zero and at most these. Time arithmetic on instants
/// overflows (and panics) far beyond them, so nothing a config can say makes dingtail panic;
/// the README's tables list them.
pub mod limits {
    use std::time::Duration;

    const HOUR: Duration = Duration::from_secs(3600);
    const DAY: Duration = Duration::from_secs(86_400);

    /// `window`, `defaults.window`, `threshold.within`: a window holds hits in memory.
    pub const WINDOW: Duration = DAY;
    /// `cooldown`, `resolve_after`, `absent.for`.
    pub const LONG: Duration = Duration::from_secs(30 * 86_400);
    /// `inputs[].multiline.timeout`.
    pub const MULTILINE_TIMEOUT: Duration = HOUR;
    /// `timeout.connect`.
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10 * 60);
    /// `timeout.request`.
    pub const REQUEST_TIMEOUT: Duration = HOUR;
    /// `retry.initial`.
    pub const RETRY_INITIAL: Duration = HOUR;
    /// `retry.max`, `retry.recheck`, `throttle_pause`, the period of `rate`.
    pub const ROBOT_WAIT: Duration = DAY;
    /// Largest count of `rate`.
    pub const RATE_COUNT: u32 = 10_000;
    /// `--shutdown-timeout`.
    pub const SHUTDOWN_TIMEOUT: Duration = HOUR;
    /// `--line-interval` of `test --replay`.
    pub const LINE_INTERVAL: Duration = DAY;
}

/// Parses a duration (`500ms`, `10s`, `5m`, `1h 30m`) that must be above zero and at most
/// `max`; the error quotes the text only when it is safe to (see [`shown`]).
pub fn parse_duration_in(text: &str, max: Duration) -> Result<Duration, String> {
    match humantime::parse_duration(text.trim()) {
        Ok(d) if d.is_zero() => Err("must be longer than zero".to_owned()),
        Ok(d) if d > max => Err(format!(
            "{} is longer than the longest allowed, {}",
            quoted(text.trim()),
            humantime::format_duration(max)
        )),
        Ok(d) => Ok(d),
        Err(e) => Err(format!(
            "{} is not a duration ({e}); write e.g. 500ms, 10s, 5m",
            quoted(text.trim())
        )),
    }
}

/// Default window when neither the rule nor `defaults` sets one.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);
/// Default number of lines quoted per message.
pub const DEFAULT_MAX_LINES: usize = 20;
/// Default cut-off for very long lines.
pub const DEFAULT_MAX_LINE_BYTES: usize = 64 * 1024;
/// Longest rule name accepted: the name goes into every message header.
const MAX_RULE_NAME: usize = 100;
/// Longest template accepted: a template's text goes into every message of its rule.
const MAX_TEMPLATE_CHARS: usize = 4000;

struct Checker<'a> {
    origin: &'a str,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
}

impl Checker<'_> {
    fn problem<T>(
        &mut self,
        at: &Spanned<T>,
        context: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.problems.push(Problem {
            file: self.origin.to_owned(),
            line: at.referenced.line(),
            column: at.referenced.column(),
            context: context.into(),
            message: message.into(),
        });
    }

    /// A duration field: above zero and at most `max` (see [`limits`]).
    fn duration(
        &mut self,
        raw: &Spanned<String>,
        context: &str,
        max: Duration,
    ) -> Option<Duration> {
        match parse_duration_in(&raw.value, max) {
            Ok(d) => Some(d),
            Err(e) => {
                self.problem(raw, context, e);
                None
            }
        }
    }

    fn max_lines(&mut self, raw: &Spanned<usize>, context: &str) -> Option<usize> {
        if raw.value == 0 || raw.value > 1000 {
            self.problem(raw, context, "must be between 1 and 1000");
            return None;
        }
        Some(raw.value)
    }
}

/// Checks `raw` into a [`Config`]. `broken_robots` are robots whose own schema errors were
/// reported already: naming them elsewhere is not a problem of its own.
fn check(
    raw: RawConfig,
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
    broken_robots: &[String],
) -> Result<Config, ConfigError> {
    let mut c = Checker {
        origin,
        problems: Vec::new(),
        warnings: Vec::new(),
    };

    let mut robots = Vec::new();
    for (name, robot) in &raw.robots {
        if let Some(r) = check_robot(&mut c, name, robot, env) {
            robots.push(r);
        }
    }
    let robot_names: Vec<&str> = raw.robots.keys().map(String::as_str).collect();
    let find_robot = |c: &mut Checker, raw: &Spanned<String>, context: &str| {
        let found = robot_names.iter().position(|n| *n == raw.value);
        if found.is_none() && !broken_robots.contains(&raw.value) {
            let mut all: Vec<&str> = robot_names.clone();
            all.extend(broken_robots.iter().map(String::as_str));
            all.sort_unstable();
            let known = if all.is_empty() {
                "no robots are defined".to_owned()
            } else {
                format!("robots are: {}", all.join(", "))
            };
            c.problem(
                raw,
                context,
                format!("unknown robot {} ({known})", quoted(&raw.value)),
            );
        }
        found
    };

    // Fallbacks: must exist, and following them must never come back (a cycle would keep two
    // dispatchers waiting for each other at shutdown).
    let mut fallbacks = vec![None; robot_names.len()];
    for (i, robot) in raw.robots.values().enumerate() {
        if let Some(f) = &robot.value.fallback {
            let ctx = format!("robot '{}', field 'fallback'", robot_names[i]);
            fallbacks[i] = find_robot(&mut c, f, &ctx);
            if fallbacks[i] == Some(i) {
                c.problem(f, ctx, "a robot cannot be its own fallback");
                fallbacks[i] = None;
            }
        }
    }
    for (i, robot) in raw.robots.values().enumerate() {
        let mut seen = vec![i];
        let mut next = fallbacks[i];
        while let Some(n) = next {
            if seen.contains(&n) {
                if let Some(f) = &robot.value.fallback {
                    c.problem(
                        f,
                        format!("robot '{}', field 'fallback'", robot_names[i]),
                        "fallbacks form a cycle",
                    );
                }
                break;
            }
            seen.push(n);
            next = fallbacks[n];
        }
    }
    if robots.len() == fallbacks.len() {
        for (robot, fallback) in robots.iter_mut().zip(&fallbacks) {
            robot.fallback = *fallback;
        }
    }

    let defaults = raw.defaults.as_ref();
    let default_robot = match defaults.and_then(|d| d.robot.as_ref()) {
        Some(r) => find_robot(&mut c, r, "defaults, field 'robot'"),
        // One robot and no default: it is the default.
        None if robot_names.len() == 1 => Some(0),
        None => None,
    };
    let default_window = defaults
        .and_then(|d| d.window.as_ref())
        .and_then(|w| c.duration(w, "defaults, field 'window'", limits::WINDOW))
        .unwrap_or(DEFAULT_WINDOW);
    let default_max_lines = defaults
        .and_then(|d| d.max_lines.as_ref())
        .and_then(|m| c.max_lines(m, "defaults, field 'max_lines'"))
        .unwrap_or(DEFAULT_MAX_LINES);
    let max_line_bytes = match &raw.max_line_bytes {
        Some(m) if m.value < 256 || m.value > 16 * 1024 * 1024 => {
            c.problem(
                m,
                "field 'max_line_bytes'",
                "must be between 256 and 16777216",
            );
            DEFAULT_MAX_LINE_BYTES
        }
        Some(m) => m.value,
        None => DEFAULT_MAX_LINE_BYTES,
    };

    let people = people::check_people(&mut c, &raw.people);
    let defaults_look = check_defaults_look(&mut c, defaults, people);
    let all_rule_names: Vec<&str> = (raw.rules.iter())
        .map(|r| r.value.name.value.trim())
        .collect();
    let routes = routes::check_routes(
        &mut c,
        &raw.routes,
        &find_robot,
        &defaults_look.people,
        &all_rule_names,
    );
    let timestamp = raw
        .timestamp
        .as_ref()
        .and_then(|t| check_timestamp(&mut c, t));
    let pii = pii::check_redact(&mut c, raw.redact.as_ref());
    let mut names = HashSet::new();
    let mut rules = Vec::new();
    for spanned in &raw.rules {
        let rule = &spanned.value;
        let name = rule.name.value.trim().to_owned();
        let ctx = |field: &str| format!("rule '{name}', field '{field}'");
        if name.is_empty()
            || name.chars().count() > MAX_RULE_NAME
            || name.contains(['【', '】'])
            || name.chars().any(crate::dingtalk::neutral::is_hazard)
        {
            c.problem(
                &rule.name,
                ctx("name"),
                format!(
                    "a rule name is one line of 1 to {MAX_RULE_NAME} characters, without 【】 \
                     (it is shown as 【name】) or control, bidi and zero-width characters"
                ),
            );
        } else if !names.insert(name.clone()) {
            c.problem(&rule.name, ctx("name"), "another rule has the same name");
        }
        let window = match &rule.window {
            Some(w) => c.duration(w, &ctx("window"), limits::WINDOW),
            None => Some(default_window),
        };
        let max_lines = match &rule.max_lines {
            Some(m) => c.max_lines(m, &ctx("max_lines")),
            None => Some(default_max_lines),
        };
        let robots: Vec<RobotId> = match &rule.robot {
            Some(list) => {
                if list.value.0.is_empty() {
                    c.problem(list, ctx("robot"), "names no robot");
                }
                let mut ids = Vec::new();
                for r in &list.value.0 {
                    let at = Spanned {
                        value: r.clone(),
                        referenced: list.referenced,
                        defined: list.defined,
                    };
                    if let Some(id) = find_robot(&mut c, &at, &ctx("robot")) {
                        if ids.contains(&id) {
                            c.problem(list, ctx("robot"), format!("names {} twice", quoted(r)));
                        } else {
                            ids.push(id);
                        }
                    }
                }
                ids
            }
            None => default_robot.into_iter().collect(),
        };
        let default_broken = defaults
            .and_then(|d| d.robot.as_ref())
            .is_some_and(|r| broken_robots.contains(&r.value));
        if robots.is_empty()
            && rule.robot.is_none()
            && !default_broken
            && robot_names.len() + broken_robots.len() > 1
        {
            c.problem(
                &rule.name,
                ctx("robot"),
                "several robots are defined: name one here or in defaults.robot",
            );
        }
        let mut spec = RuleSpec {
            name: name.clone(),
            exclude: rule.exclude.iter().map(|e| e.value.clone()).collect(),
            window: window.unwrap_or(default_window),
            max_lines: max_lines.unwrap_or(default_max_lines),
            robots,
            max_groups: DEFAULT_MAX_GROUPS,
            ..RuleSpec::default()
        };
        let Some(pattern_at) = check_rule_fields(&mut c, spanned, &name, &mut spec, &defaults_look)
        else {
            continue;
        };
        spec.style.pii = pii.clone();
        spec.routes = routes::for_rule(&routes, &name);
        match Rule::compile(spec) {
            Ok(r) => rules.push(r),
            Err(e) => {
                let at = match e.exclude_index {
                    Some(i) => &rule.exclude[i],
                    None => pattern_at,
                };
                let field = if e.exclude_index.is_some() {
                    "exclude"
                } else if rule.absent.is_some() {
                    "absent"
                } else {
                    "match"
                };
                c.problem(at, ctx(field), e.message);
            }
        }
    }

    let inputs = raw
        .inputs
        .iter()
        .enumerate()
        .filter_map(|(i, input)| check_input(&mut c, i, &input.value))
        .collect();
    let stale_inputs: Vec<(String, &Spanned<String>)> = (raw.inputs.iter())
        .filter_map(|i| {
            Some((
                i.value.path.value.trim().to_owned(),
                i.value.stale.as_ref()?,
            ))
        })
        .collect();
    let stale = stale::check_stale(
        &mut c,
        &stale_inputs,
        raw.stdin.as_ref(),
        default_robot,
        robot_names.len(),
    );
    let timezone = check_timezone(&mut c, raw.timezone.as_ref());
    let rule_names: Vec<&str> = raw
        .rules
        .iter()
        .map(|r| r.value.name.value.trim())
        .collect();
    let mutes = mute_config::check_mutes(&mut c, &raw.mute, &rule_names);
    let quiet_hours = mute_config::check_quiet_hours(&mut c, raw.quiet_hours.as_ref());
    let listen = raw.listen.as_ref().and_then(|l| {
        l.value
            .trim()
            .parse()
            .map_err(|_| {
                c.problem(
                    l,
                    "field 'listen'",
                    "expected an address with a port, such as 127.0.0.1:9177 or [::]:9177",
                )
            })
            .ok()
    });
    let robot_monthly: Vec<_> = (raw.robots.iter())
        .map(|(n, r)| (n.as_str(), r.value.monthly.as_ref()))
        .collect();
    let quota = quota::check_quota(&mut c, raw.quota.as_ref(), &robot_monthly);

    if c.problems.is_empty() {
        Ok(Config {
            origin: origin.to_owned(),
            robots,
            rules,
            default_robot,
            max_line_bytes,
            timestamp,
            warnings: c.warnings,
            inputs,
            timezone,
            listen,
            mutes,
            quiet_hours,
            quota,
            stale,
        })
    } else {
        // In file order, so the list reads like the file (a problem without a line stays first).
        c.problems.sort_by_key(|p| (p.line, p.column));
        Err(ConfigError::Invalid(c.problems))
    }
}

/// `timezone:` must be an IANA name the compiled-in database knows; without it, `TZ` or the
/// host's zone (see [`Zone::from_env`]).
fn check_timezone(c: &mut Checker, raw: Option<&Spanned<String>>) -> Zone {
    let Some(raw) = raw else {
        return Zone::from_env();
    };
    Zone::parse(&raw.value).unwrap_or_else(|| {
        c.problem(
            raw,
            "field 'timezone'",
            format!(
                "unknown time zone `{}`: use an IANA name such as Asia/Shanghai or UTC",
                raw.value
            ),
        );
        Zone::Host
    })
}

fn check_input(c: &mut Checker, index: usize, raw: &RawInput) -> Option<InputConfig> {
    let ctx = |field: &str| format!("input {}, field '{field}'", index + 1);
    let path = raw.path.value.trim().to_owned();
    let mut ok = true;
    if path.is_empty() {
        c.problem(&raw.path, ctx("path"), "is empty");
        ok = false;
    } else if let Err(e) = glob::Pattern::new(&path) {
        c.problem(&raw.path, ctx("path"), format!("is not a valid glob ({e})"));
        ok = false;
    }
    let multiline = match &raw.multiline {
        None => None,
        Some(m) => {
            let m = &m.value;
            let start = match crate::rules::regex_builder(&m.start.value).build() {
                Ok(r) => Some(r),
                Err(e) => {
                    c.problem(&m.start, ctx("multiline.start"), e.to_string());
                    None
                }
            };
            let max_lines = match &m.max_lines {
                None => Some(DEFAULT_MULTILINE_MAX_LINES),
                Some(n) if n.value == 0 || n.value > 100_000 => {
                    c.problem(
                        n,
                        ctx("multiline.max_lines"),
                        "must be between 1 and 100000",
                    );
                    None
                }
                Some(n) => Some(n.value),
            };
            let timeout = match &m.timeout {
                None => Some(DEFAULT_MULTILINE_TIMEOUT),
                Some(t) => c.duration(t, &ctx("multiline.timeout"), limits::MULTILINE_TIMEOUT),
            };
            match (start, max_lines, timeout) {
                (Some(start), Some(max_lines), Some(timeout)) => Some(Multiline {
                    start,
                    max_lines,
                    timeout,
                }),
                _ => {
                    ok = false;
                    None
                }
            }
        }
    };
    ok.then_some(InputConfig { path, multiline })
}

/// `timestamp: {regex, format}`: how `dingtail test --replay` finds the time of a line. The
/// regex's first capture group (or the one named `ts`) holds the text, parsed with a chrono
/// `strftime` format; formats without a year (syslog's `%b %e %H:%M:%S`) get the current year.
#[derive(Debug, Clone)]
pub struct TimestampFormat {
    /// Finds the timestamp text in a line.
    pub regex: regex::bytes::Regex,
    /// chrono format of that text.
    pub format: String,
}

/// Defaults that shape messages: mentions by severity and the message type.
#[derive(Debug, Default)]
struct DefaultsLook {
    mention: BTreeMap<Severity, Mention>,
    msgtype: MsgType,
    /// `people:` groups, for every `mention:`.
    people: people::People,
}

/// Longest `threshold.count` and `max_groups`: both size per-rule memory.
const MAX_THRESHOLD_COUNT: usize = 100_000;
const MAX_GROUPS_LIMIT: usize = 100_000;

fn check_msgtype(c: &mut Checker, raw: &Spanned<String>, context: &str) -> Option<MsgType> {
    match raw.value.trim() {
        "text" => Some(MsgType::Text),
        "markdown" => Some(MsgType::Markdown),
        other => {
            c.problem(
                raw,
                context,
                format!(
                    "{} is not a message type; write text or markdown",
                    quoted(other)
                ),
            );
            None
        }
    }
}

fn check_defaults_look(
    c: &mut Checker,
    defaults: Option<&RawDefaults>,
    people: people::People,
) -> DefaultsLook {
    let mut look = DefaultsLook {
        people,
        ..DefaultsLook::default()
    };
    let Some(d) = defaults else {
        return look;
    };
    if let Some(m) = &d.msgtype {
        look.msgtype = check_msgtype(c, m, "defaults, field 'msgtype'").unwrap_or_default();
    }
    for (severity, mention) in &d.mention {
        let ctx = format!("defaults, field 'mention.{severity}'");
        let people = people::resolve(c, &look.people, mention, &ctx);
        match Severity::parse(severity) {
            Some(s) => {
                look.mention.insert(s, people);
            }
            None => c.problem(
                mention,
                ctx,
                format!(
                    "mentions in defaults are by severity: {}",
                    Severity::NAMES.join(", ")
                ),
            ),
        }
    }
    look
}

fn check_mention(c: &mut Checker, raw: &Spanned<RawMention>, context: &str) -> Mention {
    let m = &raw.value;
    let mut out = Mention {
        all: m.all,
        ..Mention::default()
    };
    for mobile in &m.mobiles {
        let v = mobile.value.trim();
        let digits = v.chars().filter(char::is_ascii_digit).count();
        if digits < 5
            || !v
                .chars()
                .all(|ch| ch.is_ascii_digit() || "+- ".contains(ch))
        {
            c.problem(
                mobile,
                context,
                format!(
                    "{} is not a phone number (digits, optionally + and -)",
                    quoted(v)
                ),
            );
        } else if !out.mobiles.iter().any(|x| x == v) {
            out.mobiles.push(v.to_owned());
        }
    }
    for user in &m.user_ids {
        let v = user.value.trim();
        if v.is_empty() || v.contains(char::is_whitespace) {
            c.problem(user, context, "a user id is one word");
        } else if !out.user_ids.iter().any(|x| x == v) {
            out.user_ids.push(v.to_owned());
        }
    }
    if out.people() > MAX_MENTIONS {
        c.problem(
            raw,
            context,
            format!(
                "names {} people; DingTalk mentions at most {MAX_MENTIONS} in one message",
                out.people()
            ),
        );
    }
    out
}

fn check_timestamp(c: &mut Checker, raw: &RawTimestamp) -> Option<TimestampFormat> {
    let ctx = "timestamp, field 'regex'";
    let regex = match crate::rules::regex_builder(&raw.regex.value).build() {
        Ok(re) if re.captures_len() > 1 => Some(re),
        Ok(_) => {
            c.problem(
                &raw.regex,
                ctx,
                "needs a capture group around the timestamp, e.g. '^(\\S+ \\S+)'",
            );
            None
        }
        Err(e) => {
            c.problem(&raw.regex, ctx, format!("invalid regex: {e}"));
            None
        }
    };
    let format = raw.format.value.trim().to_owned();
    let bad = chrono::format::StrftimeItems::new(&format)
        .any(|i| matches!(i, chrono::format::Item::Error));
    if format.is_empty() || bad {
        c.problem(
            &raw.format,
            "timestamp, field 'format'",
            format!(
                "{} is not a strftime format, e.g. %Y-%m-%d %H:%M:%S",
                quoted(&format)
            ),
        );
        return None;
    }
    Some(TimestampFormat {
        regex: regex?,
        format,
    })
}

/// Checks the fields of issue 5 (threshold, cooldown, grouping, templates, mentions, routing,
/// JSON fields, recovery, absence) into `spec`. Returns where the pattern is written, or `None`
/// when the rule has no usable pattern (then it is not compiled; the problem is recorded).
fn check_rule_fields<'r>(
    c: &mut Checker,
    raw: &'r Spanned<RawRule>,
    name: &str,
    spec: &mut RuleSpec,
    defaults: &DefaultsLook,
) -> Option<&'r Spanned<String>> {
    let rule = &raw.value;
    let ctx = |field: &str| format!("rule '{name}', field '{field}'");
    let pattern_at = match (&rule.pattern, &rule.absent) {
        (Some(p), None) => p,
        (None, Some(a)) => {
            spec.absent_for = c.duration(&a.value.duration, &ctx("absent.for"), limits::LONG);
            let not_here = [
                ("threshold", rule.threshold.is_some()),
                ("cooldown", rule.cooldown.is_some()),
                ("field", rule.field.is_some()),
                ("escalate", rule.escalate.is_some()),
                ("where", rule.condition.is_some()),
                ("resolve_after", rule.resolve_after.is_some()),
            ];
            for (field, present) in not_here {
                if present {
                    c.problem(
                        a,
                        ctx(field),
                        "does not apply to an absent rule (it alerts on silence, and says when the line is back)",
                    );
                }
            }
            &a.value.pattern
        }
        (Some(_), Some(a)) => {
            c.problem(
                a,
                ctx("absent"),
                "a rule has either `match` or `absent`, not both",
            );
            return None;
        }
        (None, None) => {
            c.problem(
                &rule.name,
                ctx("match"),
                "is missing: give `match` (or `absent: {match, for}`)",
            );
            return None;
        }
    };
    spec.pattern = pattern_at.value.clone();
    let captures = capture_names(&spec.pattern);

    let mut style = Style {
        msgtype: defaults.msgtype,
        absent_pattern: rule.absent.as_ref().map(|a| a.value.pattern.value.clone()),
        ..Style::default()
    };
    if let Some(s) = &rule.severity {
        style.severity = Severity::parse(&s.value);
        if style.severity.is_none() {
            c.problem(
                s,
                ctx("severity"),
                format!(
                    "{} is not a severity; write {}",
                    quoted(&s.value),
                    Severity::NAMES.join(", ")
                ),
            );
        }
    }
    if let Some(t) = &rule.threshold {
        let count = t.value.count.value;
        if count == 0 || count > MAX_THRESHOLD_COUNT {
            c.problem(
                &t.value.count,
                ctx("threshold.count"),
                format!("must be between 1 and {MAX_THRESHOLD_COUNT}"),
            );
        }
        let within = c.duration(&t.value.within, &ctx("threshold.within"), limits::WINDOW);
        if let Some(within) = within {
            spec.threshold = Some(Threshold {
                count: count.clamp(1, MAX_THRESHOLD_COUNT),
                within,
            });
        }
    }
    if let Some(cd) = &rule.cooldown {
        spec.cooldown = c.duration(cd, &ctx("cooldown"), limits::LONG);
    }
    for g in &rule.group_by {
        if !captures.iter().any(|n| **n == *g.value) {
            let known = if captures.is_empty() {
                "the pattern has no named captures; write (?P<name>...)".to_owned()
            } else {
                format!("named captures are: {}", captures.join(", "))
            };
            c.problem(
                g,
                ctx("group_by"),
                format!(
                    "{} is not a named capture of the pattern ({known})",
                    quoted(&g.value)
                ),
            );
        } else if spec.group_by.contains(&g.value) {
            c.problem(
                g,
                ctx("group_by"),
                format!("names {} twice", quoted(&g.value)),
            );
        } else {
            spec.group_by.push(g.value.clone());
        }
    }
    if let Some(m) = &rule.max_groups {
        if m.value == 0 || m.value > MAX_GROUPS_LIMIT {
            c.problem(
                m,
                ctx("max_groups"),
                format!("must be between 1 and {MAX_GROUPS_LIMIT}"),
            );
        } else if rule.group_by.is_empty() {
            c.problem(m, ctx("max_groups"), "needs group_by");
        } else {
            spec.max_groups = m.value;
        }
    }
    if let Some(t) = &rule.template {
        let hazard = t.value.chars().any(|ch| {
            ch == '【' || ch == '】' || (ch != '\n' && crate::dingtalk::neutral::is_hazard(ch))
        });
        if t.value.chars().count() > MAX_TEMPLATE_CHARS {
            c.problem(
                t,
                ctx("template"),
                format!("is longer than {MAX_TEMPLATE_CHARS} characters"),
            );
        } else if hazard {
            c.problem(
                t,
                ctx("template"),
                "contains 【, 】 or a control, bidi or zero-width character: only the header a \
                 message starts with may look like 【rule】",
            );
        } else {
            match Template::parse(&t.value, &captures) {
                Ok(t) => style.template = Some(t),
                Err(e) => c.problem(t, ctx("template"), e),
            }
        }
    }
    style.mention = match &rule.mention {
        Some(m) => people::resolve(c, &defaults.people, m, &ctx("mention")),
        None => style
            .severity
            .and_then(|s| defaults.mention.get(&s).cloned())
            .unwrap_or_default(),
    };
    if let Some(m) = &rule.msgtype
        && let Some(t) = check_msgtype(c, m, &ctx("msgtype"))
    {
        style.msgtype = t;
    }
    if let Some(f) = &rule.field {
        let path: Vec<String> = f.value.split('.').map(|s| s.trim().to_owned()).collect();
        if path.iter().any(String::is_empty) {
            c.problem(
                f,
                ctx("field"),
                format!(
                    "{} is not a field path; write e.g. level or log.level",
                    quoted(&f.value)
                ),
            );
        } else {
            spec.field = Some(path);
        }
    }
    if let Some(w) = &rule.condition {
        match crate::where_expr::Where::parse(&w.value) {
            Ok(cond) => spec.condition = Some(cond),
            Err(e) => c.problem(
                w,
                ctx("where"),
                format!(
                    "at character {} of the condition: {}",
                    e.offset + 1,
                    e.message
                ),
            ),
        }
    }
    if let Some(r) = &rule.resolve_after {
        spec.resolve_after = c.duration(r, &ctx("resolve_after"), limits::LONG);
    }
    if let Some(e) = &rule.escalate {
        let has_resolve = rule.resolve_after.is_some();
        spec.escalate = escalate::check_escalate(c, e, name, has_resolve, &defaults.people);
    }
    spec.style = style;
    Some(pattern_at)
}

fn check_robot(
    c: &mut Checker,
    name: &str,
    raw: &Spanned<RawRobot>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<RobotConfig> {
    let robot = &raw.value;
    let ctx = |field: &str| format!("robot '{name}', field '{field}'");
    let problems_before = c.problems.len();

    let webhook = c.inline_or_file(name, "webhook", &robot.webhook, &robot.webhook_file, env);
    match &webhook {
        Some((at, url)) => {
            if let Err(message) = check_webhook(url) {
                c.problem(at, ctx(at_field(&robot.webhook, "webhook")), message);
            }
        }
        None if robot.webhook.is_none() && robot.webhook_file.is_none() => {
            c.problem(
                raw,
                format!("robot '{name}'"),
                "needs `webhook` or `webhook_file`",
            );
        }
        None => {}
    }
    let secret = c
        .inline_or_file(name, "secret", &robot.secret, &robot.secret_file, env)
        .and_then(|(at, s)| {
            let field = ctx(at_field(&robot.secret, "secret"));
            if s.is_empty() {
                c.problem(at, field, "is empty; omit it when the robot does not sign");
                None
            } else if !s.starts_with("SEC") {
                // DingTalk secrets always start with SEC; anything else is a paste error, and
                // catching it here beats a "sign not match" at 3 a.m.
                c.problem(
                    at,
                    field,
                    "does not start with SEC: copy the whole secret shown under 加签",
                );
                None
            } else {
                Some(Secret::new(s))
            }
        });
    let keyword = robot
        .keyword
        .as_ref()
        .and_then(|k| match expand_env(&k.value, env) {
            Ok(v) if v.trim().is_empty() => {
                c.problem(k, ctx("keyword"), "is empty");
                None
            }
            Ok(v) if v.chars().any(crate::dingtalk::neutral::is_hazard) => {
                c.problem(
                    k,
                    ctx("keyword"),
                    "contains a control, bidi or zero-width character",
                );
                None
            }
            Ok(v) => Some(v.trim().to_owned()),
            Err(e) => {
                c.problem(k, ctx("keyword"), e);
                None
            }
        });
    let rate = match &robot.rate {
        None => Rate::default(),
        Some(r) => parse_rate(&r.value).unwrap_or_else(|e| {
            c.problem(r, ctx("rate"), e);
            Rate::default()
        }),
    };
    let proxy = robot.proxy.as_ref().and_then(|p| {
        let value = expand_env(&p.value, env)
            .map_err(|e| c.problem(p, ctx("proxy"), e))
            .ok()?;
        match url::Url::parse(value.trim()) {
            Ok(u) if matches!(u.scheme(), "http" | "https" | "socks5" | "socks5h") => {
                Some(Secret::new(value.trim()))
            }
            // The proxy URL may carry credentials: the message does not quote it.
            _ => {
                c.problem(
                    p,
                    ctx("proxy"),
                    "is not an http://, https:// or socks5:// URL",
                );
                None
            }
        }
    });
    let mut duration = |value: &Option<Spanned<String>>, field: &str, default: Duration| {
        let max = match field {
            "timeout.connect" => limits::CONNECT_TIMEOUT,
            "timeout.request" => limits::REQUEST_TIMEOUT,
            "retry.initial" => limits::RETRY_INITIAL,
            _ => limits::ROBOT_WAIT,
        };
        value
            .as_ref()
            .and_then(|v| c.duration(v, &ctx(field), max))
            .unwrap_or(default)
    };
    let timeout = robot.timeout.as_ref();
    let connect_timeout = duration(
        &timeout.and_then(|t| t.connect.clone()),
        "timeout.connect",
        Duration::from_secs(5),
    );
    let request_timeout = duration(
        &timeout.and_then(|t| t.request.clone()),
        "timeout.request",
        Duration::from_secs(10),
    );
    let retry = robot.retry.as_ref();
    let defaults = Retry::default();
    let retry = Retry {
        initial: duration(
            &retry.and_then(|r| r.initial.clone()),
            "retry.initial",
            defaults.initial,
        ),
        max: duration(
            &retry.and_then(|r| r.max.clone()),
            "retry.max",
            defaults.max,
        ),
        recheck: duration(
            &retry.and_then(|r| r.recheck.clone()),
            "retry.recheck",
            defaults.recheck,
        ),
    };
    let throttle_pause = duration(
        &robot.throttle_pause,
        "throttle_pause",
        Duration::from_secs(600),
    );

    if c.problems.len() > problems_before {
        return None;
    }
    Some(RobotConfig {
        name: name.to_owned(),
        endpoint: Endpoint {
            webhook: Secret::new(webhook?.1),
            secret,
            proxy,
            connect_timeout,
            request_timeout,
        },
        keyword,
        rate,
        fallback: None,
        retry,
        throttle_pause,
    })
}

/// The field name to blame: the inline one when it was used, else its `_file` twin.
fn at_field(inline: &Option<Spanned<String>>, field: &'static str) -> &'static str {
    match (inline.is_some(), field) {
        (true, f) => f,
        (false, "webhook") => "webhook_file",
        (false, "secret") => "secret_file",
        (false, f) => f,
    }
}

impl Checker<'_> {
    /// A value given inline (`field`) or read from a file (`field_file`, for Kubernetes secrets
    /// mounted as files), `${VAR}`-expanded and trimmed. Both at once is an error. A file that
    /// other users can read gets a warning: it holds a credential.
    fn inline_or_file<'r>(
        &mut self,
        name: &str,
        field: &str,
        inline: &'r Option<Spanned<String>>,
        file: &'r Option<Spanned<String>>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<(&'r Spanned<String>, String)> {
        let ctx = |f: &str| format!("robot '{name}', field '{f}'");
        match (inline, file) {
            (Some(_), Some(f)) => {
                self.problem(
                    f,
                    ctx(&format!("{field}_file")),
                    format!("give `{field}` or `{field}_file`, not both"),
                );
                None
            }
            (Some(v), None) => match expand_env(&v.value, env) {
                Ok(value) => Some((v, value.trim().to_owned())),
                Err(e) => {
                    self.problem(v, ctx(field), e);
                    None
                }
            },
            (None, Some(f)) => {
                let fctx = ctx(&format!("{field}_file"));
                let path = match expand_env(&f.value, env) {
                    Ok(p) => PathBuf::from(p),
                    Err(e) => {
                        self.problem(f, fctx, e);
                        return None;
                    }
                };
                let path = match (path.is_relative(), Path::new(self.origin).parent()) {
                    (true, Some(dir)) if !self.origin.starts_with('<') => dir.join(path),
                    _ => path,
                };
                match std::fs::read_to_string(&path) {
                    Ok(value) => {
                        if let Some(mode) = file_mode(&path).filter(|m| m & 0o077 != 0) {
                            self.warnings.push(Problem {
                                file: self.origin.to_owned(),
                                line: f.referenced.line(),
                                column: f.referenced.column(),
                                context: fctx,
                                message: format!(
                                    "{} is readable by other users (mode {mode:o}); chmod 600 it",
                                    shown_path(&f.value, &path, Some(value.trim()))
                                ),
                            });
                        }
                        Some((f, value.trim().to_owned()))
                    }
                    Err(e) => {
                        let shown = shown_path(&f.value, &path, None);
                        self.problem(f, fctx, format!("cannot read {shown}: {e}"));
                        None
                    }
                }
            }
            (None, None) => None,
        }
    }
}

/// A `webhook_file`/`secret_file` path as an error may show it: only when written without
/// `${VAR}`, when no part of it looks like a credential (see [`shown`]) and it does not hold
/// the value read from the file; otherwise `the file` (the line and column point at it).
fn shown_path(raw: &str, path: &Path, value: Option<&str>) -> String {
    let text = path.display().to_string();
    let safe = !raw.contains('$')
        && text.split('/').all(|part| part.is_empty() || shown(part))
        && value.is_none_or(|v| v.is_empty() || !text.contains(v));
    if safe { text } else { "the file".to_owned() }
}

#[cfg(unix)]
fn file_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}

#[cfg(not(unix))]
fn file_mode(_: &Path) -> Option<u32> {
    None
}

/// The webhook must be an http(s) URL with an `access_token` and without `timestamp`/`sign`
/// (those are added afresh to every request; a stored one would expire within the hour).
/// Errors never quote the URL: it holds the token.
fn check_webhook(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url.trim()).map_err(|e| format!("is not a valid URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("must be an http:// or https:// URL".to_owned());
    }
    let keys: Vec<String> = parsed.query_pairs().map(|(k, _)| k.into_owned()).collect();
    match keys.iter().filter(|k| *k == "access_token").count() {
        0 => return Err("has no access_token=… query parameter".to_owned()),
        1 => {}
        _ => return Err("has access_token twice".to_owned()),
    }
    if keys.iter().any(|k| k == "timestamp" || k == "sign") {
        return Err(
            "contains timestamp/sign: give the plain webhook and the secret; dingtail signs each request"
                .to_owned(),
        );
    }
    Ok(())
}

/// Parses `20/min`, `5/10s`, `1/s`, `100/hour`: a count of 1 to [`limits::RATE_COUNT`] per a
/// period of at most [`limits::ROBOT_WAIT`]. Errors quote the text only when it is safe to
/// (a secret pasted into `rate:` is not quoted back).
pub fn parse_rate(text: &str) -> Result<Rate, String> {
    let bad = || {
        format!(
            "{} is not a rate; write e.g. 20/min or 5/10s",
            quoted(text.trim())
        )
    };
    let (count, per) = text.trim().split_once('/').ok_or_else(bad)?;
    let count: u32 = count.trim().parse().map_err(|_| bad())?;
    let per = per.trim();
    let per = match per {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        other => humantime::parse_duration(other).map_err(|_| bad())?,
    };
    if count == 0 || per.is_zero() {
        return Err(format!(
            "{} allows nothing; the count and period must be above zero",
            quoted(text.trim())
        ));
    }
    if count > limits::RATE_COUNT || per > limits::ROBOT_WAIT {
        return Err(format!(
            "{} is out of range: at most {} messages per period, and a period of at most {}",
            quoted(text.trim()),
            limits::RATE_COUNT,
            humantime::format_duration(limits::ROBOT_WAIT)
        ));
    }
    Ok(Rate { count, per })
}

/// Expands `${VAR}` (and `$$` to a literal `$`). The error names the variable only.
pub fn expand_env(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| "has `${` without a closing `}`".to_owned())?;
            let name = &body[..end];
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(format!("`${{{name}}}` is not a valid variable name"));
            }
            match env(name) {
                Some(v) => out.push_str(&v),
                None => return Err(format!("environment variable {name} is not set")),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("t0k3n".into()),
            "SECRET" => Some("SECabc".into()),
            _ => None,
        }
    }

    fn parse(text: &str) -> Result<Config, Vec<Problem>> {
        parse_str(text, "rules.yaml", &env).map_err(|e| match e {
            ConfigError::Invalid(p) => p,
            other => panic!("{other}"),
        })
    }

    const GOOD: &str = r#"
robots:
  ops:
    webhook: "http://127.0.0.1:1/robot/send?access_token=${TOKEN}"
    secret: "${SECRET}"
    keyword: 告警
    rate: 5/10s
defaults:
  window: 2s
  max_lines: 3
rules:
  - name: five
    match: '" 5\d\d '
    exclude: ['/healthz']
  - name: err
    match: ERROR
    window: 500ms
"#;

    #[test]
    fn a_good_config_is_checked_into_robots_and_rules() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.robots.len(), 1);
        let ops = &c.robots[0];
        assert_eq!(
            ops.endpoint.webhook.expose(),
            "http://127.0.0.1:1/robot/send?access_token=t0k3n"
        );
        assert_eq!(ops.endpoint.secret.as_ref().unwrap().expose(), "SECabc");
        assert_eq!(ops.keyword.as_deref(), Some("告警"));
        assert_eq!(
            ops.rate,
            Rate {
                count: 5,
                per: Duration::from_secs(10)
            }
        );
        assert_eq!(c.rules[0].window, Duration::from_secs(2));
        assert_eq!(c.rules[0].max_lines, 3);
        assert_eq!(c.rules[1].window, Duration::from_millis(500));
        assert_eq!(c.rules[1].robots, [0]);
    }

    #[test]
    fn timezone_is_an_iana_name_located_when_wrong() {
        let c = parse(&format!("timezone: Asia/Shanghai\n{GOOD}")).unwrap();
        assert_eq!(c.timezone, Zone::parse("Asia/Shanghai").unwrap());
        let problems = parse(&format!("timezone: Beijing\n{GOOD}")).unwrap_err();
        assert_eq!(
            problems[0].to_string(),
            "rules.yaml:1:11: field 'timezone': unknown time zone `Beijing`: use an IANA name such as Asia/Shanghai or UTC"
        );
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let c = parse(GOOD).unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("t0k3n"), "{debug}");
        assert!(!debug.contains("SECabc"), "{debug}");
    }

    #[test]
    fn every_problem_is_reported_with_line_rule_and_field() {
        let text = r#"robots:
  ops:
    webhook: "http://127.0.0.1:1/robot/send?access_token=${NOPE}"
rules:
  - name: a
    match: '(unclosed'
  - name: a
    match: ok
    window: soon
  - name: b
    match: ok
    robot: pager
"#;
        let problems = parse(text).unwrap_err();
        let shown: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        let expect = [
            "rules.yaml:3:14: robot 'ops', field 'webhook': environment variable NOPE is not set",
            "rules.yaml:6:12: rule 'a', field 'match': ",
            "rules.yaml:7:11: rule 'a', field 'name': another rule has the same name",
            "rules.yaml:9:13: rule 'a', field 'window': `soon` is not a duration",
            "rules.yaml:12:12: rule 'b', field 'robot': unknown robot `pager` (robots are: ops)",
        ];
        assert_eq!(shown.len(), expect.len(), "{shown:#?}");
        for (got, want) in shown.iter().zip(expect) {
            assert!(
                got.starts_with(want),
                "{got}\n  does not start with\n{want}"
            );
        }
    }

    #[test]
    fn unknown_fields_and_syntax_errors_are_located() {
        let problems = parse("rules:\n  - name: a\n    match: x\n    widnow: 1s\n").unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, 4, "{:?}", problems[0]);
        assert!(problems[0].message.contains("widnow"), "{:?}", problems[0]);

        let problems = parse("rules: [\n").unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].line > 0);
    }

    #[test]
    fn webhook_mistakes_are_caught_without_quoting_the_token() {
        for (url, says) in [
            ("ftp://x/robot/send?access_token=zzsecret", "http"),
            ("https://oapi.dingtalk.com/robot/send", "access_token"),
            (
                "https://oapi.dingtalk.com/robot/send?access_token=zzsecret&timestamp=1&sign=x",
                "timestamp/sign",
            ),
        ] {
            let text = format!("robots:\n  ops:\n    webhook: \"{url}\"\nrules: []\n");
            let problems = parse(&text).unwrap_err();
            let shown = problems[0].to_string();
            assert!(shown.contains(says), "{shown}");
            assert!(!shown.contains("zzsecret"), "{shown}");
        }
    }

    #[test]
    fn secrets_must_look_like_dingtalk_secrets() {
        let text = "robots:\n  ops:\n    webhook: \"http://h/robot/send?access_token=x\"\n    secret: abc\n";
        let problems = parse(text).unwrap_err();
        assert!(problems[0].message.contains("SEC"));
        assert!(!problems[0].to_string().contains("abc"));
    }

    #[test]
    fn several_robots_need_a_default_or_a_choice() {
        let text = r#"robots:
  a: { webhook: "http://h/robot/send?access_token=x" }
  b: { webhook: "http://h/robot/send?access_token=y" }
rules:
  - { name: r, match: x }
  - { name: s, match: x, robot: b }
"#;
        let problems = parse(text).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].context.contains("rule 'r'"));
    }

    #[test]
    fn rates_parse_in_several_spellings() {
        assert_eq!(parse_rate("20/min").unwrap(), Rate::default());
        assert_eq!(parse_rate("20/1m").unwrap(), Rate::default());
        assert_eq!(
            parse_rate(" 5 / 10s ").unwrap(),
            Rate {
                count: 5,
                per: Duration::from_secs(10)
            }
        );
        assert!(parse_rate("0/min").is_err());
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("5/lightyear").is_err());
    }

    #[test]
    fn env_expansion() {
        assert_eq!(expand_env("a${TOKEN}b", &env).unwrap(), "at0k3nb");
        assert_eq!(expand_env("$$5 and $x", &env).unwrap(), "$5 and $x");
        assert_eq!(
            expand_env("${MISSING}", &env).unwrap_err(),
            "environment variable MISSING is not set"
        );
        assert!(expand_env("${TOKEN", &env).is_err());
        assert!(expand_env("${1X}", &env).is_err());
    }

    #[test]
    fn on_call_fields_are_checked_into_rules() {
        let text = r#"robots:
  ops: { webhook: "http://h/robot/send?access_token=x" }
  security: { webhook: "http://h/robot/send?access_token=y" }
defaults:
  robot: ops
  mention:
    critical: { mobiles: ["13800000000"] }
rules:
  - name: ssh
    match: 'Failed password for (?P<user>\S+) from (?P<ip>[\d.]+)'
    severity: critical
    threshold: { count: 5, within: 1m }
    cooldown: 10m
    group_by: [ip]
    max_groups: 10
    template: "{ip} tried {count} passwords, last user {user}"
    robot: [ops, security]
    msgtype: markdown
    resolve_after: 5m
  - name: k8s
    match: '^(error|fatal)$'
    field: log.level
    mention: { user_ids: [u1], all: true }
  - name: heartbeat
    absent: { match: 'heartbeat ok', for: 2m }
timestamp: { regex: '^(\S+ \S+)', format: '%Y-%m-%d %H:%M:%S' }
"#;
        let c = parse(text).unwrap();
        let ssh = &c.rules[0];
        assert_eq!(ssh.robots, [0, 1]);
        assert_eq!(
            ssh.threshold,
            Some(Threshold {
                count: 5,
                within: Duration::from_secs(60)
            })
        );
        assert_eq!(ssh.cooldown, Some(Duration::from_secs(600)));
        assert_eq!(ssh.group_by, [1]);
        assert_eq!(ssh.max_groups, 10);
        assert!(ssh.needs_captures);
        assert_eq!(ssh.style.msgtype, MsgType::Markdown);
        assert_eq!(ssh.style.mention.mobiles, ["13800000000"], "by severity");
        assert_eq!(ssh.resolve_after, Some(Duration::from_secs(300)));
        let k8s = &c.rules[1];
        assert_eq!(
            k8s.field.as_deref(),
            Some(&["log".to_owned(), "level".to_owned()][..])
        );
        assert!(k8s.style.mention.all);
        assert_eq!(c.rules[2].absent_for, Some(Duration::from_secs(120)));
        assert!(c.timestamp.is_some());
    }

    #[test]
    fn every_on_call_mistake_is_reported_at_once_with_its_line() {
        let text = r#"robots:
  ops: { webhook: "http://h/robot/send?access_token=x" }
defaults:
  mention:
    urgent: { mobiles: ["1380000"] }
rules:
  - name: a
    match: '(?P<ip>\S+) failed'
    severity: high
    threshold: { count: 0, within: soon }
    group_by: [ip, host]
    template: "{ip} {nope}"
    mention: { mobiles: ["call me"] }
    robot: [ops, pager]
    msgtype: html
    field: "log..level"
    resolve_after: never
  - name: b
    absent: { match: x, for: 1m }
    threshold: { count: 2, within: 1m }
  - name: c
    match: x
    max_groups: 5
  - name: d
timestamp: { regex: '^\S+', format: '%Y-%Q' }
"#;
        let problems = parse(text).unwrap_err();
        let shown: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        let expect = [
            (
                "rules.yaml:5:13: defaults, field 'mention.urgent'",
                "by severity",
            ),
            (
                "rules.yaml:25:21: timestamp, field 'regex'",
                "capture group",
            ),
            ("rules.yaml:25:37: timestamp, field 'format'", "strftime"),
            (
                "rules.yaml:14:12: rule 'a', field 'robot'",
                "unknown robot `pager`",
            ),
            (
                "rules.yaml:9:15: rule 'a', field 'severity'",
                "info, warning, critical",
            ),
            (
                "rules.yaml:10:25: rule 'a', field 'threshold.count'",
                "between 1",
            ),
            (
                "rules.yaml:10:36: rule 'a', field 'threshold.within'",
                "not a duration",
            ),
            (
                "rules.yaml:11:20: rule 'a', field 'group_by'",
                "`host` is not a named capture",
            ),
            ("rules.yaml:12:15: rule 'a', field 'template'", "`{nope}`"),
            (
                "rules.yaml:13:26: rule 'a', field 'mention'",
                "not a phone number",
            ),
            (
                "rules.yaml:15:14: rule 'a', field 'msgtype'",
                "text or markdown",
            ),
            (
                "rules.yaml:16:12: rule 'a', field 'field'",
                "not a field path",
            ),
            (
                "rules.yaml:17:20: rule 'a', field 'resolve_after'",
                "not a duration",
            ),
            (
                "rules.yaml:19:13: rule 'b', field 'threshold'",
                "absent rule",
            ),
            (
                "rules.yaml:23:17: rule 'c', field 'max_groups'",
                "needs group_by",
            ),
            ("rules.yaml:24:11: rule 'd', field 'match'", "is missing"),
        ];
        assert_eq!(shown.len(), expect.len(), "{shown:#?}");
        for (want, says) in expect {
            assert!(
                shown
                    .iter()
                    .any(|s| s.starts_with(want) && s.contains(says)),
                "no `{want}…{says}` in {shown:#?}"
            );
        }
    }

    #[test]
    fn schema_errors_are_reported_with_the_semantic_ones_all_at_once() {
        let text = r#"robots:
  ops:
    webhook: "http://h/robot/send?access_token=x"
    retry: 5
  pager:
    webhook: "http://h/robot/send?access_token=y"
defaults: { robot: ops }
rules:
  - name: a
    match: '(unclosed'
  - name: b
    match: ok
    widnow: 1s
  - name: c
    match: '(still checked'
    max_lines: many
    exclude: |
      not a list
  - name: d
    match: ok
    robot: [ops, nobody]
  - name: e
    match: ok
    window: 2d
extra_top: 1
"#;
        let problems = parse(text).unwrap_err();
        let shown: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        let expect = [
            (
                "rules.yaml:4:12: robot 'ops', field 'retry'",
                "must be a mapping",
            ),
            ("rules.yaml:10:12: rule 'a', field 'match'", ""),
            ("rules.yaml:13:5: rule 'b', field 'widnow'", "unknown field"),
            (
                "rules.yaml:15:12: rule 'c', field 'match'",
                "unclosed group",
            ),
            (
                "rules.yaml:16:16: rule 'c', field 'max_lines'",
                "whole number",
            ),
            (
                "rules.yaml:18:7: rule 'c', field 'exclude'",
                "must be a list",
            ),
            (
                "rules.yaml:21:12: rule 'd', field 'robot'",
                "unknown robot `nobody`",
            ),
            (
                "rules.yaml:24:13: rule 'e', field 'window'",
                "longest allowed, 1day",
            ),
            ("rules.yaml:25:1: field 'extra_top'", "unknown field"),
        ];
        assert_eq!(shown.len(), expect.len(), "{shown:#?}");
        for ((want, says), got) in expect.iter().zip(&shown) {
            assert!(
                got.starts_with(want) && got.contains(says),
                "`{got}` is not `{want}…{says}`:\n{shown:#?}"
            );
        }
        // A rule naming a robot whose own block had a schema error is not blamed for it.
        assert!(!shown.iter().any(|s| s.contains("unknown robot `ops`")));
    }

    #[test]
    fn every_duration_is_checked_at_its_maximum_and_one_past_it() {
        let robot = |field: &str, value: &str| {
            let (outer, inner) = field.split_once('.').unwrap_or((field, ""));
            let v = if inner.is_empty() {
                format!("    {outer}: {value}\n")
            } else {
                format!("    {outer}: {{ {inner}: {value} }}\n")
            };
            format!(
                "robots:\n  ops:\n    webhook: \"http://h/robot/send?access_token=x\"\n{v}rules: []\n"
            )
        };
        let rule = |field: &str, value: &str| {
            let body = match field {
                "threshold.within" => {
                    format!("match: x\n    threshold: {{ count: 2, within: {value} }}")
                }
                "absent.for" => format!("absent: {{ match: x, for: {value} }}"),
                f => format!("match: x\n    {f}: {value}"),
            };
            format!("rules:\n  - name: r\n    {body}\n")
        };
        type Case = (String, Box<dyn Fn(&str) -> String>, Duration);
        let cases: Vec<Case> = vec![
            (
                "defaults, field 'window'".into(),
                Box::new(|v: &str| format!("defaults: {{ window: {v} }}\n")),
                limits::WINDOW,
            ),
            (
                "rule 'r', field 'window'".into(),
                Box::new(move |v: &str| rule("window", v)),
                limits::WINDOW,
            ),
            (
                "rule 'r', field 'threshold.within'".into(),
                Box::new(move |v: &str| rule("threshold.within", v)),
                limits::WINDOW,
            ),
            (
                "rule 'r', field 'cooldown'".into(),
                Box::new(move |v: &str| rule("cooldown", v)),
                limits::LONG,
            ),
            (
                "rule 'r', field 'resolve_after'".into(),
                Box::new(move |v: &str| rule("resolve_after", v)),
                limits::LONG,
            ),
            (
                "rule 'r', field 'absent.for'".into(),
                Box::new(move |v: &str| rule("absent.for", v)),
                limits::LONG,
            ),
            (
                "input 1, field 'multiline.timeout'".into(),
                Box::new(|v: &str| {
                    format!(
                        "inputs:\n  - path: /x\n    multiline: {{ start: '^a', timeout: {v} }}\n"
                    )
                }),
                limits::MULTILINE_TIMEOUT,
            ),
            (
                "robot 'ops', field 'timeout.connect'".into(),
                Box::new(move |v: &str| robot("timeout.connect", v)),
                limits::CONNECT_TIMEOUT,
            ),
            (
                "robot 'ops', field 'timeout.request'".into(),
                Box::new(move |v: &str| robot("timeout.request", v)),
                limits::REQUEST_TIMEOUT,
            ),
            (
                "robot 'ops', field 'retry.initial'".into(),
                Box::new(move |v: &str| robot("retry.initial", v)),
                limits::RETRY_INITIAL,
            ),
            (
                "robot 'ops', field 'retry.max'".into(),
                Box::new(move |v: &str| robot("retry.max", v)),
                limits::ROBOT_WAIT,
            ),
            (
                "robot 'ops', field 'retry.recheck'".into(),
                Box::new(move |v: &str| robot("retry.recheck", v)),
                limits::ROBOT_WAIT,
            ),
            (
                "robot 'ops', field 'throttle_pause'".into(),
                Box::new(move |v: &str| robot("throttle_pause", v)),
                limits::ROBOT_WAIT,
            ),
            (
                "robot 'ops', field 'rate'".into(),
                Box::new(move |v: &str| robot("rate", &format!("5/{v}"))),
                limits::ROBOT_WAIT,
            ),
        ];
        for (field, yaml, max) in &cases {
            let at_max = format!("{}ms", max.as_millis());
            let past = format!("{}ms", max.as_millis() + 1);
            if let Err(p) = parse(&yaml(&at_max)) {
                panic!("{field} at {at_max}: {p:#?}");
            }
            for bad in [past.as_str(), "18446744073709551615s", "0s"] {
                let problems = parse(&yaml(bad)).unwrap_err();
                assert_eq!(problems.len(), 1, "{field} {bad}: {problems:#?}");
                assert_eq!(problems[0].context, *field, "{bad}: {problems:#?}");
                assert!(problems[0].line > 0 && problems[0].column > 0);
            }
        }
        assert!(parse_rate("10000/s").is_ok());
        assert!(parse_rate("10001/s").is_err());
    }

    #[test]
    fn config_errors_do_not_quote_secret_shaped_values() {
        let secret = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd";
        for text in [
            format!(
                "robots:\n  ops:\n    webhook: \"http://h/robot/send?access_token=x\"\n    rate: {secret}\nrules: []\n"
            ),
            format!("rules:\n  - name: r\n    match: x\n    max_lines: {secret}\n"),
            format!("rules:\n  - name: r\n    match: x\n    window: {secret}\n"),
            format!("rules:\n  - name: r\n    match: x\n    severity: {secret}\n"),
            "rules:\n  - name: r\n    match: x\n    window: 0123456789abcdef0123456789abcdef\n"
                .to_owned(),
        ] {
            let problems = parse(&text).unwrap_err();
            let shown = format!("{problems:?} {}", ConfigError::Invalid(problems.clone()));
            assert!(!shown.contains("0123456789abcdef"), "{shown}");
            assert!(problems[0].line > 0, "{shown}");
        }
        // short, ordinary values are still quoted
        let problems = parse("rules:\n  - name: r\n    match: x\n    window: soon\n").unwrap_err();
        assert!(problems[0].message.contains("`soon`"), "{problems:?}");
    }

    #[test]
    fn a_webhook_file_path_holding_the_token_is_not_printed() {
        let dir = tempfile::tempdir().unwrap();
        let token_dir = dir.path().join("tok0123456789abcdef0123456789");
        std::fs::create_dir(&token_dir).unwrap();
        let origin = dir.path().join("rules.yaml");
        let text =
            "robots:\n  ops:\n    webhook_file: tok0123456789abcdef0123456789/webhook\nrules: []\n";
        let problems = match parse_str(text, &origin.display().to_string(), &env) {
            Err(ConfigError::Invalid(p)) => p,
            other => panic!("{other:?}"),
        };
        let shown = problems[0].to_string();
        assert!(shown.contains("cannot read the file"), "{shown}");
        assert!(!shown.contains("tok0123456789abcdef"), "{shown}");
        assert_eq!((problems[0].line, problems[0].column), (3, 19), "{shown}");
        // ${VAR} in the path: not printed either
        let text = "robots:\n  ops:\n    webhook_file: \"/run/${TOKEN}/webhook\"\nrules: []\n";
        let shown = parse(text).unwrap_err()[0].to_string();
        assert!(!shown.contains("t0k3n"), "{shown}");
    }

    #[test]
    fn names_templates_and_keywords_cannot_forge_headers() {
        for (text, field) in [
            (
                "rules:\n  - name: \"a】×5 host\\n【b\"\n    match: x\n",
                "name",
            ),
            ("rules:\n  - name: \"a\\u202eb\"\n    match: x\n", "name"),
            (
                "rules:\n  - name: a\n    match: x\n    template: \"ok\\n【fake】×9 h\"\n",
                "template",
            ),
            (
                "rules:\n  - name: a\n    match: x\n    template: \"ok\\rno\"\n",
                "template",
            ),
            (
                "robots:\n  ops:\n    webhook: \"http://h/robot/send?access_token=x\"\n    keyword: \"a\\rb\"\nrules: []\n",
                "keyword",
            ),
        ] {
            let problems = parse(text).unwrap_err();
            assert!(
                problems
                    .iter()
                    .any(|p| p.context.ends_with(&format!("field '{field}'"))),
                "{text}: {problems:#?}"
            );
        }
    }

    #[test]
    fn the_builtin_rules_are_valid() {
        let c = Config::builtin();
        assert!(c.robots.is_empty());
        assert!(c.rules.len() >= 6);
    }
}
