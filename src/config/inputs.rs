//! `inputs:`, `stdin:` and `timestamp:` checked: files to follow, how the lines of each input
//! (standard input too) form multi-line events, and how a line's time is read for
//! `test --replay`.

use super::*;

/// One `inputs:` entry: `${VAR}` in its path expanded as in robot fields (`$$` is a `$`), so
/// one config serves hosts whose logs live in different places; `-` names stdin.
pub(super) fn check_input(
    c: &mut Checker,
    index: usize,
    raw: &RawInput,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<InputConfig> {
    let ctx = |field: &str| format!("input {}, field '{field}'", index + 1);
    let mut ok = true;
    let path = match expand_env(raw.path.value.trim(), env) {
        Ok(p) => p,
        Err(e) => {
            c.problem(&raw.path, ctx("path"), e);
            return None;
        }
    };
    if path.is_empty() {
        c.problem(&raw.path, ctx("path"), "is empty");
        ok = false;
    } else if let Err(e) = glob::Pattern::new(&path) {
        c.problem(&raw.path, ctx("path"), format!("is not a valid glob ({e})"));
        ok = false;
    }
    let multiline = match &raw.multiline {
        None => None,
        Some(m) => {
            let checked = check_multiline(c, m, &ctx);
            ok &= checked.is_some();
            checked
        }
    };
    ok.then_some(InputConfig { path, multiline })
}

/// `multiline: {start, max_lines, timeout}` of an input or of `stdin:`; `ctx` names a field
/// for a problem.
fn check_multiline(
    c: &mut Checker,
    raw: &Spanned<RawMultiline>,
    ctx: &dyn Fn(&str) -> String,
) -> Option<Multiline> {
    let m = &raw.value;
    let start = match crate::rules::regex_builder(&m.start.value).build() {
        Ok(r) => Some(r),
        Err(e) => {
            c.problem(&m.start, ctx("multiline.start"), e.to_string());
            None
        }
    };
    let max_lines = match &m.max_lines {
        None => Some(DEFAULT_MULTILINE_MAX_LINES),
        Some(n) if n.value == 0 || n.value > 100_000 => {
            c.problem(
                n,
                ctx("multiline.max_lines"),
                "must be between 1 and 100000",
            );
            None
        }
        Some(n) => Some(n.value),
    };
    let timeout = match &m.timeout {
        None => Some(DEFAULT_MULTILINE_TIMEOUT),
        Some(t) => c.duration(t, &ctx("multiline.timeout"), limits::MULTILINE_TIMEOUT),
    };
    Some(Multiline {
        start: start?,
        max_lines: max_lines?,
        timeout: timeout?,
    })
}

/// `stdin:` checked: how standard input's lines form events when it is read.
#[derive(Debug, Clone, Default)]
pub struct StdinConfig {
    /// `stdin.multiline` (or the `multiline` of an `inputs:` entry whose path is `-`, which
    /// names stdin too); `None`: every line is an event.
    pub multiline: Option<Multiline>,
}

/// `stdin:`, and an `inputs:` entry `-` (stdin by its input name): standard input's
/// `multiline` may be given in either place, not in both.
pub(super) fn check_stdin(
    c: &mut Checker,
    raw: Option<&RawStdin>,
    inputs: &[Spanned<RawInput>],
    checked_inputs: &[InputConfig],
) -> StdinConfig {
    let ctx = |field: &str| format!("stdin, field '{field}'");
    let as_input = checked_inputs
        .iter()
        .find(|i| i.path == "-")
        .and_then(|i| i.multiline.clone());
    let Some(m) = raw.and_then(|r| r.multiline.as_ref()) else {
        return StdinConfig {
            multiline: as_input,
        };
    };
    let multiline = check_multiline(c, m, &ctx);
    let dash = (inputs.iter())
        .position(|i| i.value.path.value.trim() == "-" && i.value.multiline.is_some());
    if let Some(i) = dash {
        c.problem(
            m,
            ctx("multiline"),
            format!(
                "is given twice: here and in input {} (path '-'); keep one",
                i + 1
            ),
        );
    }
    StdinConfig { multiline }
}

impl Config {
    /// The multi-line setting `run` would use for `path` (`None`: stdin): that of the config's
    /// input naming it (or a glob matching it); for stdin, `stdin.multiline`, else the only
    /// input's when the config has exactly one (`dingtail test < app.log` tries that input's
    /// rules on a copy of its log).
    pub fn multiline_for(&self, path: Option<&Path>) -> Option<&Multiline> {
        match path {
            Some(p) => {
                let p = p.to_string_lossy();
                (self.inputs.iter())
                    .find(|i| {
                        i.path == p || glob::Pattern::new(&i.path).is_ok_and(|g| g.matches(&p))
                    })
                    .and_then(|i| i.multiline.as_ref())
            }
            None => self
                .stdin
                .multiline
                .as_ref()
                .or(match self.inputs.as_slice() {
                    [only] => only.multiline.as_ref(),
                    _ => None,
                }),
        }
    }
}

/// `timestamp: {regex, format}`: how `dingtail test --replay` finds the time of a line. The
/// regex's first capture group (or the one named `ts`) holds the text, parsed with a chrono
/// `strftime` format; formats without a year (syslog's `%b %e %H:%M:%S`) get the current year.
#[derive(Debug, Clone)]
pub struct TimestampFormat {
    /// Finds the timestamp text in a line.
    pub regex: regex::bytes::Regex,
    /// chrono format of that text.
    pub format: String,
}

pub(super) fn check_timestamp(c: &mut Checker, raw: &RawTimestamp) -> Option<TimestampFormat> {
    let ctx = "timestamp, field 'regex'";
    let regex = match crate::rules::regex_builder(&raw.regex.value).build() {
        Ok(re) if re.captures_len() > 1 => Some(re),
        Ok(_) => {
            c.problem(
                &raw.regex,
                ctx,
                "needs a capture group around the timestamp, e.g. '^(\\S+ \\S+)'",
            );
            None
        }
        Err(e) => {
            c.problem(&raw.regex, ctx, format!("invalid regex: {e}"));
            None
        }
    };
    let format = raw.format.value.trim().to_owned();
    let bad = chrono::format::StrftimeItems::new(&format)
        .any(|i| matches!(i, chrono::format::Item::Error));
    if format.is_empty() || bad {
        c.problem(
            &raw.format,
            "timestamp, field 'format'",
            format!(
                "{} is not a strftime format, e.g. %Y-%m-%d %H:%M:%S",
                quoted(&format)
            ),
        );
        return None;
    }
    Some(TimestampFormat {
        regex: regex?,
        format,
    })
}
