//! Output made for people on a terminal: messages as a DingTalk group shows them, matches with the
//! matched part highlighted. Everything here only decorates text that the machine-readable forms
//! already carry; the JSON lines of `--dry-run` and the `rule<TAB>line` form of `test` stay what
//! scripts read, byte for byte, whenever stdout is not a terminal or `--format json` is asked for.
//!
//! Colours follow the usual conventions: none when `NO_COLOR` is set (non-empty), always when
//! `CLICOLOR_FORCE` is set, otherwise only on a terminal.

use std::io::{self, IsTerminal, Write};
use std::sync::{Arc, Mutex};

use anstyle::{AnsiColor, Style};
use serde_json::Value;

use crate::cli::OutputFormat;

/// Whether to write for people (and with colours) or for programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Presentation {
    /// Human-readable form (messages rendered, tables); `false`: the machine form.
    pub human: bool,
    /// ANSI colours in the human form.
    pub colour: bool,
}

impl Presentation {
    /// The machine-readable form: what pipes and scripts get.
    pub const MACHINE: Presentation = Presentation {
        human: false,
        colour: false,
    };

    /// Decides from `--format` and whether stdout is a terminal.
    pub fn for_stdout(format: OutputFormat) -> Presentation {
        Presentation::decide(
            format,
            io::stdout().is_terminal(),
            std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
            std::env::var_os("CLICOLOR_FORCE").is_some_and(|v| !v.is_empty() && v != "0"),
        )
    }

    /// The decision itself, without looking at the process (for tests).
    pub fn decide(
        format: OutputFormat,
        terminal: bool,
        no_colour: bool,
        force_colour: bool,
    ) -> Presentation {
        let human = match format {
            OutputFormat::Auto => terminal,
            OutputFormat::Text => true,
            OutputFormat::Json => false,
        };
        Presentation {
            human,
            colour: human && !no_colour && (terminal || force_colour),
        }
    }

    fn paint(&self, style: Style, text: &str) -> String {
        if self.colour && !text.is_empty() {
            format!("{}{text}{}", style.render(), style.render_reset())
        } else {
            text.to_owned()
        }
    }
}

fn fg(c: AnsiColor) -> Style {
    Style::new().fg_color(Some(c.into()))
}

/// Writes one message the way a person reads it: a line naming the robot, the rules and the
/// count it stands for (what DingTalk does not show but the reader of a dry run needs), then the
/// message's text as the group would show it: rule headers bold and coloured, the time-and-source
/// line dimmed, quoted log lines behind a bar.
///
/// `when` is the (simulated) sending time, for `test --replay`.
pub fn write_message(
    out: &mut dyn Write,
    p: Presentation,
    robot: Option<&str>,
    rules: &[String],
    count: u64,
    body: &Value,
    when: Option<&str>,
) -> io::Result<()> {
    let msgtype = body["msgtype"].as_str().unwrap_or("text");
    let (title, text) = match msgtype {
        "markdown" => (
            body["markdown"]["title"].as_str(),
            body["markdown"]["text"].as_str().unwrap_or_default(),
        ),
        _ => (None, body["text"]["content"].as_str().unwrap_or_default()),
    };
    let mut head = String::new();
    if let Some(when) = when {
        head.push_str(when);
        head.push_str(" · ");
    }
    head.push_str(&format!(
        "robot {} · {} · {count} line{} · {msgtype}",
        robot.unwrap_or("(none: printing only)"),
        if rules.is_empty() {
            "no rule".to_owned()
        } else {
            format!(
                "rule{} {}",
                if rules.len() == 1 { "" } else { "s" },
                rules.join(", ")
            )
        },
        if count == 1 { "" } else { "s" },
    ));
    writeln!(
        out,
        "{}",
        p.paint(fg(AnsiColor::Cyan).bold(), &format!("━━ {head}"))
    )?;
    if let Some(title) = title {
        writeln!(
            out,
            "{} {}",
            p.paint(Style::new().dimmed(), "title:"),
            p.paint(Style::new().bold(), title)
        )?;
    }
    for line in text.lines() {
        writeln!(out, "{}", style_line(p, line))?;
    }
    if let Some(at) = body.get("at").filter(|a| !a.is_null()) {
        let mut who: Vec<String> = Vec::new();
        if at["isAtAll"].as_bool() == Some(true) {
            who.push("everyone".to_owned());
        }
        for key in ["atMobiles", "atUserIds"] {
            if let Some(list) = at[key].as_array() {
                who.extend(
                    list.iter()
                        .filter_map(|v| v.as_str())
                        .map(|s| format!("@{s}")),
                );
            }
        }
        if !who.is_empty() {
            writeln!(
                out,
                "{}",
                p.paint(
                    fg(AnsiColor::Magenta),
                    &format!("mentions: {}", who.join(" "))
                )
            )?;
        }
    }
    writeln!(out)
}

/// One line of a message's text, styled by what it is.
fn style_line(p: Presentation, line: &str) -> String {
    let trimmed = line.trim_start();
    if let Some(rest) = trimmed.strip_prefix('>') {
        // A quoted log line (text: "> line"; markdown: "> line" too, or indented continuations).
        format!(
            "{}{}",
            p.paint(fg(AnsiColor::BrightBlack), "│"),
            p.paint(Style::new(), rest)
        )
    } else if trimmed.starts_with('【') || trimmed.starts_with('#') {
        let colour = if trimmed.contains("recovered") || trimmed.contains("back") {
            AnsiColor::Green
        } else {
            AnsiColor::Red
        };
        p.paint(fg(colour).bold(), line)
    } else if trimmed.starts_with('…') || looks_like_span(trimmed) {
        p.paint(Style::new().dimmed(), line)
    } else {
        line.to_owned()
    }
}

