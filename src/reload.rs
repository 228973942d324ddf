//! Hot reload: SIGHUP (`systemctl reload`) and `--watch-config` load the config again, check it,
//! and hand it down the pipeline in order, so nothing is lost or counted twice.
//!
//! ```text
//! reloader ─Feed::Reload─▶ matcher thread ─Matched::Reload─▶ aggregator task ─RobotUpdate─▶ dispatchers
//! ```
//!
//! The new config travels *in* the channels the data uses: every chunk before it is matched
//! with the old rules and counted by the old rule ids, every chunk after it with the new ones. The
//! aggregator then retires rules that are gone (what they hold is delivered at once, with the old
//! routes), renumbers what the kept rules hold ([`Aggregator::reconfigure`]), and moves to the
//! new routes: a robot that stays (by name) keeps its dispatcher and what it holds, and gets the
//! new settings (webhook, secret, rate, keyword, time zone) for its next message; a new robot
//! gets a new dispatcher; a robot that is gone has its input closed, so it delivers what it holds
//! and ends, and its report is in the summary.
//!
//! A config that fails `check` (or whose rules cannot be combined into one search) is refused:
//! every problem is logged, the old config stays in force, and the metrics say so
//! (`dingtail_config_reloads_total{result="refused"}`, `dingtail_config_last_reload_successful 0`).
//!
//! Edges: `--watch-config` watches the config file's directory (not the file, which a
//! Kubernetes ConfigMap update replaces by swapping the `..data` symlink) and reloads when the
//! file's content changed. Inputs (`inputs:`) that a reload adds are followed (what they match
//! now from its checkpoint, else from its end, as at a start); inputs it removes are let go,
//! their checkpoints kept (see `tail::Waker::set_inputs`); paths given on the command line stay.
//! A run that reads stdin cannot start following files: that reload says so and a restart
//! applies it. A refused reload is also told to `self_alerts:` (see `crate::trouble`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, watch};

use crate::aggregate::Routed;
use crate::config::{self, Config, RobotId};
use crate::dingtalk::Client;
use crate::dispatch::{DeliveryReport, DispatchConfig, Dispatcher, Sink};
pub use crate::dispatch::{RobotUpdate, UpdateRx};
use crate::matcher::{HitBatch, Matcher};
use crate::metrics::Metrics;
use crate::source::{Chunk, Mark};

/// What the matcher thread reads: chunks, and now and then a new config.
pub enum Feed {
    /// Lines to match.
    Chunk(Chunk),
    /// Match with these rules from now on.
    Reload(Box<Reload>),
}

/// What the aggregator reads: matched chunks, and the config they are matched with from now on.
pub enum Matched {
    /// Hits of a chunk, by the rule ids of the config in force.
    Batch(HitBatch),
    /// Every later batch uses this config's rule ids.
    Reload(Arc<Config>),
}

/// A checked config on its way down the pipeline, with its rules already combined.
pub struct Reload {
    /// The combined search over the new rules.
    pub matcher: Matcher,
    /// The new config.
    pub config: Arc<Config>,
}

/// Starts dispatchers the way `app::run` does, for robots a reload adds.
pub struct DispatcherFactory {
    /// Print instead of sending.
    pub dry_run: bool,
    /// Dry-run output.
    pub stdout: Arc<Mutex<dyn std::io::Write + Send>>,
    /// This machine's name.
    pub host: String,
    /// Time allowed to deliver after input ends.
    pub shutdown_timeout: Duration,
    /// The checkpoint keeper, when files are followed.
    pub settled_tx: Option<mpsc::UnboundedSender<Vec<Mark>>>,
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
}

impl DispatcherFactory {
    /// The dispatch settings and sink of a robot (or of none) under `config`: how `app::run`
    /// and every reload set a dispatcher up. Fails when the robot's HTTP client cannot be built.
    pub fn setup(
        &self,
        config: &Config,
        robot: Option<&config::RobotConfig>,
    ) -> anyhow::Result<(DispatchConfig, Sink)> {
        let sink = match robot {
            Some(r) if !self.dry_run => Sink::Post {
                client: Client::for_endpoint(&r.endpoint)
                    .with_context(|| format!("robot {}", r.name))?,
                robot: Box::new(r.clone()),
            },
            _ => Sink::DryRun(self.stdout.clone()),
        };
        let mut cfg = DispatchConfig::new(robot, &self.host, self.shutdown_timeout);
        cfg.zone = config.timezone;
        Ok((cfg, sink))
    }
}

struct Member {
    alerts_tx: mpsc::Sender<Vec<Routed>>,
    updates_tx: watch::Sender<Option<Arc<RobotUpdate>>>,
}

