"""test_policy.py — issue 4 as a client sees it: a sensitive request reaches
only a cleared backend, whatever fails; the header raises, never lowers;
hostile encodings are still seen; explain tells why without the text."""
import json
import time

from harness import CLOUD_ENV, Airlock, Mock, check, closed_port, test, two_backends

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

SAMPLES = {
    "email": "please mail jane.doe@example.com today",
    "phone": "call me on +44 20 7946 0958 tomorrow",
    "credit_card": "card 4111 1111 1111 1111 exp 12/29",
    "us_ssn": "my SSN is 123-45-6789",
    "iban": "pay to GB82 WEST 1234 5698 7654 32 please",
    "secret_key": "use key sk-proj-" + "a1B2c3D4e5F6g7H8i9J0" * 2 + " in prod",
    "ipv4": "the db is at 10.20.30.40 now",
    "codenames": "status of project Nightjar?",
    "corp-hosts": "deploy to build-01.corp.example.com",
}


def policy_daemon(local, cloud, fallback=""):
    return Airlock(two_backends(local, cloud, local_extra=FAST, fallback=fallback) + CUSTOM, env=CLOUD_ENV)


def no_cleared(r):
    check(r.status == 503, "expected 503, got %d %r" % (r.status, r.body[:200]))
    e = r.json()["error"]
    check(e["type"] == "airlock_policy" and e["code"] == "no_cleared_backend", e)
    check(r.headers.get("x-should-retry") == "false", "x-should-retry")


@test("policy: each detector keeps its request on the cleared backend", timeout=90)
def _():
    local, cloud = Mock("ollama", "local"), Mock("openai", "cloud")
    a = policy_daemon(local, cloud)
    try:
        for name, text in SAMPLES.items():
            r = a.chat(text)
            check(r.status == 200 and r.headers["x-airlock-backend"] == "local", "%s: %s" % (name, r.headers))
            check(r.headers["x-airlock-level"] in ("confidential", "secret"), "%s level %s" %
                  (name, r.headers["x-airlock-level"]))
            s = a.chat(text, stream=True)
            check(s.status == 200 and s.done, name + " stream")
        check(cloud.count() == 0, "the cloud received %d sensitive requests" % cloud.count())
        r = a.chat("what is a mutex?")
        check(r.headers["x-airlock-level"] == "public", "plain text level")
        # a public request may go to the cloud when local fails
        local.script([{"kind": "status", "code": 500}])
        r = a.chat("what is a mutex?")
        check(r.headers["x-airlock-backend"] == "cloud", "public fallback")
    finally:
        a.stop()
        local.stop()
        cloud.stop()


@test("policy: local down, failing or slow -> 503, never the cloud", timeout=120)
def _():
    faults = [("500", [{"kind": "status", "code": 500}]), ("hang", [{"kind": "hang"}]),
              ("429", [{"kind": "rate_limit", "retry_after": 1}]), ("ctx", [{"kind": "context_length"}]),
              ("stream error", [{"kind": "stream_error", "after": 0}])]
    cloud = Mock("openai", "cloud")
    try:
        a = policy_daemon("http://127.0.0.1:%d/v1" % closed_port(), cloud)
        try:
            for name, text in SAMPLES.items():
                no_cleared(a.chat(text))
            s = a.chat(SAMPLES["email"], stream=True)
            check(s.status == 503, "stream: %d" % s.status)
        finally:
            a.stop()
        for fname, fault in faults:
            local = Mock("openai", "local")
            a = policy_daemon(local, cloud, fallback="fallback: { circuit: { failures: 2, open_ms: 60000 } }\n")
            try:
                local.default(fault[0])
                for name, text in SAMPLES.items():
                    r = a.chat(text, stream=(fname == "stream error"))
                    check(r.status in (502, 503, 504), "%s/%s: %d" % (fname, name, r.status))
                # the circuit is open now: airlock still tries the local one
                # (the only cleared backend) rather than the cloud
                r = a.chat(SAMPLES["credit_card"], stream=(fname == "stream error"))
                check(r.status in (502, 503, 504), "%s, circuit open: %d" % (fname, r.status))
            finally:
                a.stop()
                local.stop()
        check(cloud.count() == 0, "the cloud received %d sensitive requests" % cloud.count())
    finally:
        cloud.stop()


@test("policy: the level header raises, never lowers; bad value is a 400")
def _():
    local, cloud = Mock("openai", "local"), Mock("openai", "cloud")
    local.default({"kind": "status", "code": 500})
    a = policy_daemon(local, cloud)
    try:
        r = a.chat("hello", headers={"x-airlock-level": "secret"})
        no_cleared(r)
        r = a.chat(SAMPLES["email"], headers={"x-airlock-level": "public"})
        no_cleared(r)
        r = a.chat("hello", headers={"x-airlock-level": "internal"})
        check(r.status == 200 and r.headers["x-airlock-level"] == "internal" and
              r.headers["x-airlock-backend"] == "cloud", "internal may use the cloud")
        r = a.chat("hello", headers={"x-airlock-level": "ultra"})
        check(r.status == 400 and r.json()["error"]["code"] == "invalid_level", r.body)
        check(cloud.count() == 1, "cloud count %d" % cloud.count())
    finally:
        a.stop()
        local.stop()
        cloud.stop()


