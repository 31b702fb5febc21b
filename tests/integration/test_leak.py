"""test_leak.py — the randomized leak test of issue 4. Thousands of requests
carry unique canaries (emails, cards, keys, IBANs, SSNs, code names) at
random places and in random encodings, among plain requests, while the local
backend fails at random. Afterwards every byte the cloud backend received is
searched for every canary. Replay a run with LEAK_SEED=<seed>."""
import json
import os
import random
import string
import time
from concurrent.futures import ThreadPoolExecutor

from harness import CLOUD_ENV, Airlock, Mock, check, test, two_backends

N_REQUESTS = int(os.environ.get("LEAK_REQUESTS", "2400"))


def luhn_digit(digits):
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d)
        if i % 2 == 0:
            n *= 2
            n -= 9 if n > 9 else 0
        total += n
    return str((10 - total % 10) % 10)


class Canaries:
    def __init__(self, rng):
        self.rng = rng

    def token(self, n, alphabet=string.ascii_lowercase + string.digits):
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def email(self):
        return "%s.%s@%s.example.org" % (self.token(6, string.ascii_lowercase), self.token(8),
                                         self.token(7, string.ascii_lowercase))

    def card(self):
        prefix = self.rng.choice(["4", "51", "52", "53", "54", "55", "37", "6011"])
        length = 15 if prefix == "37" else 16
        body = prefix + "".join(self.rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
        digits = body + luhn_digit(body)
        sep = self.rng.choice(["", " ", "-"])
        if sep and length == 16:
            return sep.join(digits[i:i + 4] for i in range(0, 16, 4))
        return digits

    def key(self):
        kind = self.rng.randrange(3)
        if kind == 0:
            return "sk-proj-" + self.token(48, string.ascii_letters + string.digits)
        if kind == 1:
            return "AKIA" + self.token(16, string.ascii_uppercase + string.digits)
        return "ghp_" + self.token(36, string.ascii_letters + string.digits)

    def iban(self):
        bban = "WEST" + "".join(self.rng.choice(string.digits) for _ in range(14))
        num = int("".join(str(int(c, 36)) for c in bban + "GB00"))
        check_digits = "%02d" % (98 - num % 97)
        return "GB" + check_digits + bban

    def ssn(self):
        area = self.rng.choice([a for a in range(1, 900) if a != 666])
        return "%03d-%02d-%04d" % (area, self.rng.randrange(1, 100), self.rng.randrange(1, 10000))

    def keyword(self):
        return "%s %s" % (self.rng.choice(["Nightjar", "Bluebird", "NIGHTJAR", "bluebird"]), self.token(10))

    def any(self):
        kind = self.rng.choice(["email", "card", "key", "iban", "ssn", "keyword"])
        return kind, getattr(self, kind)()


def escape_some(s, rng, all_chars=False):
    """JSON string body with some (or all) characters as \\uXXXX escapes."""
    out = []
    for ch in s:
        if all_chars or rng.random() < 0.3:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(json.dumps(ch)[1:-1])
    return "".join(out)


PLACES = ["content", "system", "array", "split", "tool_args", "tool_result", "name_then_content",
          "unknown_field", "embeddings", "long_history"]


def build(rng, canary, place, encoding):
    """(path, raw JSON body, stream) carrying `canary` at `place`."""
    filler = "lorem ipsum %d dolor sit amet" % rng.randrange(10**6)
    text = "%s %s %s" % (filler[:rng.randrange(len(filler))], canary, filler[rng.randrange(len(filler)):])
    stream = rng.random() < 0.4
    marker = "@@CANARY@@"
    messages = [{"role": "user", "content": "hi"}]
    body = {"model": rng.choice(["llama", "gpt-4o", "m"]), "messages": messages}
    if place == "content":
        messages[0]["content"] = marker
    elif place == "system":
        messages.insert(0, {"role": "system", "content": marker})
    elif place == "array":
        messages[0]["content"] = [{"type": "text", "text": "look:"}, {"type": "text", "text": marker}]
    elif place == "split":
        cut = rng.randrange(1, len(canary))
        messages[0]["content"] = [{"type": "text", "text": "a " + canary[:cut]},
                                  {"type": "text", "text": canary[cut:] + " b"}]
        marker = None
    elif place == "tool_args":
        messages.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "lookup",
                                                          "arguments": json.dumps({"q": canary})}}]})
        marker = None
    elif place == "tool_result":
        messages.append({"role": "tool", "tool_call_id": "c1", "content": marker})
    elif place == "name_then_content":
        messages[0]["name"] = "agent_%d" % rng.randrange(100)
        messages[0]["content"] = marker
    elif place == "unknown_field":
        body["metadata"] = {"trace": [1, {"note": marker}]}
    elif place == "embeddings":
        body = {"model": "m", "input": ["plain", marker] if rng.random() < 0.5 else marker}
        stream = False
    elif place == "long_history":
        for i in range(rng.randrange(20, 120)):
            messages.insert(0, {"role": "user" if i % 2 else "assistant", "content": "turn %d about tea" % i})
        messages[-1]["content"] = marker
    if stream:
        body["stream"] = True
    raw = json.dumps(body)
    if marker:
        if encoding == "plain":
            enc = json.dumps(text)[1:-1]
        else:
            enc = escape_some(text, rng, all_chars=(encoding == "escaped"))
        raw = raw.replace('"%s"' % marker, '"%s"' % enc)
    path = "/v1/embeddings" if place == "embeddings" else "/v1/chat/completions"
    return path, raw, stream


