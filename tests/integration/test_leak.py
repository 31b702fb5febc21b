"""test_leak.py — the randomized leak test of issue 4.

Three backends: `local` (clearance secret), `cloud` (clearance internal) and
`public` (clearance public), tried in that order. Thousands of requests carry
unique canaries — emails, Luhn-valid cards, API keys, IBANs, SSNs and code
names (confidential or secret), IPv4 addresses and ticket ids (internal) — at
random places (message content, system prompt, content parts, a canary split
across parts, tool call arguments with escapes of their own, tool results,
`name`, tool definitions, unknown and top-level fields, object keys, stop
sequences, JSON numbers, embeddings input) and in random encodings (plain,
some or all characters as \\uXXXX, upper-case escapes, surrogate pairs
around it), streamed or not, among plain requests, while `local` and `cloud`
fail at random (500, 503, 429, closed connections, context length, streams
cut or erroring, malformed JSON, hangs and stalls past short timeouts).

Afterwards every body each backend received is searched for every canary it
must not see (raw, JSON-decoded, strings joined so a split canary is whole
again, and digits alone for cards), and for the request's own nonce (a plain
word each request carries, so a leak is found whatever became of the canary).
The daemon's log is searched too. Prints
`leak test: seed=S requests=N leaks=0`; replay a run with LEAK_SEED=S."""
import json
import os
import random
import string
import time
from concurrent.futures import ThreadPoolExecutor

from harness import CLOUD_ENV, Airlock, Mock, backend, check, test

N_REQUESTS = int(os.environ.get("LEAK_REQUESTS", "2400"))
LEVELS = ["public", "internal", "confidential", "secret"]
CLEARANCE = {"local": 3, "cloud": 1, "public": 0}
KIND_LEVEL = {"email": 2, "card": 3, "key": 3, "iban": 3, "ssn": 3, "keyword": 2, "ipv4": 1, "ticket": 1}


def luhn_digit(digits):
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d)
        if i % 2 == 0:
            n *= 2
            n -= 9 if n > 9 else 0
        total += n
    return str((10 - total % 10) % 10)


def iban_check(country, bban):
    num = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    return "%02d" % (98 - num % 97)


class Canaries:
    def __init__(self, rng):
        self.rng = rng

    def token(self, n, alphabet=string.ascii_lowercase + string.digits):
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def digits(self, n):
        return "".join(self.rng.choice(string.digits) for _ in range(n))

    def email(self):
        return "%s.%s@%s.example.org" % (self.token(6, string.ascii_lowercase), self.token(8),
                                         self.token(7, string.ascii_lowercase))

    def card(self):
        prefix = self.rng.choice(["4", "51", "52", "53", "54", "55", "37", "6011"])
        length = 15 if prefix == "37" else 16
        body = prefix + self.digits(length - len(prefix) - 1)
        digits = body + luhn_digit(body)
        sep = self.rng.choice(["", " ", "-"])
        if sep and length == 16:
            return sep.join(digits[i:i + 4] for i in range(0, 16, 4))
        return digits

    def key(self):
        kind = self.rng.randrange(4)
        if kind == 0:
            return "sk-proj-" + self.token(48, string.ascii_letters + string.digits)
        if kind == 1:
            return "AKIA" + self.token(16, string.ascii_uppercase + string.digits)
        if kind == 2:
            return "ghp_" + self.token(36, string.ascii_letters + string.digits)
        return "AIza" + self.token(35, string.ascii_letters + string.digits + "_-")

    def iban(self):
        if self.rng.random() < 0.5:
            bban = "WEST" + self.digits(14)
            s = "GB" + iban_check("GB", bban) + bban
        else:
            bban = self.digits(18)
            s = "DE" + iban_check("DE", bban) + bban
        if self.rng.random() < 0.4:
            s = " ".join(s[i:i + 4] for i in range(0, len(s), 4))
        return s

    def ssn(self):
        area = self.rng.choice([a for a in range(1, 900) if a != 666])
        return "%03d-%02d-%04d" % (area, self.rng.randrange(1, 100), self.rng.randrange(1, 10000))

    def keyword(self):
        return "%s %s" % (self.rng.choice(["Nightjar", "Bluebird", "NIGHTJAR", "bluebird"]), self.token(10))

    def ipv4(self):
        return "10.%d.%d.%d" % (self.rng.randrange(256), self.rng.randrange(256), self.rng.randrange(1, 255))

    def ticket(self):
        return "TKT-%s-%s" % (self.digits(6), self.token(3, string.ascii_uppercase))

    def any(self):
        kind = self.rng.choice(["email", "card", "key", "iban", "ssn", "keyword", "ipv4", "ticket"])
        return kind, getattr(self, kind)()


