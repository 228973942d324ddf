//! Rules, compiled: what to look for in a line, what to ignore, and how hits are gathered.
//!
//! A rule's `match` is a Rust regex run against the raw bytes of one line (invalid UTF-8 does not
//! stop it; `\xFF`-style classes work). `^` and `$` anchor at line start and end, and `$` also
//! matches before a `\r\n` ending, so CRLF logs behave like LF logs.
//!
//! A rule with `field` runs its `match` on the value of that field of a JSON log line instead
//! (the matcher decides which lines are worth parsing); an `absent` rule's pattern is the line
//! whose *absence* is the alert. Everything that can be decided once (captures needed, template,
//! mentions) is decided here, so the hot paths only look things up.

use std::sync::Arc;
use std::time::Duration;

use regex::bytes::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

use crate::ids::RobotId;
pub use crate::ids::RuleId;
use crate::style::Style;

/// Largest compiled program per regex: generous, but stops a pattern like `\w{100000}` from
/// eating the sidecar's memory.
pub const REGEX_SIZE_LIMIT: usize = 32 * 1024 * 1024;

/// Default for `max_groups`: distinct `group_by` values kept per rule before the rest share one
/// "other" group.
pub const DEFAULT_MAX_GROUPS: usize = 1000;

/// The group key of hits that arrive when a rule already keeps `max_groups` groups.
pub const OTHER_GROUP: &str = "other";

/// `threshold: {count, within}`: alert only when at least `count` hits fall within a sliding
/// `within`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold {
    /// Hits needed (at least 1).
    pub count: usize,
    /// The sliding window they must fall in.
    pub within: Duration,
}

/// What the config says of a rule once defaults are applied, before compiling.
#[derive(Debug, Clone, Default)]
pub struct RuleSpec {
    /// Unique name, shown in every message as `【name】`.
    pub name: String,
    /// The `match` regex (for `absent` rules, `absent.match`).
    pub pattern: String,
    /// Regexes that veto a hit (always judged on the whole line).
    pub exclude: Vec<String>,
    /// Hits within this window of the first go out as one message.
    pub window: Duration,
    /// Lines quoted per message.
    pub max_lines: usize,
    /// Where the alerts go, each robot getting every alert; empty only when the config has no
    /// robot (dry-run).
    pub robots: Vec<RobotId>,
    /// Match this JSON field's value (path segments) instead of the whole line.
    pub field: Option<Vec<String>>,
    /// Only alert past this rate.
    pub threshold: Option<Threshold>,
    /// Quiet time after a message during which hits are gathered.
    pub cooldown: Option<Duration>,
    /// Named captures whose values key the alert streams.
    pub group_by: Vec<String>,
    /// Distinct groups kept before the rest go to [`OTHER_GROUP`].
    pub max_groups: usize,
    /// Send "recovered" after this much quiet following a message.
    pub resolve_after: Option<Duration>,
    /// For absence rules: alert when nothing matched for this long.
    pub absent_for: Option<Duration>,
    /// How messages look (its `capture_names` are filled in by [`Rule::compile`]).
    pub style: Style,
    /// `where:`: a matched line is a hit only when this holds.
    pub condition: Option<crate::where_expr::Where>,
    /// The config's `routes:` that apply to this rule, in order (see [`crate::route`]).
    pub routes: Vec<crate::route::RouteSpec>,
    /// `escalate:`: more people as an episode goes on (see [`crate::escalate`]).
    pub escalate: Vec<crate::escalate::Step>,
}

