//! Servers that echo the request URL (captive portals, corporate proxies, firewalls, and
//! DingTalk's own `errmsg` for some errors) on every failure path of delivery: nothing dingtail
//! prints, on stdout or stderr, at any log level, may hold the token, the secret, or any
//! `timestamp`/`sign` value it sent.

use std::io::Write;
use std::time::Duration;

use crate::support::emulator::{Emulator, Fault, RobotSpec};
use crate::support::env::{Output, TestEnv};

const TOKEN: &str = "tok-echo5e3c2e7a9b1d";
const SECRET: &str = "SECecho0ddba11c0ffee4242424242abcdef";

fn config(emu: &Emulator, extra: &str) -> String {
    format!(
        r#"robots:
  ops:
    webhook: "{}"
    secret: "${{TEST_SECRET}}"
    retry: {{ initial: 20ms, max: 50ms, recheck: 200ms }}
    throttle_pause: 100ms
{extra}
defaults: {{ window: 50ms, max_lines: 2 }}
rules:
  - name: err
    match: ERROR
"#,
        emu.webhook(TOKEN)
    )
}

fn env(emu: &Emulator, extra: &str) -> TestEnv {
    TestEnv::new()
        .config(&config(emu, extra))
        .env("TEST_SECRET", SECRET)
        .env("DINGTAIL_LOG", "trace")
}

/// Every value that must not appear: the token, the secret, and each `timestamp` and `sign`
/// the emulator received, percent-encoded as sent and decoded.
fn secrets(emu: &Emulator) -> Vec<String> {
    let mut out = vec![TOKEN.to_owned(), SECRET.to_owned()];
    for r in emu.requests() {
        for (k, v) in &r.query {
            if k == "sign" || k == "timestamp" {
                out.push(v.clone());
            }
        }
        for pair in r.raw_query.split('&') {
            if let Some(v) = pair
                .strip_prefix("sign=")
                .or_else(|| pair.strip_prefix("timestamp="))
            {
                out.push(v.to_owned());
            }
        }
    }
    out
}

fn assert_nothing_leaks(emu: &Emulator, out: &Output, what: &str) {
    let signed = emu
        .requests()
        .iter()
        .filter(|r| r.raw_query.contains("sign="))
        .count();
    assert!(signed > 0, "{what}: no signed request reached the emulator");
    for s in secrets(emu) {
        for (name, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            assert!(
                !text.contains(s.as_str()),
                "{what}: {name} leaks {s}:\n{text}"
            );
        }
    }
    for (name, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        for marker in ["sign=", "timestamp=", "access_token="] {
            for (i, _) in text.match_indices(marker) {
                let after = &text[i + marker.len()..];
                assert!(
                    after.starts_with("***") || after.is_empty(),
                    "{what}: {name} shows a {marker} value: {}",
                    &text[i..(i + 60).min(text.len())]
                );
            }
        }
    }
}

const ECHOES: [Fault; 13] = [
    Fault::EchoPage(200),
    Fault::EchoPage(500),
    Fault::EchoPage(403),
    Fault::EchoErrcode(-1),
    Fault::EchoErrcode(310000),
    Fault::EchoErrcode(130101),
    Fault::EchoErrcode(460101),
    Fault::EchoErrcode(0),
    Fault::EchoErrcode(90030),
    Fault::EchoHeaders(200),
    Fault::EchoHeaders(502),
    Fault::EchoRedirect(302),
    Fault::EchoRedirect(307),
];

#[test]
fn send_prints_no_secret_whatever_the_server_echoes() {
    for fault in ECHOES {
        let emu = Emulator::start(vec![RobotSpec::new(TOKEN).secret(SECRET)]);
        emu.push_fault(TOKEN, fault.clone());
        let out = env(&emu, "").run(&["send", "hello"], b"");
        let what = format!("send with {fault:?}");
        assert!(out.code == 0 || out.code == 1, "{what}: {out:?}");
        assert_eq!(emu.requests().len(), 1, "{what}");
        assert_nothing_leaks(&emu, &out, &what);
        // The echo did reach the output, redacted (the test is not vacuous).
        if matches!(fault, Fault::EchoPage(200) | Fault::EchoErrcode(_)) {
            let all = format!("{}{}", out.stdout, out.stderr);
            assert!(all.contains("access_token=***"), "{what}: {all}");
        }
        // Server text is quoted on one line: no stderr line holds the page's other lines.
        assert!(!out.stderr.contains("</body>\r"), "{what}: {}", out.stderr);
        assert!(!out.stderr.contains('\u{1b}'), "{what}: {}", out.stderr);
    }
}

