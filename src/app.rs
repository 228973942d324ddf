//! Wires the stages with bounded channels and owns shutdown.
//!
//! ```text
//! stdin thread ─raw─▶ gate task ─Chunk─▶ matcher thread ─HitBatch─▶ aggregator task ─Vec<Alert>─▶ dispatcher task per robot
//! ```
//!
//! Only the source end watches for SIGINT/SIGTERM: the gate stops forwarding and drops its
//! sender. Every later stage flushes what it holds and exits when its input channel closes, so end
//! of input and a signal take the same path. A second signal exits at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use crate::aggregate::{Aggregator, Alert};
use crate::config::{Config, RobotId};
use crate::dingtalk::Client;
use crate::dispatch::{DeliveryReport, DispatchConfig, Dispatcher, Sink};
use crate::matcher::{HitBatch, Matcher};
use crate::source::{Chunk, stdin};

/// How `run` behaves, beyond the config.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Print messages instead of sending them.
    pub dry_run: bool,
    /// Copy input to stdout.
    pub tee: bool,
    /// Time allowed to deliver after input ends.
    pub shutdown_timeout: Duration,
    /// This machine's name for message headers.
    pub host: String,
}

/// What a run did: the summary line and the exit status come from this.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// Messages were printed, not sent.
    pub dry_run: bool,
    /// Lines read.
    pub lines: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Lines cut at `max_line_bytes`.
    pub cut_lines: u64,
    /// Matching lines per rule, in config order.
    pub matches: Vec<(String, u64)>,
    /// One report per dispatcher.
    pub deliveries: Vec<DeliveryReport>,
    /// Rules whose threshold was not met by the end of input, with the hits not sent.
    pub held_below_threshold: Vec<(String, u64)>,
}

impl RunReport {
    /// Whether anything matched was not delivered.
    pub fn has_failures(&self) -> bool {
        self.deliveries.iter().any(|d| d.events_failed_total() > 0)
    }

    /// The one-line summary printed at the end.
    pub fn summary(&self) -> String {
        let matches: Vec<String> = self
            .matches
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        let sent: u64 = self.deliveries.iter().map(|d| d.messages_sent).sum();
        let failed: u64 = self.deliveries.iter().map(|d| d.messages_failed).sum();
        let held = if self.held_below_threshold.is_empty() {
            String::new()
        } else {
            let rules: Vec<String> = self
                .held_below_threshold
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            format!("; below threshold, not sent: {}", rules.join(", "))
        };
        format!(
            "dingtail: read {} lines ({} bytes){}; matches: {}; messages: {sent} {}, {failed} failed{held}",
            self.lines,
            self.bytes,
            if self.cut_lines > 0 {
                format!(", {} cut at max_line_bytes", self.cut_lines)
            } else {
                String::new()
            },
            if matches.is_empty() {
                "none".to_owned()
            } else {
                matches.join(", ")
            },
            if self.dry_run { "printed" } else { "sent" },
        )
    }

    /// One line per robot that failed to deliver something: which, how much, why.
    pub fn failures(&self) -> Vec<String> {
        self.deliveries
            .iter()
            .filter(|d| d.events_failed_total() > 0)
            .map(|d| {
                let rules: Vec<String> =
                    d.events_failed.iter().map(|(r, n)| format!("{r} {n}")).collect();
                format!(
                    "dingtail: robot {}: {} message(s) with {} matching line(s) not delivered ({}): {}",
                    d.robot.as_deref().unwrap_or("(none)"),
                    d.messages_failed,
                    d.events_failed_total(),
                    rules.join(", "),
                    d.reasons.join("; "),
                )
            })
            .collect()
    }
}

/// Channel sizes: small, because each item is large (a chunk is up to 256 KiB).
const CHUNKS_IN_FLIGHT: usize = 4;
const BATCHES_IN_FLIGHT: usize = 16;
const ALERT_BATCHES_IN_FLIGHT: usize = 64;

