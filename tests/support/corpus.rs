//! A deterministic mixed log for tests and benchmarks, generated in Rust (no python): nginx
//! access lines, Spring Boot lines with stack traces, syslog (sshd, kernel, systemd) and
//! Kubernetes-style JSON lines, in the proportions and with the events the benchmark rule sets
//! (`bench/patterns/`) look for, so a few percent of lines are hits. A smaller cousin of
//! `bench/gen_corpus.py` (same families, simpler vocabulary): the full-size benchmark keeps the
//! Python generator, CI only needs realistic lines fast.

#![allow(dead_code)] // each test binary uses a part of it

/// About `bytes` bytes of log (whole lines), from `seed`.
pub fn generate(bytes: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut out = Vec::with_capacity(bytes + 4096);
    let mut t: u64 = 1_795_830_000;
    while out.len() < bytes {
        t += u64::from(rng.u8(..3));
        let line = match rng.u32(..100) {
            0..40 => nginx(&mut rng, t),
            40..65 => spring(&mut rng, t),
            65..82 => syslog(&mut rng, t),
            _ => json(&mut rng, t),
        };
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out
}

const USERS: &[&str] = &["deploy", "ubuntu", "jenkins", "alice", "bob", "wang.lei"];
const BAD_USERS: &[&str] = &["admin", "root", "test", "oracle", "tomcat", "pi"];
const HOSTS: &[&str] = &["web-01", "web-02", "web-07", "app-03", "db-01", "lb-01"];
const PATHS: &[&str] = &[
    "/",
    "/api/v1/orders/1234",
    "/api/v1/cart/items/77",
    "/api/v1/payments/charge",
    "/static/app.js",
    "/products",
    "/healthz",
    "/api/v1/orders/99/refund",
];
const SCANS: &[&str] = &["/wp-login.php", "/.env", "/.git/config", "/phpmyadmin"];
const AGENTS: &[&str] = &[
    "Mozilla/5.0",
    "curl/8.5.0",
    "okhttp/4.12",
    "kube-probe/1.29",
];
const SCANNERS: &[&str] = &["sqlmap/1.7", "Nikto/2.5", "masscan/1.3"];
const EXCEPTIONS: &[&str] = &[
    "java.lang.NullPointerException",
    "java.lang.IllegalStateException",
    "org.springframework.dao.DataAccessResourceFailureException",
    "java.net.SocketTimeoutException",
    "java.lang.OutOfMemoryError",
];
const LOGGERS: &[&str] = &["payments.http", "pricing.http", "orders.db", "cart.cache"];

fn pick<'a>(rng: &mut fastrand::Rng, items: &[&'a str]) -> &'a str {
    items[rng.usize(..items.len())]
}

fn ip(rng: &mut fastrand::Rng) -> String {
    format!("10.{}.{}.{}", rng.u8(..16), rng.u8(..), rng.u8(1..255))
}

fn clock(t: u64) -> (u64, u64, u64) {
    ((t / 3600) % 24, (t / 60) % 60, t % 60)
}

fn nginx(rng: &mut fastrand::Rng, t: u64) -> String {
    let (h, m, s) = clock(t);
    let status = match rng.u32(..1000) {
        0..8 => 500 + rng.u32(..5),
        8..12 => 429,
        12..14 => 499,
        14..80 => 404,
        80..150 => 302,
        _ => 200,
    };
    let (method, path) = if rng.u32(..200) == 0 {
        ("GET", pick(rng, SCANS))
    } else {
        (
            ["GET", "GET", "POST", "PUT"][rng.usize(..4)],
            pick(rng, PATHS),
        )
    };
    format!(
        "{} - - [28/Nov/2026:{h:02}:{m:02}:{s:02} +0800] \"{method} {path} HTTP/1.{}\" {status} {} \"-\" \"{}\"",
        ip(rng),
        rng.u8(..2),
        rng.u32(100..40000),
        if rng.u32(..500) == 0 {
            pick(rng, SCANNERS)
        } else {
            pick(rng, AGENTS)
        },
    )
}

