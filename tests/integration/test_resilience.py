"""test_resilience.py — issue 5: fault scenarios, each with the outcome a
client must see, a bound on its time, and the requests each upstream got.

Verdicts follow failoverbench's:
  pass     the client got a real, complete answer (finish_reason, and the
           very text the answering upstream sent) within the bound;
  partial  a real, complete answer, but slower than the scenario's bound;
  safe     an honest error (an HTTP error, or a stream that ends with an SSE
           error event and no [DONE]): nothing passed off as success;
  fail     a truncated or garbled answer presented as success (a 200 without
           finish_reason, a [DONE] after a cut, text that is not what the
           upstream sent), or a hang (no answer within the client's timeout).
Every row is asserted against the verdict the design allows (never fail);
the table is printed at the end.

Each scenario starts its own daemon with a local backend (a test upstream:
tests/upstream/mockup.py, or util_faults' raw, silent or black-hole ones for
faults a real server makes but the mock cannot) and a cloud backend (a mock)."""
import email.utils
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

from harness import CLOUD_ENV, VALGRIND, Airlock, Mock, backend, check, closed_port, test, two_backends
import util_faults as uf

TABLE = []
IDLE = 0.6                          # first_byte_ms and idle_ms of the local backend, seconds
FAST = "timeouts: { connect_ms: 300, first_byte_ms: 600, idle_ms: 600 }"
NO_CIRCUIT = "fallback: { circuit: { failures: 1000, open_ms: 1000 } }\n"
SLOW = 3.0 if VALGRIND else 1.0     # the daemon runs far slower under valgrind


# ---- what the client got ---------------------------------------------------

def expected_text(r, stream, raw_local=False):
    """The answer text the upstream that answered (x-airlock-backend) sent."""
    name = r.headers.get("x-airlock-backend")
    if name == "local" and raw_local:
        return "hello from raw"
    if not stream:
        return "hello from %s" % name
    words = ["hello", "from", name]
    return "".join(words[i % 3] + " " for i in range(5))     # mockup.py: 5 chunks


def verdict_of(kind, r, expect=None):
    """pass / safe / fail for what the client got (partial is decided by the
    caller from the time). expect: the exact text a complete answer has."""
    if r is None:
        return "fail"                                   # hang
    if kind == "stream":
        if r.status == 200 and r.done and r.finish_reason() and r.error_event is None:
            return "pass" if expect is None or r.content() == expect else "fail"
        if r.status == 200 and r.done:
            return "fail"           # [DONE] without a complete answer: passed off as success
        if r.status == 200 and r.error_event is not None:
            return "safe"
        return "safe" if r.status >= 400 else "fail"   # a 200 stream that just stops is a fail
    if r.status == 200:
        try:
            ch = r.json()["choices"][0]
            ok = ch["finish_reason"] is not None and (expect is None or ch["message"]["content"] == expect)
        except (ValueError, KeyError, IndexError, TypeError):
            ok = False
        return "pass" if ok else "fail"
    return "safe" if r.status >= 400 else "fail"


def outcome(kind, r):
    if r is None:
        return "no answer (hang)"
    if kind == "stream":
        if r.status != 200:
            return "%d %s" % (r.status, error_code(r.raw))
        s = "200 stream via %s" % r.headers.get("x-airlock-backend", "-")
        if r.error_event:
            return s + ", error event, %s" % ("[DONE]" if r.done else "no [DONE]")
        return s + ("" if r.done else ", no [DONE]")
    if r.status != 200:
        return "%d %s" % (r.status, error_code(r.body))
    return "200 via %s" % r.headers.get("x-airlock-backend", "-")


def error_code(body):
    import json
    try:
        e = json.loads(body).get("error") or {}
        return str(e.get("code") or e.get("type") or "")
    except (ValueError, AttributeError):
        return ""


def row(name, got, seconds, lc, cc, verdict):
    TABLE.append((name, got, seconds, lc, cc, verdict))


# ---- one scenario ------------------------------------------------------------

def scenario(name, fault=None, expect_status=200, expect_backend=None, stream=False, bound=1.0,
             flavor="openai", local_url=None, raw=None, expect_verdict="pass", expect_local=None,
             expect_cloud=None, local_extra=FAST, cloud_fault=None, check_extra=None, cloud_extra="",
             fallback=NO_CIRCUIT, min_time=None):
    """Starts a daemon with `local` and `cloud`, applies the fault, sends one
    chat request (streamed or not) and checks status, answering backend,
    verdict, time (bound, and min_time when a timer must really have run) and
    how many requests each upstream received. `raw`: a util_faults.RawUpstream
    answer (list of items) for the local backend instead of a mock."""
    bound *= SLOW
    rawup = uf.RawUpstream() if raw is not None else None
    local = None if (local_url or rawup) else Mock(flavor, "local")
    cloud = Mock("openai", "cloud")
    lurl = local_url or (rawup.url if rawup else local)
    a = Airlock(two_backends(lurl, cloud, local_extra=local_extra, cloud_extra=cloud_extra, fallback=fallback,
                             local_provider=flavor if local else "openai"), env=CLOUD_ENV)
    try:
        if local and fault:
            local.script(fault if isinstance(fault, list) else [fault])
        if rawup:
            rawup.script([raw])
        if cloud_fault:
            cloud.default(cloud_fault)
        kind = "stream" if stream else "json"
        t0 = time.time()
        try:
            r = a.chat("hi", stream=stream, timeout=bound + 10)
        except OSError:
            r = None                                    # no answer within the client's patience
        dt = time.time() - t0
        v = verdict_of(kind, r, expected_text(r, stream, rawup is not None) if r is not None else None)
        if v == "pass" and dt > bound:
            v = "partial"
        lc = local.count() if local else (rawup.count() if rawup else "-")
        cc = cloud.count()
        row(name, outcome(kind, r), dt, lc, cc, v)
        check(v != "fail", "%s: verdict fail (%s)" % (name, outcome(kind, r)))
        check(v == expect_verdict, "%s: verdict %s, wanted %s (%s)" % (name, v, expect_verdict, outcome(kind, r)))
        check(r.status == expect_status, "%s: status %d, wanted %d" % (name, r.status, expect_status))
        if expect_backend:
            check(r.headers.get("x-airlock-backend") == expect_backend, "%s: answered by %s" %
                  (name, r.headers.get("x-airlock-backend")))
            if expect_status == 200:
                n = 2 if expect_backend == "cloud" else 1     # local is always tried first here
                check(r.headers.get("x-airlock-attempts") == str(n), "%s: x-airlock-attempts %s, wanted %d" %
                      (name, r.headers.get("x-airlock-attempts"), n))
        check(dt <= bound, "%s took %.2fs (bound %.1fs)" % (name, dt, bound))
        if min_time is not None:
            check(dt >= min_time, "%s took %.2fs: a %.1fs timer cannot have run" % (name, dt, min_time))
        if expect_local is not None:
            check(lc == expect_local, "%s: local got %s requests, wanted %d" % (name, lc, expect_local))
        if expect_cloud is not None:
            check(cc == expect_cloud, "%s: cloud got %d requests, wanted %d" % (name, cc, expect_cloud))
        if check_extra:
            check_extra(r, a, local or rawup, cloud)
        return r
    finally:
        a.stop()
        cloud.stop()
        if local:
            local.stop()
        if rawup:
            rawup.stop()


