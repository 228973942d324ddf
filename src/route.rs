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
//! and in `dingtail test`, which prints the route each hit took: both call [`Rule::route_for`].
//! Mentions of a route are added to the rule's own (`Style::mention`), so the renderer writes
//! each `@mobile` into the text, which DingTalk needs for the mention to fire.

use std::sync::Arc;

use crate::config::RobotId;
use crate::dingtalk::style::{Mention, Style};
use crate::rules::Rule;
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

impl Rule {
    /// The route a hit of this rule takes: the index of the first of the rule's routes whose
    /// `when:` holds on the line and its captures (aligned with the rule's capture names), or
    /// `None` for the rule's own robots and mentions. Pure; cheap for rules without routes.
    pub fn route_for(&self, line: &[u8], captures: &[bytes::Bytes]) -> Option<usize> {
        if self.routes.is_empty() {
            return None;
        }
        let mut named: Vec<(&str, &[u8])> = (self.style.capture_names.iter())
            .zip(captures)
            .map(|(n, v)| (&**n, &v[..]))
            .collect();
        if let Some(s) = self.style.severity
            && !named.iter().any(|(n, _)| *n == SEVERITY_FIELD)
        {
            named.push((SEVERITY_FIELD, s.as_str().as_bytes()));
        }
        self.routes.iter().position(|r| match &r.when {
            None => true,
            Some(w) => w.holds_on(line, &named),
        })
    }

    /// The robots of route `route` (the rule's own for `None`).
    pub fn targets(&self, route: Option<usize>) -> &[RobotId] {
        match route.and_then(|i| self.routes.get(i)) {
            Some(r) => &r.robots,
            None => &self.robots,
        }
    }

    /// The look of route `route`'s alerts (the rule's own for `None`).
    pub fn style_for(&self, route: Option<usize>) -> &Arc<Style> {
        match route.and_then(|i| self.routes.get(i)) {
            Some(r) => &r.style,
            None => &self.style,
        }
    }

    /// How `dingtail test` names the route a hit took: the route's name, or `default`.
    pub fn route_name(&self, route: Option<usize>) -> &str {
        match route.and_then(|i| self.routes.get(i)) {
            Some(r) => &r.name,
            None => "default",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::dingtalk::style::Severity;
    use crate::rules::RuleSpec;

    fn route(name: &str, when: Option<&str>, robots: &[RobotId], mobile: &str) -> RouteSpec {
        RouteSpec {
            name: name.into(),
            when: when.map(|w| Where::parse(w).unwrap()),
            robots: robots.to_vec(),
            mention: Mention {
                mobiles: vec![mobile.into()],
                ..Mention::default()
            },
        }
    }

    fn rule(pattern: &str, severity: Option<Severity>, routes: Vec<RouteSpec>) -> Rule {
        let mut style = Style {
            severity,
            ..Style::default()
        };
        style.mention.mobiles.push("100".into());
        Rule::compile(RuleSpec {
            name: "r".into(),
            pattern: pattern.into(),
            window: Duration::from_secs(1),
            max_lines: 5,
            robots: vec![0],
            style,
            routes,
            ..RuleSpec::default()
        })
        .unwrap()
    }

    fn caps(r: &Rule, line: &str) -> Vec<Bytes> {
        let re = r.regex.as_ref().expect("routes on captures need the regex");
        let c = re.captures(line.as_bytes()).unwrap();
        (r.style.capture_names.iter())
            .map(|n| Bytes::copy_from_slice(c.name(n).map_or(&b""[..], |m| m.as_bytes())))
            .collect()
    }

    #[test]
    fn first_route_that_holds_wins_else_the_rule_s_own() {
        let r = rule(
            r"ERROR service=(?P<service>\w+)",
            None,
            vec![
                route("pay", Some("service == 'payment'"), &[1], "111"),
                route("json", Some("team == 'db'"), &[2], "222"),
            ],
        );
        assert!(
            r.needs_captures,
            "a route on a capture makes the rule take captures"
        );
        let line = "ERROR service=payment";
        assert_eq!(r.route_for(line.as_bytes(), &caps(&r, line)), Some(0));
        assert_eq!(r.targets(Some(0)), [1]);
        assert_eq!(r.style_for(Some(0)).mention.mobiles, ["100", "111"]);
        let line = r#"ERROR service=web {"team": "db"}"#;
        // not JSON as a whole: the JSON route cannot hold
        assert_eq!(r.route_for(line.as_bytes(), &caps(&r, line)), None);
        assert_eq!(r.targets(None), [0]);
        assert_eq!(r.route_name(None), "default");
        assert_eq!(r.style_for(None).mention.mobiles, ["100"]);
    }

    #[test]
    fn severity_and_json_fields_and_a_catch_all() {
        let r = rule(
            "\"level\"",
            Some(Severity::Critical),
            vec![
                route("db", Some("team == 'db'"), &[], "222"),
                route("crit", Some("severity == 'critical'"), &[3], "333"),
                route("rest", None, &[4], "444"),
            ],
        );
        let json = br#"{"level": "error", "team": "db"}"#;
        assert_eq!(r.route_for(json, &[]), Some(0));
        // a route without robots keeps the rule's
        assert_eq!(r.targets(Some(0)), [0]);
        assert_eq!(r.route_for(br#"{"level": "error"}"#, &[]), Some(1));
        let plain = rule("\"level\"", None, r.routes.iter().map(spec_of).collect());
        assert_eq!(plain.route_for(br#"{"level": "x"}"#, &[]), Some(2));
    }

    fn spec_of(r: &RuleRoute) -> RouteSpec {
        RouteSpec {
            name: r.name.clone(),
            when: r.when.as_deref().cloned(),
            robots: r.robots.clone(),
            mention: Mention::default(),
        }
    }
}
