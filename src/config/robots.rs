//! Robots checked: a [`RobotConfig`] with its [`Endpoint`], its [`SendSettings`] (keyword, rate,
//! retries) and fallback.

use super::*;

/// A DingTalk group robot, checked. Its [`Endpoint`] holds the webhook, secret and proxy as
/// [`Secret`]s, so no `Debug`, log line or error can print them.
#[derive(Debug, Clone)]
pub struct RobotConfig {
    /// The name the config gives it; used in messages to the operator.
    pub name: String,
    /// Where and how its messages are posted: what the DingTalk client takes.
    pub endpoint: Endpoint,
    /// How its dispatcher sends: keyword, rate, retries, throttle pause.
    pub send: SendSettings,
    /// Where alerts go while DingTalk has this robot blocked for sending too fast.
    pub fallback: Option<RobotId>,
}

/// How a robot is sent to, beyond where: the part of a [`RobotConfig`] its dispatcher works by
/// (`crate::dispatch::DispatchConfig` is built from it). The defaults are those of a robot that
/// sets none of these fields, and of the dry-run dispatcher of a config without robots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendSettings {
    /// A security keyword that every message must contain.
    pub keyword: Option<String>,
    /// The robot's rate limit.
    pub rate: Rate,
    /// Backoff for failed sends.
    pub retry: Retry,
    /// How long to leave the robot alone after DingTalk says it sends too fast (DingTalk blocks a
    /// robot for about ten minutes).
    pub throttle_pause: Duration,
}

impl Default for SendSettings {
    fn default() -> Self {
        SendSettings {
            keyword: None,
            rate: Rate::default(),
            retry: Retry::default(),
            throttle_pause: DEFAULT_THROTTLE_PAUSE,
        }
    }
}

/// The default `throttle_pause`.
const DEFAULT_THROTTLE_PAUSE: Duration = Duration::from_secs(600);

/// How failed sends are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// First wait after a retryable failure (network, 5xx, errcode -1).
    pub initial: Duration,
    /// Longest wait; waits double up to this.
    pub max: Duration,
    /// After a permanent error (bad token, secret, disabled robot), try the robot again this often
    /// while following input (someone may fix the robot); errors repeat at most this often.
    pub recheck: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            recheck: Duration::from_secs(300),
        }
    }
}

