#!/usr/bin/env bash
# Whole-process throughput of dingtail against ripgrep and GNU grep on a generated mixed log.
#
#   bench/run.sh                    # 256 MiB corpus, rule sets 10 20 100 1000, 5 runs each
#   SIZE_MB=1024 bench/run.sh       # the full run
#
# Settings (environment):
#   SIZE_MB=256        corpus size in MiB (bench/out/corpus-<seed>-<size>.log, generated if missing)
#   RUNS=5             timed runs per (rules, tool) cell; the median is reported
#   CELL_BUDGET=90     stop repeating a cell once its runs took this many seconds (>= 1 run)
#   TIMEOUT=60         a single run longer than this is killed and reported as a timeout
#   RULES="10 20 100 1000"
#   SEED=1             corpus seed
#   CORPUS_KIND=generated   or `loghub`: the corpus is built at run time from the Loghub samples
#                      (LOGHUB=dir, default ../shared/data/loghub) by bench/gen_loghub.py, and the
#                      rule sets are generated from their vocabulary in the shapes users write
#                      (bounded gaps, (?i) with .*, \b phrases, \W+), under bench/out/loghub-patterns
#   TOOLS="rg dingtail dingtail-file grep"   which to time (rg's counts are the reference)
#   DINGTAIL_MATCHER_PATH=literals|automata   force every rule onto one path (default: auto,
#                      the program's own choice); shown in the report
#   NO_BUILD=1         time the release binary already built (skip `cargo build --release`)
#   RG=rg GREP=grep    the tools; CARGO_TARGET_DIR as usual for where dingtail is built
#
# dingtail is measured reading stdin (`run --dry-run -c N.yaml < corpus`) and, when the binary has
# it, reading the file itself (`run --dry-run --from-beginning --once FILE`, "dingtail-file").
#
# Before timing, each tool is probed on the first PROBE_MB (4) MiB; a tool that takes over
# PROBE_TIMEOUT (15) s for that is skipped for that rule set and the table says why (this is how
# grep -E with 1000 rules, and today dingtail with 1000 rules, are handled).
#
# Counts are checked, not just times: the number of lines matching at least one rule must be the
# same for `rg -c`, `grep -E -c` and `dingtail test` ("X of Y lines matched at least one rule"),
# `dingtail run` must read every line, and its per-rule totals must equal `dingtail test`'s. Any
# mismatch stops the script with exit status 1.
#
# Everything it writes goes under bench/out/ (gitignored).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bench/out
PAT=$ROOT/bench/patterns
CORPUS_KIND=${CORPUS_KIND:-generated}
mkdir -p "$OUT"

SIZE_MB=${SIZE_MB:-256}
RUNS=${RUNS:-5}
CELL_BUDGET=${CELL_BUDGET:-90}
TIMEOUT=${TIMEOUT:-60}
PROBE_MB=${PROBE_MB:-4}
PROBE_TIMEOUT=${PROBE_TIMEOUT:-15}
RULES=${RULES:-"10 20 100 1000"}
SEED=${SEED:-1}
RG=${RG:-rg}
GREP=${GREP:-grep}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
DINGTAIL=$TARGET/release/dingtail

