//! What is wrong with a config, located: a [`Problem`] names file, line, column and context.
//! Also how serde's schema errors become problems, and how a unit with one is tried again
//! without the line at fault, so every problem of a file is reported at once.

use super::*;

/// One thing wrong with a config file, located as precisely as the YAML allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// File name as given by the user.
    pub file: String,
    /// 1-based line, 0 when unknown.
    pub line: u64,
    /// 1-based column, 0 when unknown.
    pub column: u64,
    /// Where in the config: `rule 'nginx-5xx', field 'match'`, `robot 'ops', field 'secret'`.
    pub context: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if self.context.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.context, self.message)
        }
    }
}

/// Why a configuration could not be loaded. The caller branches on it only to pick the exit
/// status (all are usage errors, 2), but `Invalid` carries the list `dingtail check` prints.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error(
        "cannot read config {path}: {source}{}",
        if source.kind() == std::io::ErrorKind::NotFound {
            "; `dingtail init` writes a starter config there (`-o PATH`), and without -c and \
             DINGTAIL_CONFIG dingtail looks for ./dingtail.yaml, else uses its built-in rules"
        } else {
            ""
        }
    )]
    Read {
        /// The path as given.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read but is wrong; every problem found is listed.
    #[error("{}", display_problems(.0))]
    Invalid(Vec<Problem>),
}

pub(super) fn display_problems(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
    lines.join("\n")
}

/// How many schema errors one unit (a rule, a robot…) may report.
pub(super) const MAX_SCHEMA_RETRIES: usize = 16;

/// Empties line `line` (1-based) of a unit's text, and the lines nested under it, so the unit
/// can be tried again without them.
/// False when that would not help or would change the unit's shape: no such line, an empty
/// one, the unit's first lines (its key, a list item's `- `), or a line that starts an item.
pub(super) fn blank_line(text: &mut String, line: usize, unit: &Unit) -> bool {
    let first_own = unit.lines.last().map_or(0, |r| *r.start());
    let Some(content) = text.split('\n').nth(line.wrapping_sub(1)) else {
        return false;
    };
    let shape = content.trim_start().starts_with('-') || line <= first_own;
    let keeps_first = unit.lines.iter().any(|r| *r.start() == line);
    if line == 0 || content.trim().is_empty() || shape || keeps_first {
        return false;
    }
    // The line goes with everything nested under it (a block scalar, a nested mapping).
    let indent = |l: &str| l.len() - l.trim_start().len();
    let own = indent(content);
    let lines: Vec<&str> = text.split('\n').collect();
    let mut end = line; // 1-based, inclusive
    while let Some(next) = lines.get(end) {
        if next.trim().is_empty() || indent(next) > own {
            end += 1;
        } else {
            break;
        }
    }
    let blanked: Vec<&str> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if (line..=end).contains(&(i + 1)) {
                ""
            } else {
                l
            }
        })
        .collect();
    *text = blanked.join("\n");
    true
}

/// `rule 'x', field 'y'` for a schema error at `line:column` of a unit: the unit names the rule,
/// robot or input, the text at the location names the field (the key whose value starts there,
/// or the key itself).
pub(super) fn unit_context(unit: &Unit, text: &str, line: u64, column: u64) -> String {
    let owner = match &unit.section {
        Section::Rule(i) => match &unit.name {
            Some(n) => format!("rule '{n}'"),
            None => format!("rule {}", i + 1),
        },
        Section::Robot(name) => format!("robot '{name}'"),
        Section::Input(i) => format!("input {}", i + 1),
        Section::Key(_) => String::new(),
    };
    let lines: Vec<&str> = text.lines().collect();
    let at = (line as usize).saturating_sub(1);
    let field = lines.get(at).and_then(|l| {
        field_at(l, (column as usize).saturating_sub(1)).or_else(|| {
            // Inside a value (a block scalar's text): the key of the nearest line above that
            // is indented less.
            let indent = |l: &str| l.len() - l.trim_start().len();
            let own = indent(l);
            lines[..at]
                .iter()
                .rev()
                .find(|p| !p.trim().is_empty() && indent(p) < own)
                .and_then(|p| field_at(p, p.find(':').unwrap_or(0) + 1))
        })
    });
    match (owner.is_empty(), field) {
        (true, None) => String::new(),
        (true, Some(f)) => format!("field '{f}'"),
        (false, None) => owner,
        (false, Some(f)) => format!("{owner}, field '{f}'"),
    }
}