pub(super) fn check_robot(
    c: &mut Checker,
    name: &str,
    raw: &Spanned<RawRobot>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<RobotConfig> {
    let robot = &raw.value;
    let ctx = |field: &str| format!("robot '{name}', field '{field}'");
    let problems_before = c.problems.len();

    let webhook = c.inline_or_file(name, "webhook", &robot.webhook, &robot.webhook_file, env);
    match &webhook {
        Some((at, url)) => {
            if let Err(message) = check_webhook(url) {
                c.problem(at, ctx(at_field(&robot.webhook, "webhook")), message);
            }
        }
        None if robot.webhook.is_none() && robot.webhook_file.is_none() => {
            c.problem(
                raw,
                format!("robot '{name}'"),
                "needs `webhook` or `webhook_file`",
            );
        }
        None => {}
    }
    let secret = c
        .inline_or_file(name, "secret", &robot.secret, &robot.secret_file, env)
        .and_then(|(at, s)| {
            let field = ctx(at_field(&robot.secret, "secret"));
            if s.is_empty() {
                c.problem(at, field, "is empty; omit it when the robot does not sign");
                None
            } else if !s.starts_with("SEC") {
                // DingTalk secrets always start with SEC; anything else is a paste error, and
                // catching it here beats a "sign not match" at 3 a.m.
                c.problem(
                    at,
                    field,
                    "does not start with SEC: copy the whole secret shown under 加签",
                );
                None
            } else {
                Some(Secret::new(s))
            }
        });
    let keyword = robot
        .keyword
        .as_ref()
        .and_then(|k| match expand_env(&k.value, env) {
            Ok(v) if v.trim().is_empty() => {
                c.problem(k, ctx("keyword"), "is empty");
                None
            }
            Ok(v) if v.chars().any(crate::dingtalk::neutral::is_hazard) => {
                c.problem(
                    k,
                    ctx("keyword"),
                    "contains a control, bidi or zero-width character",
                );
                None
            }
            Ok(v) => Some(v.trim().to_owned()),
            Err(e) => {
                c.problem(k, ctx("keyword"), e);
                None
            }
        });
    let rate = match &robot.rate {
        None => Rate::default(),
        Some(r) => parse_rate(&r.value).unwrap_or_else(|e| {
            c.problem(r, ctx("rate"), e);
            Rate::default()
        }),
    };
    let proxy = robot.proxy.as_ref().and_then(|p| {
        let value = expand_env(&p.value, env)
            .map_err(|e| c.problem(p, ctx("proxy"), e))
            .ok()?;
        match url::Url::parse(value.trim()) {
            Ok(u) if matches!(u.scheme(), "http" | "https" | "socks5" | "socks5h") => {
                Some(Secret::new(value.trim()))
            }
            // The proxy URL may carry credentials: the message does not quote it.
            _ => {
                c.problem(
                    p,
                    ctx("proxy"),
                    "is not an http://, https:// or socks5:// URL",
                );
                None
            }
        }
    });
    let mut duration = |value: &Option<Spanned<String>>, field: &str, default: Duration| {
        let max = match field {
            "timeout.connect" => limits::CONNECT_TIMEOUT,
            "timeout.request" => limits::REQUEST_TIMEOUT,
            "retry.initial" => limits::RETRY_INITIAL,
            _ => limits::ROBOT_WAIT,
        };
        value
            .as_ref()
            .and_then(|v| c.duration(v, &ctx(field), max))
            .unwrap_or(default)
    };
    let timeout = robot.timeout.as_ref();
    let connect_timeout = duration(
        &timeout.and_then(|t| t.connect.clone()),
        "timeout.connect",
        Duration::from_secs(5),
    );
    let request_timeout = duration(
        &timeout.and_then(|t| t.request.clone()),
        "timeout.request",
        Duration::from_secs(10),
    );
    let retry = robot.retry.as_ref();
    let defaults = Retry::default();
    let retry = Retry {
        initial: duration(
            &retry.and_then(|r| r.initial.clone()),
            "retry.initial",
            defaults.initial,
        ),
        max: duration(
            &retry.and_then(|r| r.max.clone()),
            "retry.max",
            defaults.max,
        ),
        recheck: duration(
            &retry.and_then(|r| r.recheck.clone()),
            "retry.recheck",
            defaults.recheck,
        ),
    };
    let throttle_pause = duration(
        &robot.throttle_pause,
        "throttle_pause",
        DEFAULT_THROTTLE_PAUSE,
    );

    if c.problems.len() > problems_before {
        return None;
    }
    Some(RobotConfig {
        name: name.to_owned(),
        endpoint: Endpoint {
            webhook: Secret::new(webhook?.1),
            secret,
            proxy,
            connect_timeout,
            request_timeout,
        },
        send: SendSettings {
            keyword,
            rate,
            retry,
            throttle_pause,
        },
        fallback: None,
    })
}

/// The field name to blame: the inline one when it was used, else its `_file` twin.
pub(super) fn at_field(inline: &Option<Spanned<String>>, field: &'static str) -> &'static str {
    match (inline.is_some(), field) {
        (true, f) => f,
        (false, "webhook") => "webhook_file",
        (false, "secret") => "secret_file",
        (false, f) => f,
    }
}

/// The webhook must be an http(s) URL with an `access_token` and without `timestamp`/`sign`
/// (those are added afresh to every request; a stored one would expire within the hour).
/// Errors never quote the URL: it holds the token.
pub(super) fn check_webhook(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url.trim()).map_err(|e| format!("is not a valid URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("must be an http:// or https:// URL".to_owned());
    }
    let keys: Vec<String> = parsed.query_pairs().map(|(k, _)| k.into_owned()).collect();
    match keys.iter().filter(|k| *k == "access_token").count() {
        0 => return Err("has no access_token=… query parameter".to_owned()),
        1 => {}
        _ => return Err("has access_token twice".to_owned()),
    }
    if keys.iter().any(|k| k == "timestamp" || k == "sign") {
        return Err(
            "contains timestamp/sign: give the plain webhook and the secret; dingtail signs each request"
                .to_owned(),
        );
    }
    Ok(())
}

/// Parses `20/min`, `5/10s`, `1/s`, `100/hour`: a count of 1 to [`limits::RATE_COUNT`] per a
/// period of at most [`limits::ROBOT_WAIT`]. Errors quote the text only when it is safe to
/// (a secret pasted into `rate:` is not quoted back).
pub fn parse_rate(text: &str) -> Result<Rate, String> {
    let bad = || {
        format!(
            "{} is not a rate; write e.g. 20/min or 5/10s",
            quoted(text.trim())
        )
    };
    let (count, per) = text.trim().split_once('/').ok_or_else(bad)?;
    let count: u32 = count.trim().parse().map_err(|_| bad())?;
    let per = per.trim();
    let per = match per {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        other => humantime::parse_duration(other).map_err(|_| bad())?,
    };
    if count == 0 || per.is_zero() {
        return Err(format!(
            "{} allows nothing; the count and period must be above zero",
            quoted(text.trim())
        ));
    }
    if count > limits::RATE_COUNT || per > limits::ROBOT_WAIT {
        return Err(format!(
            "{} is out of range: at most {} messages per period, and a period of at most {}",
            quoted(text.trim()),
            limits::RATE_COUNT,
            humantime::format_duration(limits::ROBOT_WAIT)
        ));
    }
    Ok(Rate { count, per })
}
