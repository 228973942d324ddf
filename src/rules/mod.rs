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

use regex::bytes::{Regex, RegexSet, RegexSetBuilder};

use crate::ids::RobotId;
pub use crate::ids::RuleId;
use crate::style::Style;

mod dialect;
mod routing;

pub(crate) use dialect::explain;
pub use dialect::{REGEX_SIZE_LIMIT, capture_names, regex_builder};
use dialect::{check_pattern, names_of};

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

/// A rule, at one of two stages ([`Stage`]): a [`RuleSpec`] is what the config says of it once
/// checked and defaults are applied, before compiling; a [`Rule`] is compiled. One struct for
/// both, so every field is declared (and documented) once; the fields that compiling changes
/// take their type from the stage, the others are the same value before and after.
#[derive(Debug, Clone)]
pub struct Rule<S: Stage = Compiled> {
    /// Unique name, shown in every message as `【name】`.
    pub name: String,
    /// The `match` regex as written (for `absent` rules, `absent.match`); the matcher compiles
    /// all rules together.
    pub pattern: String,
    /// Regexes that veto a hit (always judged on the whole line): as written, then compiled
    /// into one set (`None`: no exclusion).
    pub exclude: S::Exclude,
    /// Hits within this window of the first go out as one message.
    pub window: Duration,
    /// Lines quoted per message.
    pub max_lines: usize,
    /// Where the alerts go, each robot getting every alert; empty only when the config has no
    /// robot (dry-run).
    pub robots: Vec<RobotId>,
    /// Match this JSON field's value (path segments) instead of the whole line.
    pub field: Option<Vec<String>>,
    /// The pattern compiled alone, when the rule needs its captures (group_by, templates) or is
    /// a field rule (whose value is matched outside the combined search); `()` before.
    pub regex: S::Regex,
    /// Whether hits must carry capture values; `()` before compiling decides it.
    pub needs_captures: S::Decided,
    /// Only alert past this rate.
    pub threshold: Option<Threshold>,
    /// Quiet time after a message during which hits are gathered.
    pub cooldown: Option<Duration>,
    /// Named captures whose values key the alert streams: by name, then as indexes into
    /// `style.capture_names`.
    pub group_by: S::GroupBy,
    /// Distinct groups kept before the rest go to [`OTHER_GROUP`] (at least 1 once compiled).
    pub max_groups: usize,
    /// Send "recovered" after this much quiet following a message.
    pub resolve_after: Option<Duration>,
    /// For absence rules: alert when nothing matched for this long.
    pub absent_for: Option<Duration>,
    /// How messages look; compiling fills in its `capture_names` and shares it with every
    /// alert.
    pub style: S::Style,
    /// `where:`: a matched line is a hit only when this holds (see [`crate::where_expr`]).
    pub condition: S::Condition,
    /// The config's `routes:` that apply to this rule, in order; once compiled, tried in order
    /// on each hit, none holding: `robots` and `style` (see [`crate::route`]).
    pub routes: S::Routes,
    /// `escalate:`: more people as an episode goes on (see [`crate::escalate`]); sorted by
    /// `after` once compiled.
    pub escalate: Vec<crate::escalate::Step>,
}

/// What the config says of a rule once defaults are applied, before compiling.
pub type RuleSpec = Rule<Spec>;

/// A stage of a [`Rule`]: the types of the fields that compiling changes.
pub trait Stage {
    /// `exclude`.
    type Exclude: std::fmt::Debug + Clone;
    /// `regex`.
    type Regex: std::fmt::Debug + Clone;
    /// `needs_captures`.
    type Decided: std::fmt::Debug + Clone;
    /// `group_by`.
    type GroupBy: std::fmt::Debug + Clone;
    /// `style`.
    type Style: std::fmt::Debug + Clone;
    /// `condition`.
    type Condition: std::fmt::Debug + Clone;
    /// `routes`.
    type Routes: std::fmt::Debug + Clone;
}

/// Before compiling: regexes as written, captures by name, nothing shared yet.
#[derive(Debug, Clone, Copy)]
pub struct Spec;

impl Stage for Spec {
    type Exclude = Vec<String>;
    type Regex = ();
    type Decided = ();
    type GroupBy = Vec<String>;
    type Style = Style;
    type Condition = Option<crate::where_expr::Where>;
    type Routes = Vec<crate::route::RouteSpec>;
}

/// Compiled: what the matcher and the aggregator use.
#[derive(Debug, Clone, Copy)]
pub struct Compiled;

impl Stage for Compiled {
    type Exclude = Option<RegexSet>;
    type Regex = Option<Regex>;
    type Decided = bool;
    type GroupBy = Vec<usize>;
    type Style = Arc<Style>;
    type Condition = Option<Arc<crate::where_expr::Where>>;
    type Routes = Vec<crate::route::RuleRoute>;
}

impl Default for RuleSpec {
    fn default() -> RuleSpec {
        Rule {
            name: String::new(),
            pattern: String::new(),
            exclude: Vec::new(),
            window: Duration::ZERO,
            max_lines: 0,
            robots: Vec::new(),
            field: None,
            regex: (),
            needs_captures: (),
            threshold: None,
            cooldown: None,
            group_by: Vec::new(),
            max_groups: 0,
            resolve_after: None,
            absent_for: None,
            style: Style::default(),
            condition: None,
            routes: Vec::new(),
            escalate: Vec::new(),
        }
    }
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
