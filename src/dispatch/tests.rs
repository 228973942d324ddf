//! The dispatcher on tokio's paused clock, writing dry-run lines.

use std::sync::Arc;
use std::time::SystemTime;

use super::*;
use crate::alert::{Alert, AlertKind, Sample};

fn alert(rule: usize, count: u64) -> Routed {
    let alert = Alert {
        rule,
        rule_name: Arc::from(format!("rule-{rule}")),
        count,
        first: SystemTime::now(),
        last: SystemTime::now(),
        source: "-".into(),
        other_sources: Vec::new(),
        samples: vec![Sample::from_line(b"line")],
        silenced: 0,
        max_lines: 3,
        group: None,
        kind: AlertKind::Hits,
        captures: Vec::new(),
        style: Arc::new(crate::style::Style::default()),
        route: None,
    };
    Routed {
        alert,
        robot: None,
        holds: Vec::new(),
    }
}

fn config() -> DispatchConfig {
    DispatchConfig::new(None, "h", Duration::from_secs(10))
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);
impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_storm_arriving_together_becomes_one_digest_with_exact_counts() {
    let out = Shared::default();
    let (tx, rx) = mpsc::channel(4);
    let d = Dispatcher::new(
        config(),
        Sink::DryRun(Arc::new(Mutex::new(out.clone()))),
        rx,
        None,
    );
    let task = tokio::spawn(d.run());
    tx.send((0..200).map(|r| alert(r, r as u64 + 1)).collect())
        .await
        .unwrap();
    drop(tx);
    let report = task.await.unwrap();
    let total: u64 = (1..=200).sum();
    assert_eq!(report.events_sent, total);
    assert_eq!(report.events_failed_total(), 0);
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() <= 3, "{} messages", lines.len());
    let counted: u64 = lines.iter().map(|l| l["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, total);
    assert_eq!(lines[0]["robot"], serde_json::Value::Null);
    assert_eq!(lines[0]["body"]["msgtype"], "text");
}

#[tokio::test(start_paused = true)]
async fn alerts_of_one_rule_merge_while_waiting() {
    let (tx, rx) = mpsc::channel(4);
    let out = Shared::default();
    let mut d = Dispatcher::new(config(), Sink::DryRun(Arc::new(Mutex::new(out))), rx, None);
    d.merge(vec![alert(1, 5), alert(2, 1)]);
    d.merge(vec![alert(1, 7)]);
    assert_eq!(d.pending.len(), 2);
    assert_eq!(d.pending[0].count, 12);
    drop(tx);
}

/// Records each write (one dry-run line) with the time on tokio's clock.
#[derive(Clone, Default)]
struct Timed(Arc<Mutex<Vec<(Instant, String)>>>);
impl Write for Timed {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(b).into_owned();
        self.0.lock().unwrap().push((Instant::now(), text));
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The budget in the dispatcher, on tokio's paused clock through a whole November: a budget
/// of 30 (3 kept for critical rules), storms of 60 rules an hour for days, quiet days, and
/// critical alerts in the middle of storms; the input ends on December 1st.
#[tokio::test(start_paused = true)]
async fn on_the_simulated_clock_a_month_of_storms_keeps_to_the_budget_and_loses_nothing() {
    use crate::budget::{Budget, Ledger, Month};
    use crate::config::{Quota, Reserve};
    use crate::style::Style;

    let nov = Month {
        year: 2026,
        month: 11,
    };
    let t0 = Instant::now();
    let wall0 = nov.start();
    let wall: WallClock = Arc::new(move || wall0 + (Instant::now() - t0));
    let quota = Quota {
        monthly: 30,
        reserve: Reserve::Count(3),
        robot_monthly: Vec::new(),
    };
    let budget = SharedBudget::new(
        Budget::new(&quota, &["ops".to_owned()], Ledger::default()),
        None,
    );
    let out = Timed::default();
    let (tx, rx) = mpsc::channel(64);
    let d = Dispatcher::new(
        config(),
        Sink::DryRun(Arc::new(Mutex::new(out.clone()))),
        rx,
        None,
    )
    .with_budget(budget.clone(), 0)
    .with_wall_clock(wall.clone());
    let task = tokio::spawn(d.run());

    let critical = Arc::new(Style {
        severity: Some(Severity::Critical),
        ..Style::default()
    });
    let storm_days = [0, 1, 2, 10, 11, 20];
    let critical_at = [(1, 12), (5, 3), (11, 12), (20, 12)];
    let (mut generated, mut critical_sent_at) = (0u64, Vec::new());
    for hour in 0..30 * 24 {
        let (day, h) = (hour / 24, hour % 24);
        let mut batch = Vec::new();
        if storm_days.contains(&day) {
            batch.extend((0..60).map(|r| alert(r, 1 + (r as u64 % 3))));
        } else if h % 6 == 0 {
            batch.push(alert(0, 1));
        }
        if critical_at.contains(&(day, h)) {
            let mut a = alert(100, 1);
            a.style = critical.clone();
            batch.push(a);
            critical_sent_at.push(Instant::now());
        }
        generated += batch.iter().map(|a| a.count).sum::<u64>();
        tx.send(batch).await.unwrap();
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    // The month turns; then the input ends.
    assert!(wall() >= nov.end());
    tokio::time::sleep(Duration::from_secs(3600)).await;
    drop(tx);
    let report = task.await.unwrap();

    let lines = out.0.lock().unwrap().clone();
    let parsed: Vec<(Instant, serde_json::Value)> = lines
        .iter()
        .map(|(t, l)| (*t, serde_json::from_str(l).unwrap()))
        .collect();
    let november: Vec<&(Instant, serde_json::Value)> = parsed
        .iter()
        .filter(|(t, _)| wall0 + (*t - t0) < nov.end())
        .collect();
    assert!(
        november.len() <= 30,
        "{} messages in November",
        november.len()
    );
    let ordinary = november
        .iter()
        .filter(|(_, v)| !v["rules"].as_array().unwrap().contains(&"rule-100".into()))
        .count();
    assert!(
        ordinary <= 27,
        "ordinary rules ate into the reserve: {ordinary}"
    );
    // Never ahead of the pace by more than a day's share (1) and the reserve (3).
    for (i, (t, _)) in november.iter().enumerate() {
        let e = nov.elapsed_ms(wall0 + (*t - t0)) as u128;
        let pace = (27 * e / nov.len_ms() as u128) as usize;
        assert!(i < pace + 1 + 3, "message {} ran ahead of the pace", i + 1);
    }
    // Every critical alert went out at the moment it arrived, storm or not.
    for at in &critical_sent_at {
        assert!(
            parsed.iter().any(
                |(t, v)| t == at && v["rules"].as_array().unwrap().contains(&"rule-100".into())
            ),
            "a critical alert waited"
        );
    }
    // Every count is in some message, and the storms were merged into few.
    let counted: u64 = parsed
        .iter()
        .map(|(_, v)| v["count"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, generated);
    assert_eq!(report.events_sent, generated);
    assert_eq!(report.events_failed_total(), 0);
    assert!(
        november.len() >= 20,
        "the budget was used: {}",
        november.len()
    );
    // December's ledger holds only December's messages.
    let status = budget.status(wall());
    assert_eq!(status.month, "2026-12");
    assert_eq!(status.used as usize, parsed.len() - november.len());
}
