"""test_policy.py — issue 4 as a client sees it: a sensitive request reaches
only a cleared backend, whatever fails; the header raises, never lowers;
hostile encodings are still seen; explain tells why without the text; logs
and error messages never carry the matched text."""
import json
import time

from harness import CLOUD_ENV, Airlock, Mock, check, closed_port, test, two_backends
from util_faults import scanned_text

FAST = "timeouts: { connect_ms: 300, first_byte_ms: 500 }"
CUSTOM = """sensitivity:
  detectors:
    - { builtin: email, level: confidential }
    - { builtin: phone, level: confidential }
    - { builtin: credit_card, level: secret }
    - { builtin: us_ssn, level: secret }
    - { builtin: iban, level: secret }
    - { builtin: secret_key, level: secret }
    - { builtin: ipv4, level: confidential }
    - { name: codenames, keywords: [Nightjar, Bluebird], level: confidential }
    - { name: corp-hosts, regex: '[a-z0-9-]+\\.corp\\.example\\.com', level: confidential }
"""

KEY = "sk-proj-" + "a1B2c3D4e5F6g7H8i9J0" * 2
# detector -> (request text, the sensitive part of it, expected level)
SAMPLES = {
    "email": ("please mail jane.doe@example.com today", "jane.doe@example.com", "confidential"),
    "phone": ("call me on +44 20 7946 0958 tomorrow", "7946 0958", "confidential"),
    "credit_card": ("card 4111 1111 1111 1111 exp 12/29", "4111 1111 1111 1111", "secret"),
    "us_ssn": ("my SSN is 123-45-6789", "123-45-6789", "secret"),
    "iban": ("pay to GB82 WEST 1234 5698 7654 32 please", "GB82 WEST 1234", "secret"),
    "secret_key": ("use key %s in prod" % KEY, KEY, "secret"),
    "ipv4": ("the db is at 10.20.30.40 now", "10.20.30.40", "confidential"),
    "codenames": ("status of project Nightjar?", "Nightjar", "confidential"),
    "corp-hosts": ("deploy to build-01.corp.example.com", "build-01.corp.example.com", "confidential"),
}


def policy_daemon(local, cloud, fallback=""):
    return Airlock(two_backends(local, cloud, local_extra=FAST, fallback=fallback) + CUSTOM, env=CLOUD_ENV)


def no_cleared(r, what, secret=None):
    body = getattr(r, "body", None) or r.raw        # a Resp, or a StreamResult that got no stream
    check(r.status == 503, "%s: expected 503, got %d %r" % (what, r.status, body[:300]))
    e = json.loads(body)["error"]
    check(e["type"] == "airlock_policy" and e["code"] == "no_cleared_backend", "%s: %r" % (what, e))
    check(r.headers.get("x-should-retry") == "false", "%s: x-should-retry %r" % (what, r.headers.get("x-should-retry")))
    check("cloud: excluded (clearance)" in e["message"], "%s: message does not say why cloud was not used: %s" %
          (what, e["message"]))
    if secret:
        check(secret not in e["message"], "%s: the error message carries the matched text" % what)
    return e


def assert_no_text_in_logs(a, secrets):
    time.sleep(0.1)
    text = a.stderr_text()
    for s in secrets:
        check(s not in text, "the daemon's log contains matched text %r" % s)


