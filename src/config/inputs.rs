//! `inputs:` and `timestamp:` checked: files to follow, their multi-line events, and how a
//! line's time is read for `test --replay`.

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
            let m = &m.value;
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
            match (start, max_lines, timeout) {
                (Some(start), Some(max_lines), Some(timeout)) => Some(Multiline {
                    start,
                    max_lines,
                    timeout,
                }),
                _ => {
                    ok = false;
                    None
                }
            }
        }
    };
    ok.then_some(InputConfig { path, multiline })
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