def encode(s, rng, how):
    """The JSON string body (no quotes) for s, encoded `how`."""
    out = []
    for ch in s:
        esc = how == "escaped" or (how in ("partly escaped", "upper escapes") and rng.random() < 0.35)
        if esc:
            h = "%04x" % ord(ch)
            out.append("\\u" + (h.upper() if how == "upper escapes" else h))
        else:
            out.append(json.dumps(ch)[1:-1])
    body = "".join(out)
    if how == "surrogates":
        body = "\\ud83d\\udd12" + body + "\\ud83d\\ude00"
    return body


PLACES = ["content", "system", "array", "split", "tool_args", "tool_args_escaped", "tool_result", "name",
          "tool_definition", "user_field", "unknown_top", "nested_unknown", "object_key", "stop", "number",
          "embeddings", "embeddings_array", "long_history"]
ENCODINGS = ["plain", "partly escaped", "escaped", "upper escapes", "surrogates"]


def build(rng, canary, kind, place, encoding, nonce):
    """(path, raw JSON body, stream): `canary` at `place`, the nonce beside it."""
    filler = "lorem ipsum %d dolor sit amet" % rng.randrange(10**6)
    text = "%s %s %s" % (filler[:rng.randrange(len(filler))], canary, filler[rng.randrange(len(filler)):])
    stream = rng.random() < 0.4
    markers = {}

    def mark(s):
        m = "@@M%d@@" % len(markers)
        markers[m] = s
        return m

    messages = [{"role": "user", "content": nonce}]
    body = {"model": rng.choice(["llama", "gpt-4o", "m"]), "messages": messages}
    if place == "content":
        messages.append({"role": "user", "content": mark(text)})
    elif place == "system":
        messages.insert(0, {"role": "system", "content": mark(text)})
    elif place == "array":
        messages.append({"role": "user", "content": [{"type": "text", "text": "look:"},
                                                     {"type": "text", "text": mark(text)}]})
    elif place == "split":
        cut = rng.randrange(1, len(canary))
        if encoding == "surrogates":    # around the pair of parts, not between the halves
            encoding = "partly escaped"
            a_, b_ = "\U0001F512a ", " b\U0001F600"
        else:
            a_, b_ = "a ", " b"
        messages.append({"role": "user", "content": [{"type": "text", "text": mark(a_ + canary[:cut])},
                                                     {"type": "text", "text": mark(canary[cut:] + b_)}]})
    elif place in ("tool_args", "tool_args_escaped"):
        inner = encode(text, rng, "partly escaped" if place == "tool_args_escaped" else "plain")
        messages.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "lookup",
                                                          "arguments": mark('{"q": "%s"}' % inner)}}]})
    elif place == "tool_result":
        messages.append({"role": "tool", "tool_call_id": "c1", "content": mark(text)})
    elif place == "name":
        messages.append({"role": "user", "name": mark(canary), "content": "hi"})
    elif place == "tool_definition":
        body["tools"] = [{"type": "function", "function": {"name": "f", "description": mark(text),
                                                           "parameters": {"type": "object"}}}]
    elif place == "user_field":
        body["user"] = mark(canary)
    elif place == "unknown_top":
        body["x_trace_note"] = mark(text)
    elif place == "nested_unknown":
        body["metadata"] = {"trace": [1, {"note": mark(text)}]}
    elif place == "object_key":
        body["metadata"] = {mark(canary): True}
    elif place == "stop":
        body["stop"] = ["\n\n", mark(canary)]
    elif place == "number":
        if kind == "card":
            body["ref"] = "@@NUM@@"
        else:
            messages.append({"role": "user", "content": mark(text)})
    elif place in ("embeddings", "embeddings_array"):
        body = {"model": "m", "input": mark(nonce + " " + text) if place == "embeddings" else
                [nonce, "plain", mark(text)]}
        stream = False
    elif place == "long_history":
        for i in range(rng.randrange(20, 120)):
            messages.insert(0, {"role": "user" if i % 2 else "assistant", "content": "turn %d about tea" % i})
        messages.append({"role": "user", "content": mark(text)})
    if stream:
        body["stream"] = True
    if place.startswith("tool_args") and encoding == "surrogates":
        encoding = "partly escaped"     # arguments stay JSON, as every model writes them
    raw = json.dumps(body)
    raw = raw.replace('"@@NUM@@"', "".join(ch for ch in canary if ch.isdigit()))
    for m, s in markers.items():
        raw = raw.replace('"%s"' % m, '"%s"' % encode(s, rng, encoding))
    path = "/v1/embeddings" if place.startswith("embeddings") else "/v1/chat/completions"
    return path, raw, stream