/// Runs the whole pipeline over stdin until end of input (or a signal), then delivers and
/// reports.
pub async fn run(config: Config, opts: RunOptions) -> anyhow::Result<RunReport> {
    let matcher = Matcher::new(&config.rules, config.max_line_bytes)?;
    let dry_run = opts.dry_run || config.robots.is_empty();
    if !opts.dry_run && config.robots.is_empty() {
        eprintln!(
            "dingtail: no robot in {}; printing the messages that would be sent (as --dry-run)",
            config.origin
        );
    }
    if opts.tee && dry_run {
        anyhow::bail!("--tee cannot be used when messages are printed to stdout (dry-run)");
    }

    // Dispatchers: one per robot, or one for "no robot" when the config has none. All channels
    // exist before any dispatcher starts, so each can hold its fallback's sender.
    let stdout: Arc<Mutex<dyn std::io::Write + Send>> = Arc::new(Mutex::new(std::io::stdout()));
    let targets: Vec<Option<RobotId>> = if config.robots.is_empty() {
        vec![None]
    } else {
        (0..config.robots.len()).map(Some).collect()
    };
    let mut routes: HashMap<Option<RobotId>, mpsc::Sender<Vec<Alert>>> = HashMap::new();
    let mut receivers = Vec::new();
    for &target in &targets {
        let (alerts_tx, alerts_rx) = mpsc::channel(ALERT_BATCHES_IN_FLIGHT);
        routes.insert(target, alerts_tx);
        receivers.push(alerts_rx);
    }
    let mut dispatchers = Vec::new();
    for (target, alerts_rx) in targets.into_iter().zip(receivers) {
        let robot = target.map(|id| &config.robots[id]);
        let sink = match robot {
            Some(r) if !dry_run => Sink::Post {
                client: Client::for_robot(r).with_context(|| format!("robot {}", r.name))?,
                robot: Box::new(r.clone()),
            },
            _ => Sink::DryRun(stdout.clone()),
        };
        let fallback_tx = robot
            .and_then(|r| r.fallback)
            .filter(|_| !dry_run)
            .and_then(|f| routes.get(&Some(f)).cloned());
        let cfg = DispatchConfig::new(robot, &opts.host, opts.shutdown_timeout);
        let dispatcher = Dispatcher::new(cfg, sink, alerts_rx, fallback_tx);
        dispatchers.push(tokio::spawn(dispatcher.run()));
    }

    // Source: stdin thread → gate (watches signals) → matcher.
    let (raw_tx, raw_rx) = mpsc::channel::<Chunk>(CHUNKS_IN_FLIGHT);
    let (chunk_tx, chunk_rx) = mpsc::channel::<Chunk>(CHUNKS_IN_FLIGHT);
    let reader = stdin::spawn(raw_tx, config.max_line_bytes, opts.tee);
    let gate = tokio::spawn(gate(raw_rx, chunk_tx));

    // Matcher thread: synchronous, so network waits never slow matching.
    let (hit_tx, hit_rx) = mpsc::channel::<HitBatch>(BATCHES_IN_FLIGHT);
    let rule_count = config.rules.len();
    let matcher_thread = std::thread::Builder::new()
        .name("matcher".into())
        .spawn(move || match_all(&matcher, chunk_rx, hit_tx, rule_count))
        .context("cannot start the matcher thread")?;

    let aggregator = tokio::spawn(aggregate(
        Aggregator::new(&config.rules, Instant::now(), std::time::SystemTime::now()),
        hit_rx,
        routes,
    ));

    let held = aggregator.await.context("aggregator task")?;
    let mut deliveries = Vec::new();
    for d in dispatchers {
        deliveries.push(d.await.context("dispatcher task")?);
    }
    gate.await.context("gate task")?;
    let (lines, bytes, per_rule) = matcher_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the matcher thread panicked"))?;
    // The reader has finished unless a signal stopped us while it waits for input; then it is
    // left behind, and the process exits.
    let cut_lines = if reader.is_finished() {
        match reader.join() {
            Ok(Ok(stats)) => stats.cut_lines,
            Ok(Err(e)) => return Err(e).context("cannot read stdin"),
            Err(_) => anyhow::bail!("the stdin thread panicked"),
        }
    } else {
        0
    };
    Ok(RunReport {
        dry_run,
        lines,
        bytes,
        cut_lines,
        matches: config
            .rules
            .iter()
            .map(|r| r.name.clone())
            .zip(per_rule)
            .collect(),
        deliveries,
        held_below_threshold: config
            .rules
            .iter()
            .map(|r| r.name.clone())
            .zip(held)
            .filter(|(_, n)| *n > 0)
            .collect(),
    })
}

