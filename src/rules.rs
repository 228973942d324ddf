//! Rules, compiled: what to look for in a line, what to ignore, and how hits are gathered.
//!
//! A rule's `match` is a Rust regex run against the raw bytes of one line (invalid UTF-8 does not
//! stop it; `\xFF`-style classes work). `^` and `$` anchor at line start and end, and `$` also
//! matches before a `\r\n` ending, so CRLF logs behave like LF logs.

use std::time::Duration;

use regex::bytes::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

use crate::config::RobotId;

/// Index of a rule in the config's rule list; stable for the life of the process.
pub type RuleId = usize;

/// Largest compiled program per regex: generous, but stops a pattern like `\w{100000}` from
/// eating the sidecar's memory.
pub const REGEX_SIZE_LIMIT: usize = 32 * 1024 * 1024;

/// What the config says of a rule once defaults are applied, before compiling.
#[derive(Debug, Clone)]
pub struct RuleSpec {
    /// Unique name, shown in every message as `【name】`.
    pub name: String,
    /// The `match` regex.
    pub pattern: String,
    /// Regexes that veto a hit.
    pub exclude: Vec<String>,
    /// Hits within this window of the first go out as one message.
    pub window: Duration,
    /// Lines quoted per message.
    pub max_lines: usize,
    /// Where the alerts go; `None` only when the config has no robot (dry-run).
    pub robot: Option<RobotId>,
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
    /// Target robot.
    pub robot: Option<RobotId>,
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

impl Rule {
    /// Compiles a rule, checking its `match` and every `exclude`.
    pub fn compile(spec: RuleSpec) -> Result<Rule, RuleError> {
        check_pattern(&spec.pattern).map_err(|message| RuleError {
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
        Ok(Rule {
            name: spec.name,
            pattern: spec.pattern,
            exclude,
            window: spec.window,
            max_lines: spec.max_lines,
            robot: spec.robot,
        })
    }

    /// Whether an exclusion vetoes this line.
    pub fn excludes(&self, line: &[u8]) -> bool {
        self.exclude.as_ref().is_some_and(|set| set.is_match(line))
    }
}

/// A pattern that matches the empty string would make every line a hit: almost always a
/// mistake (`a*`, `|x`), so it is refused with an explanation.
fn check_pattern(pattern: &str) -> Result<Regex, String> {
    let re = regex_builder(pattern).build().map_err(|e| explain(&e))?;
    if re.is_match(b"") {
        return Err(format!(
            "`{pattern}` matches the empty string, so every line would be a hit"
        ));
    }
    Ok(re)
}

/// The regex error, on one line where possible (the multi-line form points with `^` at the
/// pattern, which does not survive our `file:line:col:` prefix well).
fn explain(err: &regex::Error) -> String {
    match err {
        regex::Error::Syntax(text) => {
            let last = text.lines().rev().find(|l| l.starts_with("error:"));
            match last {
                Some(l) => format!("invalid regex: {}", l.trim_start_matches("error:").trim()),
                None => format!("invalid regex: {}", text.trim()),
            }
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
            robot: None,
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
