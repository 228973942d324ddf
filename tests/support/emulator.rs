//! An in-process emulator of a DingTalk custom robot webhook.
//!
//! Integration tests run the real `dingtail` binary and point its webhook at
//! this emulator over loopback. The emulator checks every request the way
//! DingTalk does (token, Content-Type, signature, timestamp window, body size,
//! message shape, keywords, rate limit and block, `msgUuid` idempotency; see
//! `/work/shared/dingtalk-api.md`), records what it saw, and can be told to
//! misbehave (per-robot [`Fault`]s, a global outage, a skewed clock).
//!
//! The server listens on `127.0.0.1:0` only and runs on its own thread with
//! its own tokio runtime, so tests stay plain synchronous `#[test]` functions.
//! Dropping the [`Emulator`] shuts the server down.
//!
//! Order of checks for `POST /robot/send` (each failure answers HTTP 200 with
//! `{"errcode":N,"errmsg":"..."}`):
//! 1. global outage: HTTP 503 (no fault is consumed);
//!    (other paths answer HTTP 404, other methods HTTP 405, in plain text);
//! 2. unknown or missing `access_token`: 300001;
//! 3. the robot's next queued [`Fault`], if any, is consumed;
//! 4. robot blocked by the rate limit: 130101;
//! 5. Content-Type not `application/json...`: 43004;
//! 6. signature (robots with a secret): duplicated, missing or stale
//!    `timestamp`, missing or wrong `sign`: 310000;
//! 7. body over 20,000 bytes: 460101;
//! 8. body not a JSON object or no `msgtype`: 40035; unknown `msgtype`:
//!    400105; `text.content`, `markdown.title` or `markdown.text` missing: 40035;
//! 9. keywords (robots with keywords): 310000;
//!    then the monthly quota (robots with [`RobotSpec::quota_after`]): once the
//!    robot has posted N messages, every send gets the quota error (90030 by
//!    default) and nothing is posted or counted;
//! 10. rate limit: only requests that passed 1-9 count (they are "sends",
//!     including `msgUuid` duplicates). The one that would be number N+1
//!     within the sliding window gets 130101 and starts the block;
//! 11. a `msgUuid` already accepted: errcode 0 but no second [`Post`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request, State as AxumState};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Largest body DingTalk accepts, in bytes.
pub const MAX_BODY_BYTES: usize = 20_000;
/// How far a signed request's `timestamp` may be from DingTalk's clock.
pub const TIMESTAMP_WINDOW_MS: i64 = 3_600_000;
/// The message types DingTalk knows.
const MSGTYPES: [&str; 5] = ["text", "markdown", "link", "actionCard", "feedCard"];

/// The configuration of one emulated robot: what DingTalk knows about a
/// webhook (its token and security settings) and the rate limit that applies
/// to it. Tests shorten the rate window and block to keep runs fast.
#[derive(Clone, Debug)]
pub struct RobotSpec {
    pub token: String,
    /// The signing secret (`SEC...`); `None` means requests are not signed.
    pub secret: Option<String>,
    /// Custom keywords; empty means no keyword check.
    pub keywords: Vec<String>,
    /// At most `rate` accepted sends in any sliding window of `per`.
    pub rate: u32,
    pub per: Duration,
    /// How long the robot refuses everything once the rate is exceeded.
    pub block: Duration,
    /// After this many posts, every send gets this errcode and errmsg (the
    /// organisation's monthly quota is used up).
    pub quota: Option<(usize, i64, String)>,
}

impl RobotSpec {
    /// A robot with no secret, no keywords, 20 sends per 60 s and a 10 min block.
    pub fn new(token: impl Into<String>) -> Self {
        RobotSpec {
            token: token.into(),
            secret: None,
            keywords: Vec::new(),
            rate: 20,
            per: Duration::from_secs(60),
            block: Duration::from_secs(600),
            quota: None,
        }
    }

    /// The monthly quota runs out after `n` posts: then 90030 "webhook over
    /// limit", as users report it.
    pub fn quota_after(self, n: usize) -> Self {
        self.quota_error(n, 90030, "webhook over limit")
    }

