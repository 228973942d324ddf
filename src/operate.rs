//! What `app::run` starts for operating dingtail as a service, beside the pipeline: the metrics
//! every stage feeds, the optional HTTP listener and the reload triggers (SIGHUP is taken over
//! here, first thing, so that it never ends the process). Kept apart from the wiring in `app.rs`, which
//! only calls [`Operate::start`] and hands out the handles.

use std::sync::Arc;

use crate::config::Config;
use crate::hush::Hush;
use crate::listen::{self, ListenState};
use crate::matcher::HitBatch;
use crate::metrics::Metrics;
use crate::silence::Silences;
use crate::source::checkpoint;

/// The service side of a run.
pub struct Operate {
    /// The process's metrics, fed by every stage.
    pub metrics: Arc<Metrics>,
    /// Rule names by rule id, for per-rule labels.
    rules: Arc<[String]>,
    triggers: Option<crate::reload::Triggers>,
    /// Runtime silences (state directory, and the listener's API).
    silences: Silences,
}

impl Operate {
    /// Creates the metrics and, with `--listen` (`listen`, which wins) or `listen:`, starts the
    /// listener (an address that cannot be bound is an error: the run does not start). Silences
    /// are kept in `state_dir` (`--state-dir`; `None`: the default state directory);
    /// `state_usable`: false when the state directory was found unusable and said so (silences
    /// then live in memory).
    pub async fn start(
        config: &Config,
        state_dir: Option<&std::path::Path>,
        listen: Option<std::net::SocketAddr>,
        state_usable: bool,
    ) -> anyhow::Result<Operate> {
        let triggers = crate::reload::Triggers::install()?;
        let metrics = Arc::new(Metrics::new());
        let rules: Arc<[String]> = config.rules.iter().map(|r| r.name.clone()).collect();
        metrics.declare_rules(&rules);
        let dir = checkpoint::state_dir(state_dir)
            .ok()
            .filter(|_| state_usable);
        let silences = match Silences::open(dir.as_deref()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("{e}; starting without silences");
                Silences::open(None).expect("in memory")
            }
        };
        if let Some(addr) = listen.or(config.listen) {
            let state = ListenState {
                metrics: metrics.clone(),
                silences: silences.clone(),
            };
            listen::start(addr, state)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        }
        Ok(Operate {
            metrics,
            rules,
            triggers: Some(triggers),
            silences,
        })
    }

    /// The filter of silences, mute windows and quiet hours for the aggregator task.
    pub fn hush(&self, config: &Config) -> Hush {
        Hush::new(
            self.silences.clone(),
            config.mutes.clone(),
            config.quiet_hours.clone(),
            config.timezone,
        )
        .with_metrics(self.metrics.clone())
    }

    /// The reload triggers, for the reloader task (once).
    pub fn take_triggers(&mut self) -> crate::reload::Triggers {
        self.triggers.take().expect("triggers are taken once")
    }

    /// The handle the matcher thread counts with.
    pub fn counter(&self) -> Counter {
        Counter {
            metrics: self.metrics.clone(),
            rules: self.rules.clone(),
        }
    }
}

/// Counts lines, bytes and hits for the metrics, from the matcher thread.
pub struct Counter {
    metrics: Arc<Metrics>,
    rules: Arc<[String]>,
}

impl Counter {
    /// The rule names, by rule id.
    pub fn rules(&self) -> &[String] {
        &self.rules
    }

    /// The same metrics, for the rules of a reloaded config.
    pub fn with_rules(self, rules: &[String]) -> Counter {
        self.metrics.declare_rules(rules);
        Counter {
            metrics: self.metrics,
            rules: rules.iter().cloned().collect(),
        }
    }

    /// Counts one matched chunk.
    pub fn record(&self, batch: &HitBatch) {
        self.metrics.record_batch(batch, &self.rules);
    }
}