/// The "2026-11-29 10:44:54 → 10:45:04 · stdin" line under each header.
fn looks_like_span(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() >= 19 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && line.contains(" · ")
}

/// Highlights `ranges` (byte ranges, sorted, not overlapping) of `line`.
pub fn highlight(p: Presentation, line: &str, ranges: &[std::ops::Range<usize>]) -> String {
    if !p.colour || ranges.is_empty() {
        return line.to_owned();
    }
    let style = fg(AnsiColor::Red).bold();
    let mut out = String::with_capacity(line.len() + 16 * ranges.len());
    let mut at = 0;
    for r in ranges {
        let (start, end) = (r.start.max(at), r.end.min(line.len()));
        if start >= end || !line.is_char_boundary(start) || !line.is_char_boundary(end) {
            continue;
        }
        out.push_str(&line[at..start]);
        out.push_str(&p.paint(style, &line[start..end]));
        at = end;
    }
    out.push_str(&line[at..]);
    out
}

/// A rule name, styled for the `test` listing.
pub fn rule_names(p: Presentation, names: &str) -> String {
    p.paint(fg(AnsiColor::Yellow).bold(), names)
}

/// A table heading or a summary, bold.
pub fn bold(p: Presentation, text: &str) -> String {
    p.paint(Style::new().bold(), text)
}

/// A writer that takes the dry-run JSON lines (exactly what `--dry-run` prints for programs) and
/// writes each as [`write_message`] renders it. Placed where the JSON would go, it leaves the
/// dispatcher's one code path untouched: what a person sees is decoded from what a program gets.
pub struct DryRunPrinter<W: Write> {
    out: W,
    presentation: Presentation,
    pending: Vec<u8>,
}

impl<W: Write> DryRunPrinter<W> {
    /// Renders onto `out`.
    pub fn new(out: W, presentation: Presentation) -> Self {
        DryRunPrinter {
            out,
            presentation,
            pending: Vec::new(),
        }
    }

    fn render_line(&mut self, line: &[u8]) -> io::Result<()> {
        let Ok(v) = serde_json::from_slice::<Value>(line) else {
            // Not a dry-run line: pass it through rather than lose it.
            self.out.write_all(line)?;
            return self.out.write_all(b"\n");
        };
        let rules: Vec<String> = v["rules"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        write_message(
            &mut self.out,
            self.presentation,
            v["robot"].as_str(),
            &rules,
            v["count"].as_u64().unwrap_or(0),
            &v["body"],
            None,
        )
    }
}

impl<W: Write> Write for DryRunPrinter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        while let Some(nl) = memchr::memchr(b'\n', &self.pending) {
            let line: Vec<u8> = self.pending.drain(..=nl).collect();
            self.render_line(&line[..line.len() - 1])?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Where `run --dry-run` writes: stdout as JSON lines, or through a [`DryRunPrinter`].
pub fn dry_run_stdout(p: Presentation) -> Arc<Mutex<dyn Write + Send>> {
    if p.human {
        Arc::new(Mutex::new(DryRunPrinter::new(io::stdout(), p)))
    } else {
        Arc::new(Mutex::new(io::stdout()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_and_terminal_decide() {
        use OutputFormat::*;
        let d = Presentation::decide;
        assert_eq!(d(Auto, false, false, false), Presentation::MACHINE);
        assert_eq!(d(Json, true, false, true), Presentation::MACHINE);
        assert_eq!(
            d(Auto, true, false, false),
            Presentation {
                human: true,
                colour: true
            }
        );
        assert_eq!(
            d(Auto, true, true, false),
            Presentation {
                human: true,
                colour: false
            }
        );
        assert_eq!(
            d(Text, false, false, false),
            Presentation {
                human: true,
                colour: false
            }
        );
        assert!(d(Text, false, false, true).colour);
    }

    #[test]
    fn printer_renders_each_json_line_split_anywhere() {
        let line = r#"{"robot":"ops","rules":["error"],"count":2,"body":{"msgtype":"text","text":{"content":"【error】×2 web\n2026-11-29 10:00:00 · stdin\n> a\n> b"},"msgUuid":"u"}}"#;
        let p = Presentation {
            human: true,
            colour: false,
        };
        let mut printer = DryRunPrinter::new(Vec::new(), p);
        let bytes = format!("{line}\n");
        let (a, b) = bytes.split_at(37);
        printer.write_all(a.as_bytes()).unwrap();
        printer.write_all(b.as_bytes()).unwrap();
        let text = String::from_utf8(printer.out).unwrap();
        assert_eq!(
            text,
            "━━ robot ops · rule error · 2 lines · text\n【error】×2 web\n2026-11-29 10:00:00 · stdin\n│ a\n│ b\n\n"
        );
    }

    #[test]
    fn highlight_marks_ranges_and_skips_bad_ones() {
        let p = Presentation {
            human: true,
            colour: true,
        };
        let s = highlight(p, "an ERROR here", &[3..8, 20..30]);
        assert!(s.starts_with("an \u{1b}["), "{s:?}");
        assert!(s.contains("ERROR\u{1b}[0m here"), "{s:?}");
        let plain = Presentation {
            human: true,
            colour: false,
        };
        let one = [std::ops::Range { start: 3, end: 8 }];
        assert_eq!(highlight(plain, "an ERROR", &one), "an ERROR");
    }
}