/// The YAML key at or just before character `col` of `line`.
pub(super) fn field_at(line: &str, col: usize) -> Option<String> {
    let is_key = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    let chars: Vec<char> = line.chars().collect();
    let col = col.min(chars.len());
    let before: String = chars[..col].iter().collect();
    let before = before.trim_end();
    let key: String = if let Some(b) = before.strip_suffix(':') {
        let rev: String = b.chars().rev().take_while(|c| is_key(*c)).collect();
        rev.chars().rev().collect()
    } else {
        // The key itself (an unknown field is located at its name).
        let word: String = chars[col..].iter().take_while(|c| is_key(**c)).collect();
        let after = chars[col + word.chars().count()..]
            .iter()
            .collect::<String>();
        if after.trim_start().starts_with(':') {
            word
        } else {
            String::new()
        }
    };
    (!key.is_empty()).then_some(key)
}

/// A serde-saphyr error as a [`Problem`], its message scrubbed of values that should not be
/// quoted (see [`shown`]).
pub(super) fn schema_problem(e: &serde_saphyr::Error, origin: &str) -> Problem {
    let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
    Problem {
        file: origin.to_owned(),
        line,
        column,
        context: String::new(),
        message: plain(&scrub(&first_line(&e.without_snippet().to_string()))),
    }
}

/// A few of serde-saphyr's terse messages in the words of the config's reader.
pub(super) fn plain(message: &str) -> String {
    match message {
        m if m.starts_with("invalid u") || m.starts_with("invalid i") => {
            "must be a whole number (in range)".to_owned()
        }
        "expected mapping start" => "must be a mapping (`key: value` lines or `{…}`)".to_owned(),
        "expected sequence start" => "must be a list (`- item` lines or `[…]`)".to_owned(),
        m => m.to_owned(),
    }
}

/// serde-saphyr's message repeats the location on its first line; keep only the message.
pub(super) fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message).trim();
    // "... at line 3 column 5" is redundant next to our "file:3:5:" prefix.
    match line.rfind(" at line ") {
        Some(i) => line[..i].to_owned(),
        None => line.to_owned(),
    }
}

/// Replaces every quoted value in a library's message (`"…"` or `` `…` ``) that [`shown`] would
/// not quote with `…`: a secret pasted into a numeric field must not be quoted back.
pub(super) fn scrub(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find(['"', '`']) {
        let quote = rest[i..].chars().next().expect("found");
        out.push_str(&rest[..i + 1]);
        let after = &rest[i + 1..];
        match after.find(quote) {
            Some(end) => {
                let inner = &after[..end];
                out.push_str(if shown(inner) { inner } else { "…" });
                out.push(quote);
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(if shown(after) { after } else { "…" });
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Longest value a config error quotes back.
pub(super) const MAX_SHOWN_CHARS: usize = 40;

/// Whether a config error may quote `value`: short, on one line, with nothing invisible, and
/// not shaped like a credential (a `SEC…` secret, a URL with a token, a long run of token
/// characters). Values of secret-bearing fields and `${VAR}` expansions are never passed here.
pub(super) fn shown(value: &str) -> bool {
    let longest_word = value
        .split(|c: char| !(c.is_ascii_alphanumeric() || "+/=_-%".contains(c)))
        .map(str::len)
        .max()
        .unwrap_or(0);
    value.chars().count() <= MAX_SHOWN_CHARS
        && !value.chars().any(crate::dingtalk::neutral::is_hazard)
        && !value.trim_start().starts_with("SEC")
        && !value.contains("access_token")
        && longest_word < 24
}

/// `` `value` `` when [`shown`] allows it, else `the value`, for messages like "… is not a
/// duration".
pub(super) fn quoted(value: &str) -> String {
    if shown(value) {
        format!("`{value}`")
    } else {
        "the value".to_owned()
    }
}
