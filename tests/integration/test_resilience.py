"""test_resilience.py — issue 5: fault scenarios, each with the outcome a
client must see, a bound on its time, and the requests each upstream got.
Verdicts follow failoverbench's: pass (the client got a real answer), safe
(an honest error, nothing passed off as success), fail (a truncated answer
presented as success, or a hang). The table is printed at the end."""
import os
import subprocess
import tempfile
import threading
import time

from harness import CLOUD_ENV, VALGRIND, Airlock, Mock, backend, check, closed_port, test, two_backends

TABLE = []
FAST = "timeouts: { connect_ms: 300, first_byte_ms: 600, idle_ms: 600 }"


def verdict_of(kind, r):
    """pass / safe / fail for what the client got."""
    if kind == "stream":
        if r.status == 200 and r.done and r.finish_reason() and r.error_event is None:
            return "pass"
        if r.status == 200 and r.done:
            return "fail"           # [DONE] without a complete answer: passed off as success
        if r.status == 200 and r.error_event is not None:
            return "safe"
        return "safe" if r.status >= 500 else "fail"
    if r.status == 200:
        try:
            ok = r.json()["choices"][0]["finish_reason"] is not None
        except (ValueError, KeyError, IndexError, TypeError):
            ok = False
        return "pass" if ok else "fail"
    return "safe" if r.status >= 400 else "fail"


def outcome(kind, r):
    if kind == "stream":
        if r.status != 200:
            return "%d" % r.status
        s = "200 stream, %d events" % len(r.events)
        s += ", [DONE]" if r.done else ", no [DONE]"
        return s + (", error event" if r.error_event else "")
    code = ""
    try:
        code = " " + str((r.json().get("error") or {}).get("code") or "")
    except (ValueError, AttributeError):
        pass
    return "%d%s via %s" % (r.status, code if r.status != 200 else "", r.headers.get("x-airlock-backend", "-"))


def scenario(name, fault, expect_status, expect_backend=None, stream=False, bound=2.5,
             flavor="openai", local_url=None, expect_verdict="pass", expect_local=None, expect_cloud=None,
             local_extra=FAST, cloud_fault=None, check_extra=None, cloud_extra=""):
    if VALGRIND:
        bound *= 3              # the daemon runs ~20x slower under valgrind
    local = None if local_url else Mock(flavor, "local")
    cloud = Mock("openai", "cloud")
    a = Airlock(two_backends(local_url or local, cloud, local_extra=local_extra, cloud_extra=cloud_extra,
                             local_provider=flavor if not local_url else "openai"), env=CLOUD_ENV)
    try:
        if local and fault:
            local.script(fault if isinstance(fault, list) else [fault])
        if cloud_fault:
            cloud.default(cloud_fault)
        t0 = time.time()
        r = a.chat("hi", stream=stream, timeout=bound + 10)
        dt = time.time() - t0
        kind = "stream" if stream else "json"
        v = verdict_of(kind, r)
        lc = local.count() if local else 0
        cc = cloud.count()
        TABLE.append((name, outcome(kind, r), dt, lc if local else "-", cc, v))
        check(v != "fail", "%s: verdict fail (%s)" % (name, outcome(kind, r)))
        check(v == expect_verdict, "%s: verdict %s, wanted %s (%s)" % (name, v, expect_verdict, outcome(kind, r)))
        check(r.status == expect_status, "%s: status %d, wanted %d" % (name, r.status, expect_status))
        if expect_backend:
            check(r.headers.get("x-airlock-backend") == expect_backend, "%s: answered by %s" %
                  (name, r.headers.get("x-airlock-backend")))
        check(dt <= bound, "%s took %.2fs (bound %.1fs)" % (name, dt, bound))
        if expect_local is not None and local:
            check(lc == expect_local, "%s: local got %d requests" % (name, lc))
        if expect_cloud is not None:
            check(cc == expect_cloud, "%s: cloud got %d requests" % (name, cc))
        if check_extra:
            check_extra(r, a, local, cloud)
    finally:
        a.stop()
        cloud.stop()
        if local:
            local.stop()