LOCAL_FAULTS = [{"kind": "ok"}] * 12 + [
    {"kind": "status", "code": 500}, {"kind": "status", "code": 503}, {"kind": "rate_limit", "retry_after": 0},
    {"kind": "close"},
    {"kind": "context_length"}, {"kind": "die_mid_stream", "after": 1}, {"kind": "stream_error", "after": 0},
    {"kind": "malformed"}, {"kind": "hang"}, {"kind": "stall", "after": 1}, {"kind": "no_finish"}]
CLOUD_FAULTS = [{"kind": "ok"}] * 8 + [{"kind": "status", "code": 500}, {"kind": "rate_limit", "retry_after": 0},
                                       {"kind": "close"}, {"kind": "hang"}]


def strings_of(v, out, depth=0):
    """Every key and string in a parsed body, and those inside strings that
    hold JSON (tool arguments), decoded."""
    if isinstance(v, dict):
        for k, x in v.items():
            out.append(k)
            strings_of(x, out, depth)
    elif isinstance(v, list):
        for x in v:
            strings_of(x, out, depth)
    elif isinstance(v, str):
        out.append(v)
        if depth < 3 and v[:1] in "{[":
            try:
                strings_of(json.loads(v), out, depth + 1)
            except ValueError:
                pass
    elif isinstance(v, (int, float)) and not isinstance(v, bool):
        out.append(str(int(v)) if float(v).is_integer() else str(v))


def haystack(bodies):
    """(text to search case-insensitively, digits of each string) for bodies."""
    parts, digit_runs = [], []
    for body in bodies:
        parts.append(body)
        try:
            strs = []
            strings_of(json.loads(body), strs)
        except ValueError:
            strs = [body]
        parts.append("\n".join(strs))
        parts.append("".join(strs))             # a canary split across strings is whole here
        digit_runs.append("|".join("".join(ch for ch in s if ch.isdigit()) for s in strs))
        digit_runs.append("".join(ch for ch in "".join(strs) if ch.isdigit() or ch == "\n"))
    return "\n".join(parts).lower(), "\n".join(digit_runs)


def found_in(canary, kind, hay, digits):
    if canary.lower() in hay:
        return True
    if kind in ("card", "iban"):
        d = "".join(ch for ch in canary if ch.isdigit())
        return d in digits
    return False