@test("policy: each detector keeps its request on the cleared backend", timeout=90)
def _():
    local, cloud = Mock("ollama", "local"), Mock("openai", "cloud")
    a = policy_daemon(local, cloud)
    try:
        for name, (text, secret, level) in SAMPLES.items():
            r = a.chat(text)
            check(r.status == 200 and r.headers["x-airlock-backend"] == "local", "%s: %s" % (name, r.headers))
            check(r.headers["x-airlock-level"] == level, "%s: level %s, wanted %s" %
                  (name, r.headers["x-airlock-level"], level))
            check(secret in local.requests()[-1]["body"], "%s: the cleared backend did not get the request" % name)
            s = a.chat(text, stream=True)
            check(s.status == 200 and s.done and s.headers["x-airlock-backend"] == "local", name + " stream")
            e = a.request("POST", "/v1/embeddings", {"model": "m", "input": ["fine", text]})
            check(e.status == 200 and e.headers["x-airlock-backend"] == "local", name + " embeddings")
        check(cloud.count() == 0, "the cloud received %d sensitive requests" % cloud.count())
        r = a.chat("what is a mutex?")
        check(r.headers["x-airlock-level"] == "public", "plain text level")
        # the test can see the cloud: a public request goes there when local fails
        local.script([{"kind": "status", "code": 500}])
        r = a.chat("what is a mutex?")
        check(r.headers["x-airlock-backend"] == "cloud" and cloud.count() == 1, "public fallback")
        assert_no_text_in_logs(a, [s for _, s, _ in SAMPLES.values()])
    finally:
        a.stop()
        local.stop()
        cloud.stop()


@test("policy: local refused, failing, slow or rate-limited -> 503 no_cleared_backend, never the cloud", timeout=150)
def _():
    faults = [("500", {"kind": "status", "code": 500}, "HTTP 500"),
              ("hang", {"kind": "hang"}, "first_byte_ms"),
              ("429", {"kind": "rate_limit", "retry_after": 1}, ("429", "skipped (cooldown)")),
              ("context length", {"kind": "context_length"}, "context length"),
              ("closed", {"kind": "close"}, "local:"),
              ("stream error", {"kind": "stream_error", "after": 0}, "error event")]
    cloud = Mock("openai", "cloud")
    try:
        a = policy_daemon("http://127.0.0.1:%d/v1" % closed_port(), cloud)
        try:
            for name, (text, secret, _) in SAMPLES.items():
                e = no_cleared(a.chat(text), "refused/" + name, secret)
                check("local: " in e["message"], "the message does not name the failed local backend: %s" %
                      e["message"])
            s = a.chat(SAMPLES["email"][0], stream=True)
            no_cleared(s, "refused/stream")
            assert_no_text_in_logs(a, [s for _, s, _ in SAMPLES.values()])
        finally:
            a.stop()
        for fname, fault, why in faults:
            local = Mock("openai", "local")
            a = policy_daemon(local, cloud, fallback="fallback: { circuit: { failures: 2, open_ms: 60000 } }\n")
            try:
                local.default(fault)
                stream = fname == "stream error"
                for name, (text, secret, _) in SAMPLES.items():
                    t0 = time.time()
                    r = a.chat(text, stream=stream)
                    e = no_cleared(r, "%s/%s" % (fname, name), secret)
                    whys = why if isinstance(why, tuple) else (why,)
                    check(any(w in e["message"] for w in whys), "%s/%s: the message does not say why local failed: %s" %
                          (fname, name, e["message"]))
                    check(time.time() - t0 < 0.5 + 1.0, "%s/%s took %.2fs" % (fname, name, time.time() - t0))
                # the circuit is open now: airlock tries the only cleared backend
                # anyway rather than anything else; never one that said, with
                # a 429, when to come back
                n = local.count()
                no_cleared(a.chat(SAMPLES["credit_card"][0], stream=stream), "%s, circuit open" % fname)
                if fname == "429":
                    check(local.count() == n, "429: the cooling backend was tried anyway")
                else:
                    check(local.count() == n + 1, "%s: the circuit-open try-anyway did not go to local" % fname)
            finally:
                a.stop()
                local.stop()
        check(cloud.count() == 0, "the cloud received %d sensitive requests" % cloud.count())
    finally:
        cloud.stop()