die() { echo "bench: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }

# ---- tools ---------------------------------------------------------------------------------
need_apt() {
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq; APT_UPDATED=1; fi
        apt-get install -y -qq "$@" >/dev/null
    else
        die "missing $*; install it (apt-get install $*), or for ripgrep: cargo install ripgrep"
    fi
}
[ -x /usr/bin/time ] || need_apt time
command -v "$RG" >/dev/null || need_apt ripgrep
command -v python3 >/dev/null || die "python3 is needed to generate the corpus"

RG_VERSION=$("$RG" --version | sed -n 1p)
RG_MAJOR=$(echo "$RG_VERSION" | sed -E 's/^ripgrep ([0-9]+).*/\1/')

if [ -z "${NO_BUILD:-}" ]; then
    note "building dingtail (release) in $TARGET"
    cargo build --release --quiet
fi
[ -x "$DINGTAIL" ] || die "no binary at $DINGTAIL"

# ---- inputs --------------------------------------------------------------------------------
if [ "$CORPUS_KIND" = loghub ]; then
    LOGHUB_ARGS=()
    [ -n "${LOGHUB:-}" ] && LOGHUB_ARGS=(--loghub "$LOGHUB")
    PAT=$OUT/loghub-patterns
    python3 bench/gen_loghub.py patterns "$PAT" "${LOGHUB_ARGS[@]}" --seed "$SEED"
    CORPUS=$OUT/loghub-$SEED-$SIZE_MB.log
    [ -s "$CORPUS" ] || python3 bench/gen_loghub.py corpus "$CORPUS" "$SIZE_MB" "${LOGHUB_ARGS[@]}" --seed "$SEED"
else
    python3 bench/gen_patterns.py "$PAT" 2>/dev/null
    CORPUS=$OUT/corpus-$SEED-$SIZE_MB.log
    if [ ! -s "$CORPUS" ]; then
        note "generating $CORPUS"
        python3 bench/gen_corpus.py "$CORPUS" "$SIZE_MB" --seed "$SEED"
    fi
fi
PROBE=$OUT/probe-$CORPUS_KIND-$SEED-$PROBE_MB.log
[ -s "$PROBE" ] || head -c $((PROBE_MB << 20)) "$CORPUS" | sed '$d' > "$PROBE"
BYTES=$(stat -c %s "$CORPUS")
LINES=$(wc -l < "$CORPUS")
cat "$CORPUS" > /dev/null   # into the page cache: every tool reads it from memory

# rg 13 lets an inline flag of one -f pattern leak into the following ones (BurntSushi/ripgrep
# #2480, fixed in 14): with it, wrap each pattern in (?:...), its documented workaround.
rg_patterns() {
    if [ "$RG_MAJOR" -lt 14 ]; then
        sed 's/.*/(?:&)/' "$PAT/$1.txt" > "$OUT/$1.rg-wrapped.txt"
        echo "$OUT/$1.rg-wrapped.txt"
    else
        echo "$PAT/$1.txt"
    fi
}

# ---- the commands --------------------------------------------------------------------------
# cmd TOOL RULES INPUT: runs one tool once over INPUT (exec, so that `timeout` kills the tool
# itself), stdout to $OUT/last.out, stderr to $OUT/last.err. Every tool counts matching lines;
# none prints the lines themselves. rg and grep exit 1 when nothing matched.
cmd() {
    local tool=$1 n=$2 input=$3
    case $tool in
        dingtail)
            exec "$DINGTAIL" run --dry-run -c "$PAT/$n.yaml" < "$input" ;;
        # ---- FILE MODE: dingtail reading the file itself (when the binary has --once) -----
        dingtail-file)
            exec "$DINGTAIL" run --dry-run --from-beginning --once --state-dir "$OUT/state" \
                -c "$PAT/$n.yaml" "$input" ;;
        # ------------------------------------------------------------------------------------
        rg)
            exec "$RG" -j1 -c -f "$(rg_patterns "$n")" "$input" ;;
        grep)
            export LC_ALL=C; exec "$GREP" -E -c -f "$PAT/$n.ere.txt" "$input" ;;
    esac
}
if [ -z "${TOOLS:-}" ]; then
    TOOLS="rg dingtail grep"
    if "$DINGTAIL" run --help 2>/dev/null | grep -q -- '--once'; then
        TOOLS="rg dingtail dingtail-file grep"
    else
        note "this dingtail has no 'run --once FILE': only its stdin mode is measured"
    fi
fi

