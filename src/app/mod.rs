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
mod dispatchers;
mod matcher_thread;
mod new_patterns;
mod reader;
pub mod report;
pub mod shutdown;

pub use report::RunReport;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::aggregate::Aggregator;
use crate::config::Config;
use crate::matcher::Matcher;
use crate::reload::{self, Feed, Matched};
use crate::source::checkpoint::{self, PositionUpdate, Store};
use crate::source::{Chunk, Mark, stdin};
use crate::state::alert_state::{AlertSaver, AlertStore};
use aggregator_task::{AggregatorEnd, AggregatorTask, aggregate, robot_names};
use dispatchers::{open_budget, spawn_dispatchers};
use matcher_thread::spawn_matcher;
use reader::{Source, SourceEnd, finish_source, gate, spawn_files, start_sizes};

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
    updates_tx: mpsc::UnboundedSender<PositionUpdate>,
    updates_rx: mpsc::UnboundedReceiver<PositionUpdate>,
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
    let inputs = inputs_to_follow(&config, &opts, dry_run)?;
    let files = !inputs.is_empty();
    let whole_files = if files && opts.from_beginning {
        start_sizes(&inputs)
    } else {
        0
    };
    if !opts.dry_run && config.robots.is_empty() {
        eprintln!(
            "dingtail: no robot in {}; printing the messages that would be sent (as --dry-run)",
            config.origin
        );
    }
    let stdin_state = if files || opts.dry_run {
        None
    } else {
        lock_stdin_state(&opts)
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
    let (updates_tx, updates_rx) = mpsc::unbounded_channel::<PositionUpdate>();
    let (settled_tx, settled_rx) = mpsc::unbounded_channel::<Vec<Mark>>();
    let wiring = Wiring {
        updates_tx,
        updates_rx,
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
    let coordinator = match (&config.coordination, dry_run) {
        (Some(c), false) => Some(join_fleet(c, &opts, &ops, &trouble).await?),
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
        updates_tx,
        updates_rx,
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
            (updates_tx.clone(), updates_rx, settled_rx),
            (trouble.clone(), positions),
        )?;
        backlog_bytes = backlog;
        alert_store = store;
        (source, waker)
    } else {
        drop((updates_rx, settled_rx));
        let multiline = config.stdin.multiline.clone();
        let reader = stdin::spawn(raw_tx, config.max_line_bytes, multiline, opts.tee);
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
    let notices_rx = trouble_rx.and_then(|trouble_rx| {
        let mut setup = crate::self_alert::Setup::for_config(&config, ops.metrics.clone())?;
        setup.state_dir = heartbeat_dir.clone();
        setup.backlog_bytes = backlog_bytes;
        setup.budget = budget.clone();
        let (notices_tx, notices_rx) = mpsc::channel(16);
        tokio::spawn(crate::self_alert::run(setup, trouble_rx, notices_tx));
        Some(notices_rx)
    });
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

    let progress_tx = files.then(|| updates_tx.clone());
    drop(updates_tx);
    // `--from-beginning` starts afresh: no checkpoints, no alert state read (it is written).
    let alert_store = alert_store.filter(|_| !opts.dry_run);
    let agg = restored_aggregator(&config, &opts, files, alert_store.as_ref());
    // `new_patterns:` remembers its templates beside the alert state.
    let new_patterns = new_patterns::NewPatterns::start(
        &config,
        alert_store
            .as_ref()
            .and_then(|s| s.path().parent().map(std::path::Path::to_owned))
            .as_deref(),
        opts.from_beginning,
    );
    let aggregator = tokio::spawn(aggregate(AggregatorTask {
        agg,
        new_patterns,
        hit_rx,
        routes,
        fleet,
        hush: ops.hush(&config),
        progress_tx,
        notices_rx,
        robots: robot_names(&config),
        saver: alert_store.map(AlertSaver::spawn),
    }));

    let AggregatorEnd {
        held_below_threshold,
        added,
        silenced,
        kept,
    } = aggregator.await.context("aggregator task")?;
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
        held_below_threshold,
        silenced,
        kept,
        budget: budget.map(|b| b.status(SystemTime::now())),
    })
}

/// What the run follows: the config's `inputs:` and the command line's paths (see
/// [`Config::follow_list`]); empty for stdin (`-` alone names stdin too). Options that
/// contradict each other or the config are a [`UsageError`].
fn inputs_to_follow(
    config: &Config,
    opts: &RunOptions,
    dry_run: bool,
) -> Result<Vec<crate::source::tail::Input>, UsageError> {
    let inputs = config.follow_list(&opts.paths);
    let stdin_named = inputs.iter().filter(|i| i.pattern == "-").count();
    if stdin_named > 0 && stdin_named < inputs.len() {
        return Err(UsageError::StdinWithFiles);
    }
    let inputs = if stdin_named > 0 { Vec::new() } else { inputs };
    if opts.tee && dry_run {
        return Err(UsageError::TeeWithDryRun);
    }
    if opts.tee && !inputs.is_empty() {
        return Err(UsageError::TeeWithFiles);
    }
    Ok(inputs)
}

/// On stdin the state directory is optional (nothing can be re-read): one that cannot be used
/// is one warning, and alert state, silences and budget then live in memory only. Locked like
/// for files, so two instances never write over each other's state.
fn lock_stdin_state(opts: &RunOptions) -> Option<Store> {
    let locked = checkpoint::state_dir(opts.state_dir.as_deref())
        .and_then(Store::open)
        .and_then(Store::lock);
    match locked {
        Ok(store) => Some(store),
        Err(e) => {
            tracing::warn!(
                "{e}; alert state (cooldowns, open alerts), silences and the monthly budget live in memory only"
            );
            None
        }
    }
}

/// `coordination:`: joins the fleet sharing the robots' limits through Redis (the metrics say
/// when it answers from local state instead).
async fn join_fleet(
    coordination: &crate::config::Coordination,
    opts: &RunOptions,
    ops: &crate::operate::Operate,
    trouble: &crate::trouble::Reporter,
) -> anyhow::Result<crate::fleet::Coordinator> {
    // Falling back and rejoining are both a metric and a self-alert (with `self_alerts:`).
    let (metrics, trouble) = (ops.metrics.clone(), trouble.clone());
    let hook: crate::fleet::FallbackHook = Arc::new(move |on| {
        metrics.set_coordination_fallback(on);
        trouble.report(if on {
            crate::trouble::Trouble::FleetFallback
        } else {
            crate::trouble::Trouble::FleetRejoined
        });
    });
    let coordinator = crate::fleet::Coordinator::new(coordination, &opts.host, Some(hook))?;
    coordinator.join().await;
    Ok(coordinator)
}

/// The aggregator a run starts with: the config's rules and stale inputs, and the alert state of
/// the last run restored from `alert_store` (not with `--from-beginning`, which starts afresh).
fn restored_aggregator(
    config: &Config,
    opts: &RunOptions,
    files: bool,
    alert_store: Option<&AlertStore>,
) -> Aggregator {
    let mut agg = Aggregator::new(&config.rules, Instant::now(), SystemTime::now())
        .with_stale(
            &config.stale,
            &config.default_robot.into_iter().collect::<Vec<_>>(),
            &crate::pii::Pii::default(),
            Instant::now(),
        )
        .with_absence_at_end(!files)
        .with_pending_kept(files && !opts.once && alert_store.is_some());
    if let Some(store) = alert_store.filter(|_| !opts.from_beginning)
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
    agg
}