/// Forwards chunks until the source ends or a shutdown signal arrives.
async fn gate(mut raw_rx: mpsc::Receiver<Chunk>, chunk_tx: mpsc::Sender<Chunk>) {
    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            chunk = raw_rx.recv() => match chunk {
                Some(c) => if chunk_tx.send(c).await.is_err() { return },
                None => return,
            },
            () = &mut signal => {
                tracing::info!("shutdown requested: flushing and delivering what is pending (again to exit at once)");
                tokio::spawn(async {
                    shutdown_signal().await;
                    eprintln!("dingtail: second signal, exiting without delivering");
                    std::process::exit(130);
                });
                return;
            }
        }
    }
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// The matcher thread's loop; returns lines, bytes and matching lines per rule.
fn match_all(
    matcher: &Matcher,
    mut chunk_rx: mpsc::Receiver<Chunk>,
    hit_tx: mpsc::Sender<HitBatch>,
    rule_count: usize,
) -> (u64, u64, Vec<u64>) {
    let (mut lines, mut bytes) = (0, 0);
    let mut per_rule = vec![0u64; rule_count];
    while let Some(chunk) = chunk_rx.blocking_recv() {
        let batch = matcher.match_chunk(&chunk);
        lines += batch.lines;
        bytes += batch.bytes;
        for hit in &batch.hits {
            per_rule[hit.rule] += 1;
        }
        if hit_tx.blocking_send(batch).is_err() {
            break;
        }
    }
    (lines, bytes, per_rule)
}

/// The aggregator task: counts hits, closes windows on time, routes alerts to dispatchers; on end
/// of input closes every window and lets the dispatchers finish.
async fn aggregate(
    mut agg: Aggregator,
    mut hit_rx: mpsc::Receiver<HitBatch>,
    routes: HashMap<Option<RobotId>, mpsc::Sender<Vec<Alert>>>,
) -> Vec<u64> {
    loop {
        let deadline = agg.next_deadline();
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        tokio::select! {
            batch = hit_rx.recv() => match batch {
                Some(b) => route(agg.add(&b, Instant::now()), &routes).await,
                None => break,
            },
            () = sleep_until(deadline.unwrap_or(far)), if deadline.is_some() => {
                route(agg.expire(Instant::now()), &routes).await;
            }
        }
    }
    route(agg.flush(Instant::now()), &routes).await;
    agg.held_below_threshold().to_vec()
}

/// Sends alerts to their robots' dispatchers, one batch per robot, so alerts closed together
/// can be merged into one message.
async fn route(alerts: Vec<Alert>, routes: &HashMap<Option<RobotId>, mpsc::Sender<Vec<Alert>>>) {
    let mut by_robot: HashMap<Option<RobotId>, Vec<Alert>> = HashMap::new();
    for a in alerts {
        by_robot.entry(a.robot).or_default().push(a);
    }
    for (robot, alerts) in by_robot {
        let Some(tx) = routes.get(&robot) else {
            tracing::error!(?robot, "no dispatcher for robot (a dingtail bug)");
            continue;
        };
        if tx.send(alerts).await.is_err() {
            tracing::error!(?robot, "dispatcher stopped early (a dingtail bug)");
        }
    }
}
