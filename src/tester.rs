//! `dingtail test`: shows rule authors which lines match which rules, then counts per rule.
//! Sends nothing; reads the same way `run` does (same framing, same matcher), so what it shows is
//! what `run` would count.

use std::io::{self, Read, Write};

use crate::config::Config;
use crate::matcher::{Matcher, MatcherError};
use crate::source::LineFramer;

/// Counts from a test run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestReport {
    /// Lines read.
    pub lines: u64,
    /// Lines that matched at least one rule.
    pub matched_lines: u64,
    /// Matching lines per rule, in config order.
    pub per_rule: Vec<(String, u64)>,
}

/// Reads `input` to its end, writing `rule[,rule…]<TAB>line` for every matching line and then a
/// table of counts to `out`.
pub fn run(
    config: &Config,
    input: impl Read,
    out: &mut impl Write,
) -> Result<TestReport, TestError> {
    let matcher = Matcher::new(&config.rules, config.max_line_bytes)?;
    let mut framer = LineFramer::new(config.max_line_bytes);
    let mut report = TestReport {
        per_rule: config.rules.iter().map(|r| (r.name.clone(), 0)).collect(),
        ..TestReport::default()
    };
    framer.read_all(input, TestError::Read, |block| {
        scan(&matcher, &block, &mut report, out).map_err(TestError::Write)
    })?;
    write_table(&report, out)?;
    Ok(report)
}

fn scan(
    matcher: &Matcher,
    block: &[u8],
    report: &mut TestReport,
    out: &mut impl Write,
) -> io::Result<()> {
    report.lines += memchr::memchr_iter(b'\n', block).count() as u64;
    let mut result = Ok(());
    matcher.scan(block, |m| {
        let (range, rules) = (m.range.clone(), m.rules);
        report.matched_lines += 1;
        let names: Vec<&str> = rules
            .iter()
            .map(|&r| matcher.rules()[r].name.as_str())
            .collect();
        for &r in rules {
            report.per_rule[r].1 += 1;
        }
        let line = String::from_utf8_lossy(&block[range]);
        if result.is_ok() {
            result = writeln!(out, "{}\t{}", names.join(","), line.trim_end_matches('\r'));
        }
    });
    result
}

fn write_table(report: &TestReport, out: &mut impl Write) -> io::Result<()> {
    let width = report
        .per_rule
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    writeln!(out)?;
    writeln!(out, "{:<width$}  {:>10}", "rule", "lines")?;
    for (name, n) in &report.per_rule {
        writeln!(out, "{name:<width$}  {n:>10}")?;
    }
    writeln!(
        out,
        "{} of {} lines matched at least one rule",
        report.matched_lines, report.lines
    )
}

/// Why a test run failed.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    /// The rules could not be combined.
    #[error(transparent)]
    Matcher(#[from] MatcherError),
    /// Reading the input failed.
    #[error("cannot read input: {0}")]
    Read(io::Error),
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Write(#[from] io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_matches_and_counts() {
        let config = crate::config::parse_str(
            "rules:\n  - {name: err, match: ERROR}\n  - {name: db, match: db}\n",
            "t.yaml",
            &|_| None,
        )
        .unwrap();
        let mut out = Vec::new();
        let report = run(&config, &b"ok\nERROR db\r\ndb up\nfine"[..], &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("err,db\tERROR db\ndb\tdb up\n"), "{text}");
        assert_eq!(
            report.per_rule,
            [("err".to_owned(), 1), ("db".to_owned(), 2)]
        );
        assert_eq!((report.lines, report.matched_lines), (4, 2));
        assert!(text.contains("2 of 4 lines matched"));
    }
}
