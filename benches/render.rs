//! `dingtalk::message::render`: rendering alerts into a body of at most 20,000 bytes.
//!
//! - `short`: one alert, 20 ordinary log lines (fits as is);
//! - `many_long`: one alert, 1,000 lines of 8 KiB (lines cut, then dropped);
//! - `cjk`: one alert, 100 lines of Chinese text, 3 bytes a character (cut on char boundaries);
//! - `merged`: 50 alerts of 20 lines each merged into one message (the rate-limited storm).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use dingtail::alert::{Alert, AlertKind, SAMPLE_MAX_BYTES, Sample};
use dingtail::dingtalk::message::render;
use dingtail::dingtalk::{MAX_BODY_BYTES, RenderContext};
use dingtail::style::Style;

const NGINX: &str = r#"10.2.7.201 - - [29/Nov/2026:10:44:54 +0800] "GET /api/v1/payments/charge HTTP/1.1" 502 324 "-" "okhttp/4.12.0" 3.021"#;
const CJK: &str =
    "订单服务调用支付网关超时，已重试三次仍失败，请值班同学检查网关状态与数据库连接池；";

fn alert(rule: usize, lines: Vec<String>, count: u64) -> Alert {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_830_000);
    Alert {
        rule,
        rule_name: Arc::from(format!("r{rule:04}-nginx-5xx").as_str()),
        group: None,
        kind: AlertKind::Hits,
        count,
        first: t,
        last: t + Duration::from_secs(9),
        source: Arc::from("/var/log/nginx/access.log"),
        other_sources: Vec::new(),
        max_lines: lines.len(),
        samples: lines
            .into_iter()
            .map(|l| Sample::from_line(l.as_bytes()))
            .collect(),
        captures: Vec::new(),
        style: Arc::new(Style::default()),
        route: None,
        silenced: 0,
    }
}

fn render_messages(c: &mut Criterion) {
    let long_line = {
        let mut s = NGINX.repeat(SAMPLE_MAX_BYTES / NGINX.len() + 1);
        s.truncate(SAMPLE_MAX_BYTES);
        s
    };
    let cases: Vec<(&str, Vec<Alert>)> = vec![
        ("short", vec![alert(1, vec![NGINX.to_owned(); 20], 57)]),
        ("many_long", vec![alert(1, vec![long_line; 1000], 250_000)]),
        ("cjk", vec![alert(1, vec![CJK.repeat(25); 100], 100)]),
        (
            "merged",
            (0..50)
                .map(|r| alert(r, vec![NGINX.to_owned(); 20], 1000 + r as u64))
                .collect(),
        ),
    ];
    let ctx = RenderContext {
        host: "web-01",
        keyword: Some("告警"),
        max_body: MAX_BODY_BYTES,
        zone: dingtail::timezone::Zone::parse("Asia/Shanghai").expect("known zone"),
        hosts: None,
    };
    let mut group = c.benchmark_group("render");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (name, alerts) in &cases {
        group.bench_with_input(BenchmarkId::from_parameter(name), alerts, |b, alerts| {
            b.iter(|| {
                let (msg, used) = render(black_box(alerts), &ctx, "uuid".to_owned());
                assert!(msg.body.len() <= MAX_BODY_BYTES);
                used
            })
        });
    }
    group.finish();
}

criterion_group!(benches, render_messages);
criterion_main!(benches);
