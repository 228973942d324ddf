#!/usr/bin/env bash
# The whole comparison in one table: bench/run.sh on the generated corpus and on a corpus built
# at run time from the Loghub samples (with rule sets in the shapes users write), same settings.
#
#   RUNS=3 SIZE_MB=128 bench/all.sh
#
# Environment as for bench/run.sh (SIZE_MB, RUNS, RULES, TIMEOUT, LOGHUB, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
for kind in generated loghub; do
    CORPUS_KIND=$kind bench/run.sh > "bench/out/all-$kind.txt"
done
SEED=${SEED:-1}
SIZE_MB=${SIZE_MB:-256}
{
    head -1 "bench/out/results-generated-$SEED-$SIZE_MB.tsv"
    tail -n +2 "bench/out/results-generated-$SEED-$SIZE_MB.tsv"
    tail -n +2 "bench/out/results-loghub-$SEED-$SIZE_MB.tsv"
} > bench/out/results-all.tsv
grep -h '^corpus:' bench/out/all-generated.txt bench/out/all-loghub.txt
column -t -s $'\t' bench/out/results-all.tsv
