//! `routes:`: pick the robot(s) and the people by what the line says (see [`crate::route`]).
//!
//! ```yaml
//! routes:
//!   - name: payments                       # optional; `dingtail test` shows it (default #N)
//!     when: 'service == "payment"'         # where: grammar on captures, JSON fields, severity
//!     robot: pay-oncall                    # one or a list; default: the rule's own robots
//!     mention: dba                         # a people group, a list, or people written out
//!     rules: [app-errors]                  # optional: only these rules (default: every rule)
//!   - when: 'severity == "critical"'
//!     mention: { all: true }
//! ```
//!
//! Routes are tried in order; the first whose `when:` holds wins (no `when:`: always holds);
//! when none does, the rule's own robots and mentions apply.

use std::sync::Arc;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::people::{self, People, RawMentionRef};
use super::{Checker, OneOrMany, RobotId, quoted, shared_fields};
use crate::route::RouteSpec;
use crate::where_expr::Where;

/// One `routes:` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    /// Shown by `dingtail test` (default `#N`, N counting from 1).
    #[serde(default)]
    name: Option<Spanned<String>>,
    /// `where:` grammar on captures, JSON fields and severity; none: the route always holds.
    #[serde(default)]
    when: Option<Spanned<String>>,
    /// The robot (or robots) to send to; none: the rule's own.
    #[serde(default)]
    robot: Option<Spanned<OneOrMany>>,
    /// Whom to mention: a `people:` group, a list of groups, or people written out.
    #[serde(default)]
    mention: Option<Spanned<RawMentionRef>>,
    /// Only for these rules (default: every rule).
    #[serde(default)]
    rules: Option<Spanned<OneOrMany>>,
}

/// How the checker looks up a robot by name (reporting an unknown one).
pub(super) type FindRobot<'f> =
    dyn Fn(&mut Checker, &Spanned<String>, &str) -> Option<RobotId> + 'f;

/// A checked route and the rules it is for (`None`: every rule).
pub(super) type Routed = (Option<Vec<String>>, RouteSpec);

/// Checks `routes:`; `find_robot` reports an unknown robot name, `rule_names` are the config's
/// rules (a route naming another is a mistake).
pub(super) fn check_routes(
    c: &mut Checker,
    raw: &[Spanned<RawRoute>],
    find_robot: &FindRobot,
    people: &People,
    rule_names: &[&str],
) -> Vec<Routed> {
    let mut out = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let route = &r.value;
        let name = route
            .name
            .as_ref()
            .map_or_else(|| format!("#{}", i + 1), |n| n.value.trim().to_owned());
        let ctx = |field: &str| format!("routes[{}] ({name}), field '{field}'", i + 1);
        if let Some(n) = &route.name {
            if name.is_empty()
                || name.chars().count() > 100
                || name.chars().any(crate::dingtalk::neutral::is_hazard)
            {
                c.problem(
                    n,
                    ctx("name"),
                    "a route name is one line of 1 to 100 characters",
                );
            } else if names.contains(&name) {
                c.problem(n, ctx("name"), "another route has the same name");
            }
        }
        names.push(name.clone());
        let when = route
            .when
            .as_ref()
            .and_then(|w| match Where::parse(&w.value) {
                Ok(cond) => Some(cond),
                Err(e) => {
                    c.problem(
                        w,
                        ctx("when"),
                        format!(
                            "at character {} of the condition: {}",
                            e.offset + 1,
                            e.message
                        ),
                    );
                    None
                }
            });
        let robots = (route.robot.as_ref())
            .map(|list| shared_fields::check_robot_list(c, list, find_robot, &ctx("robot")))
            .unwrap_or_default();
        let mention = route
            .mention
            .as_ref()
            .map(|m| people::resolve(c, people, m, &ctx("mention")))
            .unwrap_or_default();
        if route.robot.is_none() && route.mention.is_none() {
            c.problem(
                r,
                ctx("robot"),
                "a route gives a robot, a mention or both (else it changes nothing)",
            );
        }
        let rules = route.rules.as_ref().map(|list| {
            for n in &list.value.0 {
                if !rule_names.contains(&n.trim()) {
                    c.problem(
                        list,
                        ctx("rules"),
                        format!("names {}, which is not a rule", quoted(n)),
                    );
                }
            }
            list.value.0.iter().map(|n| n.trim().to_owned()).collect()
        });
        out.push((
            rules,
            RouteSpec {
                name: Arc::from(name.as_str()),
                when,
                robots,
                mention,
            },
        ));
    }
    out
}

/// The routes that apply to rule `rule`, in order.
pub(super) fn for_rule(routes: &[Routed], rule: &str) -> Vec<RouteSpec> {
    routes
        .iter()
        .filter(|(only, _)| only.as_ref().is_none_or(|o| o.iter().any(|n| n == rule)))
        .map(|(_, r)| r.clone())
        .collect()
}