FAULTS = [{"kind": "ok"}] * 6 + [{"kind": "status", "code": 500}, {"kind": "status", "code": 503},
                                 {"kind": "rate_limit"}, {"kind": "close"}, {"kind": "context_length"},
                                 {"kind": "die_mid_stream", "after": 1}, {"kind": "stream_error", "after": 0},
                                 {"kind": "malformed"}, {"kind": "hang"}]


def digits_only(s):
    return "".join(ch for ch in s if ch.isdigit())


@test("leak test: randomized canaries never reach a backend above their clearance", timeout=400)
def _():
    seed = int(os.environ.get("LEAK_SEED", str(int(time.time()) % 1000000)))
    rng = random.Random(seed)
    gen = Canaries(rng)
    local, cloud = Mock("ollama", "local"), Mock("openai", "cloud")
    local.script([rng.choice(FAULTS) for _ in range(N_REQUESTS)])
    yaml = two_backends(local, cloud, local_extra="timeouts: { connect_ms: 300, first_byte_ms: 300, idle_ms: 300 }",
                        cloud_extra="timeouts: { first_byte_ms: 2000 }",
                        fallback="fallback: { circuit: { failures: 1000000, open_ms: 1000 } }\n")
    yaml += ("sensitivity:\n  detectors:\n"
             "    - { builtin: email }\n    - { builtin: credit_card }\n    - { builtin: secret_key }\n"
             "    - { builtin: iban }\n    - { builtin: us_ssn }\n"
             "    - { name: codenames, keywords: [Nightjar, Bluebird], level: confidential }\n")
    a = Airlock(yaml, env=CLOUD_ENV)
    jobs = []
    for i in range(N_REQUESTS):
        if rng.random() < 0.25:
            jobs.append((None, None, "/v1/chat/completions",
                         json.dumps({"model": "m", "messages": [{"role": "user", "content": "plain question %d" % i}]}),
                         False))
            continue
        kind, canary = gen.any()
        place = rng.choice(PLACES)
        encoding = rng.choice(["plain", "partly escaped", "escaped"])
        path, raw, stream = build(rng, canary, place, encoding)
        jobs.append((kind, canary, path, raw, stream))

    def run(job):
        kind, canary, path, raw, stream = job
        try:
            if stream:
                r = a.stream(path, raw.encode(), timeout=20)
            else:
                r = a.request("POST", path, raw, timeout=20)
            return job, r.status, r.headers.get("x-airlock-backend")
        except Exception as e:  # noqa: BLE001
            return job, -1, repr(e)

    t0 = time.time()
    try:
        with ThreadPoolExecutor(32) as pool:
            results = list(pool.map(run, jobs))
        elapsed = time.time() - t0
        seen = [q["body"] for q in cloud.requests()]
    finally:
        a.stop()
        local.stop()
        cloud.stop()

    decoded = []
    for body in seen:
        try:
            decoded.append(json.dumps(json.loads(body), ensure_ascii=False))
        except ValueError:
            decoded.append(body)
    haystack = "\n".join(seen) + "\n" + "\n".join(decoded)
    haystack_lower = haystack.lower()
    cloud_digits = [digits_only(d) for d in decoded]
    leaks = []
    for kind, canary, path, raw, stream in jobs:
        if not canary:
            continue
        found = canary.lower() in haystack_lower
        if kind == "card" and not found:
            found = any(digits_only(canary) in d for d in cloud_digits)
        if found:
            leaks.append((kind, canary))
    sensitive = [r for r in results if r[0][0]]
    served_by_cloud = [r for r in sensitive if r[2] == "cloud"]
    errors = [r for r in results if r[1] == -1]
    plain_to_cloud = sum(1 for r in results if not r[0][0] and r[2] == "cloud")
    print("   leak test: seed=%d requests=%d sensitive=%d cloud_requests=%d leaks=%d (%.1fs; replay with LEAK_SEED=%d)"
          % (seed, len(jobs), len(sensitive), len(seen), len(leaks), elapsed, seed))
    check(N_REQUESTS >= 2000 or os.environ.get("LEAK_REQUESTS"), "fewer than 2000 requests")
    check(not leaks, "LEAKS (seed %d): %r" % (seed, leaks[:5]))
    check(not served_by_cloud, "sensitive requests answered by the cloud: %d" % len(served_by_cloud))
    check(not errors, "client errors: %r" % errors[:3])
    check(plain_to_cloud > 0, "no plain request reached the cloud: the test could not see a leak")
