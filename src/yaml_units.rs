//! Splits a config file into units (each rule, each robot, each input, each other top-level
//! key) so that a config with schema errors (unknown fields, wrong types) can be checked unit
//! by unit: serde stops at the first error, and `dingtail check` must list every problem at once.
//!
//! A unit is a set of whole lines of the file; [`YamlUnits::text`] gives the file with every
//! other line emptied, so the unit parses on its own with its problems at their true line and
//! column. Only block-style collections are split (lines of a flow collection like
//! `rules: [{…}, {…}]` cannot be separated): a flow `rules:` is one unit.
//!
//! Edges: comments and blank lines between units belong to the unit after them; a file the YAML
//! parser itself rejects, or whose top level is not a block mapping, gives `None` (the caller
//! reports the first error, which is then a syntax error).

use std::ops::RangeInclusive;

use serde_saphyr::granit_parser::{Event, Parser, ScanError, Span, StructureStyle};

/// Which part of the config a unit holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Section {
    /// `rules[i]`.
    Rule(usize),
    /// `robots.NAME`.
    Robot(String),
    /// `inputs[i]`.
    Input(usize),
    /// Another top-level key, whole.
    Key(String),
}

/// One unit: its section and the (1-based, inclusive) line ranges it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// What it is.
    pub section: Section,
    /// Lines kept: the top-level key's line, then the unit's own lines.
    pub lines: Vec<RangeInclusive<usize>>,
    /// For a rule or input given as a mapping: its `name` (or `path`), when it is a scalar.
    pub name: Option<String>,
}

/// A config file split into units.
#[derive(Debug)]
pub struct YamlUnits<'a> {
    text: &'a str,
    /// The units, in file order.
    pub units: Vec<Unit>,
}

impl<'a> YamlUnits<'a> {
    /// Splits `text`; `None` when it does not parse as YAML or is not a block mapping.
    pub fn split(text: &'a str) -> Option<YamlUnits<'a>> {
        let events = events(text).ok()?;
        let mut walk = Walk { events, at: 0 };
        let units = walk.top().ok()?;
        Some(YamlUnits { text, units })
    }

    /// The file with only `unit`'s lines left (others emptied, so lines and columns stay true).
    pub fn text(&self, unit: &Unit) -> String {
        let mut out = String::with_capacity(self.text.len());
        for (i, line) in self.text.split_inclusive('\n').enumerate() {
            if unit.lines.iter().any(|r| r.contains(&(i + 1))) {
                out.push_str(line);
            } else if line.ends_with('\n') {
                out.push('\n');
            }
        }
        out
    }
}

fn events(text: &str) -> Result<Vec<(Event<'_>, Span)>, ScanError> {
    let mut parser = Parser::new_from_str(text);
    let mut out = Vec::new();
    while let Some(next) = parser.next_event() {
        let (event, span) = next?;
        #[allow(unreachable_patterns)]
        match event {
            Event::StreamStart | Event::DocumentStart(..) | Event::DocumentEnd => {}
            Event::StreamEnd => break,
            Event::Scalar(..)
            | Event::SequenceStart(..)
            | Event::SequenceEnd
            | Event::MappingStart(..)
            | Event::MappingEnd
            | Event::Alias(..) => out.push((event, span)),
            _ => {}
        }
    }
    Ok(out)
}

/// Not a shape we split.
struct Unsplittable;

struct Walk<'t> {
    events: Vec<(Event<'t>, Span)>,
    at: usize,
}

impl Walk<'_> {
    fn next(&mut self) -> Result<&(Event<'_>, Span), Unsplittable> {
        let e = self.events.get(self.at).ok_or(Unsplittable)?;
        self.at += 1;
        Ok(e)
    }

    fn peek_is_end(&self) -> bool {
        matches!(
            self.events.get(self.at),
            Some((Event::MappingEnd | Event::SequenceEnd, _)) | None
        )
    }

    /// The top-level block mapping.
    fn top(&mut self) -> Result<Vec<Unit>, Unsplittable> {
        match self.next()? {
            (Event::MappingStart(StructureStyle::Block, ..), _) => {}
            _ => return Err(Unsplittable),
        }
        let mut units = Vec::new();
        let mut prev_end = 0;
        while !self.peek_is_end() {
            let (key, key_line) = match self.next()? {
                (Event::Scalar(k, ..), span) => (k.to_string(), span.start.line()),
                _ => return Err(Unsplittable),
            };
            let head = key_line..=key_line;
            let block_seq = matches!(
                self.events.get(self.at),
                Some((Event::SequenceStart(StructureStyle::Block, ..), _))
            );
            let block_map = matches!(
                self.events.get(self.at),
                Some((Event::MappingStart(StructureStyle::Block, ..), _))
            );
            match key.as_str() {
                "rules" | "inputs" if block_seq => {
                    self.next()?;
                    let mut from = key_line + 1;
                    let mut i = 0;
                    while !self.peek_is_end() {
                        let name = self.item_name(if key == "rules" { "name" } else { "path" });
                        let last = self.node()?;
                        let section = if key == "rules" {
                            Section::Rule(i)
                        } else {
                            Section::Input(i)
                        };
                        units.push(Unit {
                            section,
                            lines: vec![head.clone(), from..=last],
                            name,
                        });
                        from = last + 1;
                        i += 1;
                    }
                    self.next()?;
                    prev_end = from.saturating_sub(1).max(key_line);
                }
                "robots" if block_map => {
                    self.next()?;
                    let mut from = key_line + 1;
                    while !self.peek_is_end() {
                        let name = match self.next()? {
                            (Event::Scalar(k, ..), _) => k.to_string(),
                            _ => return Err(Unsplittable),
                        };
                        let last = self.node()?;
                        units.push(Unit {
                            section: Section::Robot(name),
                            lines: vec![head.clone(), from..=last],
                            name: None,
                        });
                        from = last + 1;
                    }
                    self.next()?;
                    prev_end = from.saturating_sub(1).max(key_line);
                }
                _ => {
                    let last = self.node()?.max(key_line);
                    units.push(Unit {
                        section: Section::Key(key),
                        lines: vec![prev_end + 1..=last],
                        name: None,
                    });
                    prev_end = last;
                }
            }
        }
        Ok(units)
    }

