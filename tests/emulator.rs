//! Tests of the DingTalk robot emulator itself (tests/support/emulator.rs),
//! driven by a plain HTTP client, so that later integration tests can trust it.

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};
use sha2::Sha256;
use support::emulator::{Emulator, Fault, MAX_BODY_BYTES, RobotSpec, expected_sign};

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

#[test]
fn rate_limit_blocks_for_the_block_duration() {
    // Long enough that the real time a loaded machine takes between two requests does not
    // matter: the test moves the emulator's clock itself.
    let per = Duration::from_secs(60);
    let block = Duration::from_secs(600);
    let emu = Emulator::start(vec![RobotSpec::new("tok").rate(3, per).block(block)]);
    let url = emu.webhook("tok");

    // Requests that fail another check are not sends and do not count.
    for _ in 0..5 {
        let reply = try_post(&url, "text/plain", &text("x").to_string()).unwrap();
        assert_eq!(reply.errcode(), Some(43004));
    }
    for i in 0..3 {
        assert_eq!(
            post(&url, &text(&format!("m{i}"))).errcode(),
            Some(0),
            "send {i}"
        );
    }
    let fourth = post(&url, &text("m3"));
    assert_eq!(fourth.errcode(), Some(130101));
    assert!(fourth.errmsg().contains("send too fast"), "{fourth:?}");

    // The window has passed but the block has not: everything is refused.
    emu.advance(per + Duration::from_secs(1));
    assert_eq!(post(&url, &text("m4")).errcode(), Some(130101));
    let bad = try_post(&url, "text/plain", "x").unwrap();
    assert_eq!(
        bad.errcode(),
        Some(130101),
        "blocked before any other check"
    );

    emu.advance(block);
    for i in 5..8 {
        assert_eq!(
            post(&url, &text(&format!("m{i}"))).errcode(),
            Some(0),
            "send {i}"
        );
    }
    let texts: Vec<String> = emu.posts().iter().map(|p| p.text()).collect();
    assert_eq!(texts, ["m0", "m1", "m2", "m5", "m6", "m7"]);
}

#[test]
fn rate_window_is_sliding_not_fixed() {
    // A minute's window on a clock the test moves: real time between requests only adds a
    // little to each step.
    let emu = Emulator::start(vec![
        RobotSpec::new("tok")
            .rate(2, Duration::from_secs(60))
            .block(Duration::ZERO),
    ]);
    let url = emu.webhook("tok");
    assert_eq!(post(&url, &text("a")).errcode(), Some(0));
    emu.advance(Duration::from_secs(40));
    assert_eq!(post(&url, &text("b")).errcode(), Some(0));
    assert_eq!(post(&url, &text("c")).errcode(), Some(130101));
    emu.advance(Duration::from_secs(40));
    // "a" (at 0 s) has left the window, "b" (at 40 s) has not until 100 s.
    assert_eq!(post(&url, &text("d")).errcode(), Some(0));
    assert_eq!(post(&url, &text("e")).errcode(), Some(130101));
    assert_eq!(emu.posts().len(), 3);
    assert_eq!(emu.requests().len(), 5);
}

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

/// What a client sees for one fault.
#[derive(Debug, PartialEq)]
enum Seen {
    Answer { status: u16, errcode: Option<i64> },
    ConnectionError,
}

fn seen(result: Result<Reply, ureq::Error>) -> Seen {
    match result {
        Ok(reply) => Seen::Answer {
            status: reply.status,
            errcode: reply.errcode(),
        },
        Err(_) => Seen::ConnectionError,
    }
}

#[test]
fn each_fault_behaves_as_described() {
    let answer = |status, errcode| Seen::Answer { status, errcode };
    let cases = [
        (Fault::Http500, answer(500, None), false),
        (
            Fault::Errcode(-1, "system busy".into()),
            answer(200, Some(-1)),
            false,
        ),
        (
            Fault::Errcode(400102, "robot disabled".into()),
            answer(200, Some(400102)),
            false,
        ),
        (Fault::Drop, Seen::ConnectionError, false),
        (Fault::Html, answer(200, None), false),
        (Fault::Firewall, answer(200, None), false),
        (
            Fault::Delay(Duration::from_millis(300)),
            answer(200, Some(0)),
            true,
        ),
        (Fault::LoseAnswer, Seen::ConnectionError, true),
    ];
    let emu = Emulator::start(vec![RobotSpec::new("tok"), RobotSpec::new("other")]);
    let url = emu.webhook("tok");
    let body = text("x").to_string();
    for (fault, expected, posted) in cases {
        emu.push_fault("tok", fault.clone());
        // Faults belong to one robot.
        assert_eq!(post(&emu.webhook("other"), &text("o")).errcode(), Some(0));

        let before = emu.posts().len();
        let started = Instant::now();
        let result = try_post(&url, "application/json", &body);
        let elapsed = started.elapsed();
        if let Ok(reply) = &result {
            match &fault {
                Fault::Html => assert!(reply.body.starts_with("<html>"), "{reply:?}"),
                Fault::Firewall => assert_eq!(reply.json()["status"], 1111),
                Fault::Errcode(_, msg) => assert_eq!(&reply.errmsg(), msg),
                _ => {}
            }
        }
        assert_eq!(seen(result), expected, "{fault:?}");
        assert_eq!(
            emu.posts().len() - before,
            posted as usize,
            "{fault:?} posted"
        );
        if let Fault::Delay(d) = fault {
            assert!(elapsed >= d, "{elapsed:?}");
        }
        assert_eq!(emu.requests().last().unwrap().fault, Some(fault.clone()));

        // One fault per request: the next request is normal again.
        let next = try_post(&url, "application/json", &body).unwrap();
        assert_eq!(next.errcode(), Some(0), "after {fault:?}");
    }
}