    /// The monthly quota runs out after `n` posts, answered with this errcode.
    pub fn quota_error(mut self, n: usize, code: i64, msg: impl Into<String>) -> Self {
        self.quota = Some((n, code, msg.into()));
        self
    }

    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = Some(secret.into());
        self
    }

    pub fn keyword(mut self, keyword: impl Into<String>) -> Self {
        self.keywords.push(keyword.into());
        self
    }

    pub fn rate(mut self, n: u32, per: Duration) -> Self {
        self.rate = n;
        self.per = per;
        self
    }

    pub fn block(mut self, block: Duration) -> Self {
        self.block = block;
        self
    }
}

/// A misbehaviour queued for one robot. Each request to that robot (after the
/// token check, outside an outage) consumes the oldest queued fault before
/// normal handling. Add variants here as tests need new failure modes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 500 with a plain-text body; nothing is posted.
    Http500,
    /// HTTP 200 with this errcode and errmsg (e.g. -1 system busy, 130101,
    /// 310000, 400102); nothing is posted and the rate limit is untouched.
    Errcode(i64, String),
    /// The connection is closed without any answer; nothing is posted.
    Drop,
    /// The request is handled normally at once (it may be posted) and the
    /// answer is held for this long: a client with a shorter timeout gives up
    /// although the message went out.
    Delay(Duration),
    /// The request is handled normally (it may be posted) but the connection
    /// is closed instead of answering: the case `msgUuid` exists for.
    LoseAnswer,
    /// HTTP 200 with an HTML page (a proxy's error page), no errcode.
    Html,
    /// HTTP 200 with the API firewall's `{"status":1111,...}`, no errcode.
    Firewall,
    /// This HTTP status with an HTML page that echoes the request (as captive portals and
    /// corporate proxies do): the raw URL, each query value form-decoded, CR/LF and an ESC.
    EchoPage(u16),
    /// HTTP 200 with this errcode and an `errmsg` that echoes the request URL and its decoded
    /// query values (DingTalk does for some errors); nothing is posted.
    EchoErrcode(i64),
    /// This HTTP status, a short body, and headers that echo the request URL and token
    /// (`X-Request-Url`, `Set-Cookie`, `Link`).
    EchoHeaders(u16),
    /// This redirect status with a `Location` that echoes the request URL.
    EchoRedirect(u16),
}

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

/// A running emulator: an HTTP server on 127.0.0.1 plus the shared state the
/// test inspects and steers. Dropping it stops the server.
pub struct Emulator {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Emulator {
    /// Starts a server on 127.0.0.1 (a free port) serving these robots.
    pub fn start(robots: Vec<RobotSpec>) -> Emulator {
        let mut map = HashMap::new();
        for spec in robots {
            let token = spec.token.clone();
            let robot = Robot {
                spec,
                faults: VecDeque::new(),
                window: VecDeque::new(),
                blocked_until: None,
                seen_uuids: HashSet::new(),
                posted: 0,
            };
            assert!(
                map.insert(token.clone(), robot).is_none(),
                "duplicate robot token {token}"
            );
        }
        let state = Arc::new(Mutex::new(State {
            robots: map,
            requests: Vec::new(),
            posts: Vec::new(),
            outage: false,
            clock_offset_ms: 0,
            ahead: Duration::ZERO,
        }));

        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("set_nonblocking");
        let addr = listener.local_addr().expect("local_addr");
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let app = Router::new().fallback(handle).with_state(state.clone());

        let thread = std::thread::Builder::new()
            .name(format!("dingtalk-emulator-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("emulator runtime");
                rt.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("tokio listener");
                    let server = axum::serve(
                        KillableListener(listener),
                        app.into_make_service_with_connect_info::<ConnHandle>(),
                    );
                    tokio::select! {
                        _ = server => {}
                        _ = shutdown_rx => {}
                    }
                });
                // Connections still open (held by Delay, keep-alive) are dropped here.
                rt.shutdown_timeout(Duration::from_secs(1));
            })
            .expect("spawn emulator thread");

