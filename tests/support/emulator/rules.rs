//! How DingTalk judges a request to `/robot/send`, in the order of the module docs of
//! [`super`]: outage, path and method, token, the robot's queued fault, then the checks
//! (block, Content-Type, signature, size, shape, keywords, quota, rate) and `msgUuid`.
//! Synchronous, on the state under its lock: the HTTP side only parses and answers.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::state::{Robot, State};
use super::{Fault, Post, RequestRecord};

/// Largest body DingTalk accepts, in bytes.
pub const MAX_BODY_BYTES: usize = 20_000;
/// How far a signed request's `timestamp` may be from DingTalk's clock.
pub const TIMESTAMP_WINDOW_MS: i64 = 3_600_000;
/// The message types DingTalk knows.
const MSGTYPES: [&str; 5] = ["text", "markdown", "link", "actionCard", "feedCard"];

/// The expected `sign` for a timestamp and secret, before URL encoding:
/// base64(HMAC-SHA256(key = secret, msg = timestamp + "\n" + secret)).
pub fn expected_sign(timestamp: &str, secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// What the server sends back.
pub(super) enum Answer {
    /// HTTP 200 `{"errcode":N,"errmsg":"..."}`.
    Errcode(i64, String),
    /// Any other answer, verbatim.
    Raw {
        status: StatusCode,
        content_type: &'static str,
        body: String,
    },
    /// A verbatim answer with extra headers.
    WithHeaders {
        status: StatusCode,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
}

/// What the async side must do after the decision.
pub(super) enum Action {
    Answer(Answer),
    AnswerAfter(Duration, Answer),
    CloseUnanswered,
}

/// A request as the rules see it, parsed by the HTTP side.
pub(super) struct Incoming {
    pub(super) method: Method,
    pub(super) path: String,
    pub(super) raw_query: String,
    pub(super) query: Vec<(String, String)>,
    pub(super) content_type: Option<String>,
    /// `None` when the body could not be read (longer than `BODY_READ_LIMIT`).
    pub(super) body: Option<Vec<u8>>,
}

impl Incoming {
    fn params(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

fn errcode(code: i64, msg: &str) -> Result<(), Answer> {
    Err(Answer::Errcode(code, msg.to_string()))
}

fn raw(status: StatusCode, content_type: &'static str, body: &str) -> Answer {
    Answer::Raw {
        status,
        content_type,
        body: body.to_string(),
    }
}

impl Answer {
    pub(super) fn status(&self) -> u16 {
        match self {
            Answer::Errcode(..) => 200,
            Answer::Raw { status, .. } | Answer::WithHeaders { status, .. } => status.as_u16(),
        }
    }
}

const HTML_PAGE: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n";

/// What the API firewall answers ([`Fault::Firewall`]).
const FIREWALL_BODY: &str = r#"{"status":1111,"source":"x5","punish":"deny","wait":5}"#;

/// Decides the fate of one request, updates the state and records it.
pub(super) fn decide(state: &mut State, req: &Incoming) -> Action {
    let now = Instant::now() + state.ahead;
    let body_bytes = req.body.as_deref().unwrap_or_default();
    let mut record = RequestRecord {
        at: now,
        method: req.method.to_string(),
        path: req.path.clone(),
        token: req.params("access_token").first().map(|t| t.to_string()),
        raw_query: req.raw_query.clone(),
        query: req.query.clone(),
        content_type: req.content_type.clone(),
        body: serde_json::from_slice(body_bytes).ok(),
        body_len: body_bytes.len(),
        status: 0,
        errcode: None,
        errmsg: None,
        fault: None,
        duplicate: false,
    };
    let action = route(state, req, &mut record, now);
    if let Action::Answer(answer) | Action::AnswerAfter(_, answer) = &action {
        record.status = answer.status();
        if let Answer::Errcode(code, msg) = answer {
            record.errcode = Some(*code);
            record.errmsg = Some(msg.clone());
        }
    }
    state.requests.push(record);
    action
}

fn route(state: &mut State, req: &Incoming, record: &mut RequestRecord, now: Instant) -> Action {
    let plain = |status, body| Action::Answer(raw(status, "text/plain", body));
    if state.outage {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
    }
    if req.path != "/robot/send" {
        return plain(StatusCode::NOT_FOUND, "Not Found");
    }
    if req.method != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    }
    let wall_ms = wall_clock_ms() + state.clock_offset_ms;
    let State { robots, posts, .. } = state;
    let Some(robot) = record.token.as_deref().and_then(|t| robots.get_mut(t)) else {
        return Action::Answer(Answer::Errcode(300001, "token is not exist".into()));
    };
    let fault = robot.faults.pop_front();
    record.fault = fault.clone();
    match fault {
        None => Action::Answer(send(robot, posts, req, record, now, wall_ms)),
        Some(Fault::Http500) => plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
        Some(Fault::Errcode(code, msg)) => Action::Answer(Answer::Errcode(code, msg)),
        Some(Fault::Drop) => Action::CloseUnanswered,
        Some(Fault::Delay(d)) => {
            Action::AnswerAfter(d, send(robot, posts, req, record, now, wall_ms))
        }
        Some(Fault::LoseAnswer) => {
            if let Answer::Errcode(code, msg) = send(robot, posts, req, record, now, wall_ms) {
                record.errcode = Some(code);
                record.errmsg = Some(msg);
            }
            Action::CloseUnanswered
        }
        Some(Fault::Html) => Action::Answer(raw(StatusCode::OK, "text/html", HTML_PAGE)),
        Some(Fault::Firewall) => {
            Action::Answer(raw(StatusCode::OK, "application/json", FIREWALL_BODY))
        }
        Some(Fault::EchoPage(status)) => Action::Answer(Answer::Raw {
            status: status_code(status),
            content_type: "text/html",
            body: format!(
                "<html>\r\n<body>\r\nYou asked for {}\r\n\u{1b}[2Jvalues: {}\r\n</body></html>",
                echo_url(req),
                echo_values(req)
            ),
        }),
        Some(Fault::EchoErrcode(code)) => Action::Answer(Answer::Errcode(
            code,
            format!(
                "description: bad request {} ({});solution: check the URL\n",
                echo_url(req),
                echo_values(req)
            ),
        )),
        Some(Fault::EchoHeaders(status)) => Action::Answer(Answer::WithHeaders {
            status: status_code(status),
            headers: vec![
                ("x-request-url", echo_url(req)),
                (
                    "set-cookie",
                    format!("seen={}; Path=/", record.token.clone().unwrap_or_default()),
                ),
                ("link", format!("<{}>; rel=self", echo_url(req))),
                ("content-type", "text/plain".to_owned()),
            ],
            body: format!("blocked {}", echo_values(req)),
        }),
        Some(Fault::EchoRedirect(status)) => Action::Answer(Answer::WithHeaders {
            status: status_code(status),
            headers: vec![("location", echo_url(req))],
            body: format!("moved to {}", echo_url(req)),
        }),
    }
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).expect("a valid HTTP status")
}

/// The request's path and query as received (what echoing servers print).
fn echo_url(req: &Incoming) -> String {
    format!("{}?{}", req.path, req.raw_query)
}

/// Every query value, form-decoded, space-separated.
fn echo_values(req: &Incoming) -> String {
    req.query
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Normal handling of a send: all checks, then the post (or a duplicate).
fn send(
    robot: &mut Robot,
    posts: &mut Vec<Post>,
    req: &Incoming,
    record: &mut RequestRecord,
    now: Instant,
    wall_ms: i64,
) -> Answer {
    if let Err(answer) = check(robot, req, record.body.as_ref(), now, wall_ms) {
        return answer;
    }
    let body = record.body.clone().unwrap_or_default();
    if let Some(uuid) = body["msgUuid"].as_str()
        && !robot.seen_uuids.insert(uuid.to_string())
    {
        record.duplicate = true;
        return Answer::Errcode(0, "ok".into());
    }
    robot.posted += 1;
    posts.push(Post {
        token: robot.spec.token.clone(),
        body,
        at: now,
    });
    Answer::Errcode(0, "ok".into())
}

/// Every check DingTalk makes before it sends, in order; the last one counts
/// the send against the rate limit.
fn check(
    robot: &mut Robot,
    req: &Incoming,
    body: Option<&Value>,
    now: Instant,
    wall_ms: i64,
) -> Result<(), Answer> {
    let spec = &robot.spec;
    let too_fast = format!("send too fast, exceed {} times per minute", spec.rate);
    if robot.blocked_until.is_some_and(|until| now < until) {
        return errcode(130101, &too_fast);
    }
    let json_type = req.content_type.as_deref().is_some_and(|ct| {
        ct.trim_start()
            .to_ascii_lowercase()
            .starts_with("application/json")
    });
    if !json_type {
        return errcode(43004, "invalid Content-Type, expected application/json");
    }
    if let Some(secret) = &spec.secret {
        check_sign(req, secret, wall_ms)?;
    }
    match &req.body {
        Some(bytes) if bytes.len() <= MAX_BODY_BYTES => {}
        _ => return errcode(460101, "message too long"),
    }
    let Some(body) = body.filter(|b| b.is_object()) else {
        return errcode(40035, "missing parameter: body is not a JSON object");
    };
    let Some(msgtype) = body["msgtype"].as_str() else {
        return errcode(40035, "missing parameter: msgtype");
    };
    if !MSGTYPES.contains(&msgtype) {
        return errcode(400105, "msgtype not supported");
    }
    let required: &[&str] = match msgtype {
        "text" => &["content"],
        "markdown" => &["title", "text"],
        _ => &[],
    };
    for field in required {
        if !body[msgtype][field].is_string() {
            return errcode(40035, &format!("missing parameter: {msgtype}.{field}"));
        }
    }
    if !spec.keywords.is_empty() {
        let content = searchable_text(body);
        if !spec.keywords.iter().any(|k| content.contains(k.as_str())) {
            return errcode(310000, "keywords not in content");
        }
    }
    if let Some((n, code, msg)) = &spec.quota
        && robot.posted >= *n
    {
        return errcode(*code, msg);
    }
    while robot
        .window
        .front()
        .is_some_and(|&t| now.duration_since(t) >= spec.per)
    {
        robot.window.pop_front();
    }
    if robot.window.len() >= spec.rate as usize {
        robot.blocked_until = Some(now + spec.block);
        return errcode(130101, &too_fast);
    }
    robot.window.push_back(now);
    Ok(())
}

fn check_sign(req: &Incoming, secret: &str, wall_ms: i64) -> Result<(), Answer> {
    let [timestamp] = req.params("timestamp")[..] else {
        return errcode(310000, "invalid timestamp");
    };
    let fresh = timestamp
        .parse::<i64>()
        .is_ok_and(|ts| (wall_ms - ts).abs() <= TIMESTAMP_WINDOW_MS);
    if !fresh {
        return errcode(310000, "invalid timestamp");
    }
    let [sign] = req.params("sign")[..] else {
        return errcode(310000, "sign not match");
    };
    if sign != expected_sign(timestamp, secret) {
        return errcode(310000, "sign not match");
    }
    Ok(())
}

/// The text DingTalk searches for keywords, per message type.
fn searchable_text(body: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let title_text = |v: &Value| format!("{}\n{}", s(&v["title"]), s(&v["text"]));
    match body["msgtype"].as_str().unwrap_or_default() {
        "text" => s(&body["text"]["content"]),
        "markdown" => title_text(&body["markdown"]),
        "link" => title_text(&body["link"]),
        "actionCard" => title_text(&body["actionCard"]),
        "feedCard" => body["feedCard"]["links"]
            .as_array()
            .map(|links| {
                links
                    .iter()
                    .map(|l| s(&l["title"]))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default(),
        _ => String::new(),
    }
}

fn wall_clock_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    since_epoch.as_millis() as i64
}
