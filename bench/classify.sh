#!/bin/sh
# Builds bench/classify_bench.c against build/libairlock.a the way the
# Makefile builds unit tests, and runs it: MB/s and us per 100 KB for clean
# and PII-dense text. Usage: bench/classify.sh [ITERATIONS]
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
CC=${CC:-cc}
PKGS="libmicrohttpd libcurl libcjson yaml-0.1 libhs"
make -s "$BUILD/libairlock.a"
# shellcheck disable=SC2046
$CC -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Iinclude -Isrc $(pkg-config --cflags $PKGS) \
  -o "$BUILD/classify_bench" bench/classify_bench.c "$BUILD/libairlock.a" \
  $(pkg-config --libs $PKGS) -lpthread -lm
"$BUILD/classify_bench" "${1:-2000}"
