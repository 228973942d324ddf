//! The one redaction step for everything dingtail prints for a person: stderr, logs, errors,
//! `--dry-run` output, the summary and `dingtail send`'s answer.
//!
//! Two kinds of text need it:
//! - text dingtail itself builds around a robot (HTTP client errors, which may hold the signed
//!   URL): [`Redactor::redact`] hides every secret it knows of;
//! - text a server sent back (DingTalk's `errmsg`, a proxy's or captive portal's page, a
//!   firewall's JSON): servers in between echo the request URL, and DingTalk's own `errmsg`
//!   does for some errors. [`Redactor::quote`] redacts it, then makes it one line of at most
//!   [`MAX_QUOTED_CHARS`] characters in double quotes, with every control, bidirectional and
//!   invisible character escaped (`\n`, `\u{202e}`), so it can neither hide a secret by
//!   reordering it nor fake log lines.
//!
//! What is hidden: each literal value the redactor was given (the webhook URL, its access
//! token, raw and percent-decoded, the signing secret, a proxy URL and its user and password,
//! and per request the `timestamp` and `sign` values, percent-encoded and decoded), and, by
//! pattern, the value of any `access_token=`, `sign=` or `timestamp=` query parameter and the
//! user:password part of any URL, whether or not the redactor knew the value. A hidden value
//! becomes `***`.
//!
//! Edges: literal values are replaced longest first, so a token inside the webhook URL does not
//! leave the rest of the URL behind; an empty value is ignored (it would match everywhere).
//! Quoting cuts after redacting, so a cut can never leave half a secret that no longer matches.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

/// Longest server text quoted, in characters (before escaping).
pub const MAX_QUOTED_CHARS: usize = 200;

/// What replaces a hidden value.
pub const MASK: &str = "***";

/// Hides known secrets and secret-shaped text; see the module docs.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Literal values to hide, longest first.
    values: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} values)", self.values.len())
    }
}

/// `access_token=…`, `sign=…`, `timestamp=…` (also percent-encoded `=`), any case.
static QUERY_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)\b(access_token|sign|timestamp)(=|%3d)[^&\s"'<>;,\\]+"#).expect("valid regex")
});

/// `scheme://user:password@` (and `scheme://user@`) in any URL.
static USERINFO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@"'<>]+@"#).expect("valid regex")
});

impl Redactor {
    /// A redactor that knows no literal value yet (patterns still apply).
    pub fn new() -> Redactor {
        Redactor::default()
    }

    /// Adds a literal value to hide. URLs also hide their query values and user info, and
    /// values are also hidden in their percent-encoded and percent-decoded forms.
    pub fn hide(mut self, value: &str) -> Redactor {
        let value = value.trim();
        if value.is_empty() {
            return self;
        }
        let mut add = |v: &str| {
            if !v.is_empty() && !self.values.iter().any(|x| x == v) {
                self.values.push(v.to_owned());
            }
        };
        add(value);
        let decoded: String = url::form_urlencoded::parse(format!("x={value}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        add(&decoded);
        let encoded: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
        add(&encoded);
        add(&lower_percent(&encoded));
        if let Ok(url) = url::Url::parse(value)
            && url.has_host()
        {
            for (_, v) in url.query_pairs() {
                if v.len() >= 4 {
                    add(&v);
                    let enc: String = url::form_urlencoded::byte_serialize(v.as_bytes()).collect();
                    add(&enc);
                }
            }
            if !url.username().is_empty() {
                add(url.username());
            }
            if let Some(p) = url.password() {
                add(p);
                let decoded: String = url::form_urlencoded::parse(format!("x={p}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                add(&decoded);
            }
        }
        self.values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        self
    }

    /// `text` with every known value and every secret-shaped part replaced by [`MASK`].
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), MASK);
            }
        }
        redact_patterns(&out).into_owned()
    }

    /// Server text made safe to print: redacted, then [`one_line`], in double quotes.
    pub fn quote(&self, server_text: &str) -> String {
        format!(
            "\"{}\"",
            escape(&self.redact(server_text), MAX_QUOTED_CHARS, true)
        )
    }
}

/// Hides secret-shaped parts of `text` that no [`Redactor`] needs to know: query values of
/// `access_token`, `sign` and `timestamp`, and the user info of URLs.
pub fn redact_patterns(text: &str) -> Cow<'_, str> {
    let out = QUERY_VALUE.replace_all(text, |c: &regex::Captures| {
        format!("{}{}{MASK}", &c[1], &c[2])
    });
    match USERINFO.replace_all(&out, |c: &regex::Captures| format!("{}{MASK}@", &c[1])) {
        Cow::Borrowed(_) => out,
        Cow::Owned(s) => Cow::Owned(s),
    }
}

