//! `dingtail test`: shows rule authors which lines match which rules, then counts per rule.
//! Sends nothing; reads the same way `run` does (same framing, same matcher), so what it shows is
//! what `run` would count.

use std::io::{self, Read, Write};

use crate::config::{Config, Multiline};
use crate::matcher::{Matcher, MatcherError};
use crate::pretty::{self, Presentation};
use crate::source::{EventBlock, EventReader};

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
    /// Bytes read.
    pub bytes: u64,
}

/// Reads `input` to its end, writing `rule[,rule…]<TAB>line` for every matching line and then a
/// table of counts to `out`.
pub fn run(
    config: &Config,
    input: impl Read,
    out: &mut impl Write,
) -> Result<TestReport, TestError> {
    run_as(config, input, None, out, Presentation::MACHINE, &mut |_| {})
}

/// [`run`], for people when `p.human`: each matching line with the rules' names before it and
/// the matched part highlighted, then the counts as a table. `progress` is told the bytes of
/// each block read (for a progress bar). Reads through the same [`EventReader`] as `run`: with
/// `multiline`, lines are gathered into events as `run` does for such an input, so a stack trace
/// counts once here as it does there; the timeout does not apply: the input is read to its end,
/// and its last event ends there.
pub fn run_as(
    config: &Config,
    input: impl Read,
    multiline: Option<&Multiline>,
    out: &mut impl Write,
    p: Presentation,
    progress: &mut dyn FnMut(&TestReport),
) -> Result<TestReport, TestError> {
    let matcher = Matcher::new(&config.rules, config.max_line_bytes)?;
    let mut reader = EventReader::new(config.max_line_bytes, multiline);
    let mut report = TestReport {
        per_rule: config.rules.iter().map(|r| (r.name.clone(), 0)).collect(),
        ..TestReport::default()
    };
    // Highlighting finds the matched part again, per rule, on matching lines only.
    let highlighters: Vec<Option<regex::bytes::Regex>> = if p.colour {
        config
            .rules
            .iter()
            .map(|r| {
                r.field
                    .is_none()
                    .then(|| crate::rules::regex_builder(&r.pattern).build().ok())
                    .flatten()
            })
            .collect()
    } else {
        Vec::new()
    };
    let show = Show { p, highlighters };
    reader.read_all(input, TestError::Read, |block, reader| {
        report.bytes = reader.offset();
        report.lines += block.lines;
        let r = scan(&matcher, block, &mut report, out, &show).map_err(TestError::Write);
        progress(&report);
        r
    })?;
    if p.human {
        write_human_table(&report, out, p)?;
    } else {
        write_table(&report, out)?;
    }
    Ok(report)
}

/// How matching lines are shown.
struct Show {
    p: Presentation,
    /// Per rule, the regex that finds its matched part (empty: no highlighting).
    highlighters: Vec<Option<regex::bytes::Regex>>,
}

fn scan(
    matcher: &Matcher,
    events: &EventBlock,
    report: &mut TestReport,
    out: &mut impl Write,
    show: &Show,
) -> io::Result<()> {
    let block = &events.data;
    report.events += events.events();
    let mut result = Ok(());
    let mut confirmed = Vec::new();
    matcher.scan(block, |m| {
        let mut judged = block.slice(m.range.clone());
        if judged.ends_with(b"\r") {
            judged.truncate(judged.len() - 1);
        }
        confirmed.clear();
        matcher.confirm(&judged, m, |rule, captures| {
            let r = &matcher.rules()[rule];
            confirmed.push((rule, r.route_for(&judged, &captures)));
        });
        if confirmed.is_empty() {
            return; // every rule's `where:` said no
        }
        let range = m.range.clone();
        let rules: Vec<usize> = confirmed.iter().map(|&(r, _)| r).collect();
        report.matched_lines += 1;
        // a rule with routes shows the route the hit took: `rule→route`
        let names: Vec<String> = (confirmed.iter())
            .map(|&(r, route)| {
                let rule = &matcher.rules()[r];
                if rule.routes.is_empty() {
                    rule.name.clone()
                } else {
                    format!("{}→{}", rule.name, rule.route_name(route))
                }
            })
            .collect();
        for &r in &rules {
            report.per_rule[r].1 += 1;
        }
        // a multi-line event shows as its lines, the later ones indented: its joins become
        // `\n` (no line holds one), the same length, so highlighted ranges stay in place
        let mut bytes = block[range.clone()].to_vec();
        for &j in &events.line_joins {
            if range.contains(&(j as usize)) {
                bytes[j as usize - range.start] = b'\n';
            }
        }
        let line = String::from_utf8_lossy(&bytes);
        let line = line.trim_end_matches('\r');
        if result.is_err() {
            return;
        }
        result = if show.p.human {
            let mut ranges: Vec<std::ops::Range<usize>> = rules
                .iter()
                .filter_map(|&r| show.highlighters.get(r)?.as_ref())
                .flat_map(|re| re.find_iter(&block[range.clone()]).map(|m| m.range()))
                .filter(|r| !r.is_empty())
                .collect();
            ranges.sort_by_key(|r| r.start);
            writeln!(
                out,
                "{}  {}",
                pretty::rule_names(show.p, &names.join(",")),
                pretty::highlight(show.p, line, &ranges).replace('\n', "\n\t")
            )
        } else {
            writeln!(out, "{}\t{}", names.join(","), line.replace('\n', "\n\t"))
        };
    });
    result
}

