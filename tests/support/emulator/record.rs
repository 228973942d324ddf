//! What the emulator keeps for the test to inspect: the messages DingTalk accepted
//! ([`Post`]) and every request with the decision taken on it ([`RequestRecord`]).

use std::time::Instant;

use serde_json::Value;

use super::Fault;

/// A message DingTalk accepted and would have shown in the group.
#[derive(Clone, Debug)]
pub struct Post {
    pub token: String,
    pub body: Value,
    pub at: Instant,
}

impl Post {
    /// `text.content` for text messages, `markdown.text` for markdown, else "".
    pub fn text(&self) -> String {
        let s = match self.body["msgtype"].as_str() {
            Some("text") => self.body["text"]["content"].as_str(),
            Some("markdown") => self.body["markdown"]["text"].as_str(),
            _ => None,
        };
        s.unwrap_or_default().to_string()
    }

    pub fn msgtype(&self) -> Option<String> {
        self.body["msgtype"].as_str().map(str::to_string)
    }

    pub fn msg_uuid(&self) -> Option<String> {
        self.body["msgUuid"].as_str().map(str::to_string)
    }
}

/// Everything the emulator saw of one request and what it decided, so tests
/// can assert on retries, URLs and signatures, not only on accepted posts.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// The first `access_token` in the query, as sent (known or not).
    pub token: Option<String>,
    /// The raw query string, as it arrived.
    pub raw_query: String,
    /// The query parameters in order, form-decoded (`+` is a space).
    pub query: Vec<(String, String)>,
    pub content_type: Option<String>,
    /// The body parsed as JSON; `None` when it was not JSON.
    pub body: Option<Value>,
    pub body_len: usize,
    /// The HTTP status answered; 0 when the connection was closed unanswered.
    pub status: u16,
    /// The errcode decided; `None` when the answer carried none. With
    /// [`Fault::LoseAnswer`] it is the errcode that was never delivered.
    pub errcode: Option<i64>,
    pub errmsg: Option<String>,
    /// The fault consumed by this request.
    pub fault: Option<Fault>,
    /// The `msgUuid` had been accepted before, so nothing was posted.
    pub duplicate: bool,
}
