//! Posts a message to a robot and reads DingTalk's answer.
//!
//! DingTalk answers HTTP 200 even when it refuses a message: only `errcode == 0` is success. Every
//! other answer becomes a [`SendError`] whose [`ErrorClass`] tells the dispatcher what to do
//! (retry, pause the robot, give up, shrink), and whose text tells the operator what to fix.
//! Nothing here ever prints the webhook, the secret or the signature: reqwest errors are stripped
//! of their URL, and every text that leaves here, dingtail's own or a server's, goes through the
//! robot's [`Redactor`] (server text quoted on one line, at most 200 characters, controls
//! escaped). Redirects are not followed: DingTalk never redirects, and a `Location` that echoes
//! the signed URL is neither followed nor printed.

use std::time::Duration;

use serde::Deserialize;

use crate::dingtalk::{Endpoint, sign};
use crate::redact::{MAX_QUOTED_CHARS, Redactor, one_line};

/// What the dispatcher should do after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Try the same message again later (same `msgUuid`): network, timeouts, 5xx, errcode -1.
    Retryable,
    /// The robot is sending too fast and DingTalk blocked it (about 10 minutes): pause it.
    Throttled,
    /// Will fail again until someone fixes the config, the robot or the clock.
    Permanent,
    /// The body was too large: shrink and resend (a bug in rendering if it happens).
    TooLarge,
    /// The monthly webhook quota is used up (90030, or an errmsg about the quota): nothing more
    /// goes out until the month turns.
    QuotaSpent,
}

/// Why a message was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No answer: connection refused or reset, DNS, TLS, timeout.
    #[error("cannot reach DingTalk: {detail}")]
    Transport {
        /// What failed, with the URL removed.
        detail: String,
    },
    /// An HTTP status other than 200 (and not a redirect). The body is not shown.
    #[error("DingTalk answered HTTP {status}")]
    Http {
        /// The status code.
        status: u16,
    },
    /// A redirect: DingTalk never redirects, so a captive portal, a proxy or a wrong webhook
    /// URL is in the way. Not followed, and its `Location` (which may echo the signed URL) is
    /// not shown.
    #[error(
        "redirected (HTTP {status}); DingTalk never redirects: check the webhook URL and any proxy or captive portal in between"
    )]
    Redirected {
        /// The status code.
        status: u16,
    },
    /// DingTalk refused the message with an errcode.
    #[error("DingTalk refused the message: errcode {errcode}: {errmsg} ({hint})")]
    Api {
        /// DingTalk's errcode.
        errcode: i64,
        /// DingTalk's explanation, redacted and quoted (see [`Redactor::quote`]).
        errmsg: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// HTTP 200 but not a DingTalk answer (a firewall, proxy or captive portal in between).
    #[error("the answer is not DingTalk's (a firewall or proxy in between?): {snippet}")]
    Unrecognized {
        /// The start of the body, redacted and quoted (see [`Redactor::quote`]).
        snippet: String,
    },
}

impl SendError {
    /// What to do about it.
    pub fn class(&self) -> ErrorClass {
        match self {
            SendError::Transport { .. } | SendError::Unrecognized { .. } => ErrorClass::Retryable,
            SendError::Http { status } if *status >= 500 || *status == 429 || *status == 408 => {
                ErrorClass::Retryable
            }
            SendError::Http { .. } | SendError::Redirected { .. } => ErrorClass::Permanent,
            SendError::Api {
                errcode, errmsg, ..
            } if classify(*errcode) == ErrorClass::Permanent && is_quota_message(errmsg) => {
                ErrorClass::QuotaSpent
            }
            SendError::Api { errcode, .. } => classify(*errcode),
        }
    }
}

/// The class of a DingTalk errcode (see `shared/dingtalk-api.md`).
pub fn classify(errcode: i64) -> ErrorClass {
    match errcode {
        -1 => ErrorClass::Retryable,
        130101 | 410100 => ErrorClass::Throttled,
        460101 | 101002 => ErrorClass::TooLarge,
        90030 => ErrorClass::QuotaSpent,
        _ => ErrorClass::Permanent,
    }
}

