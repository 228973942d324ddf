//! Wires the stages with bounded channels and owns shutdown.
//!
//! ```text
//! stdin thread ─raw─▶ gate task ─Chunk─▶ matcher thread ─HitBatch─▶ aggregator task ─Vec<Routed>─▶ dispatcher task per robot
//! ```
//!
//! Only the source end watches for SIGINT/SIGTERM: the gate stops forwarding and drops its
//! sender. Every later stage flushes what it holds and exits when its input channel closes, so end
//! of input and a signal take the same path. A second signal exits at once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use crate::aggregate::{Aggregator, Routed};
use crate::budget::ledger_file::LedgerFile;
use crate::budget::{SharedBudget, Status};
use crate::config::{Config, RobotId};
use crate::dingtalk::Client;
use crate::dispatch::{DeliveryReport, DispatchConfig, Dispatcher, Sink};
use crate::hush::Hush;
use crate::matcher::Matcher;
use crate::reload::{self, DispatcherFactory, Feed, Fleet, Matched};
use crate::source::checkpoint::{self, Event, Keeper, Store};
use crate::source::tail::{self, Input, Start, TailConfig};
use crate::source::{Chunk, Mark, stdin};

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
    /// Files and globs to follow, beyond the config's `inputs`; with neither, stdin is read.
    pub paths: Vec<String>,
    /// Read files present at start from byte 0, ignoring checkpoints.
    pub from_beginning: bool,
    /// Read files to their current end and stop, instead of following them.
    pub once: bool,
    /// `--state-dir`: where the checkpoint file lives (see [`checkpoint::state_dir`]).
    pub state_dir: Option<PathBuf>,
    /// How dry-run messages are printed: JSON lines, or for people (see [`crate::pretty`]).
    pub presentation: crate::pretty::Presentation,
    /// `--listen`: serve metrics and probes here (overrides the config's `listen:`).
    pub listen: Option<std::net::SocketAddr>,
    /// The config file, which SIGHUP reloads (`None`: the built-in rules).
    pub config_path: Option<PathBuf>,
    /// `--watch-config`: reload when the config file changes, too.
    pub watch_config: bool,
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
    /// Hits a silence or mute window covered, per rule (counted, not sent).
    pub silenced: Vec<(String, u64)>,
    /// The monthly budget after the run (`None` in dry-run).
    pub budget: Option<Status>,
}