/// The dispatchers, by robot name (`None`: the dry-run dispatcher of a config without robots).
pub struct Fleet {
    factory: DispatcherFactory,
    members: HashMap<Option<String>, Member>,
    /// Dispatchers started by reloads: their reports join the summary.
    spawned: Vec<tokio::task::JoinHandle<DeliveryReport>>,
}

impl Fleet {
    /// An empty fleet; `app::run` adds the dispatchers it starts with [`Fleet::adopt`].
    pub fn new(factory: DispatcherFactory) -> Fleet {
        Fleet {
            factory,
            members: HashMap::new(),
            spawned: Vec::new(),
        }
    }

    /// A dispatcher started by `app::run`; returns the receiver it must be given
    /// (`Dispatcher::with_updates`).
    pub fn adopt(&mut self, robot: Option<&str>, alerts_tx: mpsc::Sender<Vec<Routed>>) -> UpdateRx {
        let (updates_tx, updates_rx) = watch::channel(None);
        self.members.insert(
            robot.map(str::to_owned),
            Member {
                alerts_tx,
                updates_tx,
            },
        );
        updates_rx
    }

    /// Moves the fleet to `config`: updates robots that stay, starts new ones, closes the input
    /// of robots that are gone; returns the routes by the new config's robot ids. Fails (and
    /// changes nothing) when a robot's HTTP client cannot be built.
    pub fn apply(
        &mut self,
        config: &Config,
    ) -> anyhow::Result<HashMap<Option<RobotId>, mpsc::Sender<Vec<Routed>>>> {
        let targets: Vec<Option<RobotId>> = if config.robots.is_empty() {
            vec![None]
        } else {
            (0..config.robots.len()).map(Some).collect()
        };
        let mut setups = Vec::new();
        for &t in &targets {
            let robot = t.map(|id| &config.robots[id]);
            setups.push((
                t,
                robot.map(|r| r.name.clone()),
                self.factory.setup(config, robot)?,
            ));
        }
        let mut routes = HashMap::new();
        let mut kept = HashMap::new();
        let mut fresh = Vec::new();
        for (target, name, (cfg, sink)) in setups {
            match self.members.remove(&name) {
                Some(member) => {
                    member
                        .updates_tx
                        .send_replace(Some(Arc::new(RobotUpdate { cfg, sink })));
                    routes.insert(target, member.alerts_tx.clone());
                    kept.insert(name, member);
                }
                None => {
                    let (alerts_tx, alerts_rx) = mpsc::channel(64);
                    routes.insert(target, alerts_tx.clone());
                    fresh.push((target, name, cfg, sink, alerts_tx, alerts_rx));
                }
            }
        }
        for (name, _) in self.members.drain() {
            tracing::info!(robot = ?name, "robot removed from the config: delivering what it holds");
        }
        self.members = kept;
        for (target, name, cfg, sink, alerts_tx, alerts_rx) in fresh {
            let robot = target.map(|id| &config.robots[id]);
            let fallback_tx = robot
                .and_then(|r| r.fallback)
                .filter(|_| !self.factory.dry_run)
                .and_then(|f| routes.get(&Some(f)).cloned());
            let mut d = Dispatcher::new(cfg, sink, alerts_rx, fallback_tx)
                .with_metrics(self.factory.metrics.robot(name.as_deref()));
            if let Some(tx) = &self.factory.settled_tx {
                d = d.with_settled(tx.clone());
            }
            let (updates_tx, updates_rx) = watch::channel(None);
            d = d.with_updates(updates_rx);
            tracing::info!(robot = ?name, "robot added by the reload");
            self.spawned.push(tokio::spawn(d.run()));
            self.members.insert(
                name,
                Member {
                    alerts_tx,
                    updates_tx,
                },
            );
        }
        Ok(routes)
    }

    /// Closes every dispatcher's input held here and returns those started by reloads, to be
    /// awaited with the others.
    pub fn finish(self) -> Vec<tokio::task::JoinHandle<DeliveryReport>> {
        self.spawned
    }
}

/// What triggers a reload.
pub struct Triggers {
    hangup: tokio::signal::unix::Signal,
}

impl Triggers {
    /// Takes over SIGHUP at once, so from now on it reloads instead of ending the process.
    pub fn install() -> anyhow::Result<Triggers> {
        use tokio::signal::unix::{SignalKind, signal};
        let hangup = signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
        Ok(Triggers { hangup })
    }
}

/// Why a config was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// `check` found problems (each is a line).
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    /// The rules cannot be combined into one search.
    #[error("{0}")]
    Matcher(#[from] crate::matcher::MatcherError),
}

/// Loads and checks the config at `path` for a reload.
pub fn prepare(path: &Path) -> Result<Reload, Refused> {
    let config = config::load(path)?;
    let matcher = Matcher::new(&config.rules, config.max_line_bytes)?;
    Ok(Reload {
        matcher,
        config: Arc::new(config),
    })
}

