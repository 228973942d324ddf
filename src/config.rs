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

use crate::dingtalk::style::{MAX_MENTIONS, Mention, MsgType, Severity, Style, Template};
use crate::rules::{DEFAULT_MAX_GROUPS, Rule, RuleSpec, Threshold, capture_names};
use crate::secret::Secret;

mod quota;
pub use quota::{DEFAULT_MONTHLY, Quota, Reserve};

/// The built-in rule set, used when no config file exists: see `rules/default.yaml`.
pub const DEFAULT_RULES: &str = include_str!("../rules/default.yaml");

/// Where the built-in rules are said to come from in messages and errors.
pub const BUILTIN_NAME: &str = "<built-in rules/default.yaml>";

/// Index of a robot in [`Config::robots`].
pub type RobotId = usize;

/// How many messages a robot accepts per period (DingTalk: 20 a minute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Messages allowed in any sliding window of `per`.
    pub count: u32,
    /// Length of the window.
    pub per: Duration,
}

impl Default for Rate {
    fn default() -> Self {
        Rate {
            count: 20,
            per: Duration::from_secs(60),
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, humantime::format_duration(self.per))
    }
}

/// A DingTalk group robot, checked. The webhook (it carries the access token) and the signing
/// secret are [`Secret`]s, so no `Debug`, log line or error can print them.
#[derive(Debug, Clone)]
pub struct RobotConfig {
    /// The name the config gives it; used in messages to the operator.
    pub name: String,
    /// Full webhook URL including `access_token`; never contains `timestamp`/`sign`.
    pub webhook: Secret,
    /// The `SEC…` signing secret, when the robot uses 加签.
    pub secret: Option<Secret>,
    /// A security keyword that every message must contain.
    pub keyword: Option<String>,
    /// The robot's rate limit.
    pub rate: Rate,
    /// Where alerts go while DingTalk has this robot blocked for sending too fast.
    pub fallback: Option<RobotId>,
    /// A proxy for this robot only (else `HTTPS_PROXY`/`NO_PROXY` apply); may hold credentials.
    pub proxy: Option<Secret>,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout.
    pub request_timeout: Duration,
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
    /// The monthly message budget (`quota:`, `robots.NAME.monthly`); see `crate::budget`.
    pub quota: Quota,
}

/// One `inputs:` entry, checked: files to follow and how their lines form events.
#[derive(Debug, Clone)]
pub struct InputConfig {
    /// A path or a glob (`/var/log/app/*.log`), as written.
    pub path: String,
    /// How lines gather into multi-line events (stack traces); `None`: every line is an event.
    pub multiline: Option<Multiline>,
}

/// `multiline:` of an input: a line that does not match `start` continues the event before it.
#[derive(Debug, Clone)]
pub struct Multiline {
    /// A line matching this starts a new event.
    pub start: regex::bytes::Regex,
    /// An event is closed after this many lines (the next line starts a new one).
    pub max_lines: usize,
    /// An event is closed this long after its last line arrived.
    pub timeout: Duration,
}

/// Default `multiline.max_lines`.
pub const DEFAULT_MULTILINE_MAX_LINES: usize = 500;
/// Default `multiline.timeout`.
pub const DEFAULT_MULTILINE_TIMEOUT: Duration = Duration::from_secs(1);

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
/// This is the one function that knows which YAML library is used.
pub fn parse_str(
    text: &str,
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let raw: RawConfig = serde_saphyr::from_str(text).map_err(|e| {
        let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        ConfigError::Invalid(vec![Problem {
            file: origin.to_owned(),
            line,
            column,
            context: String::new(),
            message: first_line(&e.without_snippet().to_string()),
        }])
    })?;
    check(raw, origin, env)
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

// ---------------------------------------------------------------------------------------------
// Raw schema: what the YAML file says, field for field.

#[derive(Debug, Deserialize)]
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
    quota: Option<Spanned<quota::RawQuota>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    path: Spanned<String>,
    #[serde(default)]
    multiline: Option<Spanned<RawMultiline>>,
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
    mention: BTreeMap<String, Spanned<RawMention>>,
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
    mention: Option<Spanned<RawMention>>,
    #[serde(default)]
    msgtype: Option<Spanned<String>>,
    #[serde(default)]
    field: Option<Spanned<String>>,
    #[serde(default)]
    resolve_after: Option<Spanned<String>>,
    #[serde(default)]
    absent: Option<Spanned<RawAbsent>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThreshold {
    count: Spanned<usize>,
    within: Spanned<String>,
}

#[derive(Debug, Deserialize)]
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

/// Default window when neither the rule nor `defaults` sets one.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);
/// Default number of lines quoted per message.
pub const DEFAULT_MAX_LINES: usize = 20;
/// Default cut-off for very long lines.
pub const DEFAULT_MAX_LINE_BYTES: usize = 64 * 1024;
/// Longest rule name accepted: the name goes into every message header.
const MAX_RULE_NAME: usize = 100;

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

    fn duration(&mut self, raw: &Spanned<String>, context: &str) -> Option<Duration> {
        match humantime::parse_duration(raw.value.trim()) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                self.problem(raw, context, "must be longer than zero");
                None
            }
            Err(e) => {
                self.problem(
                    raw,
                    context,
                    format!(
                        "`{}` is not a duration ({e}); write e.g. 500ms, 10s, 5m",
                        raw.value
                    ),
                );
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

fn check(
    raw: RawConfig,
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
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
        if found.is_none() {
            let known = if robot_names.is_empty() {
                "no robots are defined".to_owned()
            } else {
                format!("robots are: {}", robot_names.join(", "))
            };
            c.problem(
                raw,
                context,
                format!("unknown robot `{}` ({known})", raw.value),
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
        .and_then(|w| c.duration(w, "defaults, field 'window'"))
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

    let defaults_look = check_defaults_look(&mut c, defaults);
    let timestamp = raw
        .timestamp
        .as_ref()
        .and_then(|t| check_timestamp(&mut c, t));
    let mut names = HashSet::new();
    let mut rules = Vec::new();
    for spanned in &raw.rules {
        let rule = &spanned.value;
        let name = rule.name.value.trim().to_owned();
        let ctx = |field: &str| format!("rule '{name}', field '{field}'");
        if name.is_empty() || name.chars().count() > MAX_RULE_NAME || name.contains(['\n', '\r']) {
            c.problem(
                &rule.name,
                ctx("name"),
                format!("a rule name is one line of 1 to {MAX_RULE_NAME} characters"),
            );
        } else if !names.insert(name.clone()) {
            c.problem(&rule.name, ctx("name"), "another rule has the same name");
        }
        let window = match &rule.window {
            Some(w) => c.duration(w, &ctx("window")),
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
                            c.problem(list, ctx("robot"), format!("names `{r}` twice"));
                        } else {
                            ids.push(id);
                        }
                    }
                }
                ids
            }
            None => default_robot.into_iter().collect(),
        };
        if robots.is_empty() && rule.robot.is_none() && robot_names.len() > 1 {
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
            quota,
        })
    } else {
        // In file order, so the list reads like the file (a problem without a line stays first).
        c.problems.sort_by_key(|p| (p.line, p.column));
        Err(ConfigError::Invalid(c.problems))
    }
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
                Some(t) => c.duration(t, &ctx("multiline.timeout")),
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
                format!("`{other}` is not a message type; write text or markdown"),
            );
            None
        }
    }
}