# timed TOOL RULES INPUT LIMIT: one run; prints "WALL_MS RSS_KB CPU_MS" (CPU = user + sys, all
# threads), or "timeout".
timed() {
    local tool=$1 n=$2 input=$3 limit=$4 t0 t1 rc=0
    t0=$(date +%s%N)
    /usr/bin/time -f '%M %U %S' -o "$OUT/last.time" \
        timeout -s KILL "$limit" bash -c "$(declare -f cmd rg_patterns); cmd $tool $n '$input'" \
        > "$OUT/last.out" 2> "$OUT/last.err" || rc=$?
    t1=$(date +%s%N)
    if [ $rc = 124 ] || [ $rc = 137 ]; then echo timeout; return; fi
    [ $rc = 0 ] || { [ $rc = 1 ] && [[ $tool != dingtail* ]]; } ||
        { cat "$OUT/last.err" >&2; die "$tool with $n rules failed (exit $rc)"; }
    read -r kb user sys < <(tail -1 "$OUT/last.time")
    echo "$(( (t1 - t0) / 1000000 )) $kb $(awk -v u="$user" -v s="$sys" 'BEGIN {printf "%d", (u + s) * 1000}')"
}
export DINGTAIL RG GREP PAT OUT RG_MAJOR
mkdir -p "$OUT/state"

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# ---- run -----------------------------------------------------------------------------------
RESULTS=$OUT/results-$CORPUS_KIND-$SEED-$SIZE_MB.tsv
LOAD=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
printf 'corpus\trules\ttool\truns\tmedian_s\tMB_s\tratio_rg\tcpu_s\tcpu_s_per_GB\tcpu_ratio_rg\trss_mib\tmatched\tnote\n' > "$RESULTS"
note "corpus: $CORPUS ($BYTES bytes, $LINES lines); rg: $RG_VERSION; $(${GREP} --version | sed -n 1p)"
note "runs per cell: $RUNS (budget ${CELL_BUDGET}s), timeout ${TIMEOUT}s, probe ${PROBE_MB} MiB"

