//! The `new_patterns:` sieve in a run: built with what the state directory remembers, fed
//! before the aggregator, saved at most once a second while it changes and at the stop (see
//! [`crate::new_pattern`] and [`crate::state::template_file`]).

use std::path::Path;
use std::time::SystemTime;

use tokio::time::Instant;

use crate::config::Config;
use crate::matcher::HitBatch;
use crate::new_pattern::Sieve;
use crate::new_pattern::memory::TemplateMemory;
use crate::state::template_file::{TemplateSaver, TemplateStore};

/// The sieve of a run and the writer of its memory (none without a state directory: stdin
/// without one, dry-run).
#[derive(Debug, Default)]
pub(super) struct NewPatterns {
    sieve: Option<Sieve>,
    saver: Option<TemplateSaver>,
}

impl NewPatterns {
    /// The sieve for `config` (none without `new_patterns:`), remembering what `state_dir`
    /// holds unless `fresh` (`--from-beginning` reads everything again, so it starts afresh; the
    /// file is written all the same).
    pub(super) fn start(config: &Config, state_dir: Option<&Path>, fresh: bool) -> NewPatterns {
        let Some(settings) = &config.new_patterns else {
            return NewPatterns::default();
        };
        let store = state_dir.map(TemplateStore::new);
        let saved = store.as_ref().filter(|_| !fresh).and_then(|s| s.load());
        let memory = match saved {
            Some(file) => {
                let m = TemplateMemory::restore(
                    file.templates,
                    settings.max_templates,
                    settings.remember_for,
                    SystemTime::now(),
                );
                tracing::info!(templates = m.len(), "new-pattern memory restored");
                m
            }
            None => TemplateMemory::new(settings.max_templates, settings.remember_for),
        };
        NewPatterns {
            sieve: Sieve::for_config(config, memory),
            saver: store.map(TemplateSaver::spawn),
        }
    }

    /// Keeps only the hits of new templates (see [`Sieve::sift`]).
    pub(super) fn sift(&mut self, batch: &mut HitBatch, now: Instant) {
        if let Some(s) = &mut self.sieve {
            s.sift(batch, now);
        }
    }

    /// A reloaded config: the sieve follows its rule, keeps its memory; `new_patterns:` added
    /// by the reload starts with an empty memory.
    pub(super) fn reconfigure(&mut self, config: &Config) {
        self.sieve = match self.sieve.take() {
            Some(s) => s.reconfigure(config),
            None => Sieve::fresh(config),
        };
    }

    /// Whether there is a memory to save.
    pub(super) fn saves(&self) -> bool {
        self.sieve.is_some() && self.saver.is_some()
    }

    /// The periodic save (once a second): written when the memory changed.
    pub(super) fn offer(&mut self) {
        if let (Some(sieve), Some(saver)) = (&mut self.sieve, &mut self.saver) {
            saver.offer(sieve.memory_mut(), SystemTime::now());
        }
    }

    /// The last save, at the stop.
    pub(super) async fn finish(mut self) {
        if let (Some(sieve), Some(saver)) = (&mut self.sieve, self.saver.take())
            && let Err(e) = saver.finish(sieve.memory_mut(), SystemTime::now()).await
        {
            tracing::error!(
                "cannot save the new-pattern memory: {e}; templates first seen since the last save will alert once more"
            );
        }
    }
}
