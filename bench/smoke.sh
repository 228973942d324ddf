#!/usr/bin/env bash
# CI-sized check that dingtail counts what ripgrep (or, without it, grep -E) counts, on a 2 MiB
# generated corpus with the 20-rule set. Checks counts, never time. Exit 0 when they agree, 1 and
# a MISMATCH line otherwise.
#
#   bench/smoke.sh                       # builds dingtail (debug) with cargo
#   DINGTAIL=path/to/dingtail bench/smoke.sh
#   SIZE_MB=2 RULES=20 SEED=1            # the defaults
#
# What is compared:
#   - lines matching at least one rule: `dingtail test` ("X of Y lines matched...") vs `rg -c -f`
#     (or `grep -E -c -f` on the ERE twin of the pattern file, under LC_ALL=C);
#   - per rule: dingtail test's table vs `rg -c -e PATTERN` (or grep) for each pattern alone;
#   - `dingtail run --dry-run` (stdin) reads every line and counts the same per-rule matches.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bench/out
PAT=$ROOT/bench/patterns
SIZE_MB=${SIZE_MB:-2}
RULES=${RULES:-20}
SEED=${SEED:-1}
mkdir -p "$OUT"

fail() { echo "smoke: MISMATCH: $*" >&2; exit 1; }

if [ -z "${DINGTAIL:-}" ]; then
    cargo build --quiet
    DINGTAIL=${CARGO_TARGET_DIR:-$ROOT/target}/debug/dingtail
fi
[ -x "$DINGTAIL" ] || { echo "smoke: no dingtail binary at $DINGTAIL" >&2; exit 2; }

CORPUS=$OUT/smoke-$SEED-$SIZE_MB.log
[ -s "$CORPUS" ] || python3 bench/gen_corpus.py "$CORPUS" "$SIZE_MB" --seed "$SEED" 2>/dev/null
[ -f "$PAT/$RULES.txt" ] || python3 bench/gen_patterns.py "$PAT" 2>/dev/null

# the reference tool: count lines matching any of a pattern file (arg 1) or one pattern (-e)
if command -v rg >/dev/null && [ "$(rg --version | head -1 | sed -E 's/^ripgrep ([0-9]+).*/\1/')" -ge 14 ]; then
    REF="ripgrep"
    count_file() { rg -j1 -c -f "$PAT/$RULES.txt" "$CORPUS" || [ $? = 1 ]; }
    count_one() { rg -j1 -c -e "$1" "$CORPUS" || [ $? = 1 ]; }
    list_patterns() { cat "$PAT/$RULES.txt"; }
else
    # rg missing, or 13.x whose -f lets (?i) leak between patterns (BurntSushi/ripgrep#2480)
    REF="grep -E"
    count_file() { LC_ALL=C grep -E -c -f "$PAT/$RULES.ere.txt" "$CORPUS" || [ $? = 1 ]; }
    count_one() { LC_ALL=C grep -E -c -e "$1" "$CORPUS" || [ $? = 1 ]; }
    list_patterns() { cat "$PAT/$RULES.ere.txt"; }
fi

LINES=$(wc -l < "$CORPUS")
"$DINGTAIL" test -c "$PAT/$RULES.yaml" "$CORPUS" > "$OUT/smoke-test.out"
read -r matched _ total _ < <(tail -1 "$OUT/smoke-test.out")
want=$(count_file); want=${want:-0}
[ "$total" = "$LINES" ] || fail "dingtail test read $total lines, the corpus has $LINES"
[ "$matched" = "$want" ] || fail "dingtail test: $matched matching lines, $REF: $want"

i=0
while IFS= read -r p; do
    i=$((i + 1))
    name=$(printf 'r%04d' "$i")
    got=$(awk -v r="$name" '$1 == r && NF == 2 {print $2}' "$OUT/smoke-test.out")
    exp=$(count_one "$p"); exp=${exp:-0}
    [ "$got" = "$exp" ] || fail "rule $name ($p): dingtail test $got, $REF $exp"
done < <(list_patterns)

"$DINGTAIL" run --dry-run -c "$PAT/$RULES.yaml" < "$CORPUS" > /dev/null 2> "$OUT/smoke-run.err"
summary=$(grep -E '^dingtail: read [0-9]+ lines' "$OUT/smoke-run.err") || fail "no summary line from dingtail run"
[[ $summary == "dingtail: read $LINES lines"* ]] || fail "dingtail run: $summary (corpus has $LINES lines)"
run_hits=$(echo "$summary" | grep -oE 'r[0-9]{4} [0-9]+' | sort)
test_hits=$(awk 'NF == 2 && $1 ~ /^r[0-9]+$/ && $2 > 0 {print $1, $2}' "$OUT/smoke-test.out" | sort)
[ "$run_hits" = "$test_hits" ] || fail "dingtail run and dingtail test disagree per rule"

echo "smoke: ok: $matched of $LINES lines matched $RULES rules; dingtail test, dingtail run and $REF agree (per rule too)"
