//! Hits → alerts: gathers the hits of each rule over its window and keeps exact counts.
//!
//! The aggregator is a plain state machine that is told the time (`tokio::time::Instant`, so tests
//! can pause and advance it) and never reads a clock or sleeps itself; `app.rs` drives it. Memory
//! is bounded whatever arrives: per open window, one count plus at most `max_lines` sample lines
//! of at most [`SAMPLE_MAX_BYTES`] each. Samples are copied out of the chunk so the chunk's
//! buffer can be freed at once.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use tokio::time::Instant;

use crate::config::RobotId;
use crate::matcher::HitBatch;
use crate::rules::{Rule, RuleId};
use crate::source::Mark;

/// Longest sample line kept; a message (20,000 bytes in all) could not show more of it anyway.
pub const SAMPLE_MAX_BYTES: usize = 8 * 1024;

/// A quoted line: its bytes (maybe invalid UTF-8) and whether it was already cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The line, without newline, at most [`SAMPLE_MAX_BYTES`].
    pub text: Bytes,
    /// The line was longer than `text`.
    pub cut: bool,
}

impl Sample {
    /// Copies a line, cutting it at [`SAMPLE_MAX_BYTES`].
    pub fn from_line(line: &[u8]) -> Sample {
        let cut = line.len() > SAMPLE_MAX_BYTES;
        Sample {
            text: Bytes::copy_from_slice(&line[..line.len().min(SAMPLE_MAX_BYTES)]),
            cut,
        }
    }
}

/// Everything one message needs to say about one rule: the exact number of hits it stands for,
/// when they happened, and a bounded sample of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// The rule.
    pub rule: RuleId,
    /// Its name, for the `【rule】` header.
    pub rule_name: Arc<str>,
    /// Where it goes (`None` when the config has no robot: dry-run).
    pub robot: Option<RobotId>,
    /// Exact number of matching lines this alert stands for.
    pub count: u64,
    /// Time of the first hit.
    pub first: SystemTime,
    /// Time of the last hit.
    pub last: SystemTime,
    /// Source of the most recent hit (`-` for stdin, else a path).
    pub source: Arc<str>,
    /// Up to `max_lines` lines, the first ones seen.
    pub samples: Vec<Sample>,
    /// The rule's `max_lines`, kept so merged alerts stay within it.
    pub max_lines: usize,
    /// Per followed file, the start of the first chunk this alert counts a hit from: until the
    /// alert is settled (delivered, or reported undelivered) the file's checkpoint stays at or
    /// before it. One entry per file per window, not per hit, because later hits of the same
    /// file lie after it anyway; merged alerts keep all entries (each was registered with the
    /// checkpoint keeper and is released once), so this grows with the number of windows merged,
    /// never with the number of hits.
    pub holds: Vec<Mark>,
}

impl Alert {
    /// Folds a later alert of the same rule into this one: counts add up, the time span widens,
    /// samples fill up to `max_lines`.
    pub fn merge(&mut self, later: Alert) {
        debug_assert_eq!(self.rule, later.rule);
        self.count += later.count;
        self.first = self.first.min(later.first);
        self.last = self.last.max(later.last);
        self.source = later.source;
        let room = self.max_lines.saturating_sub(self.samples.len());
        self.samples.extend(later.samples.into_iter().take(room));
        self.holds.extend(later.holds);
    }

    /// Lines counted but not quoted.
    pub fn unquoted(&self) -> u64 {
        self.count - self.samples.len() as u64
    }
}

/// An open window: the alert being built and when it closes.
#[derive(Debug)]
struct Open {
    alert: Alert,
    closes_at: Instant,
}

/// Gathers hits into alerts; see the module docs.
#[derive(Debug)]
pub struct Aggregator {
    rules: Vec<Rule>,
    names: Vec<Arc<str>>,
    open: HashMap<RuleId, Open>,
    /// Open windows ordered by closing time, so the next deadline is the first entry.
    deadlines: BTreeSet<(Instant, RuleId)>,
}

impl Aggregator {
    /// An aggregator for these rules (indexed by `RuleId`).
    pub fn new(rules: &[Rule]) -> Aggregator {
        Aggregator {
            names: rules.iter().map(|r| Arc::from(r.name.as_str())).collect(),
            rules: rules.to_vec(),
            open: HashMap::new(),
            deadlines: BTreeSet::new(),
        }
    }

    /// Counts the hits of a batch. The first hit of a rule opens its window, which closes
    /// `window` after `now`. Returns how many alerts took a hold on the batch's chunk (the
    /// checkpoint keeper must learn of them before the alerts can be settled).
    pub fn add(&mut self, batch: &HitBatch, now: Instant) -> u32 {
        let mut new_holds = 0;
        for hit in &batch.hits {
            let rule = &self.rules[hit.rule];
            let open = self.open.entry(hit.rule).or_insert_with(|| {
                let closes_at = now + rule.window;
                self.deadlines.insert((closes_at, hit.rule));
                Open {
                    alert: Alert {
                        rule: hit.rule,
                        rule_name: self.names[hit.rule].clone(),
                        robot: rule.robot,
                        count: 0,
                        first: batch.read_at,
                        last: batch.read_at,
                        source: batch.source.clone(),
                        samples: Vec::new(),
                        max_lines: rule.max_lines,
                        holds: Vec::new(),
                    },
                    closes_at,
                }
            });
            let alert = &mut open.alert;
            alert.count += 1;
            alert.last = alert.last.max(batch.read_at);
            if !Arc::ptr_eq(&alert.source, &batch.source) {
                alert.source = batch.source.clone();
            }
            if alert.samples.len() < alert.max_lines {
                alert.samples.push(Sample::from_line(&hit.line));
            }
            if let Some(mark) = batch.mark
                && !alert.holds.iter().any(|h| h.file == mark.file)
            {
                alert.holds.push(mark);
                new_holds += 1;
            }
        }
        new_holds
    }

