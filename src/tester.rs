//! `dingtail test`: shows rule authors which lines match which rules, then counts per rule.
//! Sends nothing; reads the same way `run` does (same framing, same matcher), so what it shows is
//! what `run` would count.

use std::io::{self, Read, Write};

use crate::config::{Config, Multiline};
use crate::matcher::{Matcher, MatcherError};
use crate::source::LineFramer;
use crate::source::multiline::{Assembler, EVENT_LINE_SEP};

/// Counts from a test run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestReport {
    /// Lines read.
    pub lines: u64,
    /// Events matched as one (lines, or multi-line events with `multiline`).
    pub events: u64,
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
    run_events(config, input, None, out)
}

/// [`run`], gathering lines into events as `run` does for an input with `multiline` (the same
/// [`Assembler`]), so a stack trace counts once here as it does there. The assembler's timeout
/// does not apply: the input is read to its end, and its last event ends there.
pub fn run_events(
    config: &Config,
    input: impl Read,
    multiline: Option<&Multiline>,
    out: &mut impl Write,
) -> Result<TestReport, TestError> {
    let matcher = Matcher::new(&config.rules, config.max_line_bytes)?;
    let mut framer = LineFramer::new(config.max_line_bytes);
    let mut assembler = multiline.map(|m| Assembler::new(m, config.max_line_bytes));
    let mut report = TestReport {
        per_rule: config.rules.iter().map(|r| (r.name.clone(), 0)).collect(),
        ..TestReport::default()
    };
    let now = std::time::Instant::now();
    framer.read_all(input, TestError::Read, |block| {
        report.lines += memchr::memchr_iter(b'\n', &block).count() as u64;
        let events = match &mut assembler {
            Some(a) => a.push(&block, 0, 0, now).0,
            None => block,
        };
        scan(&matcher, &events, &mut report, out).map_err(TestError::Write)
    })?;
    if let Some(a) = &mut assembler {
        let last = a.flush();
        scan(&matcher, &last, &mut report, out)?;
    }
    write_table(&report, out)?;
    Ok(report)
}

/// The multi-line setting `run` would use for `path`: that of the config's input naming it
/// (or a glob matching it); for stdin, the only input's, when the config has exactly one.
pub fn multiline_for<'a>(
    config: &'a Config,
    path: Option<&std::path::Path>,
) -> Option<&'a Multiline> {
    match path {
        Some(p) => {
            let p = p.to_string_lossy();
            config
                .inputs
                .iter()
                .find(|i| i.path == p || glob::Pattern::new(&i.path).is_ok_and(|g| g.matches(&p)))
                .and_then(|i| i.multiline.as_ref())
        }
        None => match config.inputs.as_slice() {
            [only] => only.multiline.as_ref(),
            _ => None,
        },
    }
}

fn scan(
    matcher: &Matcher,
    block: &[u8],
    report: &mut TestReport,
    out: &mut impl Write,
) -> io::Result<()> {
    report.events += memchr::memchr_iter(b'\n', block).count() as u64;
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
        // a multi-line event shows as its lines, the later ones indented
        let shown = line
            .trim_end_matches('\r')
            .replace(char::from(EVENT_LINE_SEP), "\n\t");
        if result.is_ok() {
            result = writeln!(out, "{}\t{shown}", names.join(","));
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
    if report.events != report.lines {
        writeln!(
            out,
            "{} of {} events ({} lines) matched at least one rule",
            report.matched_lines, report.events, report.lines
        )
    } else {
        writeln!(
            out,
            "{} of {} lines matched at least one rule",
            report.matched_lines, report.lines
        )
    }
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

    #[test]
    fn a_stack_trace_counts_once_as_in_run() {
        let config = crate::config::parse_str(
            "inputs:\n  - path: app.log\n    multiline: {start: '^\\d'}\nrules:\n  - {name: exc, match: 'Exception|\\bat '}\n",
            "t.yaml",
            &|_| None,
        )
        .unwrap();
        let ml = multiline_for(&config, Some(std::path::Path::new("app.log")));
        assert!(ml.is_some());
        let input = b"1 start\n2 java.lang.IllegalStateException: boom\n  at a.B(C.java:1)\n  at d.E(F.java:2)\n3 ok\n";
        let mut out = Vec::new();
        let report = run_events(&config, &input[..], ml, &mut out).unwrap();
        assert_eq!(
            report.per_rule,
            [("exc".to_owned(), 1)],
            "{}",
            String::from_utf8_lossy(&out)
        );
        assert_eq!((report.lines, report.events), (5, 3));
        // without multiline, each line counts
        let report = run(&config, &input[..], &mut Vec::new()).unwrap();
        assert_eq!(report.per_rule, [("exc".to_owned(), 3)]);
    }
}