/// The tailer's end of a reload: where new inputs go, and the paths from the command line
/// that every config's inputs are followed with.
pub struct TailerInputs {
    /// Tells the tailer.
    pub waker: crate::source::tail::Waker,
    /// `dingtail run PATH…`.
    pub cli_paths: Vec<String>,
}

/// What the reloader task talks to, beside the pipeline.
pub struct Sides {
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
    /// `self_alerts:`.
    pub trouble: crate::trouble::Reporter,
    /// The tailer (`None` when reading stdin).
    pub tailer: Option<TailerInputs>,
}

/// The reloader task: on SIGHUP (and, with `watch`, when the config file's content changes)
/// loads `path`, and sends it down `feed` or refuses it. Ends when the pipeline no longer reads
/// (the feed's last strong sender is gone).
pub async fn run(
    mut triggers: Triggers,
    path: Option<PathBuf>,
    watch: bool,
    current: Arc<Config>,
    feed: mpsc::WeakSender<Feed>,
    sides: Sides,
) {
    let metrics = sides.metrics.clone();
    let (changed_tx, mut changed_rx) = mpsc::channel::<()>(1);
    // Kept alive as long as this task runs.
    let _watcher = match (&path, watch) {
        (Some(p), true) => match watch_dir(p, changed_tx) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::error!(path = %p.display(), "cannot watch the config: {e:#}; SIGHUP still reloads");
                None
            }
        },
        _ => None,
    };
    let mut last_text = path.as_ref().and_then(|p| std::fs::read(p).ok());
    let mut inputs: Vec<String> = current.inputs.iter().map(|i| i.path.clone()).collect();
    loop {
        let by_signal = tokio::select! {
            s = triggers.hangup.recv() => match s { Some(()) => true, None => return },
            c = changed_rx.recv() => match c { Some(()) => false, None => return },
        };
        let Some(p) = &path else {
            tracing::warn!("SIGHUP: no config file to reload (running on the built-in rules)");
            continue;
        };
        if !by_signal {
            // A change in the directory: reload only when the file itself reads differently.
            let text = std::fs::read(p).ok();
            if text.is_none() || text == last_text {
                continue;
            }
        }
        last_text = std::fs::read(p).ok();
        let why = if by_signal {
            "SIGHUP"
        } else {
            "config file changed"
        };
        match prepare(p) {
            Err(e) => {
                metrics.record_reload(false);
                tracing::error!(
                    "config reload ({why}) refused, still running on the config loaded before:"
                );
                for line in e.to_string().lines() {
                    tracing::error!("  {line}");
                }
                sides
                    .trouble
                    .report(crate::trouble::Trouble::ReloadRefused {
                        why: why.to_owned(),
                        problems: e.to_string().lines().map(str::to_owned).collect(),
                    });
            }
            Ok(reload) => {
                for w in &reload.config.warnings {
                    tracing::warn!("{w}");
                }
                let new_inputs: Vec<String> = reload
                    .config
                    .inputs
                    .iter()
                    .map(|i| i.path.clone())
                    .collect();
                if new_inputs != inputs {
                    match &sides.tailer {
                        Some(t) => {
                            let all = reload.config.follow_list(&t.cli_paths);
                            if all.is_empty() {
                                tracing::warn!(
                                    "the reloaded config follows no file any more: nothing is read until a reload names one"
                                );
                            }
                            t.waker.set_inputs(all);
                            inputs = new_inputs;
                        }
                        None => tracing::warn!(
                            "inputs changed in {}, but this run reads stdin: a restart follows them",
                            p.display()
                        ),
                    }
                }
                if reload.config.self_alerts != current.self_alerts {
                    tracing::warn!(
                        "self_alerts changed in {}: a restart applies it",
                        p.display()
                    );
                }
                let (rules, robots) = (reload.config.rules.len(), reload.config.robots.len());
                let Some(tx) = feed.upgrade() else { return };
                if tx.send(Feed::Reload(Box::new(reload))).await.is_err() {
                    return;
                }
                metrics.record_reload(true);
                tracing::info!(rules, robots, "config reloaded ({why})");
            }
        }
    }
}

/// Watches the directory of `path` (ConfigMaps swap a symlink in it), signalling any change.
fn watch_dir(
    path: &Path,
    changed_tx: mpsc::Sender<()>,
) -> anyhow::Result<notify::RecommendedWatcher> {
    use notify::Watcher;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            // Full means a reload is already coming: one is enough.
            let _ = changed_tx.try_send(());
        }
    })?;
    watcher.watch(&dir, notify::RecursiveMode::NonRecursive)?;
    tracing::info!(dir = %dir.display(), "watching the config for changes");
    Ok(watcher)
}