def make_cert(dirpath):
    cert, key = os.path.join(dirpath, "c.pem"), os.path.join(dirpath, "k.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True, timeout=60)
    return cert, key


def interrupted(code="stream_interrupted"):
    def f(r, a, local, cloud):
        e = (r.error_event or {}).get("error") or {}
        check(e.get("code") == code and e.get("type") == "upstream_error", "error event %r" % r.error_event)
        check("local" in e.get("message", ""), "the error event does not name the backend: %r" % e)
    return f


# ---- connection-level faults -----------------------------------------------

@test("scenarios: connection-level faults", timeout=90)
def _():
    scenario("connection refused", local_url="http://127.0.0.1:%d/v1" % closed_port(), expect_backend="cloud",
             expect_cloud=1)
    scenario("DNS failure (.invalid)", local_url="http://no-such-host.invalid:8080/v1", expect_backend="cloud",
             bound=1.5, expect_cloud=1)
    bh = uf.BlackHole()
    try:
        scenario("connect timeout (SYN dropped)", local_url=bh.url, expect_backend="cloud", bound=0.3 + 1.0,
                 min_time=0.28, expect_cloud=1)
        # connect_ms is the connect trigger: it falls back even where timeouts do not
        scenario("connect timeout, fallback.on [connect]", local_url=bh.url, expect_backend="cloud",
                 bound=0.3 + 1.0, expect_cloud=1, fallback="fallback: { on: [connect, 5xx] }\n")
    finally:
        bh.stop()
    d = tempfile.mkdtemp()
    tls = Mock("openai", "tls", tls=make_cert(d))
    # the first TLS handshake loads the system's CA store: seconds under valgrind
    tls_bound = 2.0 if VALGRIND else 1.0
    try:
        scenario("TLS: untrusted certificate", local_url="https://127.0.0.1:%d/v1" % tls.port,
                 expect_backend="cloud", expect_cloud=1, bound=tls_bound)
        check(tls.count() == 0, "the untrusted TLS upstream got a request")
    finally:
        tls.stop()
    plain = uf.Silent(greet=b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    try:
        scenario("TLS: https:// to a plain HTTP port", local_url="https://127.0.0.1:%d/v1" % plain.port,
                 expect_backend="cloud", expect_cloud=1, bound=tls_bound)
    finally:
        plain.stop()
    mute = uf.Silent()
    try:
        scenario("TLS: handshake never answered", local_url="https://127.0.0.1:%d/v1" % mute.port,
                 expect_backend="cloud", bound=0.3 + 1.0, min_time=0.28, expect_cloud=1,
                 fallback="fallback: { on: [connect] }\n")
    finally:
        mute.stop()
    scenario("connection closed without answer", {"kind": "close"}, expect_backend="cloud", expect_local=1,
             expect_cloud=1)


# ---- slow and silent ---------------------------------------------------------

@test("scenarios: slow and silent upstreams", timeout=90)
def _():
    scenario("hang before headers", {"kind": "hang"}, expect_backend="cloud", bound=IDLE + 1.0, min_time=IDLE - 0.05,
             expect_local=1, expect_cloud=1)
    scenario("headers, then silence", {"kind": "hang_body"}, expect_backend="cloud", bound=IDLE + 1.0,
             min_time=IDLE - 0.05, expect_local=1, expect_cloud=1)
    scenario("slow first byte (within first_byte_ms)", {"kind": "delay", "ms": 300}, expect_backend="local",
             expect_cloud=0)
    scenario("slow first byte (past first_byte_ms)", {"kind": "delay", "ms": 2000}, expect_backend="cloud",
             bound=IDLE + 1.0, expect_cloud=1)
    scenario("stream: hang before headers", {"kind": "hang"}, expect_backend="cloud", stream=True,
             bound=IDLE + 1.0, expect_local=1, expect_cloud=1)
    # idle_ms is the gap between chunks, not the whole answer
    scenario("stream: slow chunks, each within idle_ms", {"kind": "ok", "chunk_delay_ms": 400}, stream=True,
             expect_backend="local", bound=2.0 + 1.0, min_time=1.9, expect_cloud=0)


# ---- HTTP errors ---------------------------------------------------------------

@test("scenarios: HTTP errors", timeout=90)
def _():
    for code in (500, 502, 503):
        scenario("%d" % code, {"kind": "status", "code": code}, expect_backend="cloud", expect_local=1,
                 expect_cloud=1)
    scenario("429 without Retry-After", {"kind": "rate_limit"}, expect_backend="cloud", expect_cloud=1)

    def as_is(r, a, local, cloud):
        import json
        check(json.loads(r.body) == {"error": {"message": "mock 400", "type": "invalid_request_error",
                                               "param": None, "code": None}}, "400 body changed: %r" % r.body)
    scenario("400 passthrough", {"kind": "status", "code": 400}, 400, "local", expect_verdict="safe",
             expect_cloud=0, check_extra=as_is)
    for flavor in ("openai", "vllm", "llamacpp", "ollama"):
        scenario("context length (%s) -> next" % flavor, {"kind": "context_length"}, expect_backend="cloud",
                 flavor=flavor, expect_cloud=1)
    scenario("malformed JSON in a 200", {"kind": "malformed"}, expect_backend="cloud", expect_cloud=1)
    scenario("non-stream body cut mid-way", {"kind": "die_mid_stream"}, expect_backend="cloud", expect_cloud=1)
    scenario("200 with an error object", raw=uf.json_response({"error": {"message": "boom", "type": "x"}}),
             expect_backend="cloud", expect_cloud=1)
    scenario("200 with an empty body", raw=[uf.http_head(200, "application/json", 0)], expect_backend="cloud",
             expect_cloud=1)
    scenario("200 with a proxy's HTML page", raw=[uf.http_head(200, "text/html", 19) + b"<html>login</html>\n"],
             expect_backend="cloud", expect_cloud=1)
    scenario("Content-Length longer than the body", raw=[uf.http_head(200, "application/json", 900) +
                                                         b'{"id":"x","choices":[', ("close",)],
             expect_backend="cloud", expect_cloud=1)
    scenario("204 No Content", raw=[uf.http_head(204, "application/json", 0, reason="No Content")],
             expect_backend="cloud", expect_cloud=1)
    scenario("301 redirect (not followed)", raw=[uf.http_head(301, "text/html", 0, {"Location": "http://x/"},
                                                              "Moved")], expect_backend="cloud", expect_cloud=1)
    # The server was reached and its answer is bad: the 5xx trigger, not connect
    only_5xx = "fallback: { on: [5xx], circuit: { failures: 1000, open_ms: 1000 } }\n"
    for name, raw, detail in (
            ("no HTTP status line (HTTP/0.9)", [b'{"id":"x","choices":[]}', ("close",)], "an answer that is not HTTP"),
            ("garbage status line", [b"HTTP/1.1 abc OK\r\nContent-Length: 2\r\n\r\n{}"], "an answer that is not HTTP"),
            ("a response header over 100 KB", [uf.http_head(200, "application/json", 2, {"X-Big": "a" * 150000}) +
                                               b"{}"], "a response header over 100 KB")):
        scenario(name, raw=raw, expect_backend="cloud", expect_cloud=1, fallback=only_5xx,
                 check_extra=lambda r, a, l, c, d=detail: first_attempt(a, "bad_response", d))
    embeddings_fallback()


def first_attempt(a, outcome, detail):
    """The request's log line names the first attempt's outcome and why."""
    t = [l for l in a.request_logs() if l["path"] == "/v1/chat/completions"][-1]["attempts"][0]
    check(t["outcome"] == outcome and detail in t["detail"], "first attempt logged as %r" % t)


def embeddings_fallback():
    local, cloud = Mock("openai", "local"), Mock("openai", "cloud")
    local.script([{"kind": "status", "code": 500}])
    a = Airlock(two_backends(local, cloud, local_extra=FAST), env=CLOUD_ENV)
    try:
        t0 = time.time()
        r = a.request("POST", "/v1/embeddings", {"model": "m", "input": ["a", "b"]})
        dt = time.time() - t0
        ok = r.status == 200 and len(r.json().get("data", [])) == 2
        row("embeddings: 500 -> next", "%d via %s" % (r.status, r.headers.get("x-airlock-backend")), dt,
            local.count(), cloud.count(), "pass" if ok else "fail")
        check(ok and r.headers.get("x-airlock-backend") == "cloud", "embeddings fallback: %d %r" % (r.status, r.body))
    finally:
        a.stop()
        local.stop()
        cloud.stop()


# ---- 429 and cool-downs ---------------------------------------------------------

def cooldown_case(name, fault, back_after, extra_fallback="", at_least=None, until=None):
    """until: an absolute end (an HTTP-date Retry-After), checked against the
    clock rather than the time the 429 came (the first request can take
    seconds under valgrind)."""
    local, cloud = Mock("openai", "local"), Mock("openai", "cloud")
    local.script([fault])
    a = Airlock(two_backends(local, cloud, local_extra=FAST,
                             fallback="fallback: { circuit: { failures: 1000, open_ms: 1000 }%s }\n" % extra_fallback),
                env=CLOUD_ENV)
    try:
        t0 = time.time()
        r = a.chat("hi")
        t429 = time.time()      # the cool-down began before this (under valgrind, well after t0)
        check(r.status == 200 and r.headers["x-airlock-backend"] == "cloud", "%s: 429 -> cloud" % name)
        r = a.chat("hi")
        check(r.headers["x-airlock-backend"] == "cloud" and local.count() == 1,
              "%s: the cooling backend was tried (%d requests)" % (name, local.count()))
        # a cool-down that ended too soon is no cool-down (an HTTP date has
        # whole seconds: it ends within the second before `until`)
        mid = until - 1.2 if until is not None else (t429 + at_least if at_least is not None else None)
        if mid is not None and mid > time.time():
            time.sleep(mid - time.time())
            r = a.chat("hi")
            check(r.headers["x-airlock-backend"] == "cloud" and local.count() == 1,
                  "%s: local back too soon" % name)
        lc, cc = local.count(), cloud.count()
        end = until if until is not None else t429 + back_after
        time.sleep(max(0.0, end + 0.25 * SLOW - time.time()))
        r = a.chat("hi")
        back = r.headers["x-airlock-backend"] == "local"
        row(name, "200 via cloud; next skips local; local back after %.0f s" % back_after, time.time() - t0, lc, cc,
            "pass" if back else "safe")
        check(back, "%s: local not back after %.1f s" % (name, back_after))
    finally:
        a.stop()
        local.stop()
        cloud.stop()


@test("scenarios: 429 cools the backend down for Retry-After (1 s without; capped)", timeout=60)
def _():
    cooldown_case("429 without Retry-After (1 s cool-down)", {"kind": "rate_limit"}, 1.0)
    cooldown_case("429 with Retry-After: 2", {"kind": "rate_limit", "retry_after": 2}, 2.0)
    cooldown_case("429 Retry-After: 3600, cap 1 s", {"kind": "rate_limit", "retry_after": 3600}, 1.0,
                  ", retry_after_max_ms: 1000", at_least=0.6)
    cooldown_case("429 Retry-After: 2^64/1000 s, cap 1 s", {"kind": "rate_limit", "retry_after": 18446744073709552},
                  1.0, ", retry_after_max_ms: 1000", at_least=0.6)
    until = time.time() + 3 * SLOW
    cooldown_case("429 Retry-After as an HTTP date, +3 s",
                  {"kind": "rate_limit", "retry_after": email.utils.formatdate(until, usegmt=True)},
                  3.0, until=until)


@test("rate limits: passed through with the upstream's Retry-After; every backend limited is a 429, nothing sent")
def _():
    local, cloud = Mock("openai", "local"), Mock("openai", "cloud")
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    local.script([{"kind": "rate_limit", "retry_after": date}])
    a = Airlock(two_backends(local, cloud, local_extra=FAST, fallback="fallback: { on: [connect, timeout, 5xx] }\n"),
                env=CLOUD_ENV)
    try:
        r = a.chat("hi")
        check(r.status == 429 and r.headers.get("retry-after") == date, "passthrough: %d %r" % (r.status, r.headers))
    finally:
        a.stop()
    # one backend, rate limited for 30 s: the client hears 429 and when to
    # come back, and the backend hears nothing more until then
    local.reset()
    local.script([{"kind": "rate_limit", "retry_after": 30}])
    a = Airlock("backends:\n" + backend("local", local) + "routes:\n  - { name: only, use: [local] }\n")
    try:
        t0 = time.time()
        answers = [a.chat("hi") for _ in range(4)]
        for i, r in enumerate(answers):
            e = json.loads(r.body)["error"]
            ra = int(r.headers.get("retry-after", "0"))
            check(r.status == 429 and e["code"] == "upstream_rate_limited" and e["type"] == "rate_limit_error"
                  and 25 <= ra <= 30, "request %d: %d %r retry-after %r" % (i, r.status, e, ra))
        check(local.count() == 1, "the rate-limited backend got %d requests while cooling" % local.count())
        row("every backend rate limited (Retry-After: 30)", "429 upstream_rate_limited, Retry-After, x4",
            time.time() - t0, local.count(), "-", "safe")
    finally:
        a.stop()
        local.stop()
        cloud.stop()


@test("last resort: when every candidate is skipped, the one most likely alive is tried", timeout=60)
def _():
    local, cloud = Mock("llamacpp", "local"), Mock("openai", "cloud")
    local.default({"kind": "loading"})          # its probe says down, and it would answer 503
    cloud.script([{"kind": "status", "code": 500}])
    y = "backends:\n" + backend("local", local, "local", "llamacpp", "llama",
                                "health: { interval_ms: 200, timeout_ms: 500 }")
    y += backend("cloud", cloud, "cloud", "openai", "gpt", "api_key_env: T_CLOUD_KEY, clearance: internal")
    y += "routes:\n  - { name: default, use: [local, cloud] }\n"
    y += "fallback: { circuit: { failures: 1, open_ms: 60000 } }\n"
    a = Airlock(y, env=CLOUD_ENV)
    try:
        deadline = time.time() + 3 * SLOW
        while time.time() < deadline and '"down"' not in a.request("GET", "/readyz").body.decode():
            time.sleep(0.05)
        t0 = time.time()
        r = a.chat("hi")                         # local skipped (down), cloud 500: its circuit opens
        check(r.status == 502, "first: %d" % r.status)
        r = a.chat("hi")                         # both skipped: cloud (recovered) beats a probed-down local
        check(r.status == 200 and r.headers["x-airlock-backend"] == "cloud", "forced: %d %r" % (r.status, r.headers))
        check(local.count() == 0, "the probed-down backend was tried: %d" % local.count())
        check(any("trying cloud anyway" in l.get("msg", "") for l in a.log_lines()), "the log does not say which")
        check(any("probe says down: HTTP 503" in l.get("msg", "") for l in a.log_lines()), "probe reason not logged")
        body = json.loads(a.request("GET", "/readyz").body)
        check(any(b.get("reason", "").startswith("probe: HTTP 503") for b in body["backends"]), "readyz: %r" % body)
        row("every candidate skipped: the likeliest alive", "200 via cloud (local probed down)", time.time() - t0,
            local.count(), cloud.count(), "pass")
    finally:
        a.stop()
        local.stop()
        cloud.stop()


@test("circuit: retries and good probes never send more than the half-open trials", timeout=60)
def _():
    local, cloud = Mock("llamacpp", "local"), Mock("openai", "cloud")
    local.default({"kind": "status", "code": 500})      # /health answers 200 all the while
    a = Airlock(two_backends(local, cloud, local_extra="retries: 3, health: { interval_ms: 100, timeout_ms: 500 }",
                             local_provider="llamacpp",
                             fallback="fallback: { circuit: { failures: 1, open_ms: 2000 } }\n"), env=CLOUD_ENV)
    try:
        t0 = time.time()
        n = 0
        while time.time() < t0 + 1.5:
            r = a.chat("hi")
            check(r.status == 200 and r.headers["x-airlock-backend"] == "cloud", "steady load: %d" % r.status)
            n += 1
        check(local.count() == 1, "%d requests reached a backend whose circuit was open (retries: 3, a probe "
              "passing every 100 ms, open_ms 2000)" % local.count())
        row("retries and passing probes, circuit open", "%d answers via cloud; local got only the first" % n,
            time.time() - t0, local.count(), cloud.count(), "pass")
    finally:
        a.stop()
        local.stop()
        cloud.stop()


@test("scenarios: an answer is judged by what it holds", timeout=90)
def _():
    ev = uf.good_events()
    scenario("finish_reason, then the connection reset", raw=uf.stream_response(ev, end=False) + [("reset",)],
             stream=True, expect_backend="local")
    scenario("finish_reason, then closed before the last chunk", raw=uf.stream_response(ev, end=False) + [("close",)],
             stream=True, expect_backend="local")
    for name, body in [("200 with {}", {}), ("200 with null", None), ('200 with "choices": []', {"choices": []}),
                       ("200 with vLLM's error object", {"object": "error", "message": "engine dead",
                                                          "type": "InternalServerError", "param": None, "code": 500})]:
        scenario(name, raw=uf.json_response(body), expect_backend="cloud", expect_cloud=1)


# ---- streams ---------------------------------------------------------------------

@test("scenarios: streams", timeout=120)
def _():
    scenario("stream cut after 2 chunks", {"kind": "die_mid_stream", "after": 2}, stream=True,
             expect_verdict="safe", expect_cloud=0, check_extra=interrupted())
    scenario("stream cut before content", {"kind": "die_mid_stream", "after": 0}, stream=True,
             expect_backend="cloud", expect_cloud=1)
    scenario("stream stall mid-way (idle_ms)", {"kind": "stall", "after": 2}, stream=True, expect_verdict="safe",
             bound=IDLE + 1.0, min_time=IDLE - 0.05, expect_cloud=0, check_extra=interrupted())
    scenario("stream stall before content", {"kind": "stall", "after": 0}, stream=True, expect_backend="cloud",
             bound=IDLE + 1.0, min_time=IDLE - 0.05, expect_cloud=1)
    scenario("in-stream error before content", {"kind": "stream_error", "after": 0}, stream=True,
             expect_backend="cloud", expect_cloud=1)
    scenario("in-stream error after content", {"kind": "stream_error", "after": 2}, stream=True,
             expect_verdict="safe", expect_cloud=0, check_extra=interrupted())

    def prompt_done(r, a, local, cloud):
        check(r.total_s < 1.0 * SLOW, "finish_reason without [DONE] took %.2fs to finish" % r.total_s)
    scenario("finish_reason, no [DONE], connection held", {"kind": "no_done", "hold_ms": 5000}, stream=True,
             expect_backend="local", check_extra=prompt_done)
    scenario("finish_reason, no [DONE], connection closed", {"kind": "no_done"}, stream=True,
             expect_backend="local")
    scenario("stream ends without finish_reason", {"kind": "no_finish"}, stream=True, expect_verdict="safe",
             expect_cloud=0, check_extra=interrupted())
    scenario("malformed event mid-stream dropped", {"kind": "malformed"}, stream=True, expect_backend="local",
             check_extra=lambda r, a, l, c: check(all(not d.startswith("{not") for _, d in r.events),
                                                 "garbage relayed"))
    scenario("stream 503 before any byte", {"kind": "status", "code": 503}, stream=True, expect_backend="cloud",
             expect_cloud=1)
    scenario("stream total_ms runs out after content", {"kind": "ok", "chunks": 20, "chunk_delay_ms": 100},
             stream=True, expect_verdict="safe", bound=1.0 + 1.0, expect_cloud=0,
             local_extra="timeouts: { first_byte_ms: 600, idle_ms: 600, total_ms: 1000 }",
             check_extra=interrupted())


@test("scenarios: streams from servers that frame them their own way", timeout=90)
def _():
    ev = uf.good_events()
    scenario("SSE with CRLF line ends", raw=uf.stream_response(ev, eol="\r\n"), stream=True, expect_backend="local")
    scenario("SSE sent one byte per chunk", raw=uf.stream_response(ev, split=1), stream=True, expect_backend="local")
    scenario("SSE 'data:' without a space, event/id lines",
             raw=[uf.http_head(200, "text/event-stream"),
                  uf.chunked(b"".join(b"event: message\nid: %d\n" % i + uf.sse(e, space=False)
                                      for i, e in enumerate(ev))), uf.END],
             stream=True, expect_backend="local")
    scenario("[DONE] before finish_reason, no content", raw=uf.stream_response([uf.sse_chunk("", role=True),
                                                                               "[DONE]"]),
             stream=True, expect_backend="cloud", expect_cloud=1)
    scenario("[DONE] before finish_reason, after content",
             raw=uf.stream_response([uf.sse_chunk("", role=True), uf.sse_chunk("hel"), uf.sse_chunk("lo"), "[DONE]"]),
             stream=True, expect_verdict="safe", expect_cloud=0, check_extra=interrupted())
    scenario("[DONE], then the connection held", raw=uf.stream_response(ev + ["[DONE]"], end=False) + [("hold", 5)],
             stream=True, expect_backend="local")
    scenario("stream: a JSON answer instead of SSE", raw=uf.json_response(uf.completion()), stream=True,
             expect_backend="cloud", expect_cloud=1)
    scenario("stream: a 200 HTML page", raw=[uf.http_head(200, "text/html", 19) + b"<html>login</html>\n"],
             stream=True, expect_backend="cloud", expect_cloud=1)
    scenario("vLLM error event after content",
             raw=uf.stream_response([uf.sse_chunk("", role=True), uf.sse_chunk("hi"),
                                     {"error": {"object": "error", "message": "engine dead",
                                                "type": "InternalServerError", "code": 500}}]),
             stream=True, expect_verdict="safe", expect_cloud=0, check_extra=interrupted())


# ---- everything down -------------------------------------------------------------

@test("scenarios: all backends down", timeout=60)
def _():
    def names_both(r, a, local, cloud):
        m = r.json()["error"]["message"]
        check("local: HTTP 500" in m and "cloud: HTTP 503" in m, "502 does not name each backend and why: " + m)
        check(r.json()["error"]["code"] == "all_backends_failed", r.body)
    scenario("all backends down", {"kind": "status", "code": 500}, 502, expect_verdict="safe",
             cloud_fault={"kind": "status", "code": 503}, expect_local=1, expect_cloud=1, check_extra=names_both)

    def names_timeout(r, a, local, cloud):
        e = r.json()["error"]
        check(e["code"] == "upstream_timeout" and "local" in e["message"] and "cloud" in e["message"], r.body)
    scenario("all backends silent", {"kind": "hang"}, 504, expect_verdict="safe", bound=2 * IDLE + 1.0,
             min_time=2 * IDLE - 0.1, cloud_fault={"kind": "hang"}, check_extra=names_timeout, cloud_extra=FAST)
    scenario("all backends down (stream)", {"kind": "status", "code": 500}, 502, stream=True,
             expect_verdict="safe", cloud_fault={"kind": "status", "code": 503})


# ---- circuits ---------------------------------------------------------------------

@test("circuit: opens after N failures, skips, half-opens, closes; a failed trial reopens", timeout=60)
def _():
    local, cloud = Mock("openai", "local"), Mock("openai", "cloud")
    local.default({"kind": "status", "code": 500})
    a = Airlock(two_backends(local, cloud, local_extra=FAST,
                             fallback="fallback: { circuit: { failures: 3, open_ms: 1000 } }\n"), env=CLOUD_ENV)
    t0 = time.time()
    try:
        # a success in between resets the count: failures must be consecutive
        local.script([{"kind": "status", "code": 500}] * 2 + [{"kind": "ok"}])
        for _ in range(3):
            a.chat("hi")
        for _ in range(2):
            check(a.chat("hi").headers["x-airlock-backend"] == "cloud", "fallback")
        check(local.count() == 5, "not consecutive: %d" % local.count())
        check(a.chat("hi").headers["x-airlock-backend"] == "cloud" and local.count() == 6, "third failure")
        for _ in range(10):
            r = a.chat("hi")
            check(r.status == 200 and r.headers["x-airlock-backend"] == "cloud", "open circuit")
        check(local.count() == 6, "an open circuit still sent %d requests" % (local.count() - 6))
        r = a.request("GET", "/readyz")
        check(r.status == 200 and '"open"' in r.body.decode(), "readyz shows the open circuit: %r" % r.body)
        # open_ms later: one trial; it fails, so the circuit opens again
        time.sleep(1.05)
        check(a.chat("hi").headers["x-airlock-backend"] == "cloud" and local.count() == 7, "failed trial")
        for _ in range(5):
            a.chat("hi")
        check(local.count() == 7, "a failed trial did not reopen the circuit (%d)" % local.count())
        # next open_ms: the trial succeeds and the circuit closes
        time.sleep(1.05)
        local.default({"kind": "ok"})
        check(a.chat("hi").headers["x-airlock-backend"] == "local", "half-open trial not sent to local")
        for _ in range(5):
            check(a.chat("hi").headers["x-airlock-backend"] == "local", "circuit did not close")
        row("circuit: opens, failed trial reopens, closes", "cloud while open, local after", time.time() - t0,
            local.count(), cloud.count(), "pass")
    finally:
        a.stop()
        local.stop()
        cloud.stop()


@test("circuit: half-open lets exactly one trial through; a trial whose client leaves is given back", timeout=60)
def _():
    local, cloud = Mock("openai", "local"), Mock("openai", "cloud")
    local.default({"kind": "status", "code": 500})
    a = Airlock(two_backends(local, cloud, local_extra="timeouts: { first_byte_ms: 5000, idle_ms: 5000 }",
                             fallback="fallback: { circuit: { failures: 2, open_ms: 500 } }\n"), env=CLOUD_ENV)
    try:
        for _ in range(2):
            a.chat("hi")
        time.sleep(0.55)
        local.default({"kind": "delay", "ms": 400})
        res = []
        ths = [threading.Thread(target=lambda: res.append(a.chat("hi", timeout=10))) for _ in range(8)]
        for t in ths:
            t.start()
        for t in ths:
            t.join(15)
        by = [r.headers.get("x-airlock-backend") for r in res]
        check(len(res) == 8 and all(r.status == 200 for r in res), "statuses %r" % [r.status for r in res])
        check(by.count("local") == 1 and local.count() == 3, "half-open let %d trials through (%r)" %
              (local.count() - 2, by))
        # open it again, then the trial's client leaves mid-stream
        local.default({"kind": "status", "code": 500})
        for _ in range(2):
            a.chat("hi")
        time.sleep(0.55)
        local.default({"kind": "ok", "chunks": 30, "chunk_delay_ms": 100})
        s = a.stream("/v1/chat/completions", {"model": "m", "stream": True,
                                              "messages": [{"role": "user", "content": "hi"}]}, stop_after=2)
        check(s.headers.get("x-airlock-backend") == "local", "the trial went to %s" % s.headers.get("x-airlock-backend"))
        local.default({"kind": "ok"})
        t0 = time.time()
        back = None
        while time.time() - t0 < 5:
            if a.chat("hi").headers.get("x-airlock-backend") == "local":
                back = time.time() - t0
                break
            time.sleep(0.1)
        row("half-open trial whose client leaves", "next request is the trial" if back is not None else
            "backend skipped for 60 s", back or 5.0, local.count(), cloud.count(), "pass" if back is not None else "safe")
        check(back is not None and back < 2.0, "a half-open trial abandoned by its client kept local out for %s s" %
              ("> 5" if back is None else "%.1f" % back))
    finally:
        a.stop()
        local.stop()
        cloud.stop()


@test("circuit: a backend process dies and comes back on its port", timeout=60)
def _():
    local, cloud = Mock("openai", "local"), Mock("openai", "cloud")
    port = local.port
    a = Airlock(two_backends(local, cloud, local_extra=FAST,
                             fallback="fallback: { circuit: { failures: 3, open_ms: 700 } }\n"), env=CLOUD_ENV)
    t0 = time.time()
    try:
        check(a.chat("hi").headers["x-airlock-backend"] == "local", "local first")
        local.stop()
        attempts = []
        for _ in range(10):
            r = a.chat("hi")
            check(r.status == 200 and r.headers["x-airlock-backend"] == "cloud", "dead local: %d" % r.status)
            attempts.append(int(r.headers["x-airlock-attempts"]))
        check(attempts == [2, 2, 2] + [1] * 7, "refused connections after the circuit opened: %r" % attempts)
        local = uf.mock_at(port, "openai", "local")
        time.sleep(0.75)
        check(a.chat("hi").headers["x-airlock-backend"] == "local", "half-open trial after the restart")
        for _ in range(3):
            check(a.chat("hi").headers["x-airlock-backend"] == "local", "closed again")
        row("backend process killed, restarted", "3 refusals, then skipped; local after restart", time.time() - t0,
            "3+%d" % local.count(), cloud.count(), "pass")
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
    lock = threading.Lock()

    def flap():
        faults = [{"kind": "status", "code": 500}, {"kind": "die_mid_stream", "after": 1}, {"kind": "ok"},
                  {"kind": "hang"}, {"kind": "ok"}, {"kind": "close"}, {"kind": "stream_error", "after": 0},
                  {"kind": "ok"}, {"kind": "no_finish"}, {"kind": "stall", "after": 1}, {"kind": "ok"},
                  {"kind": "malformed"}, {"kind": "rate_limit"}, {"kind": "ok"}]
        i = 0
        while time.time() < stop:
            local.default(faults[i % len(faults)])
            i += 1
            time.sleep(0.15)

    def load(stream):
        while time.time() < stop:
            try:
                r = a.chat("hi", stream=stream, timeout=10)
            except OSError:
                r = None
            with lock:
                results.append(("stream" if stream else "json", r))

    try:
        threads = [threading.Thread(target=flap)] + [threading.Thread(target=load, args=(i % 2 == 0,))
                                                      for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        verdicts = [verdict_of(k, r, expected_text(r, k == "stream") if r is not None else None)
                    for k, r in results]
        fails = verdicts.count("fail")
        slow = max(((r.total_s if k == "stream" else r.elapsed) if r is not None else 99) for k, r in results)
        row("flapping backend, 4 clients, 4 s", "%d answers: %d pass, %d safe, %d fail" %
            (len(results), verdicts.count("pass"), verdicts.count("safe"), fails), slow,
            local.count(), cloud.count(), "fail" if fails else "pass")
        check(len(results) > 20, "only %d requests completed" % len(results))
        bad = [(k, r and r.status, r and outcome(k, r)) for (k, r), v in zip(results, verdicts) if v == "fail"]
        check(fails == 0, "%d answers were truncated but presented as success, or hung: %r" % (fails, bad[:5]))
        check(slow < 3.0 * SLOW, "slowest answer %.2fs" % slow)
    finally:
        a.stop()
        local.stop()
        cloud.stop()


# ---- probes and readiness -------------------------------------------------------------

def probe_case(name, flavor, down, up):
    """The probe (not a failed request) marks the local backend down: requests
    skip it without sending it anything, until a probe sees it up again."""
    local, cloud = Mock(flavor, "local"), Mock("openai", "cloud")
    local.default(down)
    y = "backends:\n" + backend("local", local, "local", flavor, "llama",
                                "health: { interval_ms: 200, timeout_ms: 500 }")
    y += backend("cloud", cloud, "cloud", "openai", "gpt", "api_key_env: T_CLOUD_KEY, clearance: internal")
    a = Airlock(y, env=CLOUD_ENV)
    t0 = time.time()
    try:
        deadline = time.time() + 3 * SLOW
        while time.time() < deadline and '"down"' not in a.request("GET", "/readyz").body.decode():
            time.sleep(0.05)
        r = a.request("GET", "/readyz")
        check(r.status == 200 and '"down"' in r.body.decode(), "%s: readyz %r" % (name, r.body))
        for _ in range(5):
            r = a.chat("hi")
            check(r.status == 200 and r.headers["x-airlock-backend"] == "cloud", "%s: a down backend used" % name)
        check(local.count() == 0, "%s: %d requests sent to a backend its probe marks down" % (name, local.count()))
        local.default(up)
        deadline = time.time() + 3 * SLOW
        while time.time() < deadline and a.chat("hi").headers["x-airlock-backend"] != "local":
            time.sleep(0.05)
        r = a.chat("hi")
        check(r.headers["x-airlock-backend"] == "local", "%s: local not back after its probe passed" % name)
        row(name, "cloud while probed down, then local", time.time() - t0, local.count(), cloud.count(), "pass")
    finally:
        a.stop()
        local.stop()
        cloud.stop()


@test("probes: llama.cpp loading, Ollama /api/tags, vLLM /health mark a backend down until they pass", timeout=90)
def _():
    probe_case("probe: llama.cpp /health 503 loading", "llamacpp", {"kind": "loading"}, {"kind": "ok"})
    probe_case("probe: Ollama /api/tags 503", "ollama", {"kind": "status", "code": 503}, {"kind": "ok"})
    probe_case("probe: vLLM /health 500", "vllm", {"kind": "status", "code": 500}, {"kind": "ok"})
    probe_case("probe: OpenAI-style /models 502", "openai", {"kind": "status", "code": 502}, {"kind": "ok"})


@test("probes: a reload that turns probes off forgets a down verdict", timeout=60)
def _():
    local, cloud = Mock("llamacpp", "local"), Mock("openai", "cloud")
    local.default({"kind": "loading"})

    def cfg(health):
        y = "listen: 127.0.0.1:%d\nworkers: 2\n" % a.port if a else ""
        y += "backends:\n" + backend("local", local, "local", "llamacpp", "llama", health)
        return y + backend("cloud", cloud, "cloud", "openai", "gpt", "api_key_env: T_CLOUD_KEY, clearance: internal")
    a = None
    a = Airlock(cfg("health: { interval_ms: 200, timeout_ms: 500 }"), env=CLOUD_ENV)
    try:
        time.sleep(0.5 * SLOW)
        check('"down"' in a.request("GET", "/readyz").body.decode(), "probe did not mark local down")
        local.default({"kind": "ok"})
        with open(a.path, "w") as f:
            f.write(cfg("health: { enabled: false }"))
        a.signal(signal.SIGHUP)
        deadline = time.time() + 3 * SLOW
        got = None
        while time.time() < deadline:
            got = a.chat("hi").headers.get("x-airlock-backend")
            if got == "local":
                break
            time.sleep(0.1)
        check(got == "local", "with probes off after a reload, local is still skipped as down")
    finally:
        a.stop()
        local.stop()
        cloud.stop()


@test("readyz: 200 while a backend is usable, 503 with the reason when none is", timeout=60)
def _():
    m = Mock("llamacpp", "only")
    m.default({"kind": "loading"})
    a = Airlock("backends:\n" + backend("only", m, "local", "llamacpp", "x", "health: { interval_ms: 200 }"))
    try:
        deadline = time.time() + 3 * SLOW
        while time.time() < deadline and a.request("GET", "/readyz").status != 503:
            time.sleep(0.05)
        r = a.request("GET", "/readyz")
        check(r.status == 503 and r.json().get("reason") and r.json()["backends"][0]["state"] == "down",
              "readyz with nothing usable: %d %r" % (r.status, r.body))
        m.default({"kind": "ok"})
        deadline = time.time() + 3 * SLOW
        while time.time() < deadline and a.request("GET", "/readyz").status != 200:
            time.sleep(0.05)
        r = a.request("GET", "/readyz")
        check(r.status == 200 and r.json()["backends"][0]["state"] == "up", "readyz after recovery: %r" % r.body)
    finally:
        a.stop()
        m.stop()
    # circuits: both backends open -> 503; open_ms later -> 200 again
    local, cloud = Mock("openai", "local"), Mock("openai", "cloud")
    local.default({"kind": "status", "code": 500})
    cloud.default({"kind": "status", "code": 500})
    a = Airlock(two_backends(local, cloud, local_extra=FAST,
                             fallback="fallback: { circuit: { failures: 2, open_ms: 800 } }\n"), env=CLOUD_ENV)
    try:
        for _ in range(2):
            check(a.chat("hi").status == 502, "both failing")
        r = a.request("GET", "/readyz")
        check(r.status == 503 and all(b["state"] == "open" for b in r.json()["backends"]), "readyz: %r" % r.body)
        # nothing usable: airlock still tries the first candidate once (and says so)
        n = local.count()
        r = a.chat("hi")
        check(r.status == 502 and local.count() == n + 1 and cloud.count() == 2, "try-anyway: %d %d %d" %
              (r.status, local.count(), cloud.count()))
        check("trying local anyway" in a.stderr_text(), "the log does not say which was tried anyway")
        time.sleep(0.85)
        check(a.request("GET", "/readyz").status == 200, "readyz after open_ms")
    finally:
        a.stop()
        local.stop()
        cloud.stop()


@test("retries: a backend's retries try it again (with backoff) before the next one", timeout=60)
def _():
    local, cloud = Mock("openai", "local"), Mock("openai", "cloud")
    local.script([{"kind": "status", "code": 500}, {"kind": "status", "code": 502}])
    a = Airlock(two_backends(local, cloud, local_extra=FAST + ", retries: 2",
                             fallback="fallback: { max_attempts: 4, circuit: { failures: 1000, open_ms: 1000 } }\n"),
                env=CLOUD_ENV)
    try:
        t0 = time.time()
        r = a.chat("hi")
        dt = time.time() - t0
        check(r.status == 200 and r.headers["x-airlock-backend"] == "local" and r.headers["x-airlock-attempts"] == "3",
              "retried: %d %r" % (r.status, r.headers))
        check(0.14 <= dt < 1.5 * SLOW, "backoff took %.2fs" % dt)
        check(cloud.count() == 0, "cloud tried before the retries ran out")
        ts = [q["t"] for q in local.requests()]
        check(ts[1] - ts[0] >= 0.045 and ts[2] - ts[1] >= 0.09, "no backoff between retries: %r" %
              [round(b - a_, 3) for a_, b in zip(ts, ts[1:])])
        row("retries: 2 (500, 502, then ok)", "200 via local after 2 retries", dt, local.count(), cloud.count(), "pass")
    finally:
        a.stop()
        local.stop()
        cloud.stop()


@test("scenario table (printed)", timeout=10)
def _():
    print("\n   %-44s | %-52s | %7s | %5s | %5s | %s" % ("scenario", "client got", "time", "local", "cloud",
                                                          "verdict"))
    print("   " + "-" * 135)
    for name, got, dt, lc, cc, v in TABLE:
        print("   %-44s | %-52s | %6.2fs | %5s | %5s | %s" % (name[:44], got[:52], dt, lc, cc, v))
    fails = [r for r in TABLE if r[5] == "fail"]
    print("   %d scenarios: %d pass, %d partial, %d safe, %d fail\n" % (
        len(TABLE), sum(r[5] == "pass" for r in TABLE), sum(r[5] == "partial" for r in TABLE),
        sum(r[5] == "safe" for r in TABLE), len(fails)))
    if len(sys.argv) == 1:                  # the whole suite ran, not a selection
        check(len(TABLE) >= 50, "only %d scenarios ran" % len(TABLE))
    check(not fails, "failing scenarios: %r" % fails)