def make_cert(dirpath):
    cert, key = os.path.join(dirpath, "c.pem"), os.path.join(dirpath, "k.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True, timeout=60)
    return cert, key


@test("scenarios: connection-level faults")
def _():
    scenario("connection refused", None, 200, "cloud", local_url="http://127.0.0.1:%d/v1" % closed_port(),
             bound=1.0, expect_cloud=1)
    scenario("DNS failure", None, 200, "cloud", local_url="http://no-such-host.invalid:8080/v1", bound=3.0,
             expect_cloud=1)
    d = tempfile.mkdtemp()
    tls = Mock("openai", "tls", tls=make_cert(d))
    try:
        scenario("TLS handshake failure", None, 200, "cloud", local_url="https://127.0.0.1:%d/v1" % tls.port,
                 bound=2.0, expect_cloud=1)
        check(tls.count() == 0, "the untrusted TLS upstream got a request")
    finally:
        tls.stop()
    scenario("connection closed without answer", {"kind": "close"}, 200, "cloud", expect_local=1, expect_cloud=1)


@test("scenarios: slow and silent upstreams", timeout=90)
def _():
    scenario("hang before headers", {"kind": "hang"}, 200, "cloud", bound=0.6 + 1.0, expect_local=1, expect_cloud=1)
    scenario("headers, then silence", {"kind": "hang_body"}, 200, "cloud", bound=0.6 + 1.0, expect_local=1,
             expect_cloud=1)
    scenario("slow first byte (within first_byte_ms)", {"kind": "delay", "ms": 300}, 200, "local", bound=1.0,
             expect_cloud=0)
    scenario("slow first byte (past first_byte_ms)", {"kind": "delay", "ms": 2000}, 200, "cloud", bound=1.6,
             expect_cloud=1)


@test("scenarios: HTTP errors")
def _():
    for code in (500, 502, 503):
        scenario("%d" % code, {"kind": "status", "code": code}, 200, "cloud", expect_local=1, expect_cloud=1)
    scenario("429 without Retry-After", {"kind": "rate_limit"}, 200, "cloud", expect_cloud=1)
    scenario("400 passthrough", {"kind": "status", "code": 400}, 400, "local", expect_verdict="safe",
             expect_cloud=0)
    for flavor in ("openai", "vllm", "llamacpp", "ollama"):
        scenario("context length (%s) -> next" % flavor, {"kind": "context_length"}, 200, "cloud", flavor=flavor,
                 expect_cloud=1)
    scenario("malformed JSON in a 200", {"kind": "malformed"}, 200, "cloud", expect_cloud=1)
    scenario("non-stream body cut mid-way", {"kind": "die_mid_stream"}, 200, "cloud", expect_cloud=1)


@test("scenarios: 429 with Retry-After cools the backend down")
def _():
    local, cloud = Mock("openai", "local"), Mock("openai", "cloud")
    local.script([{"kind": "rate_limit", "retry_after": 2}])
    a = Airlock(two_backends(local, cloud, local_extra=FAST), env=CLOUD_ENV)
    try:
        r = a.chat("hi")
        check(r.status == 200 and r.headers["x-airlock-backend"] == "cloud", "429 -> cloud")
        r = a.chat("hi")
        check(r.headers["x-airlock-backend"] == "cloud" and local.count() == 1, "cooling backend was tried")
        TABLE.append(("429 with Retry-After: 2", "200 via cloud; next request skips local", r.elapsed, 1, 2, "pass"))
        time.sleep(2.2)
        r = a.chat("hi")
        check(r.headers["x-airlock-backend"] == "local", "local not back after Retry-After")
    finally:
        a.stop()
        local.stop()
        cloud.stop()


@test("scenarios: streams")
def _():
    scenario("stream cut after 2 chunks", {"kind": "die_mid_stream", "after": 2}, 200, stream=True,
             expect_verdict="safe", expect_cloud=0)
    scenario("stream stall mid-way (idle_ms)", {"kind": "stall", "after": 2}, 200, stream=True,
             expect_verdict="safe", bound=0.6 + 1.0, expect_cloud=0)
    scenario("in-stream error before content", {"kind": "stream_error", "after": 0}, 200, "cloud", stream=True,
             expect_cloud=1)
    scenario("in-stream error after content", {"kind": "stream_error", "after": 2}, 200, stream=True,
             expect_verdict="safe", expect_cloud=0)

    def prompt_done(r, a, local, cloud):
        check(r.total_s < 1.0, "finish_reason without [DONE] took %.2fs to finish" % r.total_s)
    scenario("finish_reason but no [DONE]", {"kind": "no_done", "hold_ms": 5000}, 200, "local", stream=True,
             bound=1.5, check_extra=prompt_done)
    scenario("stream ends without finish_reason", {"kind": "no_finish"}, 200, stream=True,
             expect_verdict="safe", expect_cloud=0)
    scenario("malformed event mid-stream dropped", {"kind": "malformed"}, 200, "local", stream=True,
             check_extra=lambda r, a, l, c: check(all(not d.startswith("{not") for _, d in r.events),
                                                 "garbage relayed"))
    scenario("stream 503 before any byte", {"kind": "status", "code": 503}, 200, "cloud", stream=True,
             expect_cloud=1)


@test("scenarios: all backends down")
def _():
    def names_both(r, a, local, cloud):
        m = r.json()["error"]["message"]
        check("local" in m and "cloud" in m, m)
    scenario("all backends down", {"kind": "status", "code": 500}, 502, expect_verdict="safe",
             cloud_fault={"kind": "status", "code": 503}, check_extra=names_both)

    def names_timeout(r, a, local, cloud):
        check(r.json()["error"]["code"] == "upstream_timeout", r.body)
    scenario("all backends silent", {"kind": "hang"}, 504, expect_verdict="safe", bound=2 * 0.6 + 1.5,
             cloud_fault={"kind": "hang"}, check_extra=names_timeout, cloud_extra=FAST)


@test("circuit: opens after N failures, skips, half-opens, closes", timeout=60)
def _():
    local, cloud = Mock("openai", "local"), Mock("openai", "cloud")
    local.default({"kind": "status", "code": 500})
    a = Airlock(two_backends(local, cloud, local_extra=FAST,
                             fallback="fallback: { circuit: { failures: 3, open_ms: 1000 } }\n"), env=CLOUD_ENV)
    try:
        for _ in range(3):
            check(a.chat("hi").headers["x-airlock-backend"] == "cloud", "fallback")
        check(local.count() == 3, "3 failures")
        for _ in range(10):
            r = a.chat("hi")
            check(r.status == 200 and r.headers["x-airlock-backend"] == "cloud", "open circuit")
        check(local.count() == 3, "an open circuit still sent %d requests" % (local.count() - 3))
        r = a.request("POST", "/v1/airlock/explain", {"model": "m", "messages": [{"role": "user", "content": "x"}]})
        check('"open"' in r.body.decode(), "explain shows the open circuit: %r" % r.body[:400])
        time.sleep(1.1)
        local.default({"kind": "ok"})
        r = a.chat("hi")
        check(r.headers["x-airlock-backend"] == "local", "half-open trial not sent to local")
        for _ in range(5):
            check(a.chat("hi").headers["x-airlock-backend"] == "local", "circuit did not close")
        TABLE.append(("backend dies and recovers", "cloud while open, local after", 0.0, local.count(),
                      cloud.count(), "pass"))
    finally:
        a.stop()
        local.stop()
        cloud.stop()


@test("flapping backend under steady load: no truncated success, no hang", timeout=90)
def _():
    local, cloud = Mock("openai", "local"), Mock("openai", "cloud")
    a = Airlock(two_backends(local, cloud, local_extra=FAST,
                             fallback="fallback: { circuit: { failures: 2, open_ms: 300 } }\n"), env=CLOUD_ENV)
    results = []
    stop = time.time() + 4

    def flap():
        faults = [{"kind": "status", "code": 500}, {"kind": "die_mid_stream", "after": 1}, {"kind": "close"},
                  {"kind": "ok"}, {"kind": "stream_error", "after": 0}, {"kind": "ok"}]
        i = 0
        while time.time() < stop:
            local.default(faults[i % len(faults)])
            i += 1
            time.sleep(0.15)

    def load(stream):
        while time.time() < stop:
            r = a.chat("hi", stream=stream, timeout=10)
            results.append(("stream" if stream else "json", r))

    try:
        threads = [threading.Thread(target=flap)] + [threading.Thread(target=load, args=(i % 2 == 0,))
                                                      for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        verdicts = [verdict_of(k, r) for k, r in results]
        fails = verdicts.count("fail")
        slow = max((r.total_s if k == "stream" else r.elapsed) for k, r in results)
        TABLE.append(("flapping backend, 4 clients, 4 s", "%d answers: %d pass, %d safe, %d fail" %
                      (len(results), verdicts.count("pass"), verdicts.count("safe"), fails), slow,
                      local.count(), cloud.count(), "fail" if fails else "pass"))
        check(len(results) > 20, "only %d requests completed" % len(results))
        check(fails == 0, "%d answers were truncated but presented as success" % fails)
        check(slow < 3.0, "slowest answer %.2fs" % slow)
    finally:
        a.stop()
        local.stop()
        cloud.stop()


@test("probes: llama.cpp loading is down until /health is 200; readyz follows", timeout=60)
def _():
    local, cloud = Mock("llamacpp", "local"), Mock("openai", "cloud")
    local.default({"kind": "loading"})
    y = "backends:\n" + backend("local", local, "local", "llamacpp", "llama",
                                "health: { interval_ms: 200, timeout_ms: 500 }")
    y += backend("cloud", cloud, "cloud", "openai", "gpt", "api_key_env: T_CLOUD_KEY, clearance: internal")
    a = Airlock(y, env=CLOUD_ENV)
    try:
        time.sleep(0.6)
        before = local.count()
        for _ in range(5):
            r = a.chat("hi")
            check(r.status == 200 and r.headers["x-airlock-backend"] == "cloud", "loading backend used")
        check(local.count() == before, "requests sent to a loading llama.cpp")
        r = a.request("GET", "/readyz")
        check(r.status == 200 and "down" in r.body.decode(), "readyz: %r" % r.body)
        local.default({"kind": "ok"})
        time.sleep(0.6)
        r = a.chat("hi")
        check(r.headers["x-airlock-backend"] == "local", "local not back after /health 200")
        TABLE.append(("llama.cpp loading (probe)", "cloud until /health is 200, then local", r.elapsed,
                      local.count(), cloud.count(), "pass"))
    finally:
        a.stop()
        local.stop()
        cloud.stop()
    # nothing usable: readyz 503 with the reason
    m = Mock("llamacpp", "only")
    m.default({"kind": "loading"})
    a = Airlock("backends:\n" + backend("only", m, "local", "llamacpp", "x", "health: { interval_ms: 200 }"))
    try:
        time.sleep(0.6)
        r = a.request("GET", "/readyz")
        check(r.status == 503 and "reason" in r.json(), "readyz with nothing usable: %d %r" % (r.status, r.body))
    finally:
        a.stop()
        m.stop()


@test("scenario table (printed)", timeout=10)
def _():
    print("\n   %-40s | %-44s | %7s | %5s | %5s | %s" % ("scenario", "client got", "time", "local", "cloud",
                                                          "verdict"))
    print("   " + "-" * 125)
    for name, got, dt, lc, cc, v in TABLE:
        print("   %-40s | %-44s | %6.2fs | %5s | %5s | %s" % (name, got[:44], dt, lc, cc, v))
    fails = [row for row in TABLE if row[5] == "fail"]
    print("   %d scenarios: %d pass, %d safe, %d fail\n" % (len(TABLE), sum(r[5] == "pass" for r in TABLE),
                                                            sum(r[5] == "safe" for r in TABLE), len(fails)))
    check(len(TABLE) >= 30, "only %d scenarios ran" % len(TABLE))
    check(not fails, "failing scenarios: %r" % fails)
