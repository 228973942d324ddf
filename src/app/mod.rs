//! Wires the stages with bounded channels; shutdown is passed in.
//!
//! ```text
//! stdin or tail thread ─raw─▶ gate task ─Chunk─▶ matcher thread ─HitBatch─▶ aggregator task ─Vec<Routed>─▶ dispatcher task per robot
//! ```
//!
//! Only the source end watches the shutdown future ([`shutdown::on_signal`] for the binary: the
//! first SIGINT/SIGTERM; a second one exits at once): the gate stops forwarding and drops its
//! sender. Every later stage flushes what it holds and exits when its input channel closes, so
//! end of input and a shutdown take the same path. Each stage has its spawner below; the report
//! is in [`report`].

mod aggregator_task;
mod matcher_thread;
pub mod report;
pub mod shutdown;

pub use report::RunReport;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::aggregate::{Aggregator, Routed};
use crate::budget::SharedBudget;
use crate::budget::ledger_file::LedgerFile;
use crate::config::{Config, RobotId};
use crate::dispatch::{DeliveryReport, Dispatcher};
use crate::matcher::Matcher;
use crate::reload::{self, DispatcherFactory, Feed, Fleet, Matched};
use crate::source::checkpoint::{self, Event, Keeper, Store};
use crate::source::tail::{self, Input, Start, TailConfig};
use crate::source::{Chunk, Mark, stdin};
use crate::state::alert_state::{AlertSaver, AlertStore};
use aggregator_task::{aggregate, robot_names};
use matcher_thread::match_all;

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

/// A run that cannot start as asked: the options contradict each other or the config (`main`
/// exits with the usage status, 2, as for a bad command line).
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// `--tee` while messages go to stdout.
    #[error("--tee cannot be used when messages are printed to stdout (dry-run)")]
    TeeWithDryRun,
    /// `--tee` while following files.
    #[error("--tee copies standard input; it cannot be used when following files")]
    TeeWithFiles,
    /// `-` (stdin) among the inputs beside files.
    #[error(
        "`-` (stdin) cannot be read together with files: run one dingtail for stdin and one for the files"
    )]
    StdinWithFiles,
}

/// What the stages share while they are being wired.
struct Wiring {
    /// The checkpoint keeper hears from the tailer and the aggregator (events) and from the
    /// dispatchers (settled alerts); see `source::checkpoint`.
    events_tx: mpsc::UnboundedSender<Event>,
    events_rx: mpsc::UnboundedReceiver<Event>,
    settled_tx: mpsc::UnboundedSender<Vec<Mark>>,
    settled_rx: mpsc::UnboundedReceiver<Vec<Mark>>,
}