impl RunReport {
    /// Whether any message (of any kind: hits, "absent", "recovered", "back") was not
    /// delivered.
    pub fn has_failures(&self) -> bool {
        self.deliveries
            .iter()
            .any(|d| d.messages_failed > 0 || d.events_failed_total() > 0)
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
        let held = if self.silenced.is_empty() {
            held
        } else {
            let rules: Vec<String> = self
                .silenced
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            format!("{held}; silenced, not sent: {}", rules.join(", "))
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
            .filter(|d| d.messages_failed > 0 || d.events_failed_total() > 0)
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

/// Where the lines come from, and what the checkpoint keeper needs while they flow.
enum Source {
    Stdin(std::thread::JoinHandle<std::io::Result<stdin::StdinStats>>),
    Files {
        tailer: std::thread::JoinHandle<tail::TailStats>,
        keeper: tokio::task::JoinHandle<()>,
        finish_tx: tokio::sync::oneshot::Sender<()>,
    },
}

/// Runs the whole pipeline over stdin, or over followed files, until end of input (or a
/// signal), then delivers and reports.
pub async fn run(config: Config, opts: RunOptions) -> anyhow::Result<RunReport> {
    // Handlers first: a signal that arrives while files are being taken up must be a clean
    // stop (checkpoints written), not the default action (killed).
    let signals = Signals::install();
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
    let mut ops =
        crate::operate::Operate::start(&config, opts.state_dir.as_deref(), opts.listen).await?;
    let inputs: Vec<Input> = config
        .inputs
        .iter()
        .map(|i| Input {
            pattern: i.path.clone(),
            multiline: i.multiline.clone(),
        })
        .chain(opts.paths.iter().map(|p| Input {
            pattern: p.clone(),
            multiline: None,
        }))
        .collect();
    let files = !inputs.is_empty();
    if opts.tee && files {
        anyhow::bail!("--tee copies standard input; it cannot be used when following files");
    }
    // The checkpoint keeper hears from the tailer and the aggregator (events) and from the
    // dispatchers (settled alerts); see `source::checkpoint`.
    let (events_tx, events_rx) = mpsc::unbounded_channel::<Event>();
    let (settled_tx, settled_rx) = mpsc::unbounded_channel::<Vec<Mark>>();

    // Dispatchers: one per robot, or one for "no robot" when the config has none. All channels
    // exist before any dispatcher starts, so each can hold its fallback's sender.
    let stdout = crate::pretty::dry_run_stdout(opts.presentation);
    let targets: Vec<Option<RobotId>> = if config.robots.is_empty() {
        vec![None]
    } else {
        (0..config.robots.len()).map(Some).collect()
    };
    let mut routes: HashMap<Option<RobotId>, mpsc::Sender<Vec<Routed>>> = HashMap::new();
    let mut receivers = Vec::new();
    for &target in &targets {
        let (alerts_tx, alerts_rx) = mpsc::channel(ALERT_BATCHES_IN_FLIGHT);
        routes.insert(target, alerts_tx);
        receivers.push(alerts_rx);
    }
    let mut fleet = Fleet::new(DispatcherFactory {
        dry_run,
        stdout: stdout.clone(),
        host: opts.host.clone(),
        shutdown_timeout: opts.shutdown_timeout,
        settled_tx: files.then(|| settled_tx.clone()),
        metrics: ops.metrics.clone(),
    });
    let budget = if dry_run {
        None
    } else {
        let budget = open_budget(&config, &opts)?;
        ops.metrics.watch_budget(budget.clone());
        Some(budget)
    };
    let mut dispatchers = Vec::new();
    // One delivery deadline for every robot, fallbacks included.
    let shutdown_deadline = Arc::default();
    for (target, alerts_rx) in targets.into_iter().zip(receivers) {
        let robot = target.map(|id| &config.robots[id]);
        let sink = match robot {
            Some(r) if !dry_run => Sink::Post {
                client: Client::for_endpoint(&r.endpoint)
                    .with_context(|| format!("robot {}", r.name))?,
                robot: Box::new(r.clone()),
            },
            _ => Sink::DryRun(stdout.clone()),
        };
        let fallback_tx = robot
            .and_then(|r| r.fallback)
            .filter(|_| !dry_run)
            .and_then(|f| routes.get(&Some(f)).cloned());
        let mut cfg = DispatchConfig::new(robot, &opts.host, opts.shutdown_timeout)
            .sharing_deadline(&shutdown_deadline);
        cfg.zone = config.timezone;
        let mut dispatcher = Dispatcher::new(cfg, sink, alerts_rx, fallback_tx);
        if files {
            dispatcher = dispatcher.with_settled(settled_tx.clone());
        }
        let name = robot.map(|r| r.name.as_str());
        dispatcher = dispatcher
            .with_metrics(ops.metrics.robot(name))
            .with_updates(fleet.adopt(name, routes[&target].clone()));
        if let (Some(b), Some(id)) = (&budget, target) {
            dispatcher = dispatcher.with_budget(b.clone(), id);
        }
        dispatchers.push(tokio::spawn(dispatcher.run()));
    }

    drop(settled_tx);

    // Source: stdin thread or tailer thread → gate (watches signals) → matcher.
    let (raw_tx, raw_rx) = mpsc::channel::<Chunk>(CHUNKS_IN_FLIGHT);
    let (chunk_tx, chunk_rx) = mpsc::channel::<Feed>(CHUNKS_IN_FLIGHT);
    let reloader = tokio::spawn(reload::run(
        ops.take_triggers(),
        opts.config_path.clone(),
        opts.watch_config,
        Arc::new(config.clone()),
        chunk_tx.downgrade(),
        ops.metrics.clone(),
    ));
    let (source, waker) = if files {
        let patterns = inputs.iter().map(|i| i.pattern.clone()).collect();
        let (store, saved) = open_store(&opts, patterns)?;
        let cfg = TailConfig {
            inputs,
            max_line: config.max_line_bytes,
            start: if opts.from_beginning {
                Start::Beginning
            } else {
                Start::End
            },
            once: opts.once,
            checkpoints: saved.files.clone(),
            known_patterns: saved.patterns,
        };
        let (tailer, waker) =
            tail::spawn(cfg, raw_tx, events_tx.clone()).context("cannot start the tail thread")?;
        let (finish_tx, finish_rx) = tokio::sync::oneshot::channel();
        let keeper = tokio::spawn(checkpoint::keep(
            store,
            Keeper::new(saved.files),
            events_rx,
            settled_rx,
            finish_rx,
        ));
        let source = Source::Files {
            tailer,
            keeper,
            finish_tx,
        };
        (source, Some(waker))
    } else {
        drop((events_rx, settled_rx));
        let reader = stdin::spawn(raw_tx, config.max_line_bytes, opts.tee);
        (Source::Stdin(reader), None)
    };
    ops.metrics.set_reading(true);
    let gate = tokio::spawn(gate(raw_rx, chunk_tx, waker, signals));

    // Matcher thread: synchronous, so network waits never slow matching.
    let (hit_tx, hit_rx) = mpsc::channel::<Matched>(BATCHES_IN_FLIGHT);
    let rule_count = config.rules.len();
    let counted = ops.counter();
    let matcher_thread = std::thread::Builder::new()
        .name("matcher".into())
        .spawn(move || match_all(matcher, chunk_rx, hit_tx, rule_count, counted))
        .context("cannot start the matcher thread")?;

    let progress_tx = files.then(|| events_tx.clone());
    drop(events_tx);
    let aggregator = tokio::spawn(aggregate(
        Aggregator::new(&config.rules, Instant::now(), std::time::SystemTime::now())
            .with_stale(
                &config.stale,
                &config.default_robot.into_iter().collect::<Vec<_>>(),
                &crate::pii::Pii::default(),
                Instant::now(),
            )
            .with_absence_at_end(!files),
        hit_rx,
        routes,
        fleet,
        ops.hush(&config),
        progress_tx,
    ));

    let (held, added, silenced) = aggregator.await.context("aggregator task")?;
    let mut deliveries = Vec::new();
    for d in dispatchers.into_iter().chain(added) {
        deliveries.push(d.await.context("dispatcher task")?);
    }
    gate.await.context("gate task")?;
    reloader.abort();
    ops.metrics.set_reading(false);
    let (lines, mut bytes, per_rule) = matcher_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the matcher thread panicked"))?;
    let cut_lines = match source {
        // The reader has finished unless a signal stopped us while it waits for input; then it
        // is left behind, and the process exits.
        Source::Stdin(reader) if reader.is_finished() => match reader.join() {
            Ok(Ok(stats)) => {
                // The reader counted every byte, the skipped tails of cut lines included.
                bytes = stats.bytes;
                stats.cut_lines
            }
            Ok(Err(e)) => return Err(e).context("cannot read stdin"),
            Err(_) => anyhow::bail!("the stdin thread panicked"),
        },
        Source::Stdin(_) => 0,
        Source::Files {
            tailer,
            keeper,
            finish_tx,
        } => {
            // Every alert is settled now: the last checkpoint is final.
            let _ = finish_tx.send(());
            keeper.await.context("checkpoint task")?;
            // The tailer noticed its channel closed (the gate woke it); give it a moment.
            let until = Instant::now() + Duration::from_secs(2);
            while !tailer.is_finished() && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if tailer.is_finished() {
                tailer
                    .join()
                    .map_err(|_| anyhow::anyhow!("the tail thread panicked"))?
                    .cut_lines
            } else {
                0
            }
        }
    };
    Ok(RunReport {
        dry_run,
        lines,
        bytes,
        cut_lines,
        matches: per_rule,
        deliveries,
        held_below_threshold: held,
        silenced,
        budget: budget.map(|b| b.status(std::time::SystemTime::now())),
    })
}

/// The monthly budget with its ledger from the state directory (in memory only, with a
/// warning, when there is no state directory to be found).
fn open_budget(config: &Config, opts: &RunOptions) -> anyhow::Result<SharedBudget> {
    let dir = checkpoint::state_dir(opts.state_dir.as_deref()).map_err(anyhow::Error::from);
    let file = match dir.and_then(|d| Ok(LedgerFile::open(&d)?)) {
        Ok(file) => Some(file),
        // Alerting without a disk beats no alerting; a ledger that exists but cannot be read
        // stops the start instead (starting from zero would under-count the month).
        Err(e) => {
            tracing::warn!(
                "{e:#}; the monthly budget is counted in memory only (a restart forgets it)"
            );
            None
        }
    };
    Ok(SharedBudget::open(config, file)?)
}

/// The state directory's checkpoints, and the store to write them to, locked for this instance
/// and checked to be writable (a [`checkpoint::StoreError`] otherwise, which `main` turns into
/// exit status 2: following files without being able to checkpoint them would re-read or skip
/// lines on every restart).
///
/// An explicit `--dry-run` reads the checkpoints but neither locks nor writes them (`None`):
/// trying a config out next to the running service must not make it skip lines; a state
/// directory that cannot be used is then one warning.
fn open_store(
    opts: &RunOptions,
    patterns: Vec<String>,
) -> anyhow::Result<(Option<Store>, checkpoint::Saved)> {
    let opened = checkpoint::state_dir(opts.state_dir.as_deref()).and_then(Store::open);
    let store = match opened.and_then(|s| if opts.dry_run { Ok(s) } else { s.lock() }) {
        Ok(s) => s.with_patterns(patterns),
        Err(e) if opts.dry_run => {
            tracing::warn!("{e}; no checkpoints in this dry run");
            return Ok((None, checkpoint::Saved::default()));
        }
        Err(e) => return Err(e.into()),
    };
    let saved = if opts.from_beginning {
        checkpoint::Saved::default()
    } else {
        store.load()?
    };
    tracing::debug!(path = %store.path().display(), entries = saved.files.len(), "checkpoints loaded");
    Ok(((!opts.dry_run).then_some(store), saved))
}

/// Forwards chunks until the source ends or a shutdown signal arrives; then wakes the tailer,
/// if there is one, so it notices at once that nobody reads any more.
async fn gate(
    mut raw_rx: mpsc::Receiver<Chunk>,
    chunk_tx: mpsc::Sender<Feed>,
    waker: Option<tail::Waker>,
    signals: Signals,
) {
    forward(&mut raw_rx, chunk_tx, signals).await;
    drop(raw_rx);
    if let Some(w) = waker {
        w.wake();
    }
}

async fn forward(
    raw_rx: &mut mpsc::Receiver<Chunk>,
    chunk_tx: mpsc::Sender<Feed>,
    signals: Signals,
) {
    let signal = signals.recv();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            chunk = raw_rx.recv() => match chunk {
                Some(c) => if chunk_tx.send(Feed::Chunk(c)).await.is_err() { return },
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

/// SIGINT and SIGTERM handlers, installed as soon as a run starts.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        Signals {
            term: signal(SignalKind::terminate()).expect("install SIGTERM handler"),
            int: signal(SignalKind::interrupt()).expect("install SIGINT handler"),
        }
    }

    /// The first SIGINT or SIGTERM.
    async fn recv(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
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

/// The matcher thread's loop; returns lines, bytes and matching lines per rule name (rules a
/// reload removed included, in the order they were first configured).
///
/// A reload takes effect between two chunks: the new matcher from then on, and the aggregator
/// told in the same channel, after the batches matched with the old rules.
fn match_all(
    mut matcher: Matcher,
    mut chunk_rx: mpsc::Receiver<Feed>,
    hit_tx: mpsc::Sender<Matched>,
    rule_count: usize,
    mut counted: crate::operate::Counter,
) -> (u64, u64, Vec<(String, u64)>) {
    let (mut lines, mut bytes) = (0, 0);
    let mut names: Vec<String> = counted.rules().to_vec();
    let mut per_rule = vec![0u64; rule_count];
    // Rules a reload removed, with what they matched.
    let mut retired: Vec<(String, u64)> = Vec::new();
    while let Some(item) = chunk_rx.blocking_recv() {
        let chunk = match item {
            Feed::Chunk(c) => c,
            Feed::Reload(reload) => {
                let new: Vec<String> = reload.config.rules.iter().map(|r| r.name.clone()).collect();
                let mut counts = vec![0u64; new.len()];
                for (name, n) in names.drain(..).zip(per_rule.drain(..)) {
                    match new.iter().position(|x| *x == name) {
                        Some(i) => counts[i] = n,
                        None => retired.push((name, n)),
                    }
                }
                retired.retain(|(name, n)| match new.iter().position(|x| x == name) {
                    Some(i) => {
                        counts[i] += n;
                        false
                    }
                    None => true,
                });
                (names, per_rule) = (new, counts);
                matcher = reload.matcher;
                counted = counted.with_rules(&names);
                if hit_tx
                    .blocking_send(Matched::Reload(reload.config))
                    .is_err()
                {
                    break;
                }
                continue;
            }
        };
        let batch = matcher.match_chunk(&chunk);
        lines += batch.lines;
        // Bytes read, not bytes matched: a followed file's chunk covers its offsets, including
        // the skipped tails of lines cut at max_line_bytes (stdin's total comes from its reader).
        bytes += match chunk.mark {
            Some(mark) => chunk.end_offset.saturating_sub(mark.start),
            None => batch.bytes,
        };
        for hit in &batch.hits {
            per_rule[hit.rule] += 1;
        }
        counted.record(&batch);
        if hit_tx.blocking_send(Matched::Batch(batch)).is_err() {
            break;
        }
    }
    let mut matches: Vec<(String, u64)> = names.into_iter().zip(per_rule).collect();
    matches.extend(retired);
    (lines, bytes, matches)
}

/// The aggregator task: counts hits, closes windows on time, routes alerts to dispatchers; on end
/// of input closes every window and lets the dispatchers finish. Returns the hits held below a
/// threshold per rule, and the dispatchers reloads started.
///
/// For chunks of followed files it tells the checkpoint keeper (`progress_tx`) that the chunk is
/// counted and how many alerts hold it, before any of those alerts can be routed.
async fn aggregate(
    mut agg: Aggregator,
    mut hit_rx: mpsc::Receiver<Matched>,
    mut routes: HashMap<Option<RobotId>, mpsc::Sender<Vec<Routed>>>,
    mut fleet: Fleet,
    mut hush: Hush,
    progress_tx: Option<mpsc::UnboundedSender<Event>>,
) -> (
    Vec<(String, u64)>,
    Vec<tokio::task::JoinHandle<DeliveryReport>>,
    Vec<(String, u64)>,
) {
    loop {
        // Quiet hours ending is a deadline too (on the wall clock).
        let quiet_end = hush
            .next_deadline()
            .map(|t| Instant::now() + t.duration_since(SystemTime::now()).unwrap_or_default());
        let deadline = [agg.next_deadline(), quiet_end].into_iter().flatten().min();
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        tokio::select! {
            batch = hit_rx.recv() => match batch {
                Some(Matched::Batch(b)) => {
                    let alerts = agg.add(&b, Instant::now());
                    // Registered before any alert holding this chunk can reach a dispatcher.
                    report_progress(&mut agg, &progress_tx, b.mark.map(|m| (m, b.end_offset)));
                    let alerts = hushed(&mut hush, alerts, &progress_tx, false);
                    route(alerts, &routes).await;
                }
                Some(Matched::Reload(config)) => {
                    // Rules that are gone deliver what they hold, by the old routes.
                    let alerts = agg.retire(&config.rules);
                    report_progress(&mut agg, &progress_tx, None);
                    let alerts = hushed(&mut hush, alerts, &progress_tx, false);
                    route(alerts, &routes).await;
                    match fleet.apply(&config) {
                        Ok(new_routes) => routes = new_routes,
                        Err(e) => tracing::error!("robots not reloaded, keeping the old ones: {e:#}"),
                    }
                    agg.reconfigure(&config.rules, Instant::now());
                    hush.reconfigure(config.mutes.clone(), config.quiet_hours.clone(), config.timezone);
                }
                None => break,
            },
            () = sleep_until(deadline.unwrap_or(far)), if deadline.is_some() => {
                let alerts = hushed(&mut hush, agg.expire(Instant::now()), &progress_tx, false);
                report_progress(&mut agg, &progress_tx, None);
                route(alerts, &routes).await;
            }
        }
    }
    let alerts = agg.flush(Instant::now());
    report_progress(&mut agg, &progress_tx, None);
    let alerts = hushed(&mut hush, alerts, &progress_tx, true);
    route(alerts, &routes).await;
    let held = agg
        .rule_names()
        .iter()
        .map(|n| n.to_string())
        .zip(agg.held_below_threshold().iter().copied())
        .filter(|(_, n)| *n > 0)
        .collect();
    (held, fleet.finish(), hush.silenced())
}

/// Passes alerts through silences, mute windows and quiet hours (see `hush.rs`): returns those
/// to send now, with those whose quiet hours ended (all of them at end of input, `all`); the
/// holds of silenced alerts are released.
fn hushed(
    hush: &mut Hush,
    alerts: Vec<Routed>,
    progress_tx: &Option<mpsc::UnboundedSender<Event>>,
    all: bool,
) -> Vec<Routed> {
    let now = SystemTime::now();
    let (mut send, released) = hush.filter(alerts, now);
    if let Some(tx) = progress_tx
        && !released.is_empty()
    {
        let _ = tx.send(Event::Released(released));
    }
    send.extend(hush.due(now, all));
    send
}

/// Tells the checkpoint keeper about a counted chunk (`chunk`: its mark and end) and the holds
/// the aggregator took or dropped meanwhile.
fn report_progress(
    agg: &mut Aggregator,
    progress_tx: &Option<mpsc::UnboundedSender<Event>>,
    chunk: Option<(Mark, u64)>,
) {
    let moved = agg.take_moved_holds();
    let (holds, released) = agg.take_holds();
    let Some(tx) = progress_tx else {
        return;
    };
    if !moved.is_empty() {
        let _ = tx.send(Event::Held(moved));
    }
    if let Some((mark, end)) = chunk {
        let _ = tx.send(Event::Progress { mark, end, holds });
    }
    if !released.is_empty() {
        let _ = tx.send(Event::Released(released));
    }
}

/// Sends alerts to their robots' dispatchers, one batch per robot, so alerts closed together
/// can be merged into one message.
async fn route(alerts: Vec<Routed>, routes: &HashMap<Option<RobotId>, mpsc::Sender<Vec<Routed>>>) {
    let mut by_robot: HashMap<Option<RobotId>, Vec<Routed>> = HashMap::new();
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