/// A checked, compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Unique name.
    pub name: String,
    /// The `match` regex as written (the matcher compiles all rules together).
    pub pattern: String,
    /// Any of these matching the line means the line is not a hit.
    pub exclude: Option<RegexSet>,
    /// Gathering window.
    pub window: Duration,
    /// Lines quoted per message.
    pub max_lines: usize,
    /// Target robots (empty: no robot, dry-run).
    pub robots: Vec<RobotId>,
    /// JSON field path, for field rules.
    pub field: Option<Vec<String>>,
    /// The pattern compiled alone, when the rule needs its captures (group_by, templates) or is
    /// a field rule (whose value is matched outside the combined search).
    pub regex: Option<Regex>,
    /// Whether hits must carry capture values.
    pub needs_captures: bool,
    /// Rate condition.
    pub threshold: Option<Threshold>,
    /// Quiet period after each message.
    pub cooldown: Option<Duration>,
    /// Indexes into `style.capture_names` of the `group_by` captures.
    pub group_by: Vec<usize>,
    /// Groups kept per rule.
    pub max_groups: usize,
    /// Quiet time before "recovered".
    pub resolve_after: Option<Duration>,
    /// Absence rules: the silence that raises the alert.
    pub absent_for: Option<Duration>,
    /// How messages look, shared with every alert.
    pub style: Arc<Style>,
    /// `where:`: a matched line is a hit only when this holds (see [`crate::where_expr`]).
    pub condition: Option<Arc<crate::where_expr::Where>>,
    /// Routes tried in order on each hit; none holding: `robots` and `style` (see
    /// [`crate::route`]).
    pub routes: Vec<crate::route::RuleRoute>,
    /// `escalate:` steps, by `after` (see [`crate::escalate`]).
    pub escalate: Vec<crate::escalate::Step>,
}

/// Why a rule did not compile, with which regex was at fault.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct RuleError {
    /// `None`: the `match` regex; `Some(i)`: the i-th `exclude`.
    pub exclude_index: Option<usize>,
    /// The regex library's explanation.
    pub message: String,
}

/// The regex dialect every rule pattern is compiled with, in one place so the matcher, the
/// checker and `dingtail test` agree on what a pattern means.
pub fn regex_builder(pattern: &str) -> RegexBuilder {
    let mut b = RegexBuilder::new(pattern);
    b.multi_line(true).crlf(true).size_limit(REGEX_SIZE_LIMIT);
    b
}

/// The named capture groups of a pattern, in order (empty when it does not parse: the error is
/// reported on its own). Read from the syntax tree alone: compiling the pattern for this would
/// cost as much again as checking it.
pub fn capture_names(pattern: &str) -> Vec<Arc<str>> {
    use regex_syntax::ast::{self, Ast, GroupKind, Visitor};
    struct Names(Vec<(u32, Arc<str>)>);
    impl Visitor for Names {
        type Output = Vec<(u32, Arc<str>)>;
        type Err = ();
        fn finish(self) -> Result<Self::Output, ()> {
            Ok(self.0)
        }
        fn visit_pre(&mut self, ast: &Ast) -> Result<(), ()> {
            if let Ast::Group(g) = ast
                && let GroupKind::CaptureName { name, .. } = &g.kind
            {
                self.0.push((name.index, Arc::from(name.name.as_str())));
            }
            Ok(())
        }
    }
    let Ok(tree) = ast::parse::Parser::new().parse(pattern) else {
        return Vec::new();
    };
    let mut names = ast::visit(&tree, Names(Vec::new())).unwrap_or_default();
    names.sort_by_key(|(i, _)| *i);
    names.into_iter().map(|(_, n)| n).collect()
}

fn names_of(re: &regex_automata::meta::Regex) -> Vec<Arc<str>> {
    re.group_info()
        .pattern_names(regex_automata::PatternID::ZERO)
        .flatten()
        .map(Arc::from)
        .collect()
}

/// `pattern` compiled as the regex crate would compile it (same syntax, same size limit, the same
/// errors), without the search engines: a `regex::bytes::Regex` also determinizes small patterns
/// into full DFAs, which with a thousand rules took most of a second at start. The matcher builds
/// what it searches with itself.
fn checked(pattern: &str) -> Result<regex_automata::meta::Regex, regex::Error> {
    use regex_automata::meta;
    use regex_automata::util::syntax;
    meta::Regex::builder()
        .syntax(
            syntax::Config::new()
                .utf8(false)
                .multi_line(true)
                .crlf(true),
        )
        .configure(
            meta::Config::new()
                .utf8_empty(false)
                .nfa_size_limit(Some(REGEX_SIZE_LIMIT))
                .dfa(false)
                .onepass(false)
                .backtrack(false)
                .hybrid(false),
        )
        .build(pattern)
        .map_err(|e| match (e.size_limit(), e.syntax_error()) {
            (Some(limit), _) => regex::Error::CompiledTooBig(limit),
            (None, Some(syntax)) => regex::Error::Syntax(syntax.to_string()),
            (None, None) => regex::Error::Syntax(e.to_string()),
        })
}