for n in $RULES; do
    [ -f "$PAT/$n.yaml" ] || die "no pattern set $n"
    declare -A med=() cpu=() rss=() matched=() notes=() runs=()
    for tool in $TOOLS; do
        # probe: a tool that cannot do the first PROBE_MB MiB in PROBE_TIMEOUT s is skipped.
        # (No extrapolation: lazy DFAs are slow while they warm up, so the probe overestimates.)
        pr=$(timed "$tool" "$n" "$PROBE" "$PROBE_TIMEOUT")
        if [ "$pr" = timeout ]; then
            notes[$tool]="skipped: over ${PROBE_TIMEOUT} s on the first $PROBE_MB MiB"
            note "$n rules, $tool: ${notes[$tool]}"; continue
        fi
        times=() cpus=() peak=0 spent=0
        for ((i = 1; i <= RUNS; i++)); do
            r=$(timed "$tool" "$n" "$CORPUS" "$TIMEOUT")
            if [ "$r" = timeout ]; then notes[$tool]="timeout after ${TIMEOUT}s"; break; fi
            read -r ms kb cpu <<< "$r"
            times+=("$ms"); cpus+=("$cpu"); [ "$kb" -gt "$peak" ] && peak=$kb
            spent=$(( spent + ${r%% *} ))
            [ $spent -gt $(( CELL_BUDGET * 1000 )) ] && break
        done
        [ ${#times[@]} -gt 0 ] || { note "$n rules, $tool: ${notes[$tool]}"; continue; }
        runs[$tool]=${#times[@]}
        med[$tool]=$(printf '%s\n' "${times[@]}" | median)
        cpu[$tool]=$(printf '%s\n' "${cpus[@]}" | median)
        rss[$tool]=$(( peak / 1024 ))
        case $tool in
            dingtail*)
                summary=$(grep -E '^dingtail: read [0-9]+ lines' "$OUT/last.err") || die "no summary from dingtail run"
                got_lines=$(echo "$summary" | sed -E 's/^dingtail: read ([0-9]+) lines.*/\1/')
                [ "$got_lines" = "$LINES" ] || die "MISMATCH: dingtail run read $got_lines lines, the corpus has $LINES"
                run_hits=$(echo "$summary" | grep -oE 'r[0-9]{4} [0-9]+' | awk '{s += $2} END {print s + 0}')
                # lines matching at least one rule, as rg counts them
                "$DINGTAIL" test -c "$PAT/$n.yaml" "$CORPUS" > "$OUT/test.out"
                matched[$tool]=$(tail -1 "$OUT/test.out" | awk '{print $1}')
                test_hits=$(awk 'NF == 2 && $1 ~ /^r[0-9]+$/ && index($0, "\t") == 0 {s += $2} END {print s + 0}' "$OUT/test.out")
                [ "$run_hits" = "$test_hits" ] ||
                    die "MISMATCH: dingtail run counted $run_hits rule matches, dingtail test $test_hits ($n rules)"
                ;;
            *) matched[$tool]=$(cat "$OUT/last.out") ;;
        esac
        note "$n rules, $tool: median ${med[$tool]} ms of ${#times[@]} run(s), ${matched[$tool]} lines matched"
    done
    # counts must agree with rg's
    ref=${matched[rg]:-}
    for tool in $TOOLS; do
        [ -n "${matched[$tool]:-}" ] && [ -n "$ref" ] || continue
        [ "${matched[$tool]}" = "$ref" ] ||
            die "MISMATCH with $n rules: $tool says ${matched[$tool]} matching lines, rg says $ref"
    done
    for tool in $TOOLS; do
        if [ -n "${med[$tool]:-}" ]; then
            ms=${med[$tool]}
            mbs=$(awk -v b="$BYTES" -v ms="$ms" 'BEGIN {printf "%.0f", b / 1e6 / (ms / 1000)}')
            ratio=$( [ -n "${med[rg]:-}" ] && awk -v a="$ms" -v r="${med[rg]}" 'BEGIN {printf "%.2f", a / r}' || echo -)
            cpu_gb=$(awk -v ms="${cpu[$tool]}" -v b="$BYTES" 'BEGIN {printf "%.2f", ms / 1000 / (b / 1e9)}')
            cpu_ratio=$( [ -n "${cpu[rg]:-}" ] && awk -v a="${cpu[$tool]}" -v r="${cpu[rg]}" 'BEGIN {printf "%.2f", a / (r > 0 ? r : 1)}' || echo -)
            printf '%s\t%s\t%s\t%s\t%.2f\t%s\t%s\t%.2f\t%s\t%s\t%s\t%s\t%s\n' "$CORPUS_KIND" "$n" "$tool" "${runs[$tool]}" \
                "$(awk -v ms="$ms" 'BEGIN {print ms / 1000}')" "$mbs" "$ratio" \
                "$(awk -v ms="${cpu[$tool]}" 'BEGIN {print ms / 1000}')" "$cpu_gb" "$cpu_ratio" "${rss[$tool]}" \
                "${matched[$tool]}" "${notes[$tool]:-}" >> "$RESULTS"
        else
            printf '%s\t%s\t%s\t0\t-\t-\t-\t-\t-\t-\t-\t-\t%s\n' "$CORPUS_KIND" "$n" "$tool" "${notes[$tool]:-}" >> "$RESULTS"
        fi
    done
    unset med cpu rss matched notes runs
done

# ---- report --------------------------------------------------------------------------------
echo
echo "corpus: $CORPUS_KIND, $SIZE_MB MiB ($BYTES bytes, $LINES lines, seed $SEED); $RG_VERSION; $(${GREP} --version | sed -n 1p) (LC_ALL=C)"
echo "median wall time of up to $RUNS runs; MB/s = 10^6 bytes per second; ratio = time / rg's time;"
echo "cpu = median user+sys seconds (all threads: rg -j1 and grep use one, dingtail a reader and a matcher thread);"
echo "matcher path: ${DINGTAIL_MATCHER_PATH:-auto}"
echo "RSS = peak resident set (rg maps the file, so its RSS counts the corpus's page-cache pages); load at start: $LOAD"
column -t -s $'\t' "$RESULTS" 2>/dev/null || cat "$RESULTS"
echo
echo "counts checked: every tool that ran agrees on matching lines with rg; results in $RESULTS"
