//! Signing: the documented vector, a signed request accepted and recorded, every way a
//! signature or timestamp goes wrong, and a skewed DingTalk clock.

use crate::support::emulator::{Emulator, RobotSpec, expected_sign};

use super::{
    HOUR_MS, SECRET, encode, now_ms, post, sign_base64, signed, text, timestamp_with_plus_in_sign,
};

#[test]
fn signing_matches_the_documented_vector() {
    let b64 = "OuzzJR5+xZ4/EYwqtNt6sMYZQMTa/HEGvc9miJe7XzY=";
    assert_eq!(sign_base64(1_700_000_000_000, "secret"), b64);
    assert_eq!(expected_sign("1700000000000", "secret"), b64);
    assert_eq!(
        encode(b64),
        "OuzzJR5%2BxZ4%2FEYwqtNt6sMYZQMTa%2FHEGvc9miJe7XzY%3D"
    );
}

#[test]
fn signed_request_is_accepted_and_recorded() {
    let emu = Emulator::start(vec![RobotSpec::new("tok").secret(SECRET)]);
    let url = signed(&emu.webhook("tok"), now_ms(), SECRET);
    let reply = post(&url, &text("disk full"));
    assert_eq!((reply.status, reply.errcode()), (200, Some(0)), "{reply:?}");

    let posts = emu.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].token, "tok");
    assert_eq!(posts[0].text(), "disk full");
    assert_eq!(posts[0].msg_uuid(), None);

    let requests = emu.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/robot/send")
    );
    assert_eq!(r.token.as_deref(), Some("tok"));
    assert_eq!(
        r.query.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["access_token", "timestamp", "sign"]
    );
    assert_eq!(r.body.as_ref(), Some(&text("disk full")));
    assert_eq!(r.body_len, text("disk full").to_string().len());
    assert_eq!((r.status, r.errcode), (200, Some(0)));
    assert!(!r.duplicate && r.fault.is_none());
}

#[test]
fn signature_failures() {
    let emu = Emulator::start(vec![RobotSpec::new("tok").secret(SECRET)]);
    let base = emu.webhook("tok");
    let now = now_ms();
    let plus_ts = timestamp_with_plus_in_sign(SECRET);
    let plus_sign = sign_base64(plus_ts, SECRET);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "'+' left unencoded",
            format!("{base}&timestamp={plus_ts}&sign={plus_sign}"),
            "sign not match",
        ),
        (
            "encoded twice",
            format!(
                "{base}&timestamp={plus_ts}&sign={}",
                encode(&encode(&plus_sign))
            ),
            "sign not match",
        ),
        (
            "wrong secret",
            signed(&base, now, "SECother"),
            "sign not match",
        ),
        (
            "no sign",
            format!("{base}&timestamp={now}"),
            "sign not match",
        ),
        (
            "no timestamp",
            format!("{base}&sign={}", encode(&sign_base64(now, SECRET))),
            "invalid timestamp",
        ),
        ("unsigned", base.clone(), "invalid timestamp"),
        (
            "timestamp in seconds",
            signed(&base, now / 1000, SECRET),
            "invalid timestamp",
        ),
        (
            "one hour and a minute old",
            signed(&base, now - HOUR_MS - 60_000, SECRET),
            "invalid timestamp",
        ),
        (
            "one hour and a minute ahead",
            signed(&base, now + HOUR_MS + 60_000, SECRET),
            "invalid timestamp",
        ),
        (
            "appended twice to a stored URL",
            signed(&signed(&base, now - 1000, SECRET), now, SECRET),
            "invalid timestamp",
        ),
        (
            "sign appended twice",
            format!(
                "{}&sign={}",
                signed(&base, now, SECRET),
                encode(&sign_base64(now, SECRET))
            ),
            "sign not match",
        ),
    ];
    for (name, url, errmsg) in &cases {
        let reply = post(url, &text("x"));
        assert_eq!(reply.errcode(), Some(310000), "{name}: {reply:?}");
        assert_eq!(reply.errmsg(), *errmsg, "{name}");
    }
    assert!(emu.posts().is_empty());

    // Just inside the hour on either side is fine.
    for ts in [now - HOUR_MS + 60_000, now + HOUR_MS - 60_000, plus_ts] {
        let reply = post(&signed(&base, ts, SECRET), &text("x"));
        assert_eq!(reply.errcode(), Some(0), "timestamp {ts}: {reply:?}");
    }
    // A robot without a secret ignores timestamp and sign.
    let plain = Emulator::start(vec![RobotSpec::new("plain")]);
    let reply = post(
        &format!("{}&timestamp=1&sign=junk", plain.webhook("plain")),
        &text("x"),
    );
    assert_eq!(reply.errcode(), Some(0));
}

#[test]
fn clock_offset_simulates_skew() {
    let emu = Emulator::start(vec![RobotSpec::new("tok").secret(SECRET)]);
    for (offset_ms, errcode) in [
        (2 * HOUR_MS, 310000),
        (-2 * HOUR_MS, 310000),
        (30 * 60_000, 0),
        (-30 * 60_000, 0),
        (0, 0),
    ] {
        emu.set_clock_offset_ms(offset_ms);
        let reply = post(&signed(&emu.webhook("tok"), now_ms(), SECRET), &text("x"));
        assert_eq!(
            reply.errcode(),
            Some(errcode),
            "offset {offset_ms}: {reply:?}"
        );
    }
}