/// The quota's errcode is not documented (90030 is what users report): a refusal with an
/// unknown or permanent code whose message speaks of the quota is taken as one too.
fn is_quota_message(errmsg: &str) -> bool {
    let m = errmsg.to_ascii_lowercase();
    m.contains("quota") || m.contains("over limit") || errmsg.contains("额度")
}

/// What the operator should do about an errcode.
pub fn hint(errcode: i64, errmsg: &str) -> &'static str {
    let msg = errmsg.to_ascii_lowercase();
    match errcode {
        310000 if msg.contains("sign") => {
            "sign not match: check that `secret` is the SEC… string of this robot"
        }
        310000 if msg.contains("timestamp") => {
            "the host clock is off by more than an hour from DingTalk's: fix the time (NTP)"
        }
        310000 if msg.contains("keyword") => {
            "the robot requires a keyword: set `keyword:` to one of its security keywords"
        }
        310000 if msg.contains("ip") || msg.contains("whitelist") => {
            "this host's IP is not in the robot's IP whitelist"
        }
        310000 => {
            "a security setting failed: check the robot's keyword, secret, IP whitelist and this host's clock"
        }
        300001 | 300005 | 400101 => "the access token does not exist: check the webhook URL",
        400102 => "the robot is disabled in the group",
        400106 => "the robot is not in the group any more",
        400013 => "the group was disbanded",
        460101 | 101002 => "the message is larger than 20,000 bytes (a dingtail bug)",
        130101 | 410100 => "sending too fast: DingTalk blocks the robot for about 10 minutes",
        -1 => "DingTalk is busy: will retry",
        90030 => "the organisation's monthly webhook quota is used up",
        430101..=430104 => "DingTalk considers the content unsafe or inappropriate",
        400105 | 40035 | 43004 => "DingTalk did not accept the request format (a dingtail bug)",
        _ => "see DingTalk's error code list",
    }
}

/// DingTalk's answer, parsed leniently: `errcode` may come as a number or a string.
#[derive(Deserialize)]
struct Answer {
    errcode: Option<serde_json::Value>,
    #[serde(default)]
    errmsg: Option<String>,
}

/// DingTalk's answer to a successful post, for `dingtail send` to print.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The body DingTalk sent back, redacted, on one line, at most 200 characters.
    pub raw: String,
}

/// Why the HTTP client could not be built, with its causes ("builder error" alone helps nobody);
/// a machine without CA certificates is told so, and what to install.
fn setup_error(e: reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    let lower = text.to_lowercase();
    if lower.contains("certificate")
        || lower.contains("root store")
        || lower.contains("trust anchor")
    {
        text.push_str(
            " (no usable CA certificates on this machine, so HTTPS to DingTalk cannot be trusted: \
             install them, e.g. `apt-get install ca-certificates` or `apk add ca-certificates`, \
             or set SSL_CERT_FILE to a PEM bundle)",
        );
    }
    text
}

/// An HTTP client for robot webhooks (reqwest with rustls, timeouts, proxies from the usual
/// environment variables).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
}

impl Client {
    /// A client with these timeouts, using `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` from the
    /// environment, or `proxy` when given (a robot's own `proxy:` setting; `NO_PROXY` still
    /// applies to it).
    pub fn new(
        connect_timeout: Duration,
        request_timeout: Duration,
        proxy: Option<&str>,
    ) -> Result<Client, reqwest::Error> {
        // reqwest is built without a default crypto provider (aws-lc needs a C toolchain we do
        // not want in CI); ring is installed once, here. Ignoring the result: another part of
        // the process may have installed it first.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("dingtail/", env!("CARGO_PKG_VERSION")));
        if let Some(proxy) = proxy {
            builder =
                builder.proxy(reqwest::Proxy::all(proxy)?.no_proxy(reqwest::NoProxy::from_env()));
        }
        Ok(Client {
            http: builder.build()?,
        })
    }