/// Runs the whole pipeline over stdin, or over followed files, until end of input or until
/// `shutdown` resolves, then delivers and reports.
///
/// `shutdown` is watched by the source end only (`main` passes [`shutdown::on_signal`]; a test
/// passes a future it controls): the sources stop, and every later stage flushes what it holds
/// and exits when its input channel closes, so end of input and a shutdown take the same path.
pub async fn run(
    config: Config,
    opts: RunOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<RunReport> {
    let matcher = Matcher::new(&config.rules, config.max_line_bytes)?;
    let dry_run = opts.dry_run || config.robots.is_empty();
    let inputs = config.follow_list(&opts.paths);
    // `-` names stdin: alone, it is the same as no input at all.
    let stdin_named = inputs.iter().filter(|i| i.pattern == "-").count();
    if stdin_named > 0 && stdin_named < inputs.len() {
        return Err(UsageError::StdinWithFiles.into());
    }
    let inputs = if stdin_named > 0 { Vec::new() } else { inputs };
    let files = !inputs.is_empty();
    let whole_files = if files && opts.from_beginning {
        start_sizes(&inputs)
    } else {
        0
    };
    if opts.tee && dry_run {
        return Err(UsageError::TeeWithDryRun.into());
    }
    if opts.tee && files {
        return Err(UsageError::TeeWithFiles.into());
    }
    if !opts.dry_run && config.robots.is_empty() {
        eprintln!(
            "dingtail: no robot in {}; printing the messages that would be sent (as --dry-run)",
            config.origin
        );
    }
    // On stdin the state directory is optional (nothing can be re-read): one that cannot be
    // used is one warning, and alert state, silences and budget then live in memory only.
    // Locked like for files, so two instances never write over each other's state.
    let stdin_state = if files || opts.dry_run {
        None
    } else {
        match checkpoint::state_dir(opts.state_dir.as_deref())
            .and_then(Store::open)
            .and_then(Store::lock)
        {
            Ok(store) => Some(store),
            Err(e) => {
                tracing::warn!(
                    "{e}; alert state (cooldowns, open alerts), silences and the monthly budget live in memory only"
                );
                None
            }
        }
    };
    let mut ops = crate::operate::Operate::start(
        &config,
        opts.state_dir.as_deref(),
        opts.listen,
        files || stdin_state.is_some() || opts.dry_run,
    )
    .await?;
    // dingtail's own trouble goes to a robot only with `self_alerts:`.
    let (trouble, trouble_rx) = if config.self_alerts.is_some() {
        let (t, rx) = crate::trouble::Reporter::channel();
        (t, Some(rx))
    } else {
        (crate::trouble::Reporter::default(), None)
    };
    ops.metrics.set_trouble(trouble.clone());
    let (events_tx, events_rx) = mpsc::unbounded_channel::<Event>();
    let (settled_tx, settled_rx) = mpsc::unbounded_channel::<Vec<Mark>>();
    let wiring = Wiring {
        events_tx,
        events_rx,
        settled_tx,
        settled_rx,
    };
    let budget = if dry_run {
        None
    } else {
        let budget = open_budget(&config, &opts, files || stdin_state.is_some())?;
        ops.metrics.watch_budget(budget.clone());
        Some(budget)
    };
    // `coordination:`: the robots' limits shared with the fleet through Redis.
    let coordinator = match (&config.coordination, dry_run) {
        (Some(c), false) => {
            let metrics = ops.metrics.clone();
            let hook: crate::fleet::FallbackHook =
                Arc::new(move |on| metrics.set_coordination_fallback(on));
            let coordinator = crate::fleet::Coordinator::new(c, &opts.host, Some(hook))?;
            coordinator.join().await;
            Some(coordinator)
        }
        _ => None,
    };
    let (dispatchers, routes, fleet) = spawn_dispatchers(
        &config,
        &opts,
        dry_run,
        files,
        &ops,
        (&budget, coordinator.as_ref()),
        &wiring,
    )?;
    let Wiring {
        events_tx,
        events_rx,
        settled_tx,
        settled_rx,
    } = wiring;
    drop(settled_tx);

    // Source: stdin thread or tailer thread → gate (watches `shutdown`) → matcher.
    let (raw_tx, raw_rx) = mpsc::channel::<Chunk>(CHUNKS_IN_FLIGHT);
    let (chunk_tx, chunk_rx) = mpsc::channel::<Feed>(CHUNKS_IN_FLIGHT);
    let mut backlog_bytes = 0;
    let mut alert_store = stdin_state.as_ref().map(|s| AlertStore::new(s.dir()));
    let (source, waker) = if files {
        let positions = checkpoint::Positions::default();
        ops.metrics.watch_positions(positions.clone());
        let (source, waker, backlog, store) = spawn_files(
            &config,
            &opts,
            inputs,
            raw_tx,
            (events_tx.clone(), events_rx, settled_rx),
            (trouble.clone(), positions),
        )?;
        backlog_bytes = backlog;
        alert_store = store;
        (source, waker)
    } else {
        drop((events_rx, settled_rx));
        let reader = stdin::spawn(raw_tx, config.max_line_bytes, opts.tee);
        (Source::Stdin(reader), None)
    };
    let reloader = tokio::spawn(reload::run(
        ops.take_triggers(),
        opts.config_path.clone(),
        opts.watch_config,
        Arc::new(config.clone()),
        chunk_tx.downgrade(),
        reload::Sides {
            metrics: ops.metrics.clone(),
            trouble,
            tailer: waker.clone().map(|waker| reload::TailerInputs {
                waker,
                cli_paths: opts.paths.clone(),
            }),
        },
    ));
    // The self-alert task, with the heartbeat in the state directory of a service run.
    let heartbeat_dir = (!opts.dry_run && !opts.once)
        .then(|| checkpoint::state_dir(opts.state_dir.as_deref()).ok())
        .flatten();
    let notices_rx = match (
        trouble_rx,
        crate::self_alert::Setup::for_config(&config, ops.metrics.clone()),
    ) {
        (Some(trouble_rx), Some(mut setup)) => {
            setup.state_dir = heartbeat_dir.clone();
            setup.backlog_bytes = backlog_bytes;
            setup.budget = budget.clone();
            let (notices_tx, notices_rx) = mpsc::channel(16);
            tokio::spawn(crate::self_alert::run(setup, trouble_rx, notices_tx));
            Some(notices_rx)
        }
        _ => None,
    };
    // A long read on a terminal shows its progress (see `progress::follow`).
    let bar = if files && (opts.once || opts.from_beginning) {
        let total = if opts.from_beginning {
            whole_files
        } else {
            backlog_bytes
        };
        crate::progress::follow(total, ops.metrics.clone())
    } else {
        None
    };
    ops.metrics.set_reading(true);
    let gate = tokio::spawn(gate(raw_rx, chunk_tx, waker, shutdown));

    let (hit_tx, hit_rx) = mpsc::channel::<Matched>(BATCHES_IN_FLIGHT);
    let matcher_thread = spawn_matcher(matcher, chunk_rx, hit_tx, config.rules.len(), &ops)?;

    let progress_tx = files.then(|| events_tx.clone());
    drop(events_tx);
    // `--from-beginning` starts afresh: no checkpoints, no alert state read (it is written).
    let alert_store = alert_store.filter(|_| !opts.dry_run);
    let mut agg = Aggregator::new(&config.rules, Instant::now(), SystemTime::now())
        .with_stale(
            &config.stale,
            &config.default_robot.into_iter().collect::<Vec<_>>(),
            &crate::pii::Pii::default(),
            Instant::now(),
        )
        .with_absence_at_end(!files)
        .with_pending_kept(files && !opts.once && alert_store.is_some());
    if let Some(store) = alert_store.as_ref().filter(|_| !opts.from_beginning)
        && let Some(snap) = store.load()
    {
        for note in agg.restore(&snap, Instant::now(), SystemTime::now()) {
            tracing::info!("{note}");
        }
        tracing::info!(
            path = %store.path().display(),
            streams = snap.streams(),
            "alert state restored"
        );
    }
    let aggregator = tokio::spawn(aggregate(
        agg,
        hit_rx,
        routes,
        fleet,
        ops.hush(&config),
        progress_tx,
        (notices_rx, robot_names(&config)),
        alert_store.map(AlertSaver::spawn),
    ));

    let (held, added, silenced, kept) = aggregator.await.context("aggregator task")?;
    drop(stdin_state);
    let mut deliveries = Vec::new();
    for d in dispatchers.into_iter().chain(added) {
        deliveries.push(d.await.context("dispatcher task")?);
    }
    gate.await.context("gate task")?;
    if let Some(bar) = bar {
        bar.finish();
    }
    reloader.abort();
    if let (Some(dir), Some(_)) = (&heartbeat_dir, &config.self_alerts) {
        crate::self_alert::write_stopped(dir);
    }
    ops.metrics.set_reading(false);
    let (lines, events, mut bytes, per_rule) = matcher_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the matcher thread panicked"))?;
    let cut_lines = match finish_source(source).await? {
        SourceEnd::Stdin(Some(stats)) => {
            // The reader counted every byte, the skipped tails of cut lines included.
            bytes = stats.bytes;
            stats.cut_lines
        }
        SourceEnd::Stdin(None) => 0,
        SourceEnd::Files(cut_lines) => cut_lines,
    };
    Ok(RunReport {
        dry_run,
        lines,
        events,
        bytes,
        cut_lines,
        matches: per_rule,
        deliveries,
        held_below_threshold: held,
        silenced,
        kept,
        budget: budget.map(|b| b.status(SystemTime::now())),
    })
}

/// The dispatcher tasks a run starts with.
type Dispatchers = Vec<tokio::task::JoinHandle<DeliveryReport>>;
/// Where the aggregator sends each robot's alerts.
pub(super) type Routes = HashMap<Option<RobotId>, mpsc::Sender<Vec<Routed>>>;

/// Starts one dispatcher per robot, or one for "no robot" when the config has none. All
/// channels exist before any dispatcher starts, so each can hold its fallback's sender.
fn spawn_dispatchers(
    config: &Config,
    opts: &RunOptions,
    dry_run: bool,
    files: bool,
    ops: &crate::operate::Operate,
    // The robots' limits beyond their rate: the monthly budget, and the fleet's Redis.
    (budget, coordinator): (&Option<SharedBudget>, Option<&crate::fleet::Coordinator>),
    wiring: &Wiring,
) -> anyhow::Result<(Dispatchers, Routes, Fleet)> {
    let targets: Vec<Option<RobotId>> = if config.robots.is_empty() {
        vec![None]
    } else {
        (0..config.robots.len()).map(Some).collect()
    };
    let mut routes: Routes = HashMap::new();
    let mut receivers = Vec::new();
    for &target in &targets {
        let (alerts_tx, alerts_rx) = mpsc::channel(ALERT_BATCHES_IN_FLIGHT);
        routes.insert(target, alerts_tx);
        receivers.push(alerts_rx);
    }
    let factory = DispatcherFactory {
        dry_run,
        stdout: crate::pretty::dry_run_stdout(opts.presentation),
        host: opts.host.clone(),
        shutdown_timeout: opts.shutdown_timeout,
        settled_tx: files.then(|| wiring.settled_tx.clone()),
        metrics: ops.metrics.clone(),
    };
    let mut setups = Vec::new();
    for &target in &targets {
        setups.push(factory.setup(config, target.map(|id| &config.robots[id]))?);
    }
    let mut fleet = Fleet::new(factory);
    let mut dispatchers = Vec::new();
    // One delivery deadline for every robot, fallbacks included.
    let shutdown_deadline = Arc::default();
    for ((target, alerts_rx), (cfg, sink)) in targets.into_iter().zip(receivers).zip(setups) {
        let robot = target.map(|id| &config.robots[id]);
        let fallback_tx = robot
            .and_then(|r| r.fallback)
            .filter(|_| !dry_run)
            .and_then(|f| routes.get(&Some(f)).cloned());
        let cfg = cfg.sharing_deadline(&shutdown_deadline);
        let mut dispatcher = Dispatcher::new(cfg, sink, alerts_rx, fallback_tx);
        if files {
            dispatcher = dispatcher.with_settled(wiring.settled_tx.clone());
        }
        let name = robot.map(|r| r.name.as_str());
        dispatcher = dispatcher
            .with_metrics(ops.metrics.robot(name))
            .with_updates(fleet.adopt(name, routes[&target].clone()));
        if let (Some(b), Some(id)) = (budget, target) {
            dispatcher = dispatcher.with_budget(b.clone(), id);
        }
        if let (Some(c), Some(r)) = (coordinator, robot) {
            dispatcher =
                dispatcher.with_link(c.robot(&r.name, r.send.rate, r.endpoint.request_timeout));
        }
        dispatchers.push(tokio::spawn(dispatcher.run()));
    }
    Ok((dispatchers, routes, fleet))
}

/// Starts the tail thread over `inputs` and the checkpoint keeper beside it.
fn spawn_files(
    config: &Config,
    opts: &RunOptions,
    inputs: Vec<Input>,
    raw_tx: mpsc::Sender<Chunk>,
    (events_tx, events_rx, settled_rx): (
        mpsc::UnboundedSender<Event>,
        mpsc::UnboundedReceiver<Event>,
        mpsc::UnboundedReceiver<Vec<Mark>>,
    ),
    (trouble, positions): (crate::trouble::Reporter, checkpoint::Positions),
) -> anyhow::Result<(Source, Option<tail::Waker>, u64, Option<AlertStore>)> {
    let patterns = inputs.iter().map(|i| i.pattern.clone()).collect();
    let (store, saved) = open_store(opts, patterns)?;
    let backlog_bytes = backlog(&saved.files);
    let alert_store = store.as_ref().map(|s| AlertStore::new(s.dir()));
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
        trouble,
        unreadable_for: config
            .self_alerts
            .as_ref()
            .map_or(crate::config::DEFAULT_UNREADABLE_FOR, |s| s.unreadable_for),
    };
    let (tailer, waker) =
        tail::spawn(cfg, raw_tx, events_tx).context("cannot start the tail thread")?;
    let (finish_tx, finish_rx) = tokio::sync::oneshot::channel();
    let keeper = tokio::spawn(checkpoint::keep(
        store,
        Keeper::new(saved.files).with_positions(positions),
        events_rx,
        settled_rx,
        finish_rx,
    ));
    let source = Source::Files {
        tailer,
        keeper,
        finish_tx,
    };
    Ok((source, Some(waker), backlog_bytes, alert_store))
}

