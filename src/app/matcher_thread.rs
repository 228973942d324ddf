//! The matcher thread: chunks in, hit batches out, counting lines, events, bytes and hits per
//! rule.
//! Synchronous (no tokio), so network waits never slow matching.

use tokio::sync::mpsc;

use anyhow::Context;

use crate::matcher::Matcher;
use crate::operate::Counter;
use crate::reload::{Feed, Matched};

/// The matcher thread's loop; returns lines, events, bytes and matching events per rule name (rules a
/// reload removed included, in the order they were first configured).
///
/// A reload takes effect between two chunks: the new matcher from then on, and the aggregator
/// told in the same channel, after the batches matched with the old rules.
pub(super) fn match_all(
    mut matcher: Matcher,
    mut chunk_rx: mpsc::Receiver<Feed>,
    hit_tx: mpsc::Sender<Matched>,
    rule_count: usize,
    mut counted: Counter,
) -> MatchTotals {
    let (mut lines, mut events, mut bytes) = (0, 0, 0);
    let mut names: Vec<String> = counted.rules().to_vec();
    let mut per_rule = vec![0u64; rule_count];
    // Rules a reload removed, with what they matched.
    let mut retired: Vec<(String, u64)> = Vec::new();
    while let Some(item) = chunk_rx.blocking_recv() {
        let chunk = match item {
            Feed::Chunk(c) => c,
            Feed::Reload(reload) => {
                let new: Vec<String> = reload.config.rules.iter().map(|r| r.name.clone()).collect();
                let mut counts = vec![0u64; new.len()];
                for (name, n) in names.drain(..).zip(per_rule.drain(..)) {
                    match new.iter().position(|x| *x == name) {
                        Some(i) => counts[i] = n,
                        None => retired.push((name, n)),
                    }
                }
                retired.retain(|(name, n)| match new.iter().position(|x| x == name) {
                    Some(i) => {
                        counts[i] += n;
                        false
                    }
                    None => true,
                });
                (names, per_rule) = (new, counts);
                matcher = reload.matcher;
                counted = counted.with_rules(&names);
                if hit_tx
                    .blocking_send(Matched::Reload(reload.config))
                    .is_err()
                {
                    break;
                }
                continue;
            }
        };
        let mut batch = matcher.match_chunk(&chunk);
        // The matcher sees events; the chunk says where lines meet inside them.
        events += batch.lines;
        lines += batch.lines + chunk.line_joins.len() as u64;
        // A hit on a multi-line event carries its lines apart (`\n` between them) to the
        // samples and the renderer.
        chunk.set_lines_apart(batch.hits.iter_mut().map(|h| &mut h.line));
        // Bytes read, not bytes matched: a followed file's chunk covers its offsets, including
        // the skipped tails of lines cut at max_line_bytes (stdin's total comes from its reader).
        bytes += match chunk.mark {
            Some(mark) => chunk.end_offset.saturating_sub(mark.start),
            None => batch.bytes,
        };
        for hit in &batch.hits {
            per_rule[hit.rule] += 1;
        }
        counted.record(&batch);
        if hit_tx.blocking_send(Matched::Batch(batch)).is_err() {
            break;
        }
    }
    let mut matches: Vec<(String, u64)> = names.into_iter().zip(per_rule).collect();
    matches.extend(retired);
    (lines, events, bytes, matches)
}

/// What the matcher thread counted: lines, events (a multi-line event counts once), bytes, and
/// matching events per rule name.
pub(super) type MatchTotals = (u64, u64, u64, Vec<(String, u64)>);

/// Starts the matcher thread: synchronous, so network waits never slow matching.
pub(super) fn spawn_matcher(
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
