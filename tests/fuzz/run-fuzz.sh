#!/usr/bin/env bash
# tests/fuzz/run-fuzz.sh BUILD_DIR SECONDS [TARGET...] - run each libFuzzer target
# (BUILD_DIR/fuzz/fuzz_*, or the named ones) for SECONDS on a working copy of its seed
# corpus (tests/fuzz/corpus/<target>/, never written to), one target at a time.  Prints each
# target's closing figures (runs, cov, ft, corpus) and keeps its log in BUILD_DIR/fuzz/.
# A crash, leak, sanitizer report or timeout leaves the reproducer in
# BUILD_DIR/fuzz/artifacts/ and makes the script exit non-zero after the other targets ran.
# A target uses tests/fuzz/<target>.dict when there is one (else the shared sd.dict) and
# adds the libFuzzer flags on the first line of tests/fuzz/<target>.options (later flags
# win; the lines after it are comments).
set -u
build=$1 secs=$2
shift 2
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for t in "$build"/fuzz/fuzz_*; do
        case "$t" in *.o|*.d|*.log) continue ;; esac
        [ -x "$t" ] && targets+=("$(basename "$t")")
    done
fi
mkdir -p "$build/fuzz/artifacts"
bad=0
for name in "${targets[@]}"; do
    seeds=tests/fuzz/corpus/$name
    work=$build/fuzz/corpus/$name
    log=$build/fuzz/$name.log
    dict=tests/fuzz/$name.dict
    [ -f "$dict" ] || dict=tests/fuzz/sd.dict
    opts=()
    [ -f "tests/fuzz/$name.options" ] && read -r -a opts <"tests/fuzz/$name.options"
    mkdir -p "$work"
    # -rss_limit_mb: inputs are at most -max_len bytes; anything near the limit is a bug
    "$build/fuzz/$name" -dict="$dict" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -max_len=262144 -print_final_stats=1 -artifact_prefix="$build/fuzz/artifacts/$name-" \
        "${opts[@]}" "$work" "$seeds" >"$log" 2>&1
    rc=$?
    runs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    cov=$(echo "$last" | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9a-zA-Z]+')
    if [ "$rc" -ne 0 ]; then
        echo "FAIL  $name (exit $rc) after ${runs:-?} runs; $cov; see $log:"
        grep -E 'ERROR|SUMMARY|Test unit written|runtime error' "$log" | head -n 10 |
            sed 's/^/    /'
        bad=$((bad + 1))
    else
        echo "ok    $name: ${runs:-?} runs in ${secs}s, $cov"
    fi
done
echo "fuzz: $(( ${#targets[@]} - bad )) passed, $bad failed"
[ "$bad" -eq 0 ]
