#!/usr/bin/env bash
# The latency from a line appended to a followed file to its message reaching the DingTalk
# emulator (tests/support, on 127.0.0.1), p50 and p99, window 100 ms, release build:
#
#   bench/latency.sh                  # 200 lines, one after the other
#   LATENCY_SAMPLES=1000 bench/latency.sh
#
# Fails (and shows the test's output) when the test fails or prints no figures.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/out
log=bench/out/latency.log
status=0
cargo test --release --quiet --test latency -- --ignored --nocapture > "$log" 2>&1 || status=$?
if [ "$status" != 0 ] || ! grep '^latency' "$log"; then
    cat "$log" >&2
    echo "bench/latency.sh: the latency test failed (exit $status); output above" >&2
    exit 1
fi
