//! The DingTalk robot emulator (tests/support/emulator/) driven by a plain HTTP client,
//! written independently of it, so that the integration tests can trust it. This file is
//! the client side; each submodule tests one part of what DingTalk does.

mod checks;
mod faults;
mod lifecycle;
mod msg_uuid;
mod rate;
mod signing;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "SEC0123456789abcdef";
const HOUR_MS: i64 = 3_600_000;

/// What the client got back when the server answered at all.
#[derive(Debug)]
struct Reply {
    status: u16,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn errcode(&self) -> Option<i64> {
        self.json()["errcode"].as_i64()
    }

    fn errmsg(&self) -> String {
        self.json()["errmsg"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(timeout))
        .build()
        .new_agent()
}

fn try_post(url: &str, content_type: &str, body: &str) -> Result<Reply, ureq::Error> {
    let mut response = agent(Duration::from_secs(10))
        .post(url)
        .header("Content-Type", content_type)
        .send(body)?;
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string()?;
    Ok(Reply { status, body })
}

fn post(url: &str, body: &Value) -> Reply {
    try_post(url, "application/json", &body.to_string()).expect("the emulator answers")
}

fn text(content: &str) -> Value {
    json!({ "msgtype": "text", "text": { "content": content } })
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The client side of signing, written independently of the emulator.
fn sign_base64(timestamp: i64, secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn encode(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

fn signed(url: &str, timestamp: i64, secret: &str) -> String {
    let sign = encode(&sign_base64(timestamp, secret));
    format!("{url}&timestamp={timestamp}&sign={sign}")
}

/// A recent timestamp whose signature contains a `+` (about half of them do).
fn timestamp_with_plus_in_sign(secret: &str) -> i64 {
    let now = now_ms();
    (0..1000)
        .map(|i| now - i)
        .find(|&ts| sign_base64(ts, secret).contains('+'))
        .expect("a signature with '+'")
}
