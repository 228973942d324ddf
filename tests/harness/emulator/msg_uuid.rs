//! `msgUuid` idempotency: a message accepted once is never posted twice, even when its
//! answer was lost and the client retried.

use serde_json::json;

use crate::support::emulator::{Emulator, Fault, RobotSpec};

use super::{post, text, try_post};

#[test]
fn duplicate_msg_uuid_is_not_posted_twice() {
    let emu = Emulator::start(vec![RobotSpec::new("tok"), RobotSpec::new("other")]);
    let with_uuid = |content: &str, uuid: &str| {
        let mut body = text(content);
        body["msgUuid"] = json!(uuid);
        body
    };
    for (token, body) in [
        ("tok", with_uuid("first", "u-1")),
        ("tok", with_uuid("retry", "u-1")),
        ("tok", with_uuid("second", "u-2")),
        ("other", with_uuid("elsewhere", "u-1")),
    ] {
        assert_eq!(post(&emu.webhook(token), &body).errcode(), Some(0));
    }
    let posts = emu.posts();
    let seen: Vec<(String, String, Option<String>)> = posts
        .iter()
        .map(|p| (p.token.clone(), p.text(), p.msg_uuid()))
        .collect();
    assert_eq!(
        seen,
        [
            ("tok".into(), "first".into(), Some("u-1".into())),
            ("tok".into(), "second".into(), Some("u-2".into())),
            ("other".into(), "elsewhere".into(), Some("u-1".into())),
        ]
    );
    let duplicates: Vec<bool> = emu.requests().iter().map(|r| r.duplicate).collect();
    assert_eq!(duplicates, [false, true, false, false]);
}

#[test]
fn retry_after_a_lost_answer_with_the_same_msg_uuid_posts_once() {
    let emu = Emulator::start(vec![RobotSpec::new("tok")]);
    let mut body = text("x");
    body["msgUuid"] = json!("retry-me");
    emu.push_fault("tok", Fault::LoseAnswer);
    assert!(try_post(&emu.webhook("tok"), "application/json", &body.to_string()).is_err());
    assert_eq!(post(&emu.webhook("tok"), &body).errcode(), Some(0));
    assert_eq!(emu.posts().len(), 1);
    let records = emu.requests();
    assert_eq!((records[0].status, records[0].errcode), (0, Some(0)));
    assert!(records[1].duplicate);
}