fn check_defaults_look(c: &mut Checker, defaults: Option<&RawDefaults>) -> DefaultsLook {
    let mut look = DefaultsLook::default();
    let Some(d) = defaults else {
        return look;
    };
    if let Some(m) = &d.msgtype {
        look.msgtype = check_msgtype(c, m, "defaults, field 'msgtype'").unwrap_or_default();
    }
    for (severity, mention) in &d.mention {
        let ctx = format!("defaults, field 'mention.{severity}'");
        let people = check_mention(c, mention, &ctx);
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
                format!("`{v}` is not a phone number (digits, optionally + and -)"),
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
            format!("`{format}` is not a strftime format, e.g. %Y-%m-%d %H:%M:%S"),
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
            spec.absent_for = c.duration(&a.value.duration, &ctx("absent.for"));
            let not_here = [
                ("threshold", rule.threshold.is_some()),
                ("cooldown", rule.cooldown.is_some()),
                ("group_by", !rule.group_by.is_empty()),
                ("max_groups", rule.max_groups.is_some()),
                ("field", rule.field.is_some()),
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
                    "`{}` is not a severity; write {}",
                    s.value,
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
        let within = c.duration(&t.value.within, &ctx("threshold.within"));
        if let Some(within) = within {
            spec.threshold = Some(Threshold {
                count: count.clamp(1, MAX_THRESHOLD_COUNT),
                within,
            });
        }
    }
    if let Some(cd) = &rule.cooldown {
        spec.cooldown = c.duration(cd, &ctx("cooldown"));
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
                    "`{}` is not a named capture of the pattern ({known})",
                    g.value
                ),
            );
        } else if spec.group_by.contains(&g.value) {
            c.problem(g, ctx("group_by"), format!("names `{}` twice", g.value));
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
        match Template::parse(&t.value, &captures) {
            Ok(t) => style.template = Some(t),
            Err(e) => c.problem(t, ctx("template"), e),
        }
    }
    style.mention = match &rule.mention {
        Some(m) => check_mention(c, m, &ctx("mention")),
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
                    "`{}` is not a field path; write e.g. level or log.level",
                    f.value
                ),
            );
        } else {
            spec.field = Some(path);
        }
    }
    if let Some(r) = &rule.resolve_after {
        spec.resolve_after = c.duration(r, &ctx("resolve_after"));
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
        value
            .as_ref()
            .and_then(|v| c.duration(v, &ctx(field)))
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
        webhook: Secret::new(webhook?.1),
        secret,
        keyword,
        rate,
        fallback: None,
        proxy,
        connect_timeout,
        request_timeout,
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
                                    path.display()
                                ),
                            });
                        }
                        Some((f, value.trim().to_owned()))
                    }
                    Err(e) => {
                        self.problem(f, fctx, format!("cannot read {}: {e}", path.display()));
                        None
                    }
                }
            }
            (None, None) => None,
        }
    }
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

/// Parses `20/min`, `5/10s`, `1/s`, `100/hour`.
pub fn parse_rate(text: &str) -> Result<Rate, String> {
    let bad = || format!("`{text}` is not a rate; write e.g. 20/min or 5/10s");
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
            "`{text}` allows nothing; the count and period must be above zero"
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
            ops.webhook.expose(),
            "http://127.0.0.1:1/robot/send?access_token=t0k3n"
        );
        assert_eq!(ops.secret.as_ref().unwrap().expose(), "SECabc");
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
    fn the_builtin_rules_are_valid() {
        let c = Config::builtin();
        assert!(c.robots.is_empty());
        assert!(c.rules.len() >= 6);
    }
}
