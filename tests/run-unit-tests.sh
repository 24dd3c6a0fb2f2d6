#!/usr/bin/env bash
# tests/run-unit-tests.sh BUILD_DIR - run every unit/golden test binary (BUILD_DIR/tests/t_*)
# from the project root, show each one's summary, and close with the totals line
# "N passed, N failed" that CI reads.  Exits non-zero if any test binary failed or crashed.
set -u
build=${1:-build}
total_pass=0 total_fail=0 bad=0
export SD_TEST_TMP="$build/tmp"
mkdir -p "$SD_TEST_TMP"
for t in "$build"/tests/t_*; do
    [ -x "$t" ] || continue
    case "$t" in *.o|*.d) continue ;; esac
    name=$(basename "$t")
    log="$build/tests/$name.log"
    if "$t" >"$log" 2>&1; then rc=0; else rc=$?; fi
    line=$(grep -E '^[a-z_0-9]+: [0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    if [ -z "$line" ]; then
        echo "CRASH $name (exit $rc, no summary line); last lines of $log:"
        tail -n 20 "$log" | sed 's/^/    /'
        bad=$((bad + 1)); total_fail=$((total_fail + 1))
        continue
    fi
    p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed$/\1/')
    total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
    if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ]; then
        echo "FAIL  $line (exit $rc); failures:"
        grep -E '^FAIL' "$log" | head -n 30 | sed 's/^/    /'
        bad=$((bad + 1))
    else
        echo "ok    $line"
    fi
done
echo "unit: $total_pass passed, $total_fail failed"
[ "$bad" -eq 0 ]
