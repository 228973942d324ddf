//! What a test says about an emulated robot: what DingTalk knows of its webhook
//! ([`RobotSpec`]) and how it is told to misbehave ([`Fault`]).

use std::time::Duration;

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
