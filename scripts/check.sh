#!/usr/bin/env bash
# Runs every test (`make check`): builds with gcc and clang, the cmocka unit
# tests and the pytest end-to-end tests, both again under ASan+UBSan, then a
# short run of every fuzz target, then the linters (cppcheck, clang-format). Ends with one summary line per stage and a
# total.
set -uo pipefail
cd "$(dirname "$0")/.."
MAKE=${MAKE:-make}
logs=build/check
rm -rf "$logs"
mkdir -p "$logs"
summary=()
total_pass=0
total_fail=0
failed_stage=""

# unit_counts LOG -> "passed failed" from cmocka's summaries
unit_counts() {
    local p f
    p=$(grep -hoE '^\[  PASSED  \] [0-9]+' "$1" | awk '{s+=$NF} END {print s+0}')
    f=$(grep -hoE '^\[  FAILED  \] [0-9]+' "$1" | awk '{s+=$NF} END {print s+0}')
    echo "$p $f"
}
# e2e_counts LOG -> "passed failed" from pytest's last line
e2e_counts() {
    local line p f e
    line=$(grep -E '(passed|failed|error)' "$1" | tail -n 1)
    p=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+' || true)
    f=$(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+' || true)
    e=$(grep -oE '[0-9]+ errors?' <<<"$line" | grep -oE '[0-9]+' || true)
    echo "${p:-0} $(( ${f:-0} + ${e:-0} ))"
}

stage() { # name kind make-args...
    local name=$1 kind=$2
    shift 2
    local log="$logs/${name// /_}.log"
    echo "=== $name"
    $MAKE --no-print-directory "$@" 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    local counts="0 0"
    case $kind in
        unit) counts=$(unit_counts "$log") ;;
        e2e) counts=$(e2e_counts "$log") ;;
    esac
    read -r p f <<<"$counts"
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
    if [ "$kind" = build ] || [ "$kind" = fuzz ]; then
        summary+=("$name: $([ "$rc" -eq 0 ] && echo ok || echo FAILED)")
    else
        summary+=("$name: $p passed, $f failed")
    fi
    [ "$rc" -eq 0 ] || failed_stage="${failed_stage:-$name}"
}

stage "build gcc" build all
stage "build clang" build CC=clang BUILD=build/clang all
stage "unit gcc" unit unit
stage "e2e gcc" e2e e2e
stage "unit asan-ubsan" unit SAN=1 unit
stage "e2e asan-ubsan" e2e SAN=1 e2e
stage "fuzz smoke" fuzz fuzz-smoke
stage "lint" build lint

echo
echo "=== summary"
for line in "${summary[@]}"; do echo "$line"; done
echo "total: $total_pass passed, $total_fail failed"
[ -z "$failed_stage" ] || { echo "first failing stage: $failed_stage" >&2; exit 1; }