        Emulator {
            addr,
            state,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The unsigned webhook URL for a robot, as DingTalk hands it out.
    pub fn webhook(&self, token: &str) -> String {
        format!("{}/robot/send?access_token={token}", self.base_url())
    }

    /// Accepted messages, oldest first.
    pub fn posts(&self) -> Vec<Post> {
        self.lock().posts.clone()
    }

    /// Every request received, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.lock().requests.clone()
    }

    /// Queues a fault for the robot's next request (FIFO).
    pub fn push_fault(&self, token: &str, fault: Fault) {
        let mut state = self.lock();
        let robot = state
            .robots
            .get_mut(token)
            .unwrap_or_else(|| panic!("push_fault: no robot with token {token}"));
        robot.faults.push_back(fault);
    }

    /// While on, every request gets HTTP 503 and nothing else happens.
    pub fn set_outage(&self, on: bool) {
        self.lock().outage = on;
    }

    /// Shifts the emulator's wall clock (used for the timestamp check) by this
    /// many milliseconds; positive means DingTalk's clock is ahead.
    pub fn set_clock_offset_ms(&self, ms: i64) {
        self.lock().clock_offset_ms = ms;
    }

    /// Moves the clock that rate windows and blocks are judged by (and requests are stamped
    /// with) ahead by `by`, so a test steps through a window instead of sleeping through it.
    pub fn advance(&self, by: Duration) {
        self.lock().ahead += by;
    }

    /// Waits until at least `n` posts were accepted or `timeout` passed;
    /// returns the posts it has either way.
    pub fn wait_for_posts(&self, n: usize, timeout: Duration) -> Vec<Post> {
        self.wait_until(timeout, |s| s.posts.len() >= n);
        self.posts()
    }