/// The sizes of the files the inputs match now (`--from-beginning` reads them whole).
fn start_sizes(inputs: &[Input]) -> u64 {
    let mut counted = std::collections::HashSet::new();
    inputs
        .iter()
        .flat_map(|i| match glob::glob(&i.pattern) {
            Ok(paths) => paths.filter_map(Result::ok).collect(),
            Err(_) => vec![PathBuf::from(&i.pattern)],
        })
        .filter_map(|p| std::fs::metadata(p).ok())
        .filter(|m| m.is_file())
        .filter(|m| {
            use std::os::unix::fs::MetadataExt;
            counted.insert((m.dev(), m.ino()))
        })
        .map(|m| m.len())
        .sum()
}

/// Bytes between the checkpoints and the ends of their files now: the backlog a restart reads
/// (files renamed meanwhile, or replaced, are not counted).
fn backlog(entries: &[checkpoint::Entry]) -> u64 {
    use std::os::unix::fs::MetadataExt;
    entries
        .iter()
        .filter_map(|e| {
            let m = std::fs::metadata(&e.path).ok()?;
            ((m.dev(), m.ino()) == (e.identity.dev, e.identity.ino))
                .then(|| m.size().saturating_sub(e.offset))
        })
        .sum()
}

/// What the matcher thread counted: lines, events (a multi-line event counts once), bytes, and
/// matching events per rule name.
pub(super) type MatchTotals = (u64, u64, u64, Vec<(String, u64)>);