#[test]
fn a_run_through_every_retryable_echo_prints_no_secret_at_trace_level() {
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN).secret(SECRET)]);
    for fault in [
        Fault::EchoPage(200),
        Fault::EchoPage(500),
        Fault::EchoErrcode(-1),
        Fault::EchoHeaders(200),
        Fault::EchoHeaders(502),
        Fault::EchoErrcode(130101),
        Fault::EchoErrcode(460101),
    ] {
        emu.push_fault(TOKEN, fault);
    }
    let out = env(&emu, "").run(&["run"], b"ERROR a\nERROR b\nok\n");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(emu.posts().len(), 1);
    assert_eq!(emu.requests().len(), 8);
    assert!(out.stderr.contains("will retry"), "{}", out.stderr);
    assert!(out.stderr.contains("throttled"), "{}", out.stderr);
    assert_nothing_leaks(&emu, &out, "run with retryable echoes");
}

#[test]
fn permanent_echoes_reported_at_exit_print_no_secret() {
    for fault in [
        Fault::EchoErrcode(310000),
        Fault::EchoErrcode(400102),
        Fault::EchoErrcode(90030),
        Fault::EchoPage(403),
        Fault::EchoHeaders(404),
        Fault::EchoRedirect(302),
    ] {
        let emu = Emulator::start(vec![RobotSpec::new(TOKEN).secret(SECRET)]);
        for _ in 0..4 {
            emu.push_fault(TOKEN, fault.clone());
        }
        let out = env(&emu, "").run(&["run"], b"ERROR 1\nERROR 2\n");
        let what = format!("run with {fault:?}");
        assert_eq!(out.code, 1, "{what}: {}", out.stderr);
        assert!(
            out.stderr.contains("2 matching line(s) not delivered"),
            "{what}: {}",
            out.stderr
        );
        assert_nothing_leaks(&emu, &out, &what);
    }
}

#[test]
fn a_permanent_echo_while_input_flows_is_said_once_without_secrets() {
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN).secret(SECRET)]);
    emu.push_fault(TOKEN, Fault::EchoErrcode(310000));
    let env = env(&emu, "");
    let mut run = env.start(&["run"]);
    let mut stdin = run.stdin();
    // Input is still open when the robot is checked again (200ms recheck), so it delivers.
    for i in 0..8 {
        writeln!(stdin, "{i} ERROR x").unwrap();
        stdin.flush().unwrap();
        if i == 0 {
            emu.wait_for_requests(1, Duration::from_secs(60));
        }
    }
    emu.wait_for_posts(1, Duration::from_secs(60));
    drop(stdin);
    let out = run.wait();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("310000"), "{}", out.stderr);
    assert_nothing_leaks(&emu, &out, "permanent echo while input flows");
}

#[test]
fn proxy_credentials_never_appear() {
    let emu = Emulator::start(vec![RobotSpec::new(TOKEN).secret(SECRET)]);
    // A proxy that refuses connections: the transport error must not show its credentials.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let extra = format!("    proxy: \"http://puser:ppass4242@127.0.0.1:{port}\"");
    let out = env(&emu, &extra).run(&["send", "hello"], b"");
    assert_eq!(out.code, 1, "{}", out.stderr);
    for leak in ["ppass4242", "puser", TOKEN, SECRET] {
        assert!(!out.stderr.contains(leak), "{leak}: {}", out.stderr);
        assert!(!out.stdout.contains(leak), "{leak}: {}", out.stdout);
    }
}