    /// Waits until at least `n` requests arrived or `timeout` passed; returns
    /// the records it has either way.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<RequestRecord> {
        self.wait_until(timeout, |s| s.requests.len() >= n);
        self.requests()
    }

    fn wait_until(&self, timeout: Duration, done: impl Fn(&State) -> bool) {
        let deadline = Instant::now() + timeout;
        while !done(&self.lock()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The expected `sign` for a timestamp and secret, before URL encoding:
/// base64(HMAC-SHA256(key = secret, msg = timestamp + "\n" + secret)).
pub fn expected_sign(timestamp: &str, secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

// ---------------------------------------------------------------------------
// State and decisions (synchronous, under one lock, so each request is atomic)

struct State {
    robots: HashMap<String, Robot>,
    requests: Vec<RequestRecord>,
    posts: Vec<Post>,
    outage: bool,
    clock_offset_ms: i64,
    /// How far the test moved the emulator's rate and block clock ahead of the real one.
    ahead: Duration,
}

struct Robot {
    spec: RobotSpec,
    faults: VecDeque<Fault>,
    /// When each counted send happened, oldest first, pruned to `spec.per`.
    window: VecDeque<Instant>,
    blocked_until: Option<Instant>,
    seen_uuids: HashSet<String>,
    /// Messages posted, for the monthly quota.
    posted: usize,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the server sends back.
enum Answer {
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
enum Action {
    Answer(Answer),
    AnswerAfter(Duration, Answer),
    CloseUnanswered,
}

struct Incoming {
    method: Method,
    path: String,
    raw_query: String,
    query: Vec<(String, String)>,
    content_type: Option<String>,
    /// `None` when the body could not be read (longer than `BODY_READ_LIMIT`).
    body: Option<Vec<u8>>,
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
    fn status(&self) -> u16 {
        match self {
            Answer::Errcode(..) => 200,
            Answer::Raw { status, .. } | Answer::WithHeaders { status, .. } => status.as_u16(),
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        match self {
            Answer::Errcode(code, msg) => (
                [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
                json!({ "errcode": code, "errmsg": msg }).to_string(),
            )
                .into_response(),
            Answer::Raw {
                status,
                content_type,
                body,
            } => (status, [(header::CONTENT_TYPE, content_type)], body).into_response(),
            Answer::WithHeaders {
                status,
                headers,
                body,
            } => {
                let mut response = (status, body).into_response();
                for (name, value) in headers {
                    if let Ok(v) = axum::http::HeaderValue::from_str(&value) {
                        response.headers_mut().append(name, v);
                    }
                }
                response
            }
        }
    }
}

const HTML_PAGE: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n";

const FIREWALL_BODY: &str = r#"{"status":1111,"source":"x5","punish":"deny","wait":5}"#;

/// Decides the fate of one request, updates the state and records it.
fn decide(state: &mut State, req: &Incoming) -> Action {
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

/// Splits a query string into form-decoded pairs, keeping order and repeats.
fn parse_query(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

/// application/x-www-form-urlencoded decoding: `+` is a space, `%XX` a byte.
/// A `+` the client forgot to encode thus arrives as a space, as at DingTalk.
fn form_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', hi, lo]) => hex(*hi).zip(hex(*lo)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match (bytes[i], escaped) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------
// HTTP side

/// Upper bound on bodies read from the socket (DingTalk's limit is checked
/// separately, so over-long bodies are still seen and recorded).
const BODY_READ_LIMIT: usize = 16 * 1024 * 1024;

async fn handle(
    AxumState(state): AxumState<Arc<Mutex<State>>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let raw_query = parts.uri.query().unwrap_or_default().to_string();
    let incoming = Incoming {
        method: parts.method.clone(),
        path: parts.uri.path().to_string(),
        query: parse_query(&raw_query),
        raw_query,
        content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: axum::body::to_bytes(body, BODY_READ_LIMIT)
            .await
            .ok()
            .map(|b| b.to_vec()),
    };
    let action = decide(&mut lock(&state), &incoming);
    match action {
        Action::Answer(answer) => answer.into_response(),
        Action::AnswerAfter(delay, answer) => {
            tokio::time::sleep(delay).await;
            answer.into_response()
        }
        Action::CloseUnanswered => {
            // The stream now fails every read and write, so hyper drops the
            // connection instead of writing this response.
            conn.kill.store(true, Ordering::SeqCst);
            Response::new(Body::empty())
        }
    }
}

/// Per-connection handle given to the handler (as axum connect info) so that
/// it can make its own connection close without an answer.
#[derive(Clone, Debug)]
struct ConnHandle {
    kill: Arc<AtomicBool>,
}

impl Connected<IncomingStream<'_, KillableListener>> for ConnHandle {
    fn connect_info(stream: IncomingStream<'_, KillableListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// A TCP listener whose connections can be killed from inside the handler.
struct KillableListener(TcpListener);

impl Listener for KillableListener {
    type Io = KillableStream;
    type Addr = ConnHandle;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((stream, _peer)) => {
                    let kill = Arc::new(AtomicBool::new(false));
                    let handle = ConnHandle { kill: kill.clone() };
                    return (KillableStream { stream, kill }, handle);
                }
                // e.g. too many open files: back off like axum does.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()?;
        Ok(ConnHandle {
            kill: Arc::new(AtomicBool::new(false)),
        })
    }
}

/// A TCP stream that fails all I/O once killed.
struct KillableStream {
    stream: TcpStream,
    kill: Arc<AtomicBool>,
}

impl KillableStream {
    fn killed(&self) -> Option<io::Error> {
        self.kill
            .load(Ordering::SeqCst)
            .then(|| io::Error::new(io::ErrorKind::ConnectionAborted, "killed by emulator fault"))
    }
}

impl AsyncRead for KillableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.killed() {
            Some(e) => Poll::Ready(Err(e)),
            None => Pin::new(&mut this.stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match this.killed() {
            Some(e) => Poll::Ready(Err(e)),
            None => Pin::new(&mut this.stream).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.killed() {
            Some(e) => Poll::Ready(Err(e)),
            None => Pin::new(&mut this.stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.killed() {
            Some(e) => Poll::Ready(Err(e)),
            None => Pin::new(&mut this.stream).poll_shutdown(cx),
        }
    }
}
