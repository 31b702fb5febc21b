#!/bin/sh
# Installs the Debian packages airlock needs to build, test and benchmark, and
# only those that are missing. Non-interactive; works as root or through sudo.
set -eu

# Build: the four libraries of the design, plus Hyperscan for the classifier:
# Debian builds it for x86 only; Vectorscan, its fork with the same API (libhs),
# everywhere else. The two conflict, so one already installed is kept.
HS=libhyperscan-dev
case "$(dpkg --print-architecture 2>/dev/null)" in
  amd64|i386) ;;
  *) HS=libvectorscan-dev ;;
esac
if dpkg-query -W -f='${Status}' libvectorscan-dev 2>/dev/null | grep -q "install ok installed"; then
  HS=libvectorscan-dev
fi
BUILD="gcc make pkg-config libmicrohttpd-dev libcurl4-openssl-dev libcjson-dev libyaml-dev libsystemd-dev $HS"
# Tests: the mock upstreams and the integration suite are Python (stdlib only),
# curl for the demo, openssl for the TLS test upstream's certificate,
# systemd for systemd-analyze (the unit file's verify and security score),
# Node.js and npm for the official OpenAI and Anthropic clients (tests/sdk).
TEST="python3 curl openssl systemd"
# Extras, only when asked: sanitizers' runtime, fuzzing, benchmark peers.
EXTRA="clang libclang-rt-14-dev valgrind nginx-light wrk"

want="$BUILD"
case "${1:-build}" in
  build) ;;
  test) want="$BUILD $TEST" ;;
  all) want="$BUILD $TEST $EXTRA" ;;
  *) echo "usage: $0 [build|test|all]" >&2; exit 2 ;;
esac

missing=""
# Node.js may come from elsewhere than Debian (a newer build on PATH): only a
# machine without node and npm gets Debian's.
case "${1:-build}" in
  test|all) command -v node >/dev/null && command -v npm >/dev/null || want="$want nodejs npm" ;;
esac
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# The official SDKs (npm packages, pinned by tests/sdk/package-lock.json),
# installed when the lock file is newer than what node_modules holds.
sdk_install() {
  case "${1:-build}" in test|all) ;; *) return 0 ;; esac
  dir=$(cd "$(dirname "$0")/.." && pwd)/tests/sdk
  stamp=$dir/node_modules/.package-lock.json
  if [ ! -f "$stamp" ] || [ "$dir/package-lock.json" -nt "$stamp" ]; then
    echo "deps: npm ci in tests/sdk" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
}

if [ -z "$missing" ]; then sdk_install "${1:-build}"; exit 0; fi

echo "deps: installing$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
# nginx-light starts a system nginx on port 80; the benchmark runs its own.
if echo "$missing" | grep -q nginx; then
  $SUDO systemctl disable --now nginx >/dev/null 2>&1 || $SUDO service nginx stop >/dev/null 2>&1 || true
fi
sdk_install "${1:-build}"
