//! Log text made harmless before it goes into a message. Pure functions.
//!
//! A message is read by people and by scripts, and both trust its shape: every line that
//! starts with `【` is a header `【rule】×N host` whose counts add up, `@` mentions fire, markdown
//! makes markup. Log lines, capture values, group keys, source names and the host name are
//! written by anyone, so every character of them that could change how the message reads is
//! neutralised, in one place, the same way everywhere:
//! - ANSI escape sequences (colours from `kubectl logs`) are removed;
//! - C0 and C1 control characters (CR, ESC, NUL, NEL…, but not tab), bidirectional controls
//!   (U+202A–U+202E, U+2066–U+2069, LRM/RLM/ALM), line and paragraph separators, zero-width
//!   characters (U+200B–U+200D, U+2060–U+2064, U+FEFF) and tag characters become `�`, so
//!   nothing starts a line, reorders text or hides next to a bracket unseen;
//! - `【` and `】` become `〖` and `〗`, so no log text can look like a header: only real headers
//!   contain `【`;
//! - `@` becomes `＠`, so log text cannot mention anyone;
//! - in markdown, the characters that make markup become their full-width twins (we do not know
//!   which escapes DingTalk's renderer honours, so backslash escapes are not relied on).
//!
//! Edges: tab stays (it cannot start a line); invalid UTF-8 has already become `�` when the
//! bytes were decoded; a cut (for values that go into headers) never splits a character.

use std::borrow::Cow;

/// Longest capture value, group key or host name put into a message, in characters: they go
/// into headers and templates, whose size is not otherwise bounded.
pub const MAX_VALUE_CHARS: usize = 200;

/// Whether `c` could change how a message reads without being seen as itself.
pub fn is_hazard(c: char) -> bool {
    (c.is_control() && c != '\t')
        || matches!(c,
            '\u{061c}'                  // Arabic letter mark
            | '\u{180e}'                // Mongolian vowel separator
            | '\u{200b}'..='\u{200f}'   // zero-width space, non-joiner, joiner; LRM, RLM
            | '\u{2028}' | '\u{2029}'   // line and paragraph separators
            | '\u{202a}'..='\u{202e}'   // bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}'   // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}'   // bidi isolates
            | '\u{feff}'                // zero-width no-break space (BOM)
            | '\u{fff9}'..='\u{fffb}'   // interlinear annotations
            | '\u{e0000}'..='\u{e007f}' // tag characters
        )
}

/// Strips ANSI CSI sequences (`ESC [ … final`) and replaces every other [`is_hazard`]
/// character with `�`.
pub fn clean(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| is_hazard(c) || c == '【' || c == '】') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            // CSI: parameters and intermediates, then one final byte in @..~
            for f in chars.by_ref() {
                if ('@'..='~').contains(&f) {
                    break;
                }
            }
        } else if is_hazard(c) {
            out.push('\u{fffd}');
        } else {
            out.push(match c {
                '【' => '〖',
                '】' => '〗',
                c => c,
            });
        }
    }
    Cow::Owned(out)
}

/// `text` made harmless for a message (see the module docs); `markdown` also neutralises
/// markup.
pub fn neutralise(text: &str, markdown: bool) -> String {
    clean(text)
        .chars()
        .map(|c| match (markdown, c) {
            (_, '@') => '＠',
            (true, '*') => '＊',
            (true, '_') => '＿',
            (true, '[') => '［',
            (true, ']') => '］',
            (true, '(') => '（',
            (true, ')') => '）',
            (true, '#') => '＃',
            (true, '<') => '＜',
            (true, '>') => '＞',
            (true, '|') => '｜',
            (true, '!') => '！',
            (true, '~') => '～',
            (true, '`') => '｀',
            (true, '\\') => '＼',
            (true, '-') => '－',
            (true, '+') => '＋',
            (true, '=') => '＝',
            _ => c,
        })
        .collect()
}

/// [`neutralise`], cut to at most `max_chars` characters (marked `…`).
pub fn neutralise_short(text: &str, markdown: bool, max_chars: usize) -> String {
    let mut out = neutralise(text, markdown);
    if let Some((i, _)) = out.char_indices().nth(max_chars) {
        out.truncate(i);
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_colours_are_stripped_and_controls_replaced() {
        assert_eq!(
            clean("\u{1b}[31mERROR\u{1b}[0m x\u{7}y\tz"),
            "ERROR x\u{fffd}y\tz"
        );
        assert!(matches!(clean("plain 数据"), Cow::Borrowed(_)));
    }

    #[test]
    fn nothing_can_start_a_line_reorder_text_or_forge_a_header() {
        let evil =
            "a\r【forged】×1000000 h\n\u{85}b\u{202e}c\u{2066}d\u{200d}【\u{200b}x\u{2028}y\0";
        let out = neutralise(evil, false);
        assert!(!out.contains(['\r', '\n', '\u{85}', '\u{202e}', '\u{2066}', '\u{200d}']));
        assert!(!out.contains(['【', '】', '\u{200b}', '\u{2028}', '\0']));
        assert_eq!(
            out,
            "a\u{fffd}〖forged〗×1000000 h\u{fffd}\u{fffd}b\u{fffd}c\u{fffd}d\u{fffd}〖\u{fffd}x\u{fffd}y\u{fffd}"
        );
    }

    #[test]
    fn mentions_and_markup_are_neutralised() {
        assert_eq!(neutralise("@all *b*", false), "＠all *b*");
        assert_eq!(
            neutralise("@all *b* [x](y)", true),
            "＠all ＊b＊ ［x］（y）"
        );
    }

    #[test]
    fn short_values_are_cut_on_a_character() {
        assert_eq!(neutralise_short("数据库连接", false, 3), "数据库…");
        assert_eq!(neutralise_short("abc", false, 3), "abc");
    }
}