/// Starts the matcher thread: synchronous, so network waits never slow matching.
fn spawn_matcher(
    matcher: Matcher,
    chunk_rx: mpsc::Receiver<Feed>,
    hit_tx: mpsc::Sender<Matched>,
    rule_count: usize,
    ops: &crate::operate::Operate,
) -> anyhow::Result<std::thread::JoinHandle<MatchTotals>> {
    let counted = ops.counter();
    std::thread::Builder::new()
        .name("matcher".into())
        .spawn(move || match_all(matcher, chunk_rx, hit_tx, rule_count, counted))
        .context("cannot start the matcher thread")
}

/// How the source ended: stdin's own counts (`None` when a shutdown left the reader waiting for
/// input), or the lines the tailer cut.
enum SourceEnd {
    Stdin(Option<stdin::StdinStats>),
    Files(u64),
}

/// How long the tail thread is given to notice that nobody reads any more (the gate woke it).
const TAILER_GRACE: Duration = Duration::from_secs(2);

/// Joins the source once every alert is settled: the checkpoint keeper writes its last
/// checkpoint; the stdin reader and the tail thread are joined when they have finished (the
/// stdin reader has not when a shutdown came while it waits for input: it is left behind, and
/// the process exits).
async fn finish_source(source: Source) -> anyhow::Result<SourceEnd> {
    match source {
        Source::Stdin(reader) if reader.is_finished() => match reader.join() {
            Ok(Ok(stats)) => Ok(SourceEnd::Stdin(Some(stats))),
            Ok(Err(e)) => Err(e).context("cannot read stdin"),
            Err(_) => anyhow::bail!("the stdin thread panicked"),
        },
        Source::Stdin(_) => Ok(SourceEnd::Stdin(None)),
        Source::Files {
            tailer,
            keeper,
            finish_tx,
        } => {
            // Every alert is settled now: the last checkpoint is final.
            let _ = finish_tx.send(());
            keeper.await.context("checkpoint task")?;
            let joined = tokio::task::spawn_blocking(move || tailer.join());
            match tokio::time::timeout(TAILER_GRACE, joined).await {
                Ok(Ok(Ok(stats))) => Ok(SourceEnd::Files(stats.cut_lines)),
                Ok(Ok(Err(_))) => anyhow::bail!("the tail thread panicked"),
                Ok(Err(e)) => Err(e).context("tail thread join"),
                Err(_) => {
                    tracing::warn!(
                        "the tail thread did not stop in time; its count of cut lines is missing"
                    );
                    Ok(SourceEnd::Files(0))
                }
            }
        }
    }
}

