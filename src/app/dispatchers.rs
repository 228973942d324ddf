//! The dispatcher stage: one dispatcher task per robot (or one for "no robot"), with the
//! monthly budget and the fleet's Redis they ask before each message.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::{ALERT_BATCHES_IN_FLIGHT, RunOptions, Wiring};
use crate::aggregate::Routed;
use crate::budget::SharedBudget;
use crate::budget::ledger_file::LedgerFile;
use crate::config::{Config, RobotId};
use crate::dispatch::{DeliveryReport, Dispatcher};
use crate::reload::{DispatcherFactory, Fleet};
use crate::source::checkpoint;

/// The dispatcher tasks a run starts with.
pub(super) type Dispatchers = Vec<tokio::task::JoinHandle<DeliveryReport>>;
/// Where the aggregator sends each robot's alerts.
pub(super) type Routes = HashMap<Option<RobotId>, mpsc::Sender<Vec<Routed>>>;

/// Starts one dispatcher per robot, or one for "no robot" when the config has none. All
/// channels exist before any dispatcher starts, so each can hold its fallback's sender.
pub(super) fn spawn_dispatchers(
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
        coordinator: coordinator.cloned(),
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
            dispatcher = crate::dispatch::join_fleet(dispatcher, c, r, &config.rules);
        }
        dispatchers.push(tokio::spawn(dispatcher.run()));
    }
    Ok((dispatchers, routes, fleet))
}

/// The monthly budget with its ledger from the state directory (in memory only, with a
/// warning, when there is no state directory to be found).
///
/// `dir_usable`: false when the state directory was already found unusable and said so.
pub(super) fn open_budget(
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
