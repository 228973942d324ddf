//! Each rule pack in rules/ runs over a realistic sample with `dingtail test --replay`, and the
//! messages it would send are checked: counts, groups, thresholds, cooldowns, absence.

use std::path::Path;

use crate::support::env::{TestEnv, header_counts};

/// Runs a pack over `log` on the simulated clock; returns each message's text.
fn replay(pack: &str, log: &str) -> (Vec<String>, String) {
    let env = TestEnv::new();
    let path = env.dir().join("sample.log");
    std::fs::write(&path, log).unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("rules")
        .join(pack);
    let out = env.run(
        &[
            "test",
            "-c",
            config.to_str().unwrap(),
            "--replay",
            path.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut messages: Vec<String> = Vec::new();
    for line in out.stdout.lines() {
        if line.starts_with("--- ") {
            messages.push(String::new());
        } else if line.starts_with("=== ") {
            break;
        } else if let Some(m) = messages.last_mut() {
            m.push_str(line);
            m.push('\n');
        }
    }
    (messages, out.stdout)
}

fn headers(messages: &[String]) -> Vec<(String, u64)> {
    messages.iter().flat_map(|m| header_counts(m)).collect()
}

#[test]
fn nginx_access_pack() {
    let mut log = String::new();
    // 10:00:00 – 10:00:09: a few 200s and two 500s (below the 5-in-a-minute threshold)
    for s in 0..10 {
        let status = if s % 5 == 0 { 500 } else { 200 };
        log.push_str(&format!(
            "10.1.2.{s} - - [29/Nov/2026:10:00:{s:02} +0800] \"GET /api/cart HTTP/1.1\" {status} 512 \"-\" \"curl/8\"\n"
        ));
    }
    // 10:05: the upstream goes down: 30 502s in 30 s, health checks excluded
    for s in 0..30 {
        log.push_str(&format!(
            "10.1.3.{s} - - [29/Nov/2026:10:05:{s:02} +0800] \"POST /api/pay HTTP/1.1\" 502 157 \"-\" \"app/2\"\n"
        ));
        log.push_str(&format!(
            "10.0.0.1 - - [29/Nov/2026:10:05:{s:02} +0800] \"GET /healthz HTTP/1.1\" 503 0 \"-\" \"kube-probe\"\n"
        ));
    }
    // 10:20: quiet, a normal request
    log.push_str(
        "10.1.2.1 - - [29/Nov/2026:10:20:00 +0800] \"GET / HTTP/1.1\" 200 1 \"-\" \"x\"\n",
    );
    let (messages, all) = replay("nginx-access.yaml", &log);
    assert_eq!(
        headers(&messages),
        [("nginx-5xx".to_owned(), 30)],
        "the two early 500s stay below the threshold: {all}"
    );
    let first = &messages[0];
    assert!(first.contains("· critical · status=502"), "{first}");
    assert!(
        first.contains("HTTP 502: 30 requests, last POST /api/pay"),
        "{first}"
    );
    assert!(!first.contains("healthz"), "{first}");
    // 5 minutes after the last 502 (its cooldown ended with nothing new), recovered
    assert!(
        messages[1].starts_with("【nginx-5xx】recovered test-host · critical · status=502"),
        "{all}"
    );
    assert!(
        all.contains("below threshold at the end, not sent: nginx-5xx 2"),
        "{all}"
    );
}

#[test]
fn nginx_error_pack() {
    let mut log = String::new();
    for s in 0..4 {
        log.push_str(&format!(
            "2026/11/29 10:00:{s:02} [error] 31#31: *{s} upstream timed out (110: Connection timed out) while reading response header from upstream, client: 10.0.0.{s}, server: shop, request: \"GET /api HTTP/1.1\", upstream: \"http://10.2.0.7:8080/api\", host: \"shop\"\n"
        ));
    }
    log.push_str("2026/11/29 10:01:00 [alert] 30#30: worker process 31 exited on signal 9\n");
    let (messages, all) = replay("nginx-error.yaml", &log);
    let h = headers(&messages);
    assert!(h.contains(&("nginx-upstream".to_owned(), 4)), "{all}");
    assert!(h.contains(&("nginx-fatal".to_owned(), 1)), "{all}");
    assert!(all.contains("upstream=http://10.2.0.7:8080/api"), "{all}");
}

#[test]
fn java_spring_pack() {
    let mut log = String::new();
    for i in 0..12 {
        let logger = if i % 3 == 0 {
            "c.e.shop.PaymentService"
        } else {
            "c.e.shop.CartController"
        };
        log.push_str(&format!(
            "2026-11-29 10:00:{i:02}.120 ERROR 4242 --- [nio-8080-exec-{i}] {logger} : request failed\n"
        ));
        log.push_str(&format!(
            "2026-11-29 10:00:{i:02}.130  INFO 4242 --- [nio-8080-exec-{i}] c.e.shop.Audit : ok\n"
        ));
    }
    log.push_str("java.lang.OutOfMemoryError: Java heap space\n");
    let (messages, all) = replay("java-spring.yaml", &log);
    let mut h = headers(&messages);
    h.sort();
    assert_eq!(
        h,
        [
            ("jvm-oom".to_owned(), 1),
            ("spring-error".to_owned(), 4),
            ("spring-error".to_owned(), 8),
        ],
        "{all}"
    );
    assert!(
        all.contains("8 errors from c.e.shop.CartController"),
        "{all}"
    );
}

#[test]
fn sshd_pack() {
    let mut log = String::new();
    // one attacker: 25 failures over 5 minutes; a user mistyping twice; a root login
    for i in 0..25 {
        let (m, s) = (10 + i * 12 / 60, i * 12 % 60);
        log.push_str(&format!(
            "Dec 10 07:{m:02}:{s:02} web sshd[{}]: Failed password for invalid user admin{i} from 173.234.31.186 port 38926 ssh2\n",
            24000 + i
        ));
        if i == 3 || i == 4 {
            log.push_str(&format!(
                "Dec 10 07:{m:02}:{s:02} web sshd[9]: Failed password for alice from 10.0.0.8 port 5000 ssh2\n"
            ));
        }
    }
    log.push_str(
        "Dec 10 07:20:00 web sshd[77]: Accepted publickey for root from 10.0.0.9 port 5 ssh2\n",
    );
    let (messages, all) = replay("sshd.yaml", &log);
    // The 10th failure within 5 minutes meets the threshold at 07:11:48; the message a window
    // later counts all 14 so far; the cooldown (1h) gathers the other 11, sent at the end.
    let h = headers(&messages);
    assert_eq!(
        h,
        [
            ("ssh-bruteforce".to_owned(), 14),
            ("ssh-root-login".to_owned(), 1),
            ("ssh-bruteforce".to_owned(), 11)
        ],
        "the attacker's hits are all counted; alice's two stay below: {all}"
    );
    assert!(
        all.contains("173.234.31.186 tried 14 passwords, last for user admin13"),
        "{all}"
    );
    assert!(all.contains("root logged in from 10.0.0.9"), "{all}");
    assert!(all.contains("ssh-bruteforce 2"), "{all}");
}

#[test]
fn systemd_kernel_pack() {
    let log = "\
Jun 14 15:16:01 node1 kernel: [123.4] Out of memory: Killed process 4242 (java) total-vm:8000kB\n\
Jun 14 15:16:02 node1 kernel: [124.0] nginx[900]: segfault at 0 ip 000055 sp 00007ff error 4\n\
Jun 14 15:16:03 node1 systemd[1]: shop.service: Failed with result 'exit-code'.\n\
Jun 14 15:16:13 node1 systemd[1]: shop.service: Failed with result 'exit-code'.\n\
Jun 14 15:16:20 node1 kernel: [130.0] Out of memory: Killed process 4300 (java) total-vm:8000kB\n\
Jun 14 15:16:21 node1 kernel: blk_update_request: I/O error, dev sda, sector 1234\n\
Jun 14 15:30:00 node1 CRON[1]: ok\n";
    let (messages, all) = replay("systemd-kernel.yaml", log);
    let mut h = headers(&messages);
    h.sort();
    assert_eq!(
        h,
        [
            ("disk-io-error".to_owned(), 1),
            ("oom-killed".to_owned(), 2),
            ("segfault".to_owned(), 1),
            ("unit-failed".to_owned(), 2),
        ],
        "{all}"
    );
    assert!(
        all.contains("the kernel killed java for memory (2x)"),
        "{all}"
    );
    assert!(all.contains("unit=shop.service"), "{all}");
}

#[test]
fn kubernetes_pack() {
    let mut log = String::new();
    for s in 0..8 {
        log.push_str(&format!(
            "{{\"time\":\"2026-11-29T10:00:{s:02}.000Z\",\"level\":\"error\",\"msg\":\"payment declined\",\"service\":\"pay\"}}\n"
        ));
        log.push_str(&format!(
            "{{\"time\":\"2026-11-29T10:00:{s:02}.500Z\",\"level\":\"info\",\"msg\":\"tick\",\"note\":\"level error is fine here\"}}\n"
        ));
    }
    // the ticks stop; 6 minutes later something else is logged
    log.push_str("{\"time\":\"2026-11-29T10:06:30.000Z\",\"level\":\"info\",\"msg\":\"still here\",\"http\":{\"duration_ms\":12}}\n");
    log.push_str("not json: level=error\n");
    let (messages, all) = replay("kubernetes.yaml", &log);
    assert_eq!(headers(&messages), [("k8s-error".to_owned(), 8)], "{all}");
    assert!(all.contains("· markdown"), "{all}");
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("【worker-stalled】absent test-host · **critical**")),
        "{all}"
    );
}
