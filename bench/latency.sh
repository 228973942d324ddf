#!/usr/bin/env bash
# The latency from a line appended to a followed file to its message reaching the DingTalk
# emulator (tests/support, on 127.0.0.1), p50 and p99, window 100 ms, release build:
#
#   bench/latency.sh                  # 200 lines, one after the other
#   LATENCY_SAMPLES=1000 bench/latency.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --quiet --test latency -- --ignored --nocapture 2>&1 | grep '^latency'