fn spring(rng: &mut fastrand::Rng, t: u64) -> String {
    let (h, m, s) = clock(t);
    let ts = format!("2026-11-28 {h:02}:{m:02}:{s:02}.{:03}", rng.u32(..1000));
    match rng.u32(..100) {
        0..3 => {
            let exc = pick(rng, EXCEPTIONS);
            format!(
                "{ts} ERROR 1 --- [nio-8080-exec-{}] o.a.c.c.C.[dispatcherServlet] : Request failed\n{exc}: boom\n\tat com.shop.api.OrderController.create(OrderController.java:{})\n\tat java.base/java.lang.Thread.run(Thread.java:1583)",
                rng.u8(1..20),
                rng.u16(10..400),
            )
        }
        3..5 => format!(
            "{ts}  WARN 1 --- [pool-2-thread-1] com.zaxxer.hikari.pool.HikariPool : HikariPool-1 - Thread starvation or clock leap detected"
        ),
        5..6 => format!(
            "{ts} ERROR 1 --- [main] o.s.b.SpringApplication : Connection refused: db-01/10.0.0.5:5432"
        ),
        _ => format!(
            "{ts}  INFO 1 --- [nio-8080-exec-{}] com.shop.api.OrderController : order {} created for {}",
            rng.u8(1..20),
            rng.u32(100_000..999_999),
            pick(rng, USERS),
        ),
    }
}

fn syslog(rng: &mut fastrand::Rng, t: u64) -> String {
    let (h, m, s) = clock(t);
    let host = pick(rng, HOSTS);
    let head = format!("Nov 28 {h:02}:{m:02}:{s:02} {host}");
    match rng.u32(..100) {
        0..6 => format!(
            "{head} sshd[{}]: Failed password for {}{} from {} port {} ssh2",
            rng.u16(1000..60000),
            if rng.bool() { "invalid user " } else { "" },
            pick(rng, BAD_USERS),
            ip(rng),
            rng.u16(1024..65535),
        ),
        6..30 => format!(
            "{head} sshd[{}]: Accepted publickey for {} from {} port {} ssh2",
            rng.u16(1000..60000),
            pick(rng, USERS),
            ip(rng),
            rng.u16(1024..65535),
        ),
        30..31 => format!(
            "{head} kernel: [{}.{:06}] Out of memory: Killed process {} (java)",
            rng.u32(1000..99999),
            rng.u32(..1_000_000),
            rng.u16(100..30000),
        ),
        31..32 => format!(
            "{head} kernel: [{}.{:06}] app[{}]: segfault at 0000000000000010 ip 00007f3a sp 00007ffd error 4",
            rng.u32(1000..99999),
            rng.u32(..1_000_000),
            rng.u16(100..30000),
        ),
        32..34 => format!("{head} systemd[1]: nginx.service: Failed with result 'exit-code'."),
        34..60 => format!(
            "{head} CRON[{}]: (root) CMD (/usr/local/bin/backup.sh)",
            rng.u16(1000..60000)
        ),
        _ => format!(
            "{head} systemd[1]: Started Session {} of User {}.",
            rng.u32(1..9999),
            pick(rng, USERS)
        ),
    }
}

fn json(rng: &mut fastrand::Rng, t: u64) -> String {
    let (h, m, s) = clock(t);
    let level = match rng.u32(..100) {
        0..3 => "error",
        3..8 => "warn",
        8..40 => "debug",
        _ => "info",
    };
    format!(
        "{{\"ts\":\"2026-11-28T{h:02}:{m:02}:{s:02}.{:03}Z\",\"level\":\"{level}\",\"logger\":\"{}\",\"msg\":\"request handled\",\"trace_id\":\"{:032x}\",\"latency_ms\":{}}}",
        rng.u32(..1000),
        pick(rng, LOGGERS),
        rng.u128(..),
        rng.u32(1..3000),
    )
}