@test("leak test: randomized canaries never reach a backend above their clearance", timeout=400)
def _():
    seed = int(os.environ.get("LEAK_SEED", str(int(time.time() * 1000) % 1000000)))
    rng = random.Random(seed)
    gen = Canaries(rng)
    local, cloud, public = Mock("ollama", "local"), Mock("openai", "cloud"), Mock("openai", "public")
    local.script([rng.choice(LOCAL_FAULTS) for _ in range(N_REQUESTS)])
    cloud.script([rng.choice(CLOUD_FAULTS) for _ in range(N_REQUESTS)])
    fast = "timeouts: { connect_ms: 300, first_byte_ms: 300, idle_ms: 300 }"
    yaml = "backends:\n"
    yaml += backend("local", local, "local", "ollama", "llama", fast)
    yaml += backend("cloud", cloud, "cloud", "openai", "gpt", "api_key_env: T_CLOUD_KEY, clearance: internal, " + fast)
    yaml += backend("public", public, "cloud", "openai", "gpt", "api_key_env: T_CLOUD_KEY")
    yaml += "routes:\n  - { name: default, use: [local, cloud, public] }\n"
    yaml += "fallback: { max_attempts: 3, circuit: { failures: 5, open_ms: 200 } }\n"
    yaml += ("sensitivity:\n  detectors:\n"
             "    - { builtin: email, level: confidential }\n    - { builtin: credit_card, level: secret }\n"
             "    - { builtin: secret_key, level: secret }\n    - { builtin: iban, level: secret }\n"
             "    - { builtin: us_ssn, level: secret }\n    - { builtin: ipv4, level: internal }\n"
             "    - { name: codenames, keywords: [Nightjar, Bluebird], level: confidential }\n"
             "    - { name: tickets, regex: 'TKT-[0-9]{6}-[A-Z]{3}', level: internal }\n")
    a = Airlock(yaml, env=CLOUD_ENV)
    jobs = []
    for i in range(N_REQUESTS):
        nonce = "nonce" + gen.token(12, string.ascii_lowercase)
        if rng.random() < 0.2:
            body = {"model": "m", "messages": [{"role": "user", "content": nonce},
                                               {"role": "user", "content": "plain question %d" % i}]}
            stream = rng.random() < 0.4
            if stream:
                body["stream"] = True
            jobs.append(dict(kind=None, canary=None, level=0, nonce=nonce, path="/v1/chat/completions",
                             raw=json.dumps(body), stream=stream, place="-", encoding="-"))
            continue
        kind, canary = gen.any()
        place, encoding = rng.choice(PLACES), rng.choice(ENCODINGS)
        path, raw, stream = build(rng, canary, kind, place, encoding, nonce)
        jobs.append(dict(kind=kind, canary=canary, level=KIND_LEVEL[kind], nonce=nonce, path=path, raw=raw,
                         stream=stream, place=place, encoding=encoding))

    def run(job):
        try:
            if job["stream"]:
                r = a.stream(job["path"], job["raw"].encode(), timeout=20)
            else:
                r = a.request("POST", job["path"], job["raw"], timeout=20)
            return r.status, r.headers.get("x-airlock-backend")
        except Exception as e:  # noqa: BLE001 — reported below
            return -1, repr(e)

    t0 = time.time()
    try:
        with ThreadPoolExecutor(32) as pool:
            results = list(pool.map(run, jobs))
        elapsed = time.time() - t0
        seen = {"cloud": [q["body"] for q in cloud.requests()], "public": [q["body"] for q in public.requests()]}
        n_local = local.count()
        log_text = a.stderr_text().lower()
    finally:
        a.stop()
        local.stop()
        cloud.stop()
        public.stop()

    hay = {name: haystack(bodies) for name, bodies in seen.items()}
    leaks, log_leaks, wrong_backend, bad_status, internal_to_cloud = [], [], [], [], 0
    for job, (status, by) in zip(jobs, results):
        if status == -1 or (status not in (200, 503) if job["level"] else status != 200):
            bad_status.append((status, by, job["place"], job["encoding"], job["kind"]))
        if by in CLEARANCE and CLEARANCE[by] < job["level"]:
            wrong_backend.append((by, job["kind"], job["place"], job["encoding"]))
        if not job["canary"]:
            continue
        for name, (text, digits) in hay.items():
            if CLEARANCE[name] >= job["level"]:
                if name == "cloud" and job["nonce"] in text:
                    internal_to_cloud += 1
                continue
            if job["nonce"] in text or found_in(job["canary"], job["kind"], text, digits):
                leaks.append((name, job["kind"], job["canary"], job["place"], job["encoding"]))
        if job["canary"].lower() in log_text:
            log_leaks.append((job["kind"], job["place"]))
    plain_to_cloud = sum(1 for job, (s, by) in zip(jobs, results) if not job["kind"] and by in ("cloud", "public"))
    sensitive = sum(1 for j in jobs if j["kind"])
    print("   leak test: seed=%d requests=%d leaks=%d" % (seed, len(jobs), len(leaks) + len(log_leaks)))
    print("   (%d with canaries, %d internal-level ones rightly at `cloud`; upstream requests: local %d, cloud %d, "
          "public %d; %.1fs; replay with LEAK_SEED=%d)" % (sensitive, internal_to_cloud, n_local, len(seen["cloud"]),
                                                          len(seen["public"]), elapsed, seed))
    check(N_REQUESTS >= 2000 or os.environ.get("LEAK_REQUESTS"), "fewer than 2000 requests")
    check(not leaks, "LEAKS (seed %d): %d, e.g. %r" % (seed, len(leaks), leaks[:5]))
    check(not log_leaks, "canaries in the daemon's log (seed %d): %r" % (seed, log_leaks[:5]))
    check(not wrong_backend, "answered by a backend above its clearance (seed %d): %r" % (seed, wrong_backend[:5]))
    check(not bad_status, "unexpected answers (seed %d): %d, e.g. %r" % (seed, len(bad_status), bad_status[:5]))
    # the test can see a leak: plain requests and internal-level canaries reach the clouds
    check(plain_to_cloud > 0 and len(seen["public"]) > 0, "no plain request reached the clouds")
    check(internal_to_cloud > 0, "no internal-level request reached `cloud`: the levels are not being told apart")
