#!/bin/sh
# Builds every tests/fuzz/fuzz_*.c as a libFuzzer binary (ASan + UBSan) against
# all of src/ but main.c, then runs each for SECONDS (default 60) on a scratch
# copy of its seed corpus tests/fuzz/corpus/<name>/. The repository's corpus is
# never written to. Prints runs, time and crashes per target; exits 1 if any
# target crashed (or leaked, timed out, ran out of memory), 2 if a build failed.
#
#   sh tests/fuzz/run.sh [SECONDS]        (make fuzz FUZZ_SECONDS=120)
set -eu

SECONDS_EACH=${1:-60}
case "$SECONDS_EACH" in
  ''|*[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
OUT=build-fuzz
CC=${FUZZ_CC:-clang}
PKGS="libmicrohttpd libcurl libcjson yaml-0.1 libhs"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
CFLAGS="-g -O1 -std=c11 -D_GNU_SOURCE -DAIRLOCK_VERSION=\"fuzz\" -Iinclude -Isrc $(pkg-config --cflags $PKGS)"
LIBS="$(pkg-config --libs $PKGS) -lpthread -lm"

command -v "$CC" >/dev/null || { echo "fuzz: $CC not found (sh scripts/deps.sh all)" >&2; exit 2; }
targets=$(ls tests/fuzz/fuzz_*.c 2>/dev/null || true)
[ -n "$targets" ] || { echo "fuzz: no tests/fuzz/fuzz_*.c" >&2; exit 2; }

# The library part once, instrumented for coverage but without libFuzzer's main.
mkdir -p "$OUT/obj"
objs=""
for src in $(find src -name '*.c' ! -path src/main.c | sort); do
  obj="$OUT/obj/$(echo "$src" | sed 's|/|_|g; s|\.c$|.o|')"
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find include src -name '*.h' -newer "$obj" 2>/dev/null | head -1)" ]; then
    echo "  CC      $src"
    # shellcheck disable=SC2086
    $CC $CFLAGS -fsanitize=fuzzer-no-link $SAN -c "$src" -o "$obj" || { echo "fuzz: build of $src failed" >&2; exit 2; }
  fi
  objs="$objs $obj"
done
# An archive, so a target links only the objects it needs.
rm -f "$OUT/libairlock-fuzz.a"
# shellcheck disable=SC2086
ar rcs "$OUT/libairlock-fuzz.a" $objs

for t in $targets; do
  name=$(basename "$t" .c)
  echo "  LD      $OUT/$name"
  # shellcheck disable=SC2086
  $CC $CFLAGS -fsanitize=fuzzer $SAN -o "$OUT/$name" "$t" "$OUT/libairlock-fuzz.a" $LIBS || { echo "fuzz: build of $name failed" >&2; exit 2; }
done

export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

failed=0
summary=""
for t in $targets; do
  name=$(basename "$t" .c)
  short=${name#fuzz_}
  work="$OUT/work/$short"
  crashes="$OUT/crashes/$short"
  rm -rf "$work"
  mkdir -p "$work/corpus" "$crashes"
  if [ -d "tests/fuzz/corpus/$short" ]; then
    cp -R "tests/fuzz/corpus/$short/." "$work/corpus/"
  fi
  log="$work/fuzz.log"
  echo "fuzz: $name for ${SECONDS_EACH}s (log $log)"
  rc=0
  # -timeout: one input slower than 30 s is a bug (counts as a crash).
  # The outer timeout bounds a hung target: SECONDS + 60 s for start and minimization.
  timeout -k 10 $((SECONDS_EACH + 60)) "./$OUT/$name" -max_total_time="$SECONDS_EACH" \
    -max_len=65536 -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$crashes/" "$work/corpus" >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  secs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\2/p' "$log" | tail -1)
  [ -n "$runs" ] || runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  [ -n "$secs" ] || secs=$(sed -n 's/^stat::.*time.*: *//p' "$log" | tail -1)
  # slow-unit-* artifacts are inputs over -report_slow_units (10 s of wall
  # time, which a paused or loaded machine also produces): reported, not
  # failures; -timeout=30 turns a really slow input into a timeout- crash
  crash_file=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | grep -v '/slow-unit-' | tail -1 || true)
  slow=$(grep -c 'Test unit written to .*/slow-unit-' "$log" || true)
  crashed=0
  if [ "$rc" -ne 0 ] || [ -n "$crash_file" ]; then
    crashed=1
    failed=1
  fi
  line=$(printf '%-20s runs=%-10s time=%-5s crashes=%s slow_units=%s' "$name" "${runs:-?}" "${secs:-?}s" "$crashed" "${slow:-0}")
  if [ "$crashed" -eq 1 ]; then
    line="$line  file=${crash_file:-none (exit $rc; see $log)}"
    grep -m1 -E 'ERROR: |runtime error|SUMMARY' "$log" | sed 's/^/    /' || true
  fi
  echo "$line"
  summary="$summary$line
"
done

echo
echo "fuzz summary (${SECONDS_EACH}s each):"
printf '%s' "$summary"
exit "$failed"