    /// The client an endpoint asks for (timeouts, proxy).
    pub fn for_endpoint(robot: &Endpoint) -> Result<Client, SendError> {
        Client::new(
            robot.connect_timeout,
            robot.request_timeout,
            robot.proxy.as_ref().map(|p| p.expose()),
        )
        .map_err(|e| SendError::Transport {
            detail: format!(
                "cannot set up the HTTP client: {}",
                one_line(
                    &redactor(robot).redact(&setup_error(e.without_url())),
                    MAX_DETAIL_CHARS
                )
            ),
        })
    }

    /// Signs and posts `body` to `robot`. Each call signs afresh.
    pub async fn post(&self, robot: &Endpoint, body: String) -> Result<Accepted, SendError> {
        let secret = robot.secret.as_ref().map(|s| s.expose());
        let url =
            sign::signed_url(robot.webhook.expose(), secret, sign::now_ms()).map_err(|e| {
                SendError::Transport {
                    detail: format!("the webhook is not a valid URL: {e}"),
                }
            })?;
        // This attempt's timestamp and signature are as secret as the token.
        let redactor = redactor(robot).hide(url.as_str());
        let result = self
            .http
            .post(url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )
            .body(body)
            .send()
            .await;
        let response = result.map_err(|e| transport(e, &redactor))?;
        let status = response.status().as_u16();
        if response.status().is_redirection() {
            return Err(SendError::Redirected { status });
        }
        let text = response.text().await.map_err(|e| transport(e, &redactor))?;
        if status != 200 {
            return Err(SendError::Http { status });
        }
        read_answer(&text, &redactor)
    }
}

/// Longest transport error detail, in characters.
const MAX_DETAIL_CHARS: usize = 400;

/// Interprets a 200 answer's body; every text kept from it is redacted and quoted.
fn read_answer(text: &str, redactor: &Redactor) -> Result<Accepted, SendError> {
    let unrecognized = || SendError::Unrecognized {
        snippet: redactor.quote(text),
    };
    let answer: Answer = serde_json::from_str(text).map_err(|_| unrecognized())?;
    let errcode = match answer.errcode {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(unrecognized)?;
    if errcode == 0 {
        Ok(Accepted {
            raw: one_line(&redactor.redact(text.trim()), MAX_QUOTED_CHARS),
        })
    } else {
        let errmsg = answer.errmsg.unwrap_or_default();
        Err(SendError::Api {
            errcode,
            hint: hint(errcode, &errmsg),
            errmsg: redactor.quote(&errmsg),
        })
    }
}

/// A reqwest error as text without the URL (it holds the token and signature), with its causes.
fn transport(err: reqwest::Error, redactor: &Redactor) -> SendError {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let err = err.without_url();
    let mut detail = kind.to_owned();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&err);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    SendError::Transport {
        detail: one_line(&redactor.redact(&detail), MAX_DETAIL_CHARS),
    }
}

