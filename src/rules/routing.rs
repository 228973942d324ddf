//! Routing (see [`crate::route`]): which route a hit of a rule takes, and what that route means.

use std::sync::Arc;

use super::Rule;
use crate::ids::RobotId;
use crate::style::Style;

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
            && !named
                .iter()
                .any(|(n, _)| *n == crate::route::SEVERITY_FIELD)
        {
            named.push((crate::route::SEVERITY_FIELD, s.as_str().as_bytes()));
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
    use crate::ids::RobotId;
    use crate::route::{RouteSpec, RuleRoute};
    use crate::rules::RuleSpec;
    use crate::style::Severity;
    use crate::style::{Mention, Style};
    use crate::where_expr::Where;

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
