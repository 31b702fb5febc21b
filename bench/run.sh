#!/bin/bash
# bench/run.sh — airlock next to a plain nginx reverse proxy, in front of the
# same fast upstream (nginx answering canned chat completions), in one run:
# added latency p50/p99 over a direct call (also for a second airlock with
# busy_poll_us, nginx's stock proxy_pass and the libraries alone), req/s at 64 connections, time to
# first chunk of a stream, airlock's RSS, then failover times and what a dead
# backend receives once its circuit is open. Everything listens on 127.0.0.1,
# on free ports, and every process started here is stopped on exit.
# Writes bench/results.md and appends a dated copy to docs/benchmarks.md.
#
#   make bench          (or: bash bench/run.sh; needs build/airlock, nginx, wrk)
# Knobs (env): BENCH_SECONDS=10 per wrk run, BENCH_STREAM_SECONDS=5,
# BENCH_TTFC_N=200, BENCH_FAILOVER_N=200, BENCH_CIRCUIT_SECONDS=20,
# AIRLOCK=build/airlock, BENCH_NOTE="a line for the report", BENCH_KEEP=1 keeps the scratch dir, BENCH_NO_DOCS=1.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
BIN=${AIRLOCK:-build/airlock}
DUR=${BENCH_SECONDS:-10}
STREAM_DUR=${BENCH_STREAM_SECONDS:-5}
N_TTFC=${BENCH_TTFC_N:-200}
N_FAIL=${BENCH_FAILOVER_N:-200}
CIRCUIT_DUR=${BENCH_CIRCUIT_SECONDS:-20}
BENCH_NOTE=${BENCH_NOTE:-}
CIRCUIT_CONC=4
SILENT_CONC=8
PY=python3
B="$PY bench/bench.py"

for tool in nginx wrk curl "$PY"; do
  command -v "$tool" >/dev/null || { echo "bench: $tool not found (sh scripts/deps.sh all)" >&2; exit 2; }
done
[ -x "$BIN" ] || { echo "bench: $BIN not built (make)" >&2; exit 2; }
NGINX=$(command -v nginx)

TMP=$(mktemp -d /tmp/airlock-bench.XXXXXX) || exit 2
chmod 755 "$TMP"
PIDS=()
T0=$(date +%s)

log() { printf 'bench [%3ss]: %s\n' "$(( $(date +%s) - T0 ))" "$*" >&2; }

# Stops one process we started: TERM, up to 3 s, then KILL; its exit status
# in STOP_RC. nginx masters take their workers with them on TERM.
STOP_RC=
stop_pid() {
  local pid=$1 i
  STOP_RC=
  kill -TERM "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; STOP_RC=$?; return 0; }
  for i in $(seq 1 30); do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null; STOP_RC=$?
      return 0
    fi
    sleep 0.1
  done
  log "pid $pid ignored SIGTERM for 3 s; killing it"
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null; STOP_RC=$?
  return 0
}