#[test]
fn faults_are_consumed_in_order() {
    let emu = Emulator::start(vec![RobotSpec::new("tok")]);
    emu.push_fault("tok", Fault::Errcode(-1, "system busy".into()));
    emu.push_fault("tok", Fault::Http500);
    emu.push_fault("tok", Fault::Errcode(130101, "send too fast".into()));
    let url = emu.webhook("tok");
    let got: Vec<Seen> = (0..4)
        .map(|_| seen(try_post(&url, "application/json", &text("x").to_string())))
        .collect();
    let answer = |status, errcode| Seen::Answer { status, errcode };
    assert_eq!(
        got,
        [
            answer(200, Some(-1)),
            answer(500, None),
            answer(200, Some(130101)),
            answer(200, Some(0))
        ]
    );
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

#[test]
fn a_delay_past_the_client_timeout_still_posts() {
    let emu = Emulator::start(vec![RobotSpec::new("tok")]);
    emu.push_fault("tok", Fault::Delay(Duration::from_secs(2)));
    let result = agent(Duration::from_millis(200))
        .post(&emu.webhook("tok"))
        .header("Content-Type", "application/json")
        .send(text("slow").to_string());
    assert!(result.is_err(), "the client times out");
    assert_eq!(emu.posts().len(), 1);
}

#[test]
fn outage_answers_503_and_keeps_faults() {
    let emu = Emulator::start(vec![RobotSpec::new("tok")]);
    emu.push_fault("tok", Fault::Errcode(-1, "system busy".into()));
    emu.set_outage(true);
    for url in [emu.webhook("tok"), emu.webhook("nope")] {
        let reply = try_post(&url, "application/json", &text("x").to_string()).unwrap();
        assert_eq!((reply.status, reply.errcode()), (503, None));
    }
    emu.set_outage(false);
    assert_eq!(post(&emu.webhook("tok"), &text("x")).errcode(), Some(-1));
    assert_eq!(post(&emu.webhook("tok"), &text("x")).errcode(), Some(0));
    assert_eq!(emu.posts().len(), 1);
    assert_eq!(emu.requests().len(), 4);
}

#[test]
fn wait_for_posts_polls_until_enough_or_timeout() {
    let emu = Emulator::start(vec![RobotSpec::new("tok")]);
    let url = emu.webhook("tok");
    let sender = std::thread::spawn(move || {
        for i in 0..2 {
            post(&url, &text(&format!("m{i}")));
        }
    });
    let posts = emu.wait_for_posts(2, Duration::from_secs(10));
    assert_eq!(posts.len(), 2);
    sender.join().unwrap();

    let started = Instant::now();
    let posts = emu.wait_for_posts(3, Duration::from_millis(200));
    assert_eq!(posts.len(), 2);
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(emu.wait_for_requests(2, Duration::from_secs(1)).len(), 2);
}

#[test]
fn dropping_the_emulator_stops_the_server() {
    let emu = Emulator::start(vec![RobotSpec::new("tok")]);
    let url = emu.webhook("tok");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    // A held answer must not keep the server alive.
    // (held for a day: were the drop to wait for it, the test would never end)
    emu.push_fault("tok", Fault::Delay(Duration::from_secs(86_400)));
    let held = {
        let url = url.clone();
        std::thread::spawn(move || try_post(&url, "application/json", &text("x").to_string()))
    };
    emu.wait_for_requests(1, support::env::WAIT_LIMIT);
    drop(emu);
    assert!(held.join().unwrap().is_err());
    assert!(try_post(&url, "application/json", &text("x").to_string()).is_err());
}

#[test]
fn drop_and_lose_answer_send_no_bytes_at_all() {
    use std::io::{Read, Write};
    let emu = Emulator::start(vec![RobotSpec::new("tok")]);
    let body = text("x").to_string();
    let request = format!(
        "POST /robot/send?access_token=tok HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    for fault in [Fault::Drop, Fault::LoseAnswer] {
        emu.push_fault("tok", fault.clone());
        let mut stream =
            std::net::TcpStream::connect(emu.base_url().trim_start_matches("http://")).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = Vec::new();
        // A clean close reads 0 bytes; a reset is an error. Either way: no answer.
        let _ = stream.read_to_end(&mut answer);
        assert!(
            answer.is_empty(),
            "{fault:?}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
}