HOSTILE = [
    ("\\u escapes", '{"model":"m","messages":[{"role":"user","content":"jane.doe\\u0040example.com"}]}'),
    ("all escaped", '{"model":"m","messages":[{"role":"user","content":"' +
     "".join("\\u%04x" % ord(ch) for ch in "card 4111111111111111") + '"}]}'),
    ("surrogate pair", '{"model":"m","messages":[{"role":"user","content":"\\ud83d\\ude00 jane@example.com"}]}'),
    ("content array split", json.dumps({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "mail jane.doe@exa"}, {"type": "text", "text": "mple.com"}]}]})),
    ("tool call arguments", json.dumps({"model": "m", "messages": [{"role": "assistant", "tool_calls": [
        {"id": "1", "type": "function", "function": {"name": "pay", "arguments":
                                                     json.dumps({"iban": "GB82WEST12345698765432"})}}]}]})),
    ("tool result", json.dumps({"model": "m", "messages": [{"role": "tool", "tool_call_id": "1",
                                                              "content": "SSN 123-45-6789"}]})),
    ("tool definition", json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": [
        {"type": "function", "function": {"name": "f", "description": "Nightjar helper",
                                          "parameters": {"type": "object"}}}]})),
    ("name field", json.dumps({"model": "m", "messages": [{"role": "user", "name": "jane@example.com",
                                                             "content": "hi"}]})),
    ("unknown field", json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                                  "metadata": {"note": "4111-1111-1111-1111"}})),
    ("image", json.dumps({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "iVBORw0KGgo" * 40}}]}]})),
    ("escaped NUL", '{"model":"m","messages":[{"role":"user","content":"hi\\u0000 jane@example.com"}]}'),
    ("long conversation", json.dumps({"model": "m", "messages": [
        {"role": "user" if i % 2 else "assistant", "content": "turn %d about the weather" % i}
        for i in range(400)] + [{"role": "user", "content": "and my card is 5555 5555 5555 4444"}]})),
]


@test("policy: hostile encodings are still classified", timeout=60)
def _():
    local, cloud = Mock("openai", "local"), Mock("openai", "cloud")
    local.default({"kind": "status", "code": 503})
    a = policy_daemon(local, cloud)
    try:
        for name, body in HOSTILE:
            r = a.request("POST", "/v1/chat/completions", body)
            check(r.status == 503, "%s: %d %r" % (name, r.status, r.body[:200]))
        emb = a.request("POST", "/v1/embeddings", {"model": "m", "input": ["fine", "jane.doe@example.com"]})
        check(emb.status == 503, "embeddings input: %d" % emb.status)
        check(cloud.count() == 0, "the cloud received %d requests" % cloud.count())
    finally:
        a.stop()
        local.stop()
        cloud.stop()


@test("explain: level, detectors with offsets but no text, route, candidates, exclusions; nothing forwarded")
def _():
    local, cloud = Mock("openai", "local"), Mock("openai", "cloud")
    a = policy_daemon(local, cloud)
    try:
        secret = "jane.doe@example.com"
        r = a.request("POST", "/v1/airlock/explain",
                      {"model": "m", "messages": [{"role": "user", "content": "mail " + secret}]})
        check(r.status == 200, r.body)
        e = r.json()
        check(e["level"] == "confidential", e)
        det = [d for d in e["detectors"] if d["name"] == "email"]
        check(det and det[0]["count"] == 1 and det[0]["offsets"], e["detectors"])
        check(e["route"] == "default", e)
        check([c["backend"] for c in e["candidates"]] == ["local"], e["candidates"])
        check(any(x["backend"] == "cloud" and x["reason"] == "clearance" for x in e["excluded"]), e["excluded"])
        check(secret not in r.body.decode() and "jane" not in r.body.decode(), "matched text in explain")
        check(local.count() == 0 and cloud.count() == 0, "explain forwarded a request")
        time.sleep(0.1)
        check("jane" not in a.stderr_text(), "matched text in the log")
    finally:
        a.stop()
        local.stop()
        cloud.stop()


@test("routes: level_at_least picks a route; the wire check holds even against a misordered route")
def _():
    local, cloud = Mock("openai", "local"), Mock("openai", "cloud")
    routes = ("routes:\n  - { name: cloud-first, when: { model: 'gpt-*' }, use: [cloud, local] }\n"
              "  - { name: private, when: { level_at_least: confidential }, use: [local] }\n"
              "  - { name: default, use: [local, cloud] }\n")
    a = Airlock(two_backends(local, cloud, local_extra=FAST, routes=routes), env=CLOUD_ENV)
    try:
        r = a.chat(SAMPLES["email"], model="gpt-4o")
        check(r.headers["x-airlock-rule"] == "cloud-first" and r.headers["x-airlock-backend"] == "local",
              "a sensitive request on a cloud-first route: %r" % r.headers)
        r = a.chat(SAMPLES["email"], model="llama")
        check(r.headers["x-airlock-rule"] == "private", r.headers)
        r = a.chat("hi", model="gpt-4o")
        check(r.headers["x-airlock-backend"] == "cloud", "public goes to the cloud first on that route")
        check(all("jane" not in q["body"] for q in cloud.requests()), "email reached the cloud")
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
            text = list(SAMPLES.values())[i % len(SAMPLES)]
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
        check(all(s in (502, 503, 504) for s in statuses), "unexpected statuses %r" % set(statuses))
        check(cloud.count() == 0, "the cloud received %d sensitive requests during reloads" % cloud.count())
        print("   %d sensitive requests across %d reloads: cloud received 0" % (len(statuses), n))
    finally:
        a.stop()
        local.stop()
        cloud.stop()
