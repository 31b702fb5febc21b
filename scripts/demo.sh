#!/bin/sh
# make demo: airlock with two bundled test upstreams — "local" (speaks like
# Ollama) and "cloud" (speaks like OpenAI) — and a short tour of routing,
# the sensitivity policy and fallback. Leaves airlock running until Ctrl-C.
set -eu
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

start_mock() { # flavor name -> prints port
    python3 tests/upstream/mockup.py --flavor "$1" --name "$2" --port 0 >"$dir/$2.out" 2>"$dir/$2.err" &
    pids="$pids $!"
    for _ in $(seq 50); do
        port=$(sed -n 's/^PORT //p' "$dir/$2.out")
        [ -n "$port" ] && { echo "$port"; return; }
        sleep 0.1
    done
    echo "demo: the $2 test upstream did not start" >&2
    exit 1
}

lport=$(start_mock ollama local)
cport=$(start_mock openai cloud)
port=${DEMO_PORT:-8080}
cat >"$dir/airlock.yaml" <<YAML
listen: 127.0.0.1:$port
levels: [public, internal, confidential, secret]
backends:
  - { name: local, provider: ollama, zone: local, url: "http://127.0.0.1:$lport/v1", model: "llama3.1:8b",
      timeouts: { first_byte_ms: 2000 } }
  - { name: cloud, provider: openai, zone: cloud, url: "http://127.0.0.1:$cport/v1", model: gpt-4o-mini,
      api_key_env: DEMO_CLOUD_KEY, clearance: internal, price: { input_per_mtok: 0.15, output_per_mtok: 0.60 } }
routes:
  - { name: keep-private-local, when: { level_at_least: confidential }, use: [local] }
  - { name: default, use: [local, cloud] }
YAML
export DEMO_CLOUD_KEY=demo-not-a-real-key
./build/airlock -c "$dir/airlock.yaml" 2>"$dir/airlock.log" &
pids="$pids $!"
for _ in $(seq 50); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done

api="http://127.0.0.1:$port/v1"
ask() { # title, body, [extra curl args]
    echo
    echo "== $1"
    curl -s -D "$dir/h" -o "$dir/b" "$api/chat/completions" -H 'content-type: application/json' -d "$2"
    grep -i '^x-airlock-\|^HTTP' "$dir/h" | tr -d '\r' | sed 's/^/   /'
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("   ->", d["choices"][0]["message"]["content"] if "choices" in d else d["error"]["message"])' "$dir/b"
}

ask "A plain question goes to the local model first" \
    '{"model":"llama3.1:8b","messages":[{"role":"user","content":"What is a mutex?"}]}'

curl -s "http://127.0.0.1:$lport/_mock/script" -d '[{"kind":"status","code":503}]' >/dev/null
ask "The local server fails with 503: airlock falls back to the cloud" \
    '{"model":"llama3.1:8b","messages":[{"role":"user","content":"What is a mutex?"}]}'

ask "An e-mail address makes the request confidential: local only" \
    '{"model":"llama3.1:8b","messages":[{"role":"user","content":"Write to jane.doe@example.com"}]}'

curl -s "http://127.0.0.1:$lport/_mock/script" -d '[{"kind":"status","code":500}]' >/dev/null
ask "Confidential, and the local server fails: an honest error, and nothing went to the cloud" \
    '{"model":"llama3.1:8b","messages":[{"role":"user","content":"Write to jane.doe@example.com"}]}'

echo
echo "== Why? POST /v1/airlock/explain forwards nothing and says:"
curl -s "$api/airlock/explain" -d '{"messages":[{"role":"user","content":"Write to jane.doe@example.com"}]}' | sed 's/^/   /'

echo
echo "airlock is listening on http://127.0.0.1:$port/v1 (log: $dir/airlock.log). Try:"
echo "  curl -N $api/chat/completions -d '{\"model\":\"llama3.1:8b\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}'"
echo "  make the local test upstream hang on its next request, then ask again:"
echo "  curl http://127.0.0.1:$lport/_mock/script -d '[{\"kind\":\"hang\"}]'"
echo "Ctrl-C to stop."
wait
