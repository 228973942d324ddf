//! `stale:`: an input that has written nothing for a while is an alert of its own.
//!
//! ```yaml
//! inputs:
//!   - { path: /var/log/app/app.log, stale: 10m }
//!   - { path: '/var/log/nginx/*.log', stale: 30m }   # a glob: stale when none of its files wrote
//! stdin: { stale: 10m }                               # the pipe, when dingtail reads one
//! ```
//!
//! Each such input becomes an absence watch in the aggregator, under a rule of its own named
//! `stale-input PATH` (`stale-input stdin`): every chunk read from the input is its heartbeat,
//! whether or not a line in it matched any rule. So the machinery of `absent` (one message when
//! the input goes quiet, `back` when it writes again, timers on the aggregator's clock) serves it
//! unchanged, and the matcher never sees these rules.

use std::time::Duration;

use crate::ids::RobotId;
use crate::rules::{Rule, RuleSpec};
use crate::style::{Severity, Style};

/// Prefix of the name of a stale input's rule, shown as `【stale-input PATH】`.
pub const RULE_PREFIX: &str = "stale-input";

/// One input watched for silence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleInput {
    /// The input's path or glob as configured; `-` for stdin.
    pub input: String,
    /// Silence that makes it stale.
    pub after: Duration,
}

impl StaleInput {
    /// The name of its rule: `stale-input PATH`, `stale-input stdin`.
    pub fn rule_name(&self) -> String {
        match self.input.as_str() {
            "-" => format!("{RULE_PREFIX} stdin"),
            path => format!("{RULE_PREFIX} {path}"),
        }
    }

    /// Whether a chunk from `source` (`-` for stdin, else the file's path) is this input's.
    pub fn covers(&self, source: &str) -> bool {
        match self.input.as_str() {
            "-" => source == "-",
            input => {
                source != "-"
                    && (input == source
                        || glob::Pattern::new(input).is_ok_and(|g| g.matches(source)))
            }
        }
    }

    /// Its rule: an absence rule the matcher never sees, sending to `robots`, with `pii` as the
    /// config's `redact:`.
    pub fn rule(&self, robots: &[RobotId], pii: &crate::pii::Pii) -> Rule {
        let spec = RuleSpec {
            name: self.rule_name(),
            // never matched: chunks of the input are its heartbeat (see the module docs)
            pattern: "stale".to_owned(),
            window: Duration::from_secs(1),
            max_lines: 1,
            robots: robots.to_vec(),
            max_groups: 1,
            absent_for: Some(self.after),
            style: Style {
                severity: Some(Severity::Warning),
                pii: pii.clone(),
                ..Style::default()
            },
            ..RuleSpec::default()
        };
        Rule::compile(spec).expect("a fixed pattern compiles")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_cover_their_files_and_stdin_its_own() {
        let s = |i: &str| StaleInput {
            input: i.into(),
            after: Duration::from_secs(1),
        };
        assert!(s("-").covers("-"));
        assert!(!s("-").covers("/var/log/a.log"));
        assert!(s("/var/log/a.log").covers("/var/log/a.log"));
        assert!(!s("/var/log/a.log").covers("-"));
        assert!(s("/var/log/*.log").covers("/var/log/b.log"));
        assert!(!s("/var/log/*.log").covers("/srv/b.log"));
        assert_eq!(s("-").rule_name(), "stale-input stdin");
        assert_eq!(
            s("/x").rule(&[0], &Default::default()).absent_for,
            Some(Duration::from_secs(1))
        );
    }
}
