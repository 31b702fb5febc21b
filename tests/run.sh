#!/bin/sh
# Runs every unit test binary, then the integration suite against the real
# daemon, and ends with one line: "N passed, N failed".
# Usage: tests/run.sh BUILD_DIR   (env: UNIT_ONLY, INTEGRATION_ONLY, VALGRIND)
build=${1:-build}
passed=0
failed=0

tally() { # $1 = output file, $2 = exit code, $3 = name
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1)
  if [ -z "$line" ]; then
    echo "$3: no result line (exit $2)"; failed=$((failed + 1)); return
  fi
  p=${line%% passed*}; f=${line#*passed, }; f=${f%% failed*}
  if [ "$2" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  passed=$((passed + p)); failed=$((failed + f))
}

out=$(mktemp)
trap 'rm -f "$out"' EXIT

if [ -z "${INTEGRATION_ONLY:-}" ]; then
  for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    echo "== unit: $(basename "$t")"
    "$t" >"$out" 2>&1; rc=$?
    cat "$out"
    tally "$out" $rc "$(basename "$t")"
  done
fi

if [ -z "${UNIT_ONLY:-}" ]; then
  echo "== integration"
  { AIRLOCK_BIN="$build/airlock" python3 -u tests/integration/run.py 2>&1; echo "exit $?" >"$out.rc"; } | tee "$out"
  rc=$(sed 's/exit //' "$out.rc"); rm -f "$out.rc"
  tally "$out" "$rc" integration
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