    /// When the next window closes, if any is open.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// Closes every window due at `now`, returning their alerts (oldest first).
    pub fn expire(&mut self, now: Instant) -> Vec<Alert> {
        let mut out = Vec::new();
        while let Some(&(at, rule)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(open) = self.open.remove(&rule) {
                out.push(open.alert);
            }
        }
        out
    }

    /// Closes every window now (end of input, shutdown).
    pub fn flush(&mut self) -> Vec<Alert> {
        let mut out: Vec<(Instant, Alert)> = self
            .open
            .drain()
            .map(|(_, o)| (o.closes_at, o.alert))
            .collect();
        self.deadlines.clear();
        out.sort_by_key(|(at, a)| (*at, a.rule));
        out.into_iter().map(|(_, a)| a).collect()
    }

    /// Hits counted in windows still open.
    pub fn pending_hits(&self) -> u64 {
        self.open.values().map(|o| o.alert.count).sum()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::matcher::Hit;
    use crate::rules::RuleSpec;

    fn rule(name: &str, window_ms: u64, max_lines: usize) -> Rule {
        Rule::compile(RuleSpec {
            name: name.into(),
            pattern: "x".into(),
            exclude: vec![],
            window: Duration::from_millis(window_ms),
            max_lines,
            robot: Some(0),
        })
        .unwrap()
    }

    fn batch(hits: &[(RuleId, &str)]) -> HitBatch {
        HitBatch {
            source: "-".into(),
            read_at: SystemTime::now(),
            lines: hits.len() as u64,
            bytes: 0,
            end_offset: 0,
            mark: None,
            hits: hits
                .iter()
                .map(|(r, l)| Hit {
                    rule: *r,
                    line: Bytes::copy_from_slice(l.as_bytes()),
                })
                .collect(),
        }
    }

    #[test]
    fn a_window_gathers_hits_until_it_closes() {
        let t0 = Instant::now();
        let mut agg = Aggregator::new(&[rule("a", 100, 2), rule("b", 50, 2)]);
        agg.add(&batch(&[(0, "a1"), (1, "b1"), (0, "a2"), (0, "a3")]), t0);
        assert_eq!(agg.next_deadline(), Some(t0 + Duration::from_millis(50)));
        assert!(agg.expire(t0 + Duration::from_millis(49)).is_empty());

        let closed = agg.expire(t0 + Duration::from_millis(50));
        assert_eq!(closed.len(), 1);
        assert_eq!((closed[0].rule, closed[0].count), (1, 1));

        // a hit after the first closed window opens a new one
        agg.add(&batch(&[(1, "b2")]), t0 + Duration::from_millis(60));
        let closed = agg.expire(t0 + Duration::from_millis(200));
        let counts: Vec<(RuleId, u64)> = closed.iter().map(|a| (a.rule, a.count)).collect();
        assert_eq!(counts, [(0, 3), (1, 1)]);
        let a = &closed[0];
        assert_eq!(a.samples.len(), 2);
        assert_eq!(a.unquoted(), 1);
        assert_eq!(agg.pending_hits(), 0);
        assert_eq!(agg.next_deadline(), None);
    }

    #[test]
    fn flush_closes_everything_and_loses_no_count() {
        let t0 = Instant::now();
        let mut agg = Aggregator::new(&[rule("a", 10_000, 3), rule("b", 5_000, 3)]);
        for _ in 0..1000 {
            agg.add(&batch(&[(0, "a"), (1, "b"), (1, "b")]), t0);
        }
        assert_eq!(agg.pending_hits(), 3000);
        let alerts = agg.flush();
        assert_eq!(alerts.iter().map(|a| a.count).sum::<u64>(), 3000);
        assert!(alerts.iter().all(|a| a.samples.len() == 3));
        assert_eq!(alerts[0].rule, 1, "the window closing first comes first");
        assert_eq!(agg.pending_hits(), 0);
    }

    #[test]
    fn merging_adds_counts_and_keeps_samples_bounded() {
        let mut agg = Aggregator::new(&[rule("a", 10, 2)]);
        agg.add(&batch(&[(0, "1"), (0, "2"), (0, "3")]), Instant::now());
        let mut a = agg.flush().remove(0);
        agg.add(&batch(&[(0, "4")]), Instant::now());
        let b = agg.flush().remove(0);
        a.merge(b);
        assert_eq!(a.count, 4);
        assert_eq!(a.samples.len(), 2);
        assert_eq!(a.unquoted(), 2);
    }

    #[test]
    fn huge_lines_are_sampled_cut() {
        let s = Sample::from_line(&vec![b'x'; SAMPLE_MAX_BYTES + 1]);
        assert!(s.cut);
        assert_eq!(s.text.len(), SAMPLE_MAX_BYTES);
        assert!(!Sample::from_line(b"short").cut);
    }
}
