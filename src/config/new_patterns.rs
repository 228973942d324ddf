//! `new_patterns:`: see [`crate::new_pattern`]. The smallest hook: its raw form, and a check
//! that turns it into the settings of the sieve plus one rule appended to the config's rules.

use std::collections::HashSet;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::checker::MessageDefaults;
use super::people::RawMentionRef;
use super::raw::OneOrMany;
use super::routes::{self, FindRobot};
use super::shared_fields::{check_robot_list, check_severity, check_window, mention_or_default};
use super::{Checker, RobotId};
use crate::new_pattern::{self, DEFAULT_FOR, DEFAULT_MAX_TEMPLATES, RULE_NAME, Settings};
use crate::rules::{DEFAULT_MAX_GROUPS, Rule, RuleSpec};
use crate::style::Style;

/// Longest `for`: a year and a day (a yearly job's errors stay known).
pub const LONGEST_FOR: Duration = Duration::from_secs(366 * 86_400);

/// Most `max_templates`: a template is at most a few hundred bytes.
pub const MAX_TEMPLATES_LIMIT: usize = 1_000_000;

/// `new_patterns:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNewPatterns {
    /// `match:` the regex a line must match to be reduced to a template.
    #[serde(rename = "match")]
    pattern: Spanned<String>,
    /// Regexes: a line matching any of them is left alone.
    #[serde(default)]
    exclude: Vec<Spanned<String>>,
    /// `for:` how long a template is remembered after it was last seen.
    #[serde(rename = "for", default)]
    remember_for: Option<Spanned<String>>,
    /// Lines of a new template within this window of its first sighting count into its message.
    #[serde(default)]
    window: Option<Spanned<String>>,
    /// The robot (or robots) told of new templates.
    #[serde(default)]
    robot: Option<Spanned<OneOrMany>>,
    /// Templates remembered at most; at the bound the one seen longest ago is forgotten.
    #[serde(default)]
    max_templates: Option<Spanned<usize>>,
    /// `info`, `warning` or `critical`, shown in the header.
    #[serde(default)]
    severity: Option<Spanned<String>>,
    /// Whom its messages mention (people written out, or `people:` groups).
    #[serde(default)]
    mention: Option<Spanned<RawMentionRef>>,
}

/// What the check of `new_patterns:` needs from the rest of the config.
pub(super) struct Around<'a> {
    pub(super) find_robot: &'a FindRobot<'a>,
    pub(super) default_robot: Option<RobotId>,
    pub(super) robots: usize,
    pub(super) default_window: Duration,
    pub(super) look: &'a MessageDefaults,
    pub(super) pii: &'a crate::pii::Pii,
    pub(super) routes: &'a [routes::Routed],
    /// Names of the config's rules: none may be [`RULE_NAME`].
    pub(super) rule_names: &'a HashSet<String>,
}

/// Checks `new_patterns:` into its settings and its rule (see [`new_pattern::rule`]); every
/// problem names the field, `new_patterns, field 'x'`.
pub(super) fn check_new_patterns(
    c: &mut Checker,
    raw: &Spanned<RawNewPatterns>,
    around: &Around,
) -> Option<(Settings, Rule)> {
    let n = &raw.value;
    let ctx = |field: &str| format!("new_patterns, field '{field}'");
    let before = c.problems.len();
    if around.rule_names.contains(RULE_NAME) {
        c.problem(
            raw,
            ctx("match"),
            format!("a rule is named `{RULE_NAME}`, the name of new_patterns' messages: rename it"),
        );
    }
    let remember_for = match &n.remember_for {
        Some(f) => c.duration(f, &ctx("for"), LONGEST_FOR),
        None => Some(DEFAULT_FOR),
    };
    let window = check_window(c, n.window.as_ref(), &ctx("window"), around.default_window);
    let max_templates = match &n.max_templates {
        Some(m) if m.value == 0 || m.value > MAX_TEMPLATES_LIMIT => {
            c.problem(
                m,
                ctx("max_templates"),
                format!("must be between 1 and {MAX_TEMPLATES_LIMIT}"),
            );
            None
        }
        Some(m) => Some(m.value),
        None => Some(DEFAULT_MAX_TEMPLATES),
    };
    let robots: Vec<RobotId> = match &n.robot {
        Some(list) => check_robot_list(c, list, around.find_robot, &ctx("robot")),
        None => {
            if around.default_robot.is_none() && around.robots > 1 {
                c.problem(
                    raw,
                    ctx("robot"),
                    "several robots are defined: name one here or in defaults.robot",
                );
            }
            around.default_robot.into_iter().collect()
        }
    };
    let mut style = Style {
        msgtype: around.look.msgtype,
        pii: around.pii.clone(),
        ..Style::default()
    };
    if let Some(s) = &n.severity {
        style.severity = check_severity(c, s, &ctx("severity"));
    }
    style.mention = mention_or_default(
        c,
        n.mention.as_ref(),
        style.severity,
        around.look,
        &ctx("mention"),
    );
    let spec = RuleSpec {
        name: RULE_NAME.to_owned(),
        pattern: n.pattern.value.clone(),
        exclude: n.exclude.iter().map(|e| e.value.clone()).collect(),
        window: window.unwrap_or(around.default_window),
        robots,
        max_groups: DEFAULT_MAX_GROUPS,
        style,
        routes: routes::for_rule(around.routes, RULE_NAME),
        ..RuleSpec::default()
    };
    let rule = match new_pattern::rule(spec) {
        Ok(r) => r,
        Err(e) => {
            match e.exclude_index {
                Some(i) => c.problem(&n.exclude[i], ctx("exclude"), e.message),
                None => c.problem(&n.pattern, ctx("match"), e.message),
            }
            return None;
        }
    };
    if c.problems.len() > before {
        return None;
    }
    Some((
        Settings {
            window: window?,
            remember_for: remember_for?,
            max_templates: max_templates?,
        },
        rule,
    ))
}
