//! Inputs shared by the criterion benchmarks: the same generated log and rule sets as the
//! whole-process comparison in `bench/` (see `bench/run.sh`), so the numbers can be compared.

#![allow(dead_code)] // each benchmark uses a different part of this module

use std::path::{Path, PathBuf};
use std::time::Duration;

#[path = "../../tests/support/corpus.rs"]
mod corpus_gen;

use dingtail::rules::{DEFAULT_MAX_GROUPS, Rule, RuleSpec};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `mib` MiB of generated mixed log (tests/support/corpus.rs, seed 1: the corpus of the CI
/// benchmark smoke test, generated in Rust, no python needed).
pub fn corpus(mib: usize) -> Vec<u8> {
    corpus_gen::generate(mib << 20, 1)
}

/// The first `bytes` bytes of `data`, cut back to a line end.
pub fn head(data: &[u8], bytes: usize) -> &[u8] {
    let cut = data[..bytes.min(data.len())]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    &data[..cut]
}

/// The rule set `bench/patterns/<n>.txt`, compiled as the config would (window 1h, 5 lines).
pub fn rules(n: usize) -> Vec<Rule> {
    let path = root().join(format!("bench/patterns/{n}.txt"));
    patterns(&path)
        .into_iter()
        .enumerate()
        .map(|(i, pattern)| {
            Rule::compile(RuleSpec {
                name: format!("r{:04}", i + 1),
                pattern,
                window: Duration::from_secs(3600),
                max_lines: 5,
                max_groups: DEFAULT_MAX_GROUPS,
                ..RuleSpec::default()
            })
            .unwrap_or_else(|e| panic!("{}: rule {}: {e}", path.display(), i + 1))
        })
        .collect()
}

fn patterns(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (run bench/gen_patterns.py)", path.display()))
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Every line of `data` (without `\n`).
pub fn lines(data: &[u8]) -> Vec<&[u8]> {
    data.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect()
}