impl Rule {
    /// Compiles a rule, checking its `match` and every `exclude`.
    pub fn compile(spec: RuleSpec) -> Result<Rule, RuleError> {
        let re =
            check_pattern(&spec.pattern, spec.field.is_some()).map_err(|message| RuleError {
                exclude_index: None,
                message,
            })?;
        for (i, e) in spec.exclude.iter().enumerate() {
            regex_builder(e).build().map_err(|err| RuleError {
                exclude_index: Some(i),
                message: explain(&err),
            })?;
        }
        let exclude = if spec.exclude.is_empty() {
            None
        } else {
            let set = RegexSetBuilder::new(&spec.exclude)
                .multi_line(true)
                .crlf(true)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|err| RuleError {
                    exclude_index: Some(0),
                    message: explain(&err),
                })?;
            Some(set)
        };
        let mut style = spec.style;
        style.capture_names = names_of(&re);
        let group_by: Vec<usize> = spec
            .group_by
            .iter()
            .map(|g| {
                style
                    .capture_names
                    .iter()
                    .position(|c| **c == **g)
                    .ok_or_else(|| RuleError {
                        exclude_index: None,
                        message: format!("group_by names `{g}`, which is not a named capture"),
                    })
            })
            .collect::<Result<_, _>>()?;
        let templated = style.template.as_ref().is_some_and(|t| {
            t.pieces.iter().any(|p| {
                matches!(
                    p,
                    crate::style::Piece::Value(crate::style::Placeholder::Capture(_))
                )
            })
        });
        let conditioned = spec.condition.as_ref().is_some_and(|w| {
            w.names()
                .iter()
                .any(|n| style.capture_names.iter().any(|c| &**c == *n))
        });
        let routed = spec.routes.iter().filter_map(|r| r.when.as_ref()).any(|w| {
            w.names()
                .iter()
                .any(|n| style.capture_names.iter().any(|c| &**c == *n))
        });
        let needs_captures = !group_by.is_empty() || templated || conditioned || routed;
        let routes = (spec.routes.iter())
            .map(|r| crate::route::RuleRoute::bind(r, &spec.robots, &style))
            .collect();
        let mut escalate = spec.escalate;
        escalate.sort_by_key(|s| s.after);
        let regex = if needs_captures || spec.field.is_some() {
            Some(
                regex_builder(&spec.pattern)
                    .build()
                    .map_err(|err| RuleError {
                        exclude_index: None,
                        message: explain(&err),
                    })?,
            )
        } else {
            None
        };
        Ok(Rule {
            name: spec.name,
            pattern: spec.pattern,
            exclude,
            window: spec.window,
            max_lines: spec.max_lines,
            robots: spec.robots,
            field: spec.field,
            regex,
            needs_captures,
            threshold: spec.threshold,
            cooldown: spec.cooldown,
            group_by,
            max_groups: spec.max_groups.max(1),
            resolve_after: spec.resolve_after,
            absent_for: spec.absent_for,
            style: Arc::new(style),
            condition: spec.condition.map(Arc::new),
            routes,
            escalate,
        })
    }

    /// Whether an exclusion vetoes this line.
    pub fn excludes(&self, line: &[u8]) -> bool {
        self.exclude.as_ref().is_some_and(|set| set.is_match(line))
    }

    /// Whether a line the rule matched is a hit: no `where:`, or it holds on the line and the
    /// hit's captures (aligned with the rule's capture names; empty when none were taken). The
    /// matcher calls this right after it confirms the rule on a line.
    pub fn admits(&self, line: &[u8], captures: &[bytes::Bytes]) -> bool {
        let Some(w) = &self.condition else {
            return true;
        };
        let named: Vec<(&str, &[u8])> = (self.style.capture_names.iter())
            .zip(captures)
            .map(|(n, v)| (&**n, &v[..]))
            .collect();
        w.holds_on(line, &named)
    }
}

/// Routing (see [`crate::route`]): which route a hit takes, and what that route means.
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

