//! Checks of the fields that rules, `routes:` and `new_patterns:` share (`robot`, `severity`,
//! `mention`, `window`): written once, so every place says the same thing of the same mistake.

use std::time::Duration;

use serde_saphyr::Spanned;

use super::checker::MessageDefaults;
use super::people::{self, RawMentionRef};
use super::raw::OneOrMany;
use super::routes::FindRobot;
use super::{Checker, RobotId, limits, quoted};
use crate::style::{Mention, Severity};

/// `robot:` one name or a list: each must name a robot, none twice, and the list may not be
/// empty. The robots found, in the order written.
pub(super) fn check_robot_list(
    c: &mut Checker,
    list: &Spanned<OneOrMany>,
    find_robot: &FindRobot,
    context: &str,
) -> Vec<RobotId> {
    if list.value.0.is_empty() {
        c.problem(list, context, "names no robot");
    }
    let mut ids = Vec::new();
    for name in &list.value.0 {
        let at = Spanned {
            value: name.clone(),
            referenced: list.referenced,
            defined: list.defined,
        };
        if let Some(id) = find_robot(c, &at, context) {
            if ids.contains(&id) {
                c.problem(list, context, format!("names {} twice", quoted(name)));
            } else {
                ids.push(id);
            }
        }
    }
    ids
}

/// `severity:` one of [`Severity::NAMES`].
pub(super) fn check_severity(
    c: &mut Checker,
    raw: &Spanned<String>,
    context: &str,
) -> Option<Severity> {
    let severity = Severity::parse(&raw.value);
    if severity.is_none() {
        c.problem(
            raw,
            context,
            format!(
                "{} is not a severity; write {}",
                quoted(&raw.value),
                Severity::NAMES.join(", ")
            ),
        );
    }
    severity
}

/// `mention:` as written, else whom `defaults.mention` names for the severity.
pub(super) fn mention_or_default(
    c: &mut Checker,
    raw: Option<&Spanned<RawMentionRef>>,
    severity: Option<Severity>,
    defaults: &MessageDefaults,
    context: &str,
) -> Mention {
    match raw {
        Some(m) => people::resolve(c, &defaults.people, m, context),
        None => severity
            .and_then(|s| defaults.mention.get(&s).cloned())
            .unwrap_or_default(),
    }
}

/// A gathering `window:` (at most [`limits::WINDOW`]), else `default`; `None` after a problem.
pub(super) fn check_window(
    c: &mut Checker,
    raw: Option<&Spanned<String>>,
    context: &str,
    default: Duration,
) -> Option<Duration> {
    match raw {
        Some(w) => c.duration(w, context, limits::WINDOW),
        None => Some(default),
    }
}
