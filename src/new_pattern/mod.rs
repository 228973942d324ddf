//! `new_patterns:`: errors never seen before, found without writing a rule.
//!
//! ```yaml
//! new_patterns:
//!   match: '(?i)error|exception|fatal'   # the lines worth a template
//!   for: 30d                             # a template is remembered this long after it was last seen
//! ```
//!
//! A line that passes `match` is reduced to its template ([`template::reduce`]: numbers, hex,
//! UUIDs, addresses, paths, quoted values and timestamps masked). The first sighting of a
//! template alerts: `【new-error】×N host · template=…` with one example line, where `N` counts
//! every line of that template within the window that opened at its first sighting. After the
//! window the template is known: its lines are not hits, until it was unseen for `for`.
//!
//! It is a rule like the others, so every stage serves it unchanged: the matcher finds the lines
//! that pass `match` (the rule [`rule`] builds, named [`RULE_NAME`], appended to the config's
//! rules by the checker); the [`Sieve`] then keeps the hits of new templates and drops the rest,
//! writing the template in as the hit's one capture, `template`, which is the rule's `group_by`;
//! the aggregator counts each new template as its own group (window, exact count, one sample),
//! and routes, silences, mute windows, the rate limit, merging and `redact:` apply as to any
//! rule. The sieve sits right before the aggregator (in `run` and in `test --replay`) and is
//! told the same time, so a window it opens is the window the aggregator opens.
//!
//! What is remembered ([`memory::TemplateMemory`]) survives restarts in the state directory
//! (`new_patterns.json`, see `crate::new_pattern::template_file`).

pub mod memory;
pub mod template;
pub mod template_file;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::ids::RuleId;
use crate::matcher::HitBatch;
use crate::rules::{Rule, RuleError, RuleSpec};
use memory::{Seen, TemplateMemory};

/// The name of the rule of `new_patterns:`, shown as `【new-error】`.
pub const RULE_NAME: &str = "new-error";

/// The one capture of its hits: the template (its `group_by`).
pub const CAPTURE: &str = "template";

/// Default of `for`.
pub const DEFAULT_FOR: Duration = Duration::from_secs(30 * 86_400);

/// Default of `max_templates`.
pub const DEFAULT_MAX_TEMPLATES: usize = 10_000;

/// `new_patterns:`, checked (its rule is in the config's rules, named [`RULE_NAME`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Lines of a new template within this window of its first sighting count into its message.
    pub window: Duration,
    /// A template is remembered this long after it was last seen.
    pub remember_for: Duration,
    /// Templates remembered at most; at the bound the one seen longest ago is forgotten.
    pub max_templates: usize,
}

/// The rule of `new_patterns:` from `spec` (its `match`, `exclude`, window, robots, style):
/// one message per new template, quoting one example line, grouped by the template the
/// [`Sieve`] writes into each hit. The matcher takes no capture of it: the template is the only
/// capture its hits carry.
pub fn rule(mut spec: RuleSpec) -> Result<Rule, RuleError> {
    spec.name = RULE_NAME.to_owned();
    spec.max_lines = 1;
    spec.group_by = Vec::new();
    spec.threshold = None;
    let mut rule = Rule::compile(spec)?;
    Arc::make_mut(&mut rule.style).capture_names = vec![Arc::from(CAPTURE)];
    rule.group_by = vec![0];
    rule.needs_captures = false;
    Ok(rule)
}

/// How many lines the sieve saw and what it made of them (for `test --replay` and the summary).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SieveStats {
    /// Lines that passed `match` (hits of the rule).
    pub lines: u64,
    /// Of those, lines of a new template within its window: counted into a message.
    pub kept: u64,
    /// New templates (first sightings, or first since forgotten).
    pub new_templates: u64,
}

/// Between the matcher and the aggregator: keeps the hits of new templates, drops the others;
/// see the module docs.
#[derive(Debug)]
pub struct Sieve {
    rule: RuleId,
    window: Duration,
    memory: TemplateMemory,
    /// New templates whose window is open, until when.
    counting: HashMap<Arc<str>, Instant>,
    /// The same, in the order they close (windows all have the same length, so this is also
    /// the order they opened).
    closing: VecDeque<(Instant, Arc<str>)>,
    stats: SieveStats,
}