fn write_table(report: &TestReport, out: &mut impl Write) -> io::Result<()> {
    let width = name_width(report);
    writeln!(out)?;
    writeln!(out, "{:<width$}  {:>10}", "rule", "lines")?;
    for (name, n) in &report.per_rule {
        writeln!(out, "{name:<width$}  {n:>10}")?;
    }
    writeln!(out, "{}", matched_summary(report))
}

/// The width of the rule column of either table: the longest rule name, at least `rule`.
fn name_width(report: &TestReport) -> usize {
    report
        .per_rule
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(4)
        .max(4)
}

/// The last line of either table: how many lines (and events, when `multiline` gathered them)
/// matched at least one rule.
fn matched_summary(report: &TestReport) -> String {
    if report.events != report.lines {
        format!(
            "{} of {} events ({} lines) matched at least one rule",
            report.matched_lines, report.events, report.lines
        )
    } else {
        format!(
            "{} of {} lines matched at least one rule",
            report.matched_lines, report.lines
        )
    }
}

/// The counts for people: a table with each rule's share of the lines read.
fn write_human_table(report: &TestReport, out: &mut impl Write, p: Presentation) -> io::Result<()> {
    let width = name_width(report);
    let rule = "─".repeat(width + 2 + 10 + 2 + 8);
    writeln!(out)?;
    writeln!(
        out,
        "{}",
        pretty::bold(
            p,
            &format!("{:<width$}  {:>10}  {:>8}", "rule", "lines", "share")
        )
    )?;
    writeln!(out, "{rule}")?;
    for (name, n) in &report.per_rule {
        let share = if report.lines == 0 {
            0.0
        } else {
            *n as f64 * 100.0 / report.lines as f64
        };
        let row = format!("{name:<width$}  {n:>10}  {share:>7.2}%");
        if *n == 0 {
            writeln!(out, "{row}")?;
        } else {
            writeln!(out, "{}", pretty::rule_names(p, &row))?;
        }
    }
    writeln!(out, "{rule}")?;
    writeln!(out, "{}", pretty::bold(p, &matched_summary(report)))
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
        let ml = config.multiline_for(Some(std::path::Path::new("app.log")));
        assert!(ml.is_some());
        let input = b"1 start\n2 java.lang.IllegalStateException: boom\n  at a.B(C.java:1)\n  at d.E(F.java:2)\n3 ok\n";
        let mut out = Vec::new();
        let report = run_as(
            &config,
            &input[..],
            ml,
            &mut out,
            Presentation::MACHINE,
            &mut |_| {},
        )
        .unwrap();
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

    #[test]
    fn where_is_judged_as_in_run() {
        let config = crate::config::parse_str(
            "rules:\n  - {name: slow, match: '\"status\"', where: 'status >= 500 and latency_ms > 1000'}\n",
            "t.yaml",
            &|_| None,
        )
        .unwrap();
        let input = concat!(
            "{\"status\": 503, \"latency_ms\": 1500}\n",
            "{\"status\": 503, \"latency_ms\": 20}\n",
            "{\"status\": 200, \"latency_ms\": 5000}\n",
            "{\"status\": 502}\n",
        );
        let mut out = Vec::new();
        let report = run(&config, input.as_bytes(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(report.per_rule, [("slow".to_owned(), 1)], "{text}");
        assert_eq!(report.matched_lines, 1);
        assert!(
            text.starts_with("slow\t{\"status\": 503, \"latency_ms\": 1500}\n"),
            "{text}"
        );
    }
}
