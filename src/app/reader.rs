//! The source stage: stdin, or the tail thread with the checkpoint keeper beside it; the gate
//! that alone watches the shutdown future; and joining them once every alert is settled.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;

use super::RunOptions;
use crate::config::Config;
use crate::reload::Feed;
use crate::source::checkpoint::{self, Keeper, PositionUpdate, Store};
use crate::source::tail::{self, Input, Start, TailConfig};
use crate::source::{Chunk, Mark, stdin};
use crate::state::alert_state::AlertStore;

/// Where the lines come from, and what the checkpoint keeper needs while they flow.
pub(super) enum Source {
    Stdin(std::thread::JoinHandle<std::io::Result<stdin::StdinStats>>),
    Files {
        tailer: std::thread::JoinHandle<tail::TailStats>,
        keeper: tokio::task::JoinHandle<()>,
        finish_tx: tokio::sync::oneshot::Sender<()>,
    },
}

/// Starts the tail thread over `inputs` and the checkpoint keeper beside it.
pub(super) fn spawn_files(
    config: &Config,
    opts: &RunOptions,
    inputs: Vec<Input>,
    raw_tx: mpsc::Sender<Chunk>,
    (updates_tx, updates_rx, settled_rx): (
        mpsc::UnboundedSender<PositionUpdate>,
        mpsc::UnboundedReceiver<PositionUpdate>,
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
        tail::spawn(cfg, raw_tx, updates_tx).context("cannot start the tail thread")?;
    let (finish_tx, finish_rx) = tokio::sync::oneshot::channel();
    let keeper = tokio::spawn(checkpoint::keep(
        store,
        Keeper::new(saved.files).with_positions(positions),
        updates_rx,
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
pub(super) fn start_sizes(inputs: &[Input]) -> u64 {
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

/// How the source ended: stdin's own counts (`None` when a shutdown left the reader waiting for
/// input), or the lines the tailer cut.
pub(super) enum SourceEnd {
    Stdin(Option<stdin::StdinStats>),
    Files(u64),
}

/// How long the tail thread is given to notice that nobody reads any more (the gate woke it).
const TAILER_GRACE: Duration = Duration::from_secs(2);

/// Joins the source once every alert is settled: the checkpoint keeper writes its last
/// checkpoint; the stdin reader and the tail thread are joined when they have finished (the
/// stdin reader has not when a shutdown came while it waits for input: it is left behind, and
/// the process exits).
pub(super) async fn finish_source(source: Source) -> anyhow::Result<SourceEnd> {
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
pub(super) async fn gate(
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
