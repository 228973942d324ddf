//! `Aggregator::add` over batches of hits, as the matcher thread sends them: 1,000 hits per batch
//! spread over 10, 100 or 1,000 rules, measured in hits/second.
//!
//! - `steady`: the windows are open and their samples full, so each hit is a lookup and a count
//!   (the common case in a storm);
//! - `fresh`: a new aggregator per batch, so windows open and samples are copied out of the chunk.

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dingtail::aggregate::Aggregator;
use dingtail::matcher::{Hit, HitBatch};
use tokio::time::Instant;

const HITS: usize = 1000;

fn batch(lines: &[&[u8]], rules: usize) -> HitBatch {
    let data = Bytes::copy_from_slice(&lines.concat());
    let mut at = 0;
    let hits = lines
        .iter()
        .cycle()
        .take(HITS)
        .enumerate()
        .map(|(i, l)| {
            if at + l.len() > data.len() {
                at = 0;
            }
            let line = data.slice(at..at + l.len());
            at += l.len();
            Hit {
                rule: (i * 7919) % rules,
                line,
                captures: Vec::new(),
            }
        })
        .collect();
    HitBatch {
        source: Arc::from("-"),
        read_at: SystemTime::now(),
        lines: HITS as u64,
        bytes: data.len() as u64,
        end_offset: data.len() as u64,
        mark: None,
        hits,
    }
}

fn aggregate(c: &mut Criterion) {
    let corpus = common::corpus(1);
    let lines = common::lines(&corpus);
    let sample: Vec<&[u8]> = lines.iter().copied().take(HITS).collect();

    let mut group = c.benchmark_group("aggregate_add");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(HITS as u64));
    for n in [10, 100, 1000] {
        let rules = common::rules(n);
        let b = batch(&sample, n);
        let now = Instant::now();

        let mut agg = Aggregator::new(&rules, now, SystemTime::now());
        agg.add(&b, now); // open every window and fill the samples
        group.bench_with_input(BenchmarkId::new("steady", n), &b, |bench, b| {
            bench.iter(|| agg.add(black_box(b), now))
        });
        group.bench_with_input(BenchmarkId::new("fresh", n), &b, |bench, b| {
            bench.iter_batched(
                || Aggregator::new(&rules, now, SystemTime::now()),
                |mut agg| {
                    let alerts = agg.add(black_box(b), now);
                    (agg, alerts)
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, aggregate);
criterion_main!(benches);