impl Sieve {
    /// A sieve for `new_patterns:` (`settings`, and `rules`, the config's, the last of which
    /// is its rule) with `memory` (what earlier runs remembered), or `None` without it.
    pub fn new(
        settings: Option<&Settings>,
        rules: &[Rule],
        memory: TemplateMemory,
    ) -> Option<Sieve> {
        let settings = settings?;
        let rule = rules.iter().position(|r| r.name == RULE_NAME)?;
        let mut memory = memory;
        memory.set_bounds(settings.max_templates, settings.remember_for);
        Some(Sieve {
            rule,
            window: settings.window,
            memory,
            counting: HashMap::new(),
            closing: VecDeque::new(),
            stats: SieveStats::default(),
        })
    }

    /// A sieve with an empty memory (`test --replay`, or no state directory).
    pub fn fresh(settings: Option<&Settings>, rules: &[Rule]) -> Option<Sieve> {
        let s = settings?;
        Sieve::new(
            Some(s),
            rules,
            TemplateMemory::new(s.max_templates, s.remember_for),
        )
    }

    /// Takes a reloaded config (its `new_patterns:` and rules): its rule's new id and its
    /// settings, keeping what is remembered. Returns `None` when the config no longer has
    /// `new_patterns:` (the memory goes with it; the file stays as last saved).
    pub fn reconfigure(self, settings: Option<&Settings>, rules: &[Rule]) -> Option<Sieve> {
        let mut next = Sieve::new(settings, rules, self.memory)?;
        next.counting = self.counting;
        next.closing = self.closing;
        next.stats = self.stats;
        Some(next)
    }

    /// Sifts the hits of `batch` (read at `batch.read_at`, and at `now` on the aggregator's
    /// clock): a hit of the new-pattern rule stays only when its template is new, or its
    /// window is still open, and then carries the template as its capture.
    pub fn sift(&mut self, batch: &mut HitBatch, now: Instant) {
        while let Some((until, _)) = self.closing.front() {
            if *until > now {
                break;
            }
            let (_, template) = self.closing.pop_front().expect("just seen");
            self.counting.remove(&template);
        }
        if !batch.hits.iter().any(|h| h.rule == self.rule) {
            return;
        }
        let wall = batch.read_at;
        batch.hits.retain_mut(|hit| {
            if hit.rule != self.rule {
                return true;
            }
            self.stats.lines += 1;
            let template = template::reduce(&hit.line);
            let seen = self.memory.see(&template, wall);
            let keep = if self.counting.contains_key(template.as_str()) {
                true
            } else if seen == Seen::New {
                self.stats.new_templates += 1;
                let key: Arc<str> = Arc::from(template.as_str());
                let until = now + self.window;
                self.counting.insert(key.clone(), until);
                self.closing.push_back((until, key));
                true
            } else {
                false
            };
            if keep {
                self.stats.kept += 1;
                hit.captures = vec![Bytes::from(template)];
            }
            keep
        });
    }

    /// What is remembered.
    pub fn memory(&self) -> &TemplateMemory {
        &self.memory
    }

    /// What is remembered, to prune before a save.
    pub fn memory_mut(&mut self) -> &mut TemplateMemory {
        &mut self.memory
    }

    /// The counts so far.
    pub fn stats(&self) -> SieveStats {
        self.stats
    }
}

/// The line `test --replay` ends with: lines read, lines that passed `match`, templates
/// remembered, new ones, and `alerts` (new-error alerts sent).
pub fn replay_summary(sieve: &Sieve, lines: u64, alerts: usize) -> String {
    let s = sieve.stats();
    format!(
        "=== new_patterns: {lines} line(s) read, {} passed match, {} template(s), {} new, {alerts} alert(s)",
        s.lines,
        sieve.memory().len(),
        s.new_templates,
    )
}
