//! Routes: which robot(s) and which people an alert goes to, decided by what the line says.
//!
//! Teams share one log and one dingtail, but alerts belong to different groups and people. A
//! route is a `when:` condition (the grammar of [`crate::where_expr`], on the rule's named
//! captures, the line's JSON fields and the pseudo-field `severity`), the robots to send to and
//! the people to mention. The config's `routes:` are tried in order and the first that holds
//! wins; when none does, the rule's own robots and mentions apply (the default).
//!
//! Routing happens in the aggregator when a hit is counted, so hits of different routes are
//! different alert streams (their counts never mix, a "recovered" goes where the alerts went),
//! and in `dingtail test`, which prints the route each hit took: both call
//! [`crate::rules::Rule::route_for`].
//! Mentions of a route are added to the rule's own (`Style::mention`), so the renderer writes
//! each `@mobile` into the text, which DingTalk needs for the mention to fire.

use std::sync::Arc;

use crate::ids::RobotId;
use crate::style::{Mention, Style};
use crate::where_expr::Where;

/// The pseudo-field a route's `when:` can read besides captures and JSON fields: the rule's
/// severity (`info`, `warning`, `critical`; missing when the rule has none).
pub const SEVERITY_FIELD: &str = "severity";

/// A checked entry of `routes:`, not yet tied to a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteSpec {
    /// Shown by `dingtail test` (`rule→name`): the `name:` given, else `#N` (1-based).
    pub name: Arc<str>,
    /// `None`: always holds (a catch-all, usually last).
    pub when: Option<Where>,
    /// Where the alerts go; empty: the rule's own robots.
    pub robots: Vec<RobotId>,
    /// Added to the rule's own mentions.
    pub mention: Mention,
}

/// A route tied to one rule: its look (the rule's, with the route's mentions added) is built
/// once, so alerts share it.
#[derive(Debug, Clone)]
pub struct RuleRoute {
    /// See [`RouteSpec::name`].
    pub name: Arc<str>,
    /// See [`RouteSpec::when`].
    pub when: Option<Arc<Where>>,
    /// Where the alerts go (never empty when the config has robots).
    pub robots: Vec<RobotId>,
    /// The rule's style with the route's mentions.
    pub style: Arc<Style>,
}

impl RuleRoute {
    /// Ties `spec` to a rule that sends to `robots` with `style`.
    pub fn bind(spec: &RouteSpec, robots: &[RobotId], style: &Style) -> RuleRoute {
        let mut style = style.clone();
        style.mention.absorb(&spec.mention);
        RuleRoute {
            name: spec.name.clone(),
            when: spec.when.clone().map(Arc::new),
            robots: if spec.robots.is_empty() {
                robots.to_vec()
            } else {
                spec.robots.clone()
            },
            style: Arc::new(style),
        }
    }
}