/// Whether `c` could change how text reads without being seen: C0 and C1 controls, DEL,
/// bidirectional controls, zero-width and other invisible format characters.
pub fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00ad}'                  // soft hyphen
            | '\u{034f}'                // combining grapheme joiner
            | '\u{061c}'                // Arabic letter mark
            | '\u{115f}' | '\u{1160}'   // Hangul fillers
            | '\u{17b4}' | '\u{17b5}'
            | '\u{180b}'..='\u{180f}'   // Mongolian variation selectors and vowel separator
            | '\u{200b}'..='\u{200f}'   // zero-width space/non-joiner/joiner, LRM, RLM
            | '\u{2028}' | '\u{2029}'   // line and paragraph separators
            | '\u{202a}'..='\u{202e}'   // bidi embeddings and overrides
            | '\u{2060}'..='\u{206f}'   // word joiner, invisible operators, bidi isolates
            | '\u{3164}'                // Hangul filler
            | '\u{fe00}'..='\u{fe0f}'   // variation selectors
            | '\u{feff}'                // BOM / zero-width no-break space
            | '\u{ffa0}'
            | '\u{fff9}'..='\u{fffb}'   // interlinear annotations
            | '\u{e0000}'..='\u{e007f}' // tags
        )
}

/// `text` on one line: `\n`, `\r`, `\t` as those escapes, every other [`is_invisible`]
/// character as `\u{…}`; cut after `max_chars` characters (marked `…`).
pub fn one_line(text: &str, max_chars: usize) -> String {
    escape(text, max_chars, false)
}

/// [`one_line`], and with `quotes` also `"` and `\` escaped (for text put in double quotes).
fn escape(text: &str, max_chars: usize, quotes: bool) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars * 2));
    for (i, c) in text.chars().enumerate() {
        if i == max_chars {
            out.push('…');
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '"' if quotes => out.push_str("\\\""),
            '\\' if quotes => out.push_str("\\\\"),
            c if is_invisible(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A writer that passes everything through [`redact_patterns`] before writing it on: the
/// last line of defence for logs, including libraries' own (reqwest logs request URLs at debug
/// level). The log formatter writes each event in one `write` call, so a pattern is never split.
#[derive(Debug)]
pub struct RedactingWriter<W>(pub W);

impl<W: std::io::Write> std::io::Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(redact_patterns(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Lower-case hex digits in `%XX` escapes (a server may re-encode that way).
fn lower_percent(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut left = 0;
    for c in text.chars() {
        if c == '%' {
            left = 2;
            out.push(c);
        } else if left > 0 {
            left -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://oapi.dingtalk.com/robot/send?access_token=tok123456";

    #[test]
    fn known_values_and_their_encodings_are_hidden() {
        let r = Redactor::new()
            .hide(URL)
            .hide("SECsecret+/=")
            .hide("http://user:p%40ss@proxy:3128");
        let text = format!(
            "at {URL}&timestamp=1700000000000&sign=Ouzz%2B%3D tok123456 SECsecret+/= \
             SECsecret%2B%2F%3D via http://user:p%40ss@proxy:3128 p@ss"
        );
        let out = r.redact(&text);
        for leak in [
            "tok123456",
            "SECsecret",
            "1700000000000",
            "Ouzz",
            "p%40ss",
            "p@ss",
            "user:",
        ] {
            assert!(!out.contains(leak), "{leak} in {out}");
        }
    }

    #[test]
    fn query_values_are_hidden_without_being_known() {
        let out = redact_patterns(
            "GET /robot/send?access_token=abc&timestamp=17&sign=x%2By== ACCESS_TOKEN%3Dzz \
             https://u:pw@h/ and <a href='http://h/?sign=q'>",
        );
        assert_eq!(
            out,
            "GET /robot/send?access_token=***&timestamp=***&sign=*** ACCESS_TOKEN%3D*** \
             https://***@h/ and <a href='http://h/?sign=***'>"
        );
    }

    #[test]
    fn server_text_is_quoted_on_one_line_escaped_and_short() {
        let r = Redactor::new();
        assert_eq!(
            r.quote("a\r\nb\t\"c\" \\ \u{1b}[31m\u{202e}x\u{200b}\u{85}"),
            r#""a\r\nb\t\"c\" \\ \u{1b}[31m\u{202e}x\u{200b}\u{85}""#
        );
        let long = "数".repeat(500);
        let q = r.quote(&long);
        assert_eq!(q.chars().count(), MAX_QUOTED_CHARS + 3);
        assert!(q.ends_with("…\""));
    }

    #[test]
    fn a_cut_never_leaves_part_of_a_secret() {
        let secret = "SEC".to_owned() + &"z".repeat(300);
        let r = Redactor::new().hide(&secret);
        let q = r.quote(&format!("echo {secret}"));
        assert_eq!(q, "\"echo ***\"");
    }

    #[test]
    fn debug_shows_no_value() {
        let r = Redactor::new().hide("SECabc");
        assert!(!format!("{r:?}").contains("SECabc"));
    }
}