    /// The scalar value of key `field` of the mapping that starts at the next event, without
    /// consuming anything.
    fn item_name(&self, field: &str) -> Option<String> {
        let mut at = self.at;
        if !matches!(self.events.get(at), Some((Event::MappingStart(..), _))) {
            return None;
        }
        at += 1;
        let mut depth = 0usize;
        let mut is_key = true;
        while let Some((event, _)) = self.events.get(at) {
            at += 1;
            match event {
                Event::MappingStart(..) | Event::SequenceStart(..) => depth += 1,
                Event::MappingEnd | Event::SequenceEnd if depth == 0 => return None,
                Event::MappingEnd | Event::SequenceEnd => depth -= 1,
                Event::Scalar(k, ..) if depth == 0 && is_key && k == field => {
                    return match self.events.get(at) {
                        Some((Event::Scalar(v, ..), _)) => Some(v.to_string()),
                        _ => None,
                    };
                }
                _ => {}
            }
            if depth == 0 && !matches!(event, Event::MappingStart(..) | Event::SequenceStart(..)) {
                is_key = !is_key;
            }
        }
        None
    }

    /// Consumes one node; returns its last line, which is before the line where the next
    /// event starts (a block scalar's span runs on to the next token).
    fn node(&mut self) -> Result<usize, Unsplittable> {
        let first = self
            .events
            .get(self.at)
            .map_or(0, |(_, span)| span.start.line());
        let last = self.node_raw()?;
        Ok(match self.events.get(self.at) {
            Some((_, next)) if next.start.line() <= last && next.start.line() > first => {
                next.start.line() - 1
            }
            _ => last,
        })
    }

    /// Consumes one node; returns the last line holding any of its content.
    fn node_raw(&mut self) -> Result<usize, Unsplittable> {
        let mut styles: Vec<StructureStyle> = Vec::new();
        let mut last = 0;
        loop {
            let (event, span) = self.next()?;
            let end_line = |span: &Span| {
                // A span ending at the start of a line ends on the line before it.
                if span.end.col() == 0 && span.end.line() > span.start.line() {
                    span.end.line() - 1
                } else {
                    span.end.line()
                }
            };
            match event {
                Event::Scalar(..) | Event::Alias(..) => last = last.max(end_line(span)),
                Event::SequenceStart(style, ..) | Event::MappingStart(style, ..) => {
                    last = last.max(span.start.line());
                    styles.push(*style);
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    let flow = styles.pop() == Some(StructureStyle::Flow);
                    last = if flow { last.max(end_line(span)) } else { last };
                }
                _ => {}
            }
            if styles.is_empty() {
                return Ok(last);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# header comment
robots:
  ops:
    webhook: x
    rate: 5/s
  pager: { webhook: y }
defaults:
  window: 1s
rules:
  - name: a
    match: |
      multi
      line
  # between
  - name: b
    match: x
inputs: [{ path: a }, { path: b }]
";

    #[test]
    fn each_rule_robot_and_key_is_a_unit_of_whole_lines() {
        let units = YamlUnits::split(TEXT).unwrap();
        let got: Vec<(Section, Vec<RangeInclusive<usize>>)> = units
            .units
            .iter()
            .map(|u| (u.section.clone(), u.lines.clone()))
            .collect();
        assert_eq!(
            got,
            [
                (Section::Robot("ops".into()), vec![2..=2, 3..=5]),
                (Section::Robot("pager".into()), vec![2..=2, 6..=6]),
                (Section::Key("defaults".into()), vec![7..=8]),
                // the parser ends a block scalar where the next token starts: the comment
                // line goes with rule a, which is as good
                (Section::Rule(0), vec![9..=9, 10..=14]),
                (Section::Rule(1), vec![9..=9, 15..=16]),
                (Section::Key("inputs".into()), vec![17..=17]),
            ]
        );
        let rule_b = units.text(&units.units[4]);
        assert_eq!(
            rule_b,
            "\n\n\n\n\n\n\n\nrules:\n\n\n\n\n\n  - name: b\n    match: x\n\n"
        );
    }

    #[test]
    fn what_cannot_be_split_says_so() {
        assert!(YamlUnits::split("[1, 2]").is_none());
        assert!(YamlUnits::split("{rules: []}").is_none());
        assert!(YamlUnits::split("rules: [\n").is_none());
    }
}
