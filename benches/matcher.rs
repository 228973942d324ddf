//! The matcher's hot path: `Matcher::scan` and `Matcher::match_chunk` over a 4 MiB chunk of the
//! benchmark corpus with the 10-, 100- and 1000-rule sets of `bench/patterns/`, in bytes/second,
//! for each strategy: `auto` (what dingtail runs), `literals` (every rule with a usable literal
//! found by its literal first) and `automata` (every rule in grouped automata, the matcher before
//! the literal path). Also the cost of compiling each rule set (`Matcher::new`).
//!
//! The automata strategy with 1000 rules runs on a smaller chunk (`DINGTAIL_BENCH_CHUNK_1000`,
//! KiB, default 256): on a stream of new text its lazy DFAs keep rebuilding states, and a 4 MiB
//! chunk would take many seconds per iteration.

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dingtail::matcher::{Matcher, Strategy};
use dingtail::source::Chunk;

const CHUNK: usize = 4 << 20;
const MAX_LINE: usize = 64 * 1024;

fn matcher(c: &mut Criterion) {
    let corpus = common::corpus(CHUNK >> 20);
    let kib_1000: usize = std::env::var("DINGTAIL_BENCH_CHUNK_1000")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);

    let mut group = c.benchmark_group("matcher");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for n in [10, 20, 100, 1000] {
        let rules = common::rules(n);
        for (name, strategy) in [
            ("auto", Strategy::Auto),
            ("literals", Strategy::Literals),
            ("automata", Strategy::Automata),
        ] {
            let size = if n == 1000 && strategy == Strategy::Automata {
                kib_1000 << 10
            } else {
                CHUNK
            };
            let data = common::head(&corpus, size);
            let m = Matcher::with_strategy(&rules, MAX_LINE, strategy).expect("rules combine");
            group.throughput(Throughput::Bytes(data.len() as u64));
            group.bench_with_input(
                BenchmarkId::new(format!("scan_{name}"), n),
                data,
                |b, data| {
                    b.iter(|| {
                        let mut lines = 0u64;
                        m.scan(black_box(data), |lm| lines += lm.rules.len() as u64);
                        lines
                    })
                },
            );
        }
        let data = common::head(&corpus, CHUNK);
        let m = Matcher::new(&rules, MAX_LINE).expect("rules combine");
        let chunk = Chunk {
            source: Arc::from("-"),
            data: Bytes::copy_from_slice(data),
            end_offset: data.len() as u64,
            read_at: SystemTime::now(),
            mark: None,
            line_joins: Vec::new(),
        };
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_with_input(BenchmarkId::new("match_chunk", n), &chunk, |b, chunk| {
            b.iter(|| m.match_chunk(black_box(chunk)).hits.len())
        });
    }
    group.finish();

    let mut group = c.benchmark_group("matcher_new");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for n in [10, 100, 1000] {
        let rules = common::rules(n);
        group.bench_with_input(BenchmarkId::from_parameter(n), &rules, |b, rules| {
            b.iter(|| Matcher::new(black_box(rules), MAX_LINE).expect("rules combine"))
        });
    }
    group.finish();
}

criterion_group!(benches, matcher);
criterion_main!(benches);
