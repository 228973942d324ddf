//! `redact:`: which personal data is masked out of messages (see [`crate::pii`]).
//!
//! ```yaml
//! redact:
//!   builtins: { email: false }          # every built-in is on unless turned off here
//!   patterns:
//!     - name: uid
//!       regex: 'uid=(\d)\d+'
//!       replace: 'uid=${1}***'          # optional; default `[uid]`
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::Checker;
use crate::pii::{Builtins, Pii, UserPattern};

/// `redact:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRedact {
    /// Built-in maskers turned on or off by name.
    #[serde(default)]
    builtins: BTreeMap<String, Spanned<bool>>,
    /// Patterns of your own to mask.
    #[serde(default)]
    patterns: Vec<RawPattern>,
}

/// One `redact.patterns` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPattern {
    /// Shown in `[name]` where it masks.
    name: Spanned<String>,
    /// What to mask.
    regex: Spanned<String>,
    /// What to put instead (`$1`, `${name}` are the regex's groups; default `[name]`).
    #[serde(default)]
    replace: Option<Spanned<String>>,
}

/// Checks `redact:`; without it, every built-in is on.
pub(super) fn check_redact(c: &mut Checker, raw: Option<&RawRedact>) -> Pii {
    let Some(raw) = raw else {
        return Pii::default();
    };
    let mut builtins = Builtins::default();
    for (name, on) in &raw.builtins {
        match builtins.switch(name) {
            Some(switch) => *switch = on.value,
            None => c.problem(
                on,
                format!("redact, field 'builtins.{name}'"),
                format!("is not a built-in; write {}", Builtins::NAMES.join(", ")),
            ),
        }
    }
    let mut patterns: Vec<UserPattern> = Vec::new();
    for (i, p) in raw.patterns.iter().enumerate() {
        let name = p.name.value.trim();
        let ctx = |field: &str| format!("redact, pattern {} ({name}), field '{field}'", i + 1);
        if name.is_empty() {
            c.problem(&p.name, ctx("name"), "must not be empty");
            continue;
        }
        if patterns.iter().any(|q| q.name == name) {
            c.problem(
                &p.name,
                ctx("name"),
                "is already the name of another pattern",
            );
            continue;
        }
        let regex = match regex::RegexBuilder::new(&p.regex.value)
            .size_limit(1 << 20)
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                c.problem(&p.regex, ctx("regex"), crate::rules::explain(&e));
                continue;
            }
        };
        if regex.is_match("") {
            c.problem(
                &p.regex,
                ctx("regex"),
                "matches the empty string, so it would mask between every character",
            );
            continue;
        }
        patterns.push(UserPattern {
            name: name.to_owned(),
            regex,
            replace: p
                .replace
                .as_ref()
                .map_or_else(|| format!("[{name}]"), |r| r.value.clone()),
        });
    }
    Pii::new(builtins, patterns)
}