cleanup() {
  local i
  for (( i=${#PIDS[@]}-1; i>=0; i-- )); do
    stop_pid "${PIDS[$i]}"
  done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then
    log "scratch kept in $TMP"
  else
    rm -rf "$TMP"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# start NAME CMD... : runs CMD in the background, output in $TMP/NAME.{out,err}.
LAST_PID=
start() {
  local name=$1; shift
  "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

forget_pid() {
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# wait_post URL NAME: up to 5 s for a 200 to a chat POST.
wait_post() {
  local i code
  for i in $(seq 1 50); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 -H 'Content-Type: application/json' \
      --data-binary @"$TMP/chat.json" "$1" 2>/dev/null)
    [ "$code" = 200 ] && return 0
    sleep 0.1
  done
  log "$2 did not answer 200 at $1 within 5 s (last: $code)"
  return 1
}

rss_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null; }

# Sum of VmRSS (or VmHWM) of a process and its children (nginx master + workers).
rss_tree_kb() {
  local total=0 p v
  for p in "$1" $(ps -o pid= --ppid "$1" 2>/dev/null); do
    v=$(rss_kb "$p" "$2"); total=$(( total + ${v:-0} ))
  done
  echo "$total"
}

# run_wrk OUT CONNS THREADS SECONDS SCRIPT URL [PREFIX...]
run_wrk() {
  local out=$1 c=$2 t=$3 d=$4 script=$5 url=$6
  shift 6
  timeout -k 5 $(( d + 20 )) "$@" wrk -t"$t" -c"$c" -d"${d}s" --timeout 5s --latency -s "$script" "$url" >"$out" 2>&1 \
    || log "wrk exited $? for $url (see below)"
  $B wrk "$out" >"$out.json"
}

set -- $($B ports 9)
UP=$1 PX=$2 AL=$3 DEAD=$4 SIL=$5 AL2=$6 FL=$7 ST=$8 BP=$9
$B body chat >"$TMP/chat.json"
$B body stream >"$TMP/stream.json"

# --- the fast upstream: one nginx worker answering canned responses --------
CHUNK='{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"bench-model","system_fingerprint":"fp_bench","choices":[{"index":0,'
SSE=""
SSE+="data: ${CHUNK}\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n"
for w in Hello "!" " How" " can" " I" " help" " you" " today" "?"; do
  SSE+="data: ${CHUNK}\"delta\":{\"content\":\"$w\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n"
done
SSE+="data: ${CHUNK}\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":24,\"completion_tokens\":9,\"total_tokens\":33}}\n\n"
SSE+="data: [DONE]\n\n"
COMPLETION='{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"bench-model","system_fingerprint":"fp_bench","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":24,"completion_tokens":9,"total_tokens":33}}'

temp_paths() {
  local d=$1
  echo "client_body_temp_path $d/body; proxy_temp_path $d/proxy; fastcgi_temp_path $d/fastcgi;"
  echo "uwsgi_temp_path $d/uwsgi; scgi_temp_path $d/scgi;"
}

mkdir -p "$TMP/up" "$TMP/proxy" "$TMP/stock"
cat >"$TMP/up/nginx.conf" <<EOF
worker_processes 1;
pid $TMP/up/nginx.pid;
error_log $TMP/up/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  $(temp_paths "$TMP/up")
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  server {
    listen 127.0.0.1:$UP backlog=4096;
    location = /v1/chat/completions { default_type application/json; return 200 '$COMPLETION'; }
    location = /sse/v1/chat/completions { default_type text/event-stream; return 200 '$SSE'; }
    location = /v1/models { default_type application/json; return 200 '{"object":"list","data":[{"id":"bench-model","object":"model","owned_by":"bench"}]}'; }
  }
}
EOF

# nginx_proxy NAME PORT HTTP_LINES LOCATION: an nginx proxy's config, 2 workers
# (as many as airlock has), access log on.
nginx_proxy() {
  cat >"$TMP/$1/nginx.conf" <<EOF
worker_processes 2;
pid $TMP/$1/nginx.pid;
error_log $TMP/$1/error.log warn;
events { worker_connections 4096; }
http {
  access_log $TMP/$1/access.log;
  $(temp_paths "$TMP/$1")
  $3
  server {
    listen 127.0.0.1:$2 backlog=4096;
    location / { $4 }
  }
}
EOF
}
# --- (a) nginx as a plain reverse proxy, keeping upstream connections alive
# as airlock does
nginx_proxy proxy "$PX" "keepalive_requests 1000000;
  upstream fast { server 127.0.0.1:$UP; keepalive 64; }" \
  'proxy_pass http://fast; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off;'
# --- (a2) nginx's stock proxy_pass, nothing tuned: HTTP/1.0 to the upstream,
# a new upstream connection per request. Latency rounds only, for reference.
nginx_proxy stock "$ST" "" "proxy_pass http://127.0.0.1:$UP;"

# --- (b) airlock in front of the same upstream ------------------------------
airlock_conf() {    # airlock_conf FILE PORT [extra backend line] [route list] [fallback]
  cat >"$1" <<EOF
listen: 127.0.0.1:$2
workers: 2
backends:
${3:-}
  - { name: fast, provider: openai, zone: local, url: "http://127.0.0.1:$UP/v1", model: bench-model, health: { enabled: false } }
  - { name: sse, provider: openai, zone: local, url: "http://127.0.0.1:$UP/sse/v1", model: bench-model, health: { enabled: false } }
routes:
  - { name: stream, when: { stream: true }, use: [sse] }
  - { name: default, use: [${4:-fast}] }
sensitivity: { detectors: [] }
${5:-}
EOF
}
airlock_conf "$TMP/airlock.yaml" "$AL"
# (b2) the same with busy polling (docs/configuration.md): latency rounds only
airlock_conf "$TMP/airlock-busy.yaml" "$BP" "" "" "busy_poll_us: 200"

log "ports: upstream $UP, nginx proxy $PX, airlock $AL; scratch $TMP"
start upstream "$NGINX" -p "$TMP/up" -e "$TMP/up/error.log" -c "$TMP/up/nginx.conf" -g 'daemon off;'
UPSTREAM_PID=$LAST_PID
start proxy "$NGINX" -p "$TMP/proxy" -e "$TMP/proxy/error.log" -c "$TMP/proxy/nginx.conf" -g 'daemon off;'
PROXY_PID=$LAST_PID
start airlock "$BIN" -c "$TMP/airlock.yaml"
AIRLOCK_PID=$LAST_PID
start busy "$BIN" -c "$TMP/airlock-busy.yaml"
BUSY_PID=$LAST_PID
start stock "$NGINX" -p "$TMP/stock" -e "$TMP/stock/error.log" -c "$TMP/stock/nginx.conf" -g 'daemon off;'
STOCK_PID=$LAST_PID
# (c) the required libraries alone: libmicrohttpd and libcurl's multi
# interface used as airlock uses them, with none of airlock's own work
# (bench/floor_proxy.c). Its added latency is the floor under airlock's.
FLOOR_PID=
if ${CC:-cc} -std=c11 -O2 -Wall -Wextra -o "$TMP/floor_proxy" bench/floor_proxy.c \
     $(pkg-config --cflags --libs libcurl libmicrohttpd) -lpthread 2>"$TMP/floor_proxy.cc"; then
  start floor "$TMP/floor_proxy" "$FL" "http://127.0.0.1:$UP/v1/chat/completions" 2
  FLOOR_PID=$LAST_PID
  FLOOR_BIN=$TMP/floor_proxy
else
  log "bench/floor_proxy.c did not build: $(head -1 "$TMP/floor_proxy.cc")"
fi

DIRECT_URL="http://127.0.0.1:$UP/v1/chat/completions"
FLOOR_URL="http://127.0.0.1:$FL/v1/chat/completions"
STOCK_URL="http://127.0.0.1:$ST/v1/chat/completions"
BUSY_URL="http://127.0.0.1:$BP/v1/chat/completions"
NGINX_URL="http://127.0.0.1:$PX/v1/chat/completions"
AIRLOCK_URL="http://127.0.0.1:$AL/v1/chat/completions"
DIRECT_SSE="http://127.0.0.1:$UP/sse/v1/chat/completions"
NGINX_SSE="http://127.0.0.1:$PX/sse/v1/chat/completions"
AIRLOCK_SSE=$AIRLOCK_URL

ok=1
wait_post "$DIRECT_URL" upstream || ok=0
wait_post "$NGINX_URL" "nginx proxy" || ok=0
wait_post "$AIRLOCK_URL" airlock || ok=0
if ! wait_post "$STOCK_URL" "stock nginx proxy"; then
  stop_pid "$STOCK_PID"; forget_pid "$STOCK_PID"; STOCK_PID=
fi
if ! wait_post "$BUSY_URL" "airlock with busy polling"; then
  stop_pid "$BUSY_PID"; forget_pid "$BUSY_PID"; BUSY_PID=
fi
if [ -n "$FLOOR_PID" ] && ! wait_post "$FLOOR_URL" "floor proxy"; then
  stop_pid "$FLOOR_PID"; forget_pid "$FLOOR_PID"; FLOOR_PID=
fi
if [ $ok = 0 ]; then
  for f in upstream proxy airlock; do sed "s/^/  $f: /" "$TMP/$f.err" | tail -20 >&2; done
  exit 1
fi
# One of each through airlock, checked, so a broken relay is not benchmarked.
curl -s --max-time 5 -H 'Content-Type: application/json' --data-binary @"$TMP/chat.json" -D "$TMP/check.h" "$AIRLOCK_URL" >"$TMP/check.json"
curl -s --max-time 5 -H 'Content-Type: application/json' --data-binary @"$TMP/stream.json" "$AIRLOCK_SSE" >"$TMP/check.sse"
if ! grep -q '"chat.completion"' "$TMP/check.json" || ! grep -q 'data: \[DONE\]' "$TMP/check.sse"; then
  log "airlock's answers look wrong:"; cat "$TMP/check.h" "$TMP/check.json" "$TMP/check.sse" >&2
  exit 1
fi
AIRLOCK_RSS_IDLE=$(rss_kb "$AIRLOCK_PID" VmRSS)

names=(direct nginx airlock)
urls=("$DIRECT_URL" "$NGINX_URL" "$AIRLOCK_URL")
sse_urls=("$DIRECT_SSE" "$NGINX_SSE" "$AIRLOCK_SSE")
# the latency rounds also run nginx's stock proxy_pass and the floor proxy
lat_names=(direct nginx)
lat_urls=("$DIRECT_URL" "$NGINX_URL")
if [ -n "$STOCK_PID" ]; then
  lat_names+=(stock); lat_urls+=("$STOCK_URL")
fi
if [ -n "$FLOOR_PID" ]; then
  lat_names+=(floor); lat_urls+=("$FLOOR_URL")
fi
lat_names+=(airlock); lat_urls+=("$AIRLOCK_URL")
if [ -n "$BUSY_PID" ]; then
  lat_names+=(busy); lat_urls+=("$BUSY_URL")
fi

# Latency in LAT_ROUNDS interleaved rounds, the median reported: one long
# run each let a drift of the machine land on one column only. Each round's
# added p50 is printed too: on a shared VM they vary more than the medians.
LAT_ROUNDS=${BENCH_LAT_ROUNDS:-5}
LAT_DUR=$(( DUR / LAT_ROUNDS > 2 ? DUR / LAT_ROUNDS : 2 ))
lat_rounds() {      # lat_rounds KIND LABEL [PREFIX...]: every contestant, round by round
  local kind=$1 label=$2 round i; shift 2
  for round in $(seq 1 $LAT_ROUNDS); do
    for i in "${!lat_names[@]}"; do
      log "latency, c=1$label, ${LAT_DUR}s, round $round/$LAT_ROUNDS: ${lat_names[$i]}"
      run_wrk "$TMP/$kind-${lat_names[$i]}-$round.txt" 1 1 "$LAT_DUR" bench/post.lua "${lat_urls[$i]}" "$@"
    done
  done
}
lat_rounds lat ""
# The same rounds with every process (wrk, upstream, both proxies) on one
# vCPU: no idle vCPU is woken, so what is left is each proxy's own work on
# the request's path, without the scheduler's placement, which on a small VM
# decides more of the figures above than the proxies do (docs/benchmarks.md).
pin_threads() {     # pin_threads CPULIST PID... : every thread of each PID and its children
  local cpus=$1 p t; shift
  for p in "$@" $(for p in "$@"; do ps -o pid= --ppid "$p" 2>/dev/null; done); do
    for t in /proc/"$p"/task/*; do taskset -pc "$cpus" "${t##*/}" >/dev/null 2>&1; done
  done
}
if command -v taskset >/dev/null; then
  pin_threads 0 "$UPSTREAM_PID" "$PROXY_PID" "$AIRLOCK_PID" $STOCK_PID $FLOOR_PID $BUSY_PID
  lat_rounds lat1 ", one vCPU for all" taskset -c 0
  pin_threads "0-$(( $(nproc) - 1 ))" "$UPSTREAM_PID" "$PROXY_PID" "$AIRLOCK_PID" $STOCK_PID $FLOOR_PID $BUSY_PID
fi
# The same rounds again, unpinned, with idle vCPUs kept polling instead of
# halting: a PM QoS request of 0 µs on /dev/cpu_dma_latency, held while the
# file is open, as tuned's latency-performance profile holds one. On a
# nested guest, waking a halted vCPU is what most of a request's time goes
# to (docs/benchmarks.md); this takes it out for every contestant alike.
if [ -w /dev/cpu_dma_latency ] && exec 9>/dev/cpu_dma_latency && printf '\0\0\0\0' >&9; then
  lat_rounds latq ", idle vCPUs polling"
  exec 9>&-
else
  log "no PM QoS (/dev/cpu_dma_latency not writable): no rounds with idle vCPUs polling"
fi
# The floor under airlock's added latency: one request through libcurl's
# multi interface, set up as attempt.c does, against the same bytes on a
# plain socket (bench/curl_floor.c).
log "libcurl per request vs a plain socket, N=5000"
if ${CC:-cc} -std=c11 -O2 -Wall -Wextra -o "$TMP/curl_floor" bench/curl_floor.c $(pkg-config --cflags --libs libcurl) 2>"$TMP/curl_floor.cc"; then
  timeout 60 "$TMP/curl_floor" "$UP" 5000 >"$TMP/curl-floor.json" 2>&1 || echo '{}' >"$TMP/curl-floor.json"
else
  log "bench/curl_floor.c did not build: $(head -1 "$TMP/curl_floor.cc")"
fi
for p in $FLOOR_PID $STOCK_PID $BUSY_PID; do
  stop_pid "$p"; forget_pid "$p"    # latency only: references, not products
done
for i in 0 1 2; do
  log "throughput, c=64, ${DUR}s: ${names[$i]}"
  run_wrk "$TMP/tput-${names[$i]}.txt" 64 2 "$DUR" bench/post.lua "${urls[$i]}"
done
for i in 0 1 2; do
  log "streams, c=64, ${STREAM_DUR}s: ${names[$i]}"
  run_wrk "$TMP/stream-${names[$i]}.txt" 64 2 "$STREAM_DUR" bench/post_stream.lua "${sse_urls[$i]}"
done
for i in 0 1 2; do
  log "time to first chunk, N=$N_TTFC: ${names[$i]}"
  timeout 60 $B ttfc "${sse_urls[$i]}" "$N_TTFC" >"$TMP/ttfc-${names[$i]}.json" || echo '{}' >"$TMP/ttfc-${names[$i]}.json"
done
AIRLOCK_RSS=$(rss_kb "$AIRLOCK_PID" VmRSS)
AIRLOCK_HWM=$(rss_kb "$AIRLOCK_PID" VmHWM)
NGINX_RSS=$(rss_tree_kb "$PROXY_PID" VmRSS)
NGINX_HWM=$(rss_tree_kb "$PROXY_PID" VmHWM)
log "failover baseline (no failure), N=$N_FAIL"
timeout 60 $B requests "$AIRLOCK_URL" "$N_FAIL" 1 >"$TMP/fo-baseline.json" || echo '{}' >"$TMP/fo-baseline.json"

# airlock must still be alive and must stop cleanly on SIGTERM.
AIRLOCK_ALIVE=1
kill -0 "$AIRLOCK_PID" 2>/dev/null || AIRLOCK_ALIVE=0
t_stop=$(date +%s%N)
stop_pid "$AIRLOCK_PID"
AIRLOCK_EXIT=$STOP_RC
AIRLOCK_STOP_MS=$(( ($(date +%s%N) - t_stop) / 1000000 ))
forget_pid "$AIRLOCK_PID"

# --- failover ---------------------------------------------------------------
# A huge failure count keeps the circuit closed, so every request meets the
# dead backend first; the circuit run then uses the issue's settings.
NO_CIRCUIT='fallback: { on: [connect, timeout, 5xx], max_attempts: 3, circuit: { failures: 1000000, open_ms: 1000 } }'
# open_ms well inside the run, so the half-open trials happen and the
# requests the dead backend gets beyond them (the waste) can be counted
CIRCUIT_OPEN_MS=${BENCH_CIRCUIT_OPEN_MS:-5000}
CIRCUIT="fallback: { on: [connect, timeout, 5xx], max_attempts: 3, circuit: { failures: 3, open_ms: $CIRCUIT_OPEN_MS } }"
DEAD_REFUSED="  - { name: dead, provider: openai, zone: local, url: \"http://127.0.0.1:$DEAD/v1\", model: bench-model, timeouts: { connect_ms: 300 }, health: { enabled: false } }"
DEAD_SILENT="  - { name: dead, provider: openai, zone: local, url: \"http://127.0.0.1:$SIL/v1\", model: bench-model, timeouts: { connect_ms: 300, first_byte_ms: 500 }, health: { enabled: false } }"
FO_URL="http://127.0.0.1:$AL2/v1/chat/completions"

# failover_airlock NAME DEAD_LINE FALLBACK: starts airlock with [dead, fast].
failover_airlock() {
  airlock_conf "$TMP/$1.yaml" "$AL2" "$2" "dead, fast" "$3"
  start "airlock-$1" "$BIN" -c "$TMP/$1.yaml"
  FO_PID=$LAST_PID
  wait_post "$FO_URL" "airlock ($1)"
}
end_failover_airlock() {
  stop_pid "$FO_PID"; forget_pid "$FO_PID"
}

log "failover from a refused port, N=$N_FAIL"
if failover_airlock refused "$DEAD_REFUSED" "$NO_CIRCUIT"; then
  timeout 60 $B requests "$FO_URL" "$N_FAIL" 1 >"$TMP/fo-refused.json" || echo '{}' >"$TMP/fo-refused.json"
fi
end_failover_airlock

start silent $PY bench/silent.py "$SIL" "$TMP/silent.json" 120
SILENT_PID=$LAST_PID
sleep 0.3
log "failover from a silent backend (first_byte_ms 500), N=$N_FAIL over $SILENT_CONC connections"
if failover_airlock silent "$DEAD_SILENT" "$NO_CIRCUIT"; then
  cp "$TMP/silent.json" "$TMP/silent-before.json" 2>/dev/null
  timeout 90 $B requests "$FO_URL" "$N_FAIL" "$SILENT_CONC" >"$TMP/fo-silent.json" || echo '{}' >"$TMP/fo-silent.json"
  cp "$TMP/silent.json" "$TMP/silent-after.json" 2>/dev/null
fi
end_failover_airlock

log "circuit open: ${CIRCUIT_DUR}s of load at c=$CIRCUIT_CONC, silent first backend"
if failover_airlock circuit "$DEAD_SILENT" "$CIRCUIT"; then
  cp "$TMP/silent.json" "$TMP/circuit-before.json" 2>/dev/null
  run_wrk "$TMP/circuit.txt" "$CIRCUIT_CONC" 1 "$CIRCUIT_DUR" bench/post.lua "$FO_URL"
  sleep 0.3
  cp "$TMP/silent.json" "$TMP/circuit-after.json" 2>/dev/null
fi
end_failover_airlock
stop_pid "$SILENT_PID"; forget_pid "$SILENT_PID"

# --- results ----------------------------------------------------------------
AIRLOCK_VERSION=$("$BIN" --version 2>/dev/null | head -1)
NGINX_VERSION=$("$NGINX" -v 2>&1 | sed 's/.*nginx\///')
WRK_VERSION=$(wrk -v 2>&1 | head -1 | awk '{print $2}')
export LAT_ROUNDS TMP AIRLOCK_RSS AIRLOCK_HWM AIRLOCK_RSS_IDLE NGINX_RSS NGINX_HWM AIRLOCK_ALIVE AIRLOCK_EXIT \
  AIRLOCK_STOP_MS AIRLOCK_VERSION BENCH_NOTE NGINX_VERSION WRK_VERSION CIRCUIT_DUR CIRCUIT_CONC DUR CIRCUIT_OPEN_MS
$PY - >"$TMP/results.json" <<'EOF'
import glob, json, os, socket, time
T = os.environ["TMP"]
def j(name):
    try:
        return json.load(open(os.path.join(T, name)))
    except (OSError, ValueError):
        return {}
E = os.environ.get
r = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "host": socket.gethostname(), "cores": os.cpu_count(),
     "airlock_version": E("AIRLOCK_VERSION"), "nginx_version": E("NGINX_VERSION"), "wrk_version": E("WRK_VERSION")}
def median_of_rounds(n, kind="lat"):
    rounds = [j(os.path.basename(f)) for f in sorted(glob.glob(os.path.join(T, "%s-%s-*.txt.json" % (kind, n))))]
    out = {"rounds": len(rounds)}
    for k in ("p50_ms", "p99_ms", "rps"):
        v = sorted(x[k] for x in rounds if x.get(k) is not None)
        out[k] = v[len(v) // 2] if v else None
    for k in ("requests", "non2xx", "socket_errors", "timeouts"):
        out[k] = sum(x.get(k) or 0 for x in rounds)
    return out
for n in ("direct", "nginx", "airlock"):
    r[n] = {"lat": median_of_rounds(n), "lat1": median_of_rounds(n, "lat1"), "latq": median_of_rounds(n, "latq"),
            "tput": j("tput-%s.txt.json" % n),
            "stream": j("stream-%s.txt.json" % n), "ttfc": j("ttfc-%s.json" % n)}
for n in ("floor", "stock", "busy"):
    r[n] = {k: median_of_rounds(n, k) for k in ("lat", "lat1", "latq")}
r["nginx"].update(rss_kb=E("NGINX_RSS"), hwm_kb=E("NGINX_HWM"))
r["airlock"].update(rss_kb=E("AIRLOCK_RSS"), hwm_kb=E("AIRLOCK_HWM"), rss_idle_kb=E("AIRLOCK_RSS_IDLE"))
fo = {"circuit_seconds": E("CIRCUIT_DUR"), "circuit_conc": E("CIRCUIT_CONC")}
for k in ("baseline", "refused", "silent"):
    fo[k] = j("fo-%s.json" % k)
def delta(a, b):
    a, b = j(a), j(b)
    return {k: b.get(k, 0) - a.get(k, 0) for k in ("connections", "requests")} if b else {}
if fo["silent"]:
    fo["silent"]["dead"] = delta("silent-before.json", "silent-after.json")
fo["circuit"] = {"wrk": j("circuit.txt.json"), "dead": delta("circuit-before.json", "circuit-after.json")}
# From airlock's own log: attempts on the dead backend that began after its
# circuit first opened, against the half-open trials that failed and
# reopened it. What is left is waste (target: none).
def circuit_waste():
    import datetime
    def ts(s):
        return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
    opened, trials, starts = None, 0, []
    try:
        lines = open(os.path.join(T, "airlock-circuit.err")).read().splitlines()
    except OSError:
        return {}
    for l in lines:
        try:
            x = json.loads(l)
        except ValueError:
            continue
        m = x.get("msg", "")
        if m.startswith("backend dead: circuit open"):
            if opened is None:
                opened = ts(x["ts"])
            elif "half-open trial failed" in m:
                trials += 1
        if m == "request":
            end = ts(x["ts"]) - x.get("ms", 0) / 1000.0
            t = end
            for a in x.get("attempts", []):
                if a["backend"] == "dead" and a["outcome"] != "skipped":
                    starts.append(t)
                t += a.get("ms", 0) / 1000.0
    if opened is None:
        return {}
    after = sum(1 for s in starts if s > opened + 0.002)
    return {"before_open": len(starts) - after, "after_open": after, "trials": trials,
            "waste": max(0, after - trials), "open_ms": int(E("CIRCUIT_OPEN_MS") or 0)}
fo["circuit"]["waste"] = circuit_waste()
r["failover"] = fo

notes = ["Load: wrk -t1 -c1 (latency: the median of %s interleaved rounds, %ss in all) and -t2 -c64 (throughput) for %ss, POST of a 180-byte chat "
         "body; streams: 12 SSE events (about 2.5 KB) per request. Time to first chunk: python http.client "
         "on one keep-alive connection, from sending the request to the first body byte." % (E("LAT_ROUNDS"), E("DUR"), E("DUR"))]
def round_p50(n, k, kind="lat"):
    x = j("%s-%s-%d.txt.json" % (kind, n, k))
    return x.get("p50_ms")
per_round, floor_rounds, stock_rounds, busy_rounds = [], [], [], []
for k in range(1, int(E("LAT_ROUNDS") or 0) + 1):
    d, ng, fl, al, st, bu = (round_p50(n, k) for n in ("direct", "nginx", "floor", "airlock", "stock", "busy"))
    if None not in (d, ng, bu) and ng > d:
        busy_rounds.append("%.0f / %.0f µs (%.2f×)" % ((ng - d) * 1000, (bu - d) * 1000, (bu - d) / (ng - d)))
    if None not in (d, st, al) and st > d:
        stock_rounds.append("%.0f / %.0f µs (%.2f×)" % ((st - d) * 1000, (al - d) * 1000, (al - d) / (st - d)))
    if None not in (d, ng, al) and ng > d:
        per_round.append("%.0f / %.0f µs (%.2f×)" % ((ng - d) * 1000, (al - d) * 1000, (al - d) / (ng - d)))
    if None not in (d, ng, fl) and ng > d:
        floor_rounds.append("%.0f µs (%.2f×)" % ((fl - d) * 1000, (fl - d) / (ng - d)))
if per_round:
    notes.append("Added p50 round by round, nginx / airlock: " + "; ".join(per_round) + ".")
q_rounds = []
for k in range(1, int(E("LAT_ROUNDS") or 0) + 1):
    d, ng, al = (round_p50(n, k, "latq") for n in ("direct", "nginx", "airlock"))
    if None not in (d, ng, al) and ng > d:
        q_rounds.append("%.0f / %.0f µs (%.2f×)" % ((ng - d) * 1000, (al - d) * 1000, (al - d) / (ng - d)))
if q_rounds:
    notes.append("Added p50 round by round with idle vCPUs polling (PM QoS 0), nginx / airlock: "
                 + "; ".join(q_rounds) + ".")
if busy_rounds:
    notes.append("Added p50 round by round, nginx / airlock with busy_poll_us: 200: " + "; ".join(busy_rounds) + ".")
if stock_rounds:
    notes.append("Added p50 round by round, nginx's stock proxy_pass (HTTP/1.0, a new upstream connection per "
                 "request) / airlock: " + "; ".join(stock_rounds) + ".")
if floor_rounds:
    notes.append("Added p50 round by round of MHD + libcurl alone (bench/floor_proxy.c), and its ratio to nginx's: "
                 + "; ".join(floor_rounds) + ".")
cf = j("curl-floor.json")
if cf.get("raw") and cf.get("curl"):
    raw, crl = cf["raw"], cf["curl"]
    notes.append("libcurl's share (bench/curl_floor.c, one connection, %d requests to the upstream): "
                 "%.0f µs per request through curl's multi interface as attempt.c sets it up, "
                 "%.0f µs on a plain socket; CPU %.0f µs user + %.0f µs system against %.0f + %.0f."
                 % (cf["n"], crl["total_us"], raw["total_us"], crl["user_us"], crl["sys_us"],
                    raw["user_us"], raw["sys_us"]))
notes.append("airlock: 2 workers; nginx proxy: 2 worker processes, upstream keepalive 64, "
             "proxy_buffering off, access log on (airlock logs one line per request too). "
             "Upstream: nginx, 1 worker, `return 200` of canned bodies.")
# What airlock logged: statuses and attempt outcomes of its main instance.
status, levels, other = {}, {}, 0
try:
    for line in open(os.path.join(T, "airlock.err"), errors="replace"):
        try:
            o = json.loads(line)
        except ValueError:
            other += 1
            continue
        if "status" in o:
            status[str(o["status"])] = status.get(str(o["status"]), 0) + 1
        lv = o.get("level")
        if lv and lv not in ("info",) and "status" not in o:
            levels[lv] = levels.get(lv, 0) + 1
except OSError:
    pass
notes.append("airlock's own log (main instance): statuses %s; non-info events %s; non-JSON lines %d."
             % (json.dumps(status, sort_keys=True), json.dumps(levels, sort_keys=True), other))
if E("AIRLOCK_ALIVE") != "1":
    notes.append("**airlock had died before the end of the load runs** (exit %s)." % E("AIRLOCK_EXIT"))
notes.append("airlock stopped on SIGTERM in %s ms with exit code %s." % (E("AIRLOCK_STOP_MS"), E("AIRLOCK_EXIT")))
notes.append("Caveat: 2 cores shared by wrk, the upstream and the proxy under test; figures vary by "
             "10-20 % between runs. Compare the columns of one run, not runs.")
if E("BENCH_NOTE"):
    notes.insert(0, E("BENCH_NOTE"))
r["notes"] = notes
print(json.dumps(r))
EOF

echo
$B report "$TMP/results.json" bench/results.md

# Instructions per request, counted by callgrind: the one figure here that
# does not move with the machine's load (bench/instructions.py).
if command -v valgrind >/dev/null; then
  log "instructions per request (callgrind)"
  if $PY bench/instructions.py "$BIN" ${FLOOR_BIN:-} >"$TMP/ir.md" 2>"$TMP/ir.err"; then
    { echo; cat "$TMP/ir.md"; } >>bench/results.md
    cat "$TMP/ir.md"
  else
    log "bench/instructions.py failed: $(tail -1 "$TMP/ir.err")"
  fi
fi

if [ "${BENCH_NO_DOCS:-0}" != 1 ]; then
  if [ ! -f docs/benchmarks.md ]; then
    log "docs/benchmarks.md is missing; not appending"
  else
    { echo; echo "### $(date -u '+%Y-%m-%d %H:%M UTC')"; echo; tail -n +3 bench/results.md; } >>docs/benchmarks.md
  fi
fi

# The classifier's own benchmark, by its author, when present.
if [ -f bench/classify.sh ]; then
  echo
  log "bench/classify.sh"
  sh bench/classify.sh || log "bench/classify.sh exited $?"
fi
log "done in $(( $(date +%s) - T0 )) s; table in bench/results.md"