/// A pattern that matches the empty string would make every line a hit: almost always a
/// mistake (`a*`, `|x`), so it is refused with an explanation. A field rule may match an empty
/// value on purpose (`^$`), so it is allowed there.
/// Checks a rule's pattern (see [`checked`]) and that it cannot match an empty line.
fn check_pattern(pattern: &str, field: bool) -> Result<regex_automata::meta::Regex, String> {
    let re = checked(pattern).map_err(|e| explain(&e))?;
    if !field && re.is_match(b"") {
        return Err(format!(
            "`{pattern}` matches the empty string, so every line would be a hit"
        ));
    }
    Ok(re)
}
/// The regex error, on one line where possible (the multi-line form points with `^` at the
/// pattern, which does not survive our `file:line:col:` prefix well).
pub(crate) fn explain(err: &regex::Error) -> String {
    match err {
        regex::Error::Syntax(text) => {
            let last = text.lines().rev().find(|l| l.starts_with("error:"));
            let mut msg = match last {
                Some(l) => format!("invalid regex: {}", l.trim_start_matches("error:").trim()),
                None => format!("invalid regex: {}", text.trim()),
            };
            // The common mistake: a pattern written for PCRE or Java.
            if msg.contains("look-around") {
                msg.push_str(
                    "; dingtail's regexes have no (?=…), (?!…), (?<=…) or (?<!…): match the line \
                     itself, and put what must not be in it under `exclude:`",
                );
            }
            msg
        }
        regex::Error::CompiledTooBig(limit) => {
            format!("regex is too big once compiled (limit {limit} bytes); simplify it")
        }
        other => format!("invalid regex: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(pattern: &str, exclude: &[&str]) -> RuleSpec {
        RuleSpec {
            name: "r".into(),
            pattern: pattern.into(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            window: Duration::from_secs(1),
            max_lines: 5,
            ..RuleSpec::default()
        }
    }

    #[test]
    fn capture_names_and_checks_agree_with_the_regex_crate() {
        for p in [
            r"from (?P<ip>[\d.]+)(?: port (?<port>\d+))?",
            r"(?x) (?P<a> x ) | ( (?P<b>y) (?P<c>z) )",
            r"(?i)(?P<w>\w+)\s(?:(?P<v>\d)|(?P<u>u))",
            "plain",
        ] {
            let want: Vec<Arc<str>> = regex_builder(p)
                .build()
                .unwrap()
                .capture_names()
                .flatten()
                .map(Arc::from)
                .collect();
            assert_eq!(capture_names(p), want, "{p}");
            assert_eq!(
                Rule::compile(spec(p, &[])).unwrap().style.capture_names,
                want
            );
        }
        // the same errors as the regex crate, size limit included
        for p in ["(open", r"\w{100000}", "[z-a]", r"\p{Nope}"] {
            let want = explain(&regex_builder(p).build().unwrap_err());
            assert_eq!(
                Rule::compile(spec(p, &[])).unwrap_err().message,
                want,
                "{p}"
            );
        }
    }

    #[test]
    fn bad_regexes_say_what_is_wrong_and_where() {
        let e = Rule::compile(spec("(open", &[])).unwrap_err();
        assert_eq!(e.exclude_index, None);
        assert!(e.message.contains("unclosed group"), "{}", e.message);

        let e = Rule::compile(spec("ok", &["fine", "[z-a]"])).unwrap_err();
        assert_eq!(e.exclude_index, Some(1));
        assert!(e.message.starts_with("invalid regex"), "{}", e.message);
    }

    #[test]
    fn patterns_matching_everything_are_refused() {
        for p in ["a*", "|x", "^", "(?:)"] {
            let e = Rule::compile(spec(p, &[])).unwrap_err();
            assert!(e.message.contains("empty string"), "{p}: {}", e.message);
        }
    }

    #[test]
    fn exclusions_veto_lines() {
        let r = Rule::compile(spec("GET", &["/healthz", "^#"])).unwrap();
        assert!(r.excludes(b"GET /healthz 500"));
        assert!(r.excludes(b"# GET"));
        assert!(!r.excludes(b"GET /api 500"));
    }
}

#[cfg(test)]
mod route_tests {
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