/// A redactor that hides everything secret about `robot`: the webhook and its token, the
/// secret, the proxy URL and its credentials.
pub fn redactor(robot: &Endpoint) -> Redactor {
    let mut r = Redactor::new().hide(robot.webhook.expose());
    if let Some(s) = &robot.secret {
        r = r.hide(s.expose());
    }
    if let Some(p) = &robot.proxy {
        r = r.hide(p.expose());
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn answers_are_read_leniently() {
        let r = Redactor::new();
        assert!(read_answer(r#"{"errcode":0,"errmsg":"ok"}"#, &r).is_ok());
        assert!(read_answer(r#"{"errcode":"0","errmsg":"ok"}"#, &r).is_ok());
        match read_answer(r#"{"errcode":310000,"errmsg":"sign not match"}"#, &r) {
            Err(
                e @ SendError::Api {
                    errcode: 310000, ..
                },
            ) => {
                assert_eq!(e.class(), ErrorClass::Permanent);
                assert!(e.to_string().contains("SEC…"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        for body in [
            "<html>blocked</html>",
            r#"{"status":1111,"source":"x5","punish":"deny","wait":5}"#,
        ] {
            let e = read_answer(body, &r).unwrap_err();
            assert!(matches!(e, SendError::Unrecognized { .. }), "{e:?}");
            assert_eq!(e.class(), ErrorClass::Retryable);
        }
    }

    #[test]
    fn errcodes_are_classified() {
        let table = [
            (-1, ErrorClass::Retryable),
            (130101, ErrorClass::Throttled),
            (410100, ErrorClass::Throttled),
            (460101, ErrorClass::TooLarge),
            (310000, ErrorClass::Permanent),
            (300001, ErrorClass::Permanent),
            (400102, ErrorClass::Permanent),
            (90030, ErrorClass::QuotaSpent),
        ];
        for (code, class) in table {
            assert_eq!(classify(code), class, "{code}");
        }
        assert_eq!(
            SendError::Http { status: 502 }.class(),
            ErrorClass::Retryable
        );
        assert_eq!(
            SendError::Http { status: 404 }.class(),
            ErrorClass::Permanent
        );
        let quota = |errcode, errmsg: &str| SendError::Api {
            errcode,
            errmsg: errmsg.into(),
            hint: hint(errcode, errmsg),
        };
        assert_eq!(
            quota(400999, "monthly quota exceeded").class(),
            ErrorClass::QuotaSpent
        );
        assert_eq!(
            quota(90030, "webhook over limit").class(),
            ErrorClass::QuotaSpent
        );
        assert_eq!(
            quota(130101, "send too fast, exceed 20 times per minute").class(),
            ErrorClass::Throttled
        );
    }

    #[test]
    fn hints_name_the_fix() {
        assert!(hint(310000, "invalid timestamp").contains("clock"));
        assert!(hint(310000, "错误描述: keywords not in content").contains("keyword"));
        assert!(hint(310000, "ip 1.2.3.4 not in whitelist").contains("whitelist"));
        assert!(hint(400101, "").contains("token"));
    }

    #[test]
    fn redaction_hides_webhook_token_and_secret() {
        let robot = Endpoint {
            webhook: Secret::new("https://x/robot/send?access_token=tok123456"),
            secret: Some(Secret::new("SECsecret")),
            proxy: Some(Secret::new("http://user:pw@proxy:3128")),
            connect_timeout: std::time::Duration::from_secs(5),
            request_timeout: std::time::Duration::from_secs(10),
        };
        let text = "error for https://x/robot/send?access_token=tok123456 tok123456 SECsecret \
                    via http://user:pw@proxy:3128";
        assert_eq!(
            redactor(&robot).redact(text),
            "error for *** *** *** via ***"
        );
        // An echo of this attempt's signed URL in errmsg, with newlines and a bidi override.
        let signed =
            sign::signed_url(robot.webhook.expose(), Some("SECsecret"), 1_700_000_000_000).unwrap();
        let r = redactor(&robot).hide(signed.as_str());
        let sig = sign::signature("SECsecret", 1_700_000_000_000);
        let body = format!(
            r#"{{"errcode":310000,"errmsg":"bad request {signed}\n\u202e sig {sig} ts 1700000000000"}}"#
        );
        let shown = read_answer(&body, &r).unwrap_err().to_string();
        for leak in ["tok123456", &sig, "1700000000000", "SECsecret"] {
            assert!(!shown.contains(leak), "{leak} in {shown}");
        }
        assert!(shown.contains(r"\n\u{202e} sig"), "{shown}");
        assert!(
            !shown.contains('\n') && !shown.contains('\u{202e}'),
            "{shown}"
        );
    }
}
