//! The checks before a send: token, method, path and Content-Type, the body's size and
//! shape, and keywords.

use std::time::Duration;

use serde_json::json;

use crate::support::emulator::{Emulator, MAX_BODY_BYTES, RobotSpec};

use super::{agent, post, text, try_post};

#[test]
fn token_method_path_and_content_type() {
    let emu = Emulator::start(vec![RobotSpec::new("tok")]);
    let base = emu.base_url();
    let body = text("x").to_string();
    let cases: Vec<(&str, String, &str, u16, Option<i64>)> = vec![
        (
            "unknown token",
            emu.webhook("nope"),
            "application/json",
            200,
            Some(300001),
        ),
        (
            "no token",
            format!("{base}/robot/send"),
            "application/json",
            200,
            Some(300001),
        ),
        (
            "empty token",
            format!("{base}/robot/send?access_token="),
            "application/json",
            200,
            Some(300001),
        ),
        (
            "text/plain",
            emu.webhook("tok"),
            "text/plain",
            200,
            Some(43004),
        ),
        (
            "form",
            emu.webhook("tok"),
            "application/x-www-form-urlencoded",
            200,
            Some(43004),
        ),
        (
            "charset",
            emu.webhook("tok"),
            "application/json; charset=utf-8",
            200,
            Some(0),
        ),
        (
            "other path",
            format!("{base}/robot/other?access_token=tok"),
            "application/json",
            404,
            None,
        ),
    ];
    for (name, url, content_type, status, errcode) in cases {
        let reply = try_post(&url, content_type, &body).unwrap();
        assert_eq!(
            (reply.status, reply.errcode()),
            (status, errcode),
            "{name}: {reply:?}"
        );
    }
    let mut get = agent(Duration::from_secs(5))
        .get(&emu.webhook("tok"))
        .call()
        .unwrap();
    assert_eq!(get.status().as_u16(), 405);
    assert!(get.body_mut().read_to_string().is_ok());
    assert_eq!(emu.posts().len(), 1);
    assert_eq!(emu.requests().len(), 8);
    assert_eq!(emu.requests()[0].token.as_deref(), Some("nope"));
}

/// A text message whose JSON is exactly `len` bytes long.
fn text_of_len(len: usize) -> String {
    let overhead = text("").to_string().len();
    let body = text(&"a".repeat(len - overhead)).to_string();
    assert_eq!(body.len(), len);
    body
}

#[test]
fn body_checks() {
    let emu = Emulator::start(vec![RobotSpec::new("tok")]);
    let url = emu.webhook("tok");
    let cases: Vec<(&str, String, i64)> = vec![
        ("exactly the limit", text_of_len(MAX_BODY_BYTES), 0),
        ("one byte over", text_of_len(MAX_BODY_BYTES + 1), 460101),
        ("bytes not chars", text(&"é".repeat(10_000)).to_string(), 460101),
        ("huge", text_of_len(200_000), 460101),
        ("not JSON", "hello".into(), 40035),
        ("empty", String::new(), 40035),
        ("array", "[]".into(), 40035),
        ("no msgtype", json!({"text": {"content": "x"}}).to_string(), 40035),
        ("msgtype not a string", json!({"msgtype": 1}).to_string(), 40035),
        ("unknown msgtype", json!({"msgtype": "image"}).to_string(), 400105),
        ("text without text", json!({"msgtype": "text"}).to_string(), 40035),
        ("content not a string", json!({"msgtype": "text", "text": {"content": 5}}).to_string(), 40035),
        (
            "markdown without title",
            json!({"msgtype": "markdown", "markdown": {"text": "x"}}).to_string(),
            40035,
        ),
        (
            "markdown without text",
            json!({"msgtype": "markdown", "markdown": {"title": "x"}}).to_string(),
            40035,
        ),
        (
            "markdown",
            json!({"msgtype": "markdown", "markdown": {"title": "t", "text": "**x**"}}).to_string(),
            0,
        ),
        (
            "link",
            json!({"msgtype": "link", "link": {"title": "t", "text": "x", "messageUrl": "http://e"}}).to_string(),
            0,
        ),
    ];
    for (name, body, errcode) in &cases {
        let reply = try_post(&url, "application/json", body).unwrap();
        assert_eq!(reply.errcode(), Some(*errcode), "{name}: {reply:?}");
    }
    assert_eq!(emu.posts().len(), 3);
    assert_eq!(emu.posts()[1].text(), "**x**");
    let huge = &emu.requests()[3];
    assert_eq!((huge.body_len, huge.errcode), (200_000, Some(460101)));
    assert_eq!(huge.errmsg.as_deref(), Some("message too long"));
}

#[test]
fn keywords() {
    let emu = Emulator::start(vec![RobotSpec::new("tok").keyword("alert").keyword("告警")]);
    let url = emu.webhook("tok");
    let markdown = |title: &str, text: &str| json!({"msgtype": "markdown", "markdown": {"title": title, "text": text}});
    let cases = [
        ("missing", text("disk full"), 310000),
        ("first keyword", text("alert: disk full"), 0),
        ("second keyword", text("磁盘告警"), 0),
        ("case matters", text("ALERT"), 310000),
        ("markdown title", markdown("alert", "disk full"), 0),
        ("markdown text", markdown("disk", "an alert"), 0),
        ("markdown neither", markdown("disk", "full"), 310000),
        ("not across title and text", markdown("al", "ert"), 310000),
    ];
    for (name, body, errcode) in &cases {
        let reply = post(&url, body);
        assert_eq!(reply.errcode(), Some(*errcode), "{name}: {reply:?}");
        if *errcode != 0 {
            assert_eq!(reply.errmsg(), "keywords not in content");
        }
    }
    assert_eq!(emu.posts().len(), 4);
}
