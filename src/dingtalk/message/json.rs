//! The request body as DingTalk takes it, and the exact size of text once JSON-escaped: the
//! 20,000-byte limit counts escaped bytes, so every size in the renderer is measured here.

use serde::Serialize;

use super::layout::Flavor;
use crate::style::Mention;

#[derive(Serialize)]
struct Body<'a> {
    msgtype: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<TextContent<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    markdown: Option<MarkdownContent<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    at: Option<At<'a>>,
    #[serde(rename = "msgUuid")]
    msg_uuid: &'a str,
}

#[derive(Serialize)]
struct TextContent<'a> {
    content: &'a str,
}

#[derive(Serialize)]
struct MarkdownContent<'a> {
    title: &'a str,
    text: &'a str,
}

#[derive(Serialize)]
struct At<'a> {
    #[serde(rename = "atMobiles", skip_serializing_if = "<[String]>::is_empty")]
    mobiles: &'a [String],
    #[serde(rename = "atUserIds", skip_serializing_if = "<[String]>::is_empty")]
    user_ids: &'a [String],
    #[serde(rename = "isAtAll")]
    all: bool,
}

/// The full request body.
pub(super) fn body_json(
    flavor: Flavor,
    msg_uuid: &str,
    title: &str,
    content: &str,
    at: &Mention,
) -> String {
    let at = (!at.is_empty()).then_some(At {
        mobiles: &at.mobiles,
        user_ids: &at.user_ids,
        all: at.all,
    });
    let body = match flavor {
        Flavor::Text => Body {
            msgtype: "text",
            text: Some(TextContent { content }),
            markdown: None,
            at,
            msg_uuid,
        },
        Flavor::Markdown => Body {
            msgtype: "markdown",
            text: None,
            markdown: Some(MarkdownContent {
                title,
                text: content,
            }),
            at,
            msg_uuid,
        },
    };
    serde_json::to_string(&body).expect("a struct of strings serializes")
}

/// `\n@138… @user` for the people mentioned (DingTalk only fires mentions written in the text);
/// empty when nobody is. `isAtAll` needs no text.
pub(super) fn mention_line(m: &Mention) -> String {
    if m.people() == 0 {
        return String::new();
    }
    let names: Vec<String> = m
        .mobiles
        .iter()
        .chain(&m.user_ids)
        .map(|p| format!("@{p}"))
        .collect();
    format!("\n{}", names.join(" "))
}

/// Bytes `c` takes in a JSON string as serde_json writes it.
pub(super) fn escaped_char_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{08}' | '\u{0c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// Bytes `s` takes in a JSON string (without the quotes).
pub(super) fn escaped_len(s: &str) -> usize {
    s.chars().map(escaped_char_len).sum()
}