/// The monthly budget with its ledger from the state directory (in memory only, with a
/// warning, when there is no state directory to be found).
///
/// `dir_usable`: false when the state directory was already found unusable and said so.
fn open_budget(
    config: &Config,
    opts: &RunOptions,
    dir_usable: bool,
) -> anyhow::Result<SharedBudget> {
    if !dir_usable {
        return Ok(SharedBudget::open(config, None)?);
    }
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

/// Forwards chunks until the source ends or `shutdown` resolves; then wakes the tailer, if
/// there is one, so it notices at once that nobody reads any more.
async fn gate(
    mut raw_rx: mpsc::Receiver<Chunk>,
    chunk_tx: mpsc::Sender<Feed>,
    waker: Option<tail::Waker>,
    shutdown: impl Future<Output = ()>,
) {
    forward(&mut raw_rx, chunk_tx, shutdown).await;
    drop(raw_rx);
    if let Some(w) = waker {
        w.wake();
    }
}

async fn forward(
    raw_rx: &mut mpsc::Receiver<Chunk>,
    chunk_tx: mpsc::Sender<Feed>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            chunk = raw_rx.recv() => match chunk {
                Some(c) => if chunk_tx.send(Feed::Chunk(c)).await.is_err() { return },
                None => return,
            },
            () = &mut shutdown => return,
        }
    }
}
