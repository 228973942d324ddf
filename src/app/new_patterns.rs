//! The `new_patterns:` sieve in a run: built with what the state directory remembers, fed
//! before the aggregator, saved at most once a second while it changes and at the stop (see
//! [`crate::new_pattern`] and [`crate::new_pattern::template_file`]).

use std::path::Path;
use std::time::SystemTime;

use tokio::time::Instant;

use crate::config::Config;
use crate::matcher::HitBatch;
use crate::new_pattern::Sieve;
use crate::new_pattern::memory::TemplateMemory;
use crate::new_pattern::template_file::{TemplateSaver, TemplateStore};

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
            sieve: Sieve::new(Some(settings), &config.rules, memory),
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
        let settings = config.new_patterns.as_ref();
        self.sieve = match self.sieve.take() {
            Some(s) => s.reconfigure(settings, &config.rules),
            None => Sieve::fresh(settings, &config.rules),
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

#[cfg(test)]
mod tests {
    //! The sieve between the matcher and the aggregator, on a paused clock.

    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use bytes::Bytes;
    use tokio::time::Instant;

    use crate::aggregate::{Aggregator, AlertKind};
    use crate::config::{Config, parse_str};
    use crate::matcher::Matcher;
    use crate::new_pattern::{CAPTURE, DEFAULT_MAX_TEMPLATES, RULE_NAME, Settings, Sieve};
    use crate::source::Chunk;

    fn config(extra: &str) -> Config {
        let yaml = format!(
            "rules:\n  - name: panics\n    match: 'panic'\nnew_patterns:\n  match: '(?i)error|exception'\n  exclude: ['DEBUG']\n  window: 10s\n  for: 1d\n{extra}"
        );
        parse_str(&yaml, "t.yaml", &|_| None).unwrap()
    }

    fn chunk(text: &str, wall: SystemTime) -> Chunk {
        Chunk {
            source: Arc::from("-"),
            data: Bytes::copy_from_slice(text.as_bytes()),
            end_offset: 0,
            read_at: wall,
            mark: None,
            line_joins: Vec::new(),
        }
    }

    #[test]
    fn the_rule_is_appended_grouped_by_its_template() {
        let c = config("");
        let r = c.rules.last().unwrap();
        assert_eq!(r.name, RULE_NAME);
        assert_eq!(r.max_lines, 1);
        assert_eq!(&*r.style.capture_names[r.group_by[0]], CAPTURE);
        assert_eq!(
            c.new_patterns,
            Some(Settings {
                window: Duration::from_secs(10),
                remember_for: Duration::from_secs(86_400),
                max_templates: DEFAULT_MAX_TEMPLATES,
            })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_template_alerts_once_with_every_line_of_its_window() {
        let c = config("");
        let matcher = Matcher::new(&c.rules, c.max_line_bytes).unwrap();
        let mut sieve = Sieve::fresh(c.new_patterns.as_ref(), &c.rules).unwrap();
        let t0 = Instant::now();
        let w0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut agg = Aggregator::new(&c.rules, t0, w0);
        let mut out = Vec::new();
        let feed = |text: &str, secs: u64, sieve: &mut Sieve, agg: &mut Aggregator| {
            let now = t0 + Duration::from_secs(secs);
            let mut alerts = agg.expire(now);
            let mut batch = matcher.match_chunk(&chunk(text, w0 + Duration::from_secs(secs)));
            sieve.sift(&mut batch, now);
            alerts.extend(agg.add(&batch, now));
            alerts
        };
        let lines = "ERROR db 10.0.0.5:5432 timeout after 3000 ms\n\
                     ERROR db 10.0.0.9:5432 timeout after 12 ms\n\
                     DEBUG ERROR db 10.0.0.9:5432 timeout after 12 ms\n\
                     all fine\n";
        out.extend(feed(lines, 0, &mut sieve, &mut agg));
        // within the window: counted into the same message
        out.extend(feed(
            "ERROR db 10.0.0.7:5432 timeout after 1 ms\n",
            9,
            &mut sieve,
            &mut agg,
        ));
        // after it: known, not a hit; another shape is new
        out.extend(feed(
            "ERROR db 10.0.0.7:5432 timeout after 1 ms\nNullPointerException at Foo.java:12\n",
            11,
            &mut sieve,
            &mut agg,
        ));
        out.extend(agg.expire(t0 + Duration::from_secs(100)));
        let seen: Vec<(String, u64, String)> = out
            .iter()
            .map(|a| {
                assert_eq!(a.kind, AlertKind::Hits);
                assert_eq!(a.samples.len(), 1);
                (
                    a.group.as_deref().unwrap_or("").to_owned(),
                    a.count,
                    String::from_utf8_lossy(&a.samples[0].text).into_owned(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (
                    "template=ERROR db <IP> timeout after <NUM> ms".to_owned(),
                    3,
                    "ERROR db 10.0.0.5:5432 timeout after 3000 ms".to_owned()
                ),
                (
                    "template=NullPointerException at <HOST>".to_owned(),
                    1,
                    "NullPointerException at Foo.java:12".to_owned()
                ),
            ]
        );
        let stats = sieve.stats();
        assert_eq!((stats.lines, stats.kept, stats.new_templates), (5, 4, 2));
        assert_eq!(sieve.memory().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn other_rules_pass_untouched_and_a_reload_keeps_the_memory() {
        let c = config("");
        let matcher = Matcher::new(&c.rules, c.max_line_bytes).unwrap();
        let mut sieve = Sieve::fresh(c.new_patterns.as_ref(), &c.rules).unwrap();
        let now = Instant::now();
        let w = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut batch = matcher.match_chunk(&chunk("panic: error 1\n", w));
        assert_eq!(batch.hits.len(), 2);
        sieve.sift(&mut batch, now);
        assert_eq!(batch.hits.len(), 2);
        assert!(batch.hits[0].captures.is_empty());
        // the new config has one more rule before: new-error moves, what it knows stays
        let c2 = parse_str(
            "rules:\n  - name: a\n    match: 'x'\n  - name: panics\n    match: 'panic'\nnew_patterns:\n  match: 'error'\n",
            "t.yaml",
            &|_| None,
        )
        .unwrap();
        let mut sieve = sieve
            .reconfigure(c2.new_patterns.as_ref(), &c2.rules)
            .unwrap();
        let matcher = Matcher::new(&c2.rules, c2.max_line_bytes).unwrap();
        let mut batch = matcher.match_chunk(&chunk("panic: error 2\n", w));
        sieve.sift(&mut batch, now + Duration::from_secs(60));
        assert_eq!(batch.hits.len(), 1, "the template is known: {batch:?}");
        assert!(
            {
                let c3 = config("");
                sieve.reconfigure(c3.new_patterns.as_ref(), &c3.rules)
            }
            .is_some()
        );
    }
}