@test("policy: the level header raises, never lowers; bad value is a 400 and nothing is forwarded")
def _():
    local, cloud = Mock("openai", "local"), Mock("openai", "cloud")
    local.default({"kind": "status", "code": 500})
    a = policy_daemon(local, cloud)
    try:
        no_cleared(a.chat("hello", headers={"x-airlock-level": "secret"}), "raised to secret")
        no_cleared(a.chat("hello", headers={"X-Airlock-Level": "CONFIDENTIAL"}), "header name/value case")
        no_cleared(a.chat(SAMPLES["email"][0], headers={"x-airlock-level": "public"}), "lowered to public")
        no_cleared(a.chat(SAMPLES["credit_card"][0], headers={"x-airlock-level": "internal"}), "lowered to internal")
        r = a.chat("hello", headers={"x-airlock-level": "internal"})
        check(r.status == 200 and r.headers["x-airlock-level"] == "internal" and
              r.headers["x-airlock-backend"] == "cloud", "internal may use the cloud: %r" % r.headers)
        r = a.request("POST", "/v1/airlock/explain", {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                      headers={"x-airlock-level": "secret"})
        check(r.json()["level"] == "secret" and r.json()["classified_level"] == "public", "explain: %r" % r.body)
        n_local, n_cloud = local.count(), cloud.count()
        for bad in ("ultra", "", "secret,public", "3"):
            r = a.chat("hello", headers={"x-airlock-level": bad})
            check(r.status == 400 and r.json()["error"]["code"] == "invalid_level", "value %r: %d %r" %
                  (bad, r.status, r.body))
        check(local.count() == n_local and cloud.count() == n_cloud, "an invalid level header was forwarded")
        check(cloud.count() == 1, "cloud count %d" % cloud.count())
    finally:
        a.stop()
        local.stop()
        cloud.stop()


def chat_body(content, **extra):
    b = {"model": "m", "messages": [{"role": "user", "content": content}]}
    b.update(extra)
    return json.dumps(b)


# (name, raw body, the level it must get at least)
HOSTILE = [
    ("\\u0040 escape", chat_body("x").replace('"x"', '"jane.doe\\u0040example.com"'), "confidential"),
    ("every character escaped", chat_body("x").replace('"x"', '"%s"' % "".join(
        "\\u%04x" % ord(ch) for ch in "card 4111111111111111")), "secret"),
    ("upper-case escapes", chat_body("x").replace('"x"', '"JANE\\u0040EXAMPLE\\u002ECOM"'), "confidential"),
    ("surrogate pair beside", chat_body("x").replace('"x"', '"\\ud83d\\ude00jane@example.com\\ud83d\\ude00"'),
     "confidential"),
    ("escaped key name", '{"model":"m","mess\\u0061ges":[{"role":"user","content":"jane\\u0040example.com"}]}',
     "confidential"),
    ("content parts split mid-email", json.dumps({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "mail jane.doe@exa"}, {"type": "text", "text": "mple.com"}]}]}), "confidential"),
    ("content parts split mid-card", json.dumps({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "4111 1111 "}, {"type": "text", "text": "1111 1111"}]}]}), "secret"),
    ("content parts split mid-keyword", json.dumps({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "project Night"}, {"type": "text", "text": "jar status"}]}]}), "confidential"),
    ("tool call arguments", json.dumps({"model": "m", "messages": [{"role": "assistant", "tool_calls": [
        {"id": "1", "type": "function", "function": {"name": "pay", "arguments":
                                                     json.dumps({"iban": "GB82WEST12345698765432"})}}]}]}), "secret"),
    ("escaped JSON in tool arguments", json.dumps({"model": "m", "messages": [{"role": "assistant", "tool_calls": [
        {"id": "1", "type": "function", "function": {"name": "mail", "arguments":
                                                     '{"to":"ann\\u0040corp.io"}'}}]}]}), "confidential"),
    ("tool result", json.dumps({"model": "m", "messages": [{"role": "tool", "tool_call_id": "1",
                                                              "content": "SSN 123-45-6789"}]}), "secret"),
    ("tool definition", chat_body("hi", tools=[{"type": "function", "function": {
        "name": "f", "description": "Nightjar helper", "parameters": {"type": "object"}}}]), "confidential"),
    ("tool parameter enum", chat_body("hi", tools=[{"type": "function", "function": {
        "name": "f", "parameters": {"type": "object", "properties": {"to": {"type": "string",
                                                                            "enum": ["jane@example.com"]}}}}}]),
     "confidential"),
    ("legacy functions", chat_body("hi", functions=[{"name": "f", "description": "Bluebird ops", "parameters": {}}]),
     "confidential"),
    ("name field", json.dumps({"model": "m", "messages": [{"role": "user", "name": "jane@example.com",
                                                             "content": "hi"}]}), "confidential"),
    ("unknown nested field", chat_body("hi", metadata={"note": "4111-1111-1111-1111"}), "secret"),
    ("object key", chat_body("hi", metadata={"jane@example.com": 1}), "confidential"),
    ("card as a JSON number", chat_body("hi").replace('"messages"', '"n":4111111111111111,"messages"'), "secret"),
    ("stop sequence", chat_body("hi", stop=["123-45-6789"]), "secret"),
    ("response_format schema", chat_body("hi", response_format={"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"description": "AKIAIOSFODNN7EXAMPLE"}}}), "secret"),
    ("model field", chat_body("hi").replace('"model": "m"', '"model": "jane@example.com"'), "confidential"),
    ("image part (unreadable)", json.dumps({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.org/cat.png"}}]}]}), "secret"),
    ("audio part (unreadable)", json.dumps({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}]}]}), "secret"),
    ("data: URI", chat_body("data:image/png;base64,iVBORw0KGgo="), "secret"),
    ("pasted base64 blob", chat_body("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3" * 8), "secret"),
    ("escaped NUL", chat_body("x").replace('"x"', '"hi\\u0000 jane@example.com"'), "secret"),
    ("long conversation, last turn", json.dumps({"model": "m", "messages": [
        {"role": "user" if i % 2 else "assistant", "content": "turn %d about the weather" % i}
        for i in range(400)] + [{"role": "user", "content": "and my card is 5555 5555 5555 4444"}]}), "secret"),
]
HOSTILE_EMB = [
    ("embeddings input array", json.dumps({"model": "m", "input": ["fine", "jane.doe@example.com"]}), "confidential"),
    ("embeddings input string", json.dumps({"model": "m", "input": "my SSN is 123-45-6789"}), "secret"),
    ("embeddings token ids (unreadable)", json.dumps({"model": "m", "input": [[101, 2023, 102]]}), "secret"),
]
LEVELS = ["public", "internal", "confidential", "secret"]


@test("policy: hostile encodings are still classified, and never reach the cloud", timeout=60)
def _():
    local, cloud = Mock("openai", "local"), Mock("openai", "cloud")
    local.default({"kind": "status", "code": 503})
    a = policy_daemon(local, cloud)
    try:
        for name, body, want in HOSTILE + HOSTILE_EMB:
            e = a.request("POST", "/v1/airlock/explain", body)
            check(e.status == 200, "%s: explain %d %r" % (name, e.status, e.body[:200]))
            got = e.json()["level"]
            check(LEVELS.index(got) >= LEVELS.index(want), "%s: level %s, wanted at least %s" % (name, got, want))
            if "unreadable" in name:
                check(e.json()["unreadable_parts"] >= 1, "%s: unreadable_parts %r" % (name, e.json()))
            path = "/v1/embeddings" if name.startswith("embeddings") else "/v1/chat/completions"
            no_cleared(a.request("POST", path, body), name)
        check(cloud.count() == 0, "the cloud received %d requests" % cloud.count())
        check(local.count() == len(HOSTILE) + len(HOSTILE_EMB), "local (cleared) was not tried for every request")
    finally:
        a.stop()
        local.stop()
        cloud.stop()


@test("explain: level, detectors with exact offsets but no text, route, candidates, exclusions; nothing forwarded")
def _():
    local, cloud = Mock("openai", "local"), Mock("openai", "cloud")
    a = policy_daemon(local, cloud)
    try:
        body = {"model": "m", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "mail jane.doe@example.com or bob@example.org, card 4111 1111 1111 1111"},
            {"role": "user", "content": [{"type": "text", "text": "and Nightjar at 10.20.3"},
                                         {"type": "text", "text": "0.40 / ann@exa"}, {"type": "text", "text": "mple.com"}]}]}
        r = a.request("POST", "/v1/airlock/explain", body)
        check(r.status == 200, r.body)
        e = r.json()
        check(e["level"] == "secret" and e["classified_level"] == "secret", e)
        det = {d["name"]: d for d in e["detectors"]}
        check(set(det) == {"email", "credit_card", "codenames", "ipv4"}, "detectors %r" % sorted(det))
        check(det["email"]["count"] == 3 and det["credit_card"]["count"] == 1, "counts %r" % e["detectors"])
        st = scanned_text(body)
        for name, want in (("email", [b"jane.doe@example.com", b"bob@example.org", b"ann@example.com"]),
                           ("credit_card", [b"4111 1111 1111 1111"]), ("codenames", [b"Nightjar"]),
                           ("ipv4", [b"10.20.30.40"])):
            offs = det[name]["offsets"]
            hits = sorted(w for o in offs for w in want if st[o:o + len(w)] == w)
            check(len(offs) == len(want) and hits == sorted(want), "%s offsets %r point at %r in the scanned text" %
                  (name, offs, [st[o:o + 20] for o in offs]))
            check(det[name]["level"] in LEVELS, det[name])
        check(e["route"] == "default", e)
        check([c["backend"] for c in e["candidates"]] == ["local"], e["candidates"])
        check(e["excluded"] == [{"backend": "cloud", "reason": "clearance"}], e["excluded"])
        for secret in ("jane", "bob@", "4111", "Nightjar", "10.20.30", "ann@"):
            check(secret not in r.body.decode(), "matched text %r in explain" % secret)
        # every sample: explain names its detector and never echoes the text
        for name, (text, secret, level) in SAMPLES.items():
            r = a.request("POST", "/v1/airlock/explain", {"model": "m", "messages": [{"role": "user", "content": text}]})
            names = [d["name"] for d in r.json()["detectors"]]
            check(name in names and r.json()["level"] == level, "%s: %r" % (name, r.body))
            check(secret not in r.body.decode(), "%s: matched text in explain" % name)
        r = a.request("POST", "/v1/airlock/explain", {"model": "m", "input": ["x", "call +44 20 7946 0958 now"]})
        check(r.status == 200 and [d["name"] for d in r.json()["detectors"]] == ["phone"], "embeddings explain %r" % r.body)
        r = a.request("POST", "/v1/airlock/explain", {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        check(r.json()["level"] == "public" and [c["backend"] for c in r.json()["candidates"]] == ["local", "cloud"],
              "public explain %r" % r.body)
        check(local.count() == 0 and cloud.count() == 0, "explain forwarded a request")
        assert_no_text_in_logs(a, ["jane", "bob@", "4111 1111", "Nightjar", "10.20.30", "ann@"] +
                               [s for _, s, _ in SAMPLES.values()])
    finally:
        a.stop()
        local.stop()
        cloud.stop()


@test("routes: level_at_least picks a route; the wire check holds even against a misordered route")
def _():
    local, cloud = Mock("openai", "local"), Mock("openai", "cloud")
    routes = ("routes:\n  - { name: cloud-first, when: { model: 'gpt-*' }, use: [cloud, local] }\n"
              "  - { name: cloud-only, when: { model: 'only-cloud' }, use: [cloud] }\n"
              "  - { name: private, when: { level_at_least: confidential }, use: [local] }\n"
              "  - { name: default, use: [local, cloud] }\n")
    a = Airlock(two_backends(local, cloud, local_extra=FAST, routes=routes), env=CLOUD_ENV)
    try:
        r = a.chat(SAMPLES["email"][0], model="gpt-4o")
        check(r.headers["x-airlock-rule"] == "cloud-first" and r.headers["x-airlock-backend"] == "local",
              "a sensitive request on a cloud-first route: %r" % r.headers)
        r = a.chat(SAMPLES["email"][0], model="llama")
        check(r.headers["x-airlock-rule"] == "private", r.headers)
        r = a.chat("hi", model="gpt-4o")
        check(r.headers["x-airlock-backend"] == "cloud", "public goes to the cloud first on that route")
        # a route whose only backend is not cleared: 503, nothing forwarded
        n = local.count()
        no_cleared(a.chat(SAMPLES["email"][0], model="only-cloud"), "cloud-only route")
        check(local.count() == n, "a route without local sent the request to local")
        check(all("jane" not in q["body"] for q in cloud.requests()), "email reached the cloud")
        check(cloud.count() == 1, "cloud count %d" % cloud.count())
    finally:
        a.stop()
        local.stop()
        cloud.stop()


@test("reload: sensitive requests never reach the cloud while configs swap under load", timeout=60)
def _():
    import signal
    import threading
    local, cloud = Mock("openai", "local"), Mock("openai", "cloud")
    local.default({"kind": "status", "code": 500})
    configs = [two_backends(local, cloud, local_extra=FAST) + CUSTOM,
               two_backends(local, cloud, local_extra=FAST,
                            routes="routes:\n  - { name: cloud-first, use: [cloud, local] }\n") + CUSTOM]
    a = Airlock(configs[0], env=CLOUD_ENV)
    stop = time.time() + 3
    statuses = []

    def load():
        i = 0
        while time.time() < stop:
            text = list(SAMPLES.values())[i % len(SAMPLES)][0]
            statuses.append(a.chat(text, stream=(i % 3 == 0), timeout=10).status)
            i += 1

    try:
        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        n = 0
        while time.time() < stop:
            with open(a.path, "w") as f:
                f.write("listen: 127.0.0.1:%d\nworkers: 2\n" % a.port + configs[n % 2])
            a.signal(signal.SIGHUP)
            n += 1
            time.sleep(0.05)
        for t in threads:
            t.join(15)
        check(len(statuses) > 50 and n > 20, "%d requests over %d reloads" % (len(statuses), n))
        check(set(statuses) == {503}, "unexpected statuses %r" % set(statuses))
        check(cloud.count() == 0, "the cloud received %d sensitive requests during reloads" % cloud.count())
        print("   %d sensitive requests across %d reloads: cloud received 0" % (len(statuses), n))
    finally:
        a.stop()
        local.stop()
        cloud.stop()


@test("policy: client text outside the body (x-request-id, an unknown path or method) never reaches a backend or the log")
def _():
    local, cloud = Mock("ollama", "local"), Mock("openai", "cloud")
    a = policy_daemon(local, cloud)
    try:
        # the client's id goes upstream and into the log: one that looks
        # sensitive is replaced, everywhere, by a generated one
        for name, value in [("credit_card", "4111-1111-1111-1111"), ("us_ssn", "123-45-6789"),
                            ("secret_key", KEY), ("codenames", "Nightjar-7")]:
            r = a.chat("what is a mutex?", headers={"x-request-id": value})
            check(r.status == 200 and r.headers["x-airlock-level"] == "public", "%s: %d %s" % (name, r.status, r.headers))
            got = r.headers["x-request-id"]
            check(got != value and got.startswith("req_"), "%s: the sensitive id was kept: %r" % (name, got))
            sent = local.requests()[-1]["headers"].get("x-request-id")
            check(sent == got, "%s: the backend got x-request-id %r, the client %r" % (name, sent, got))
        local.default({"kind": "status", "code": 500})      # the cloud gets the rest
        plain = "trace-0042.a/b+c=d:e_f"
        for value in [plain, "4111-1111-1111-1111"]:
            r = a.chat("what is a mutex?", headers={"x-request-id": value})
            check(r.status == 200 and r.headers["x-airlock-backend"] == "cloud", "fallback: %d %s" % (r.status, r.headers))
            want = plain if value == plain else r.headers["x-request-id"]
            check(r.headers["x-request-id"] == want and (value == plain or want != value),
                  "client id %r answered as %r" % (value, r.headers["x-request-id"]))
            check(cloud.requests()[-1]["headers"].get("x-request-id") == want, "the cloud got the wrong x-request-id")
        for path in ["/jane.doe@example.com", "/v1/4111111111111111"]:
            r = a.request("GET", path)
            check(r.status == 404, "%s: %d" % (path, r.status))
        r = a.request("NIGHTJAR", "/v1/chat/completions")
        check(r.status == 405, "an unknown method: %d" % r.status)
        for s in ["4111-1111-1111-1111", "123-45-6789", KEY, "Nightjar-7", "jane.doe@example.com",
                  "4111111111111111", "NIGHTJAR"]:
            for rec in cloud.requests() + local.requests():
                check(s not in json.dumps(rec), "%r reached %s" % (s, rec["path"]))
        assert_no_text_in_logs(a, ["4111-1111-1111-1111", "123-45-6789", KEY, "Nightjar-7",
                                   "jane.doe@example.com", "4111111111111111", "NIGHTJAR"])
        logs = a.request_logs()
        check(sum(1 for l in logs if l.get("request_id_replaced")) == 5, "request_id_replaced not logged: %r" % logs[:5])
        check(plain in [l["request_id"] for l in logs], "the plain id is not the logged request_id")
    finally:
        a.stop()
        local.stop()
        cloud.stop()


@test("policy: a body with a key twice in one object is refused; a repeated level header counts at its highest")
def _():
    import http.client
    local, cloud = Mock("ollama", "local"), Mock("openai", "cloud")
    a = policy_daemon(local, cloud)
    try:
        # parsers keep different ones of two values: the classifier must never
        # read one while the upstream reads the other
        bodies = [
            '{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"x","text":"4111 1111 "},'
            '{"type":"text","text":"1111 1111"}]}]}',
            '{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi","type":"image_url",'
            '"image_url":{"url":"https://x/y.png"}}]}]}',
            '{"model":"m","messages":[{"role":"user","content":"hi","content":"4111 1111 1111 1111"}]}',
            '{"model":"m","messages":[{"role":"user","content":"hi"}],"user":"a","us\\u0065r":"b"}',
        ]
        for i, body in enumerate(bodies):
            for path in ("/v1/chat/completions", "/v1/airlock/explain"):
                r = a.request("POST", path, body)
                check(r.status == 400, "body %d on %s: %d %r" % (i, path, r.status, r.body[:200]))
                e = json.loads(r.body)["error"]
                check(e["code"] == "duplicate_key" and "4111" not in e["message"], "body %d: %r" % (i, e))
        many = "{" + ",".join('"k%d":%d' % (i, i) for i in range(40)) + ',"k7":1}'
        r = a.request("POST", "/v1/chat/completions",
                      '{"model":"m","messages":[{"role":"user","content":"hi"}],"metadata":%s}' % many)
        check(r.status == 400, "a duplicate among 41 keys: %d" % r.status)
        check(cloud.count() == 0 and local.count() == 0, "a refused body reached a backend")

        def twice(values):
            c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=10)
            body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "what is a mutex?"}]})
            c.putrequest("POST", "/v1/chat/completions")
            c.putheader("Content-Type", "application/json")
            c.putheader("Content-Length", str(len(body)))
            for v in values:
                c.putheader("X-Airlock-Level", v)
            c.endheaders(body.encode())
            r = c.getresponse()
            out = (r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
            c.close()
            return out
        for values in (["public", "secret"], ["secret", "public"], ["internal", "secret", "public"]):
            st, h, _ = twice(values)
            check(st == 200 and h["x-airlock-level"] == "secret" and h["x-airlock-backend"] == "local",
                  "%r: %d %r" % (values, st, h))
        st, h, body = twice(["public", "bogus"])
        check(st == 400 and json.loads(body)["error"]["code"] == "invalid_level", "a bad second value: %d" % st)
        check(cloud.count() == 0, "the cloud received %d requests" % cloud.count())
    finally:
        a.stop()
        local.stop()
        cloud.stop()
