#!/usr/bin/env python3
"""mockup.py — a scriptable test upstream that speaks like OpenAI, Ollama,
llama.cpp or vLLM (their OpenAI-compatible endpoints, error bodies, health
routes and SSE framing), for airlock's integration tests and `make demo`.

    python3 tests/upstream/mockup.py --flavor ollama --name local --port 0 [--tls CERT KEY]

prints `PORT <n>` once listening. Control endpoints (never recorded):
    POST /_mock/script   JSON list of behaviours, consumed one per API request
    POST /_mock/default  one behaviour, used when the script is empty
    GET  /_mock/requests every API request received: method, path, headers, body, t
    POST /_mock/reset    clears script, default (back to ok) and records
    POST /_mock/drop_idle closes every keep-alive connection between requests
    GET  /_mock/stats    {"requests", "open_connections", "connections" (that carried API requests),
                          "aborted_streams", "stream_chunks", "streams_done"}

Behaviours ({"kind": K, ...}): ok (chunks, chunk_delay_ms, content), hang,
hang_body, delay (ms), status (code, body, retry_after), rate_limit
(retry_after), context_length, die_mid_stream (after), stall (after),
stream_error (after), no_done (hold_ms), no_finish, malformed, slow_chunks
(chunk_delay_ms), close, loading. Stdlib only; one asyncio loop serves
thousands of connections.
"""
import argparse
import asyncio
import json
import ssl
import sys
import time

FLAVOR = "openai"
NAME = "mock"
STATE = {"script": [], "default": {"kind": "ok"}, "records": [], "open": 0, "aborted": 0, "idle": set(),
         "stream_chunks": 0, "streams_done": 0, "connections": 0}


def now():
    return int(time.time())


# ---- bodies in each server's own shape -----------------------------------

def error_body(code, message, etype=None, ecode=None):
    if FLAVOR == "vllm":
        return {"object": "error", "message": message, "type": etype or "BadRequestError",
                "param": None, "code": code}
    if FLAVOR == "llamacpp":
        return {"error": {"code": code, "message": message, "type": etype or "server_error"}}
    if FLAVOR == "ollama":
        return {"error": {"message": message, "type": etype or "api_error", "param": None, "code": ecode}}
    return {"error": {"message": message, "type": etype or "server_error", "param": None, "code": ecode}}


def context_length_error():
    if FLAVOR == "vllm":
        return 400, error_body(400, "This model's maximum context length is 4096 tokens. However, you "
                               "requested 5120 tokens (5000 in the messages, 120 in the completion). "
                               "Please reduce the length of the messages or completion.")
    if FLAVOR == "llamacpp":
        return 400, error_body(400, "the request exceeds the available context size, try increasing it",
                               "exceed_context_size_error")
    if FLAVOR == "ollama":
        return 400, error_body(400, "input length exceeds maximum context length")
    return 400, error_body(400, "This model's maximum context length is 8192 tokens. However, your "
                           "messages resulted in 9001 tokens. Please reduce the length of the messages.",
                           "invalid_request_error", "context_length_exceeded")


def completion(model, content):
    body = {"id": "chatcmpl-%s-%d" % (NAME, time.time_ns() % 10**9), "object": "chat.completion",
            "created": now(), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}}
    if FLAVOR == "ollama":
        body["system_fingerprint"] = "fp_ollama"
    if FLAVOR == "llamacpp":
        body["timings"] = {"prompt_n": 12, "predicted_n": 5}
    return body


def chunk(model, delta, finish=None, usage=None):
    c = {"id": "chatcmpl-%s" % NAME, "object": "chat.completion.chunk", "created": now(), "model": model,
         "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage:
        c["usage"] = usage
    if FLAVOR == "ollama":
        c["system_fingerprint"] = "fp_ollama"
    return "data: " + json.dumps(c, separators=(",", ":")) + "\n\n"


def embeddings(model, inp):
    items = inp if isinstance(inp, list) else [inp]
    return {"object": "list", "model": model, "usage": {"prompt_tokens": 4, "total_tokens": 4},
            "data": [{"object": "embedding", "index": i, "embedding": [0.1, -0.2, 0.3, 0.05]}
                     for i in range(len(items))]}


# ---- HTTP -----------------------------------------------------------------

REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


def head(status, ctype, length=None, extra=None):
    lines = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Status")), "Content-Type: " + ctype,
             "Server: mockup-" + FLAVOR]
    lines.append("Content-Length: %d" % length if length is not None else "Transfer-Encoding: chunked")
    for k, v in (extra or {}).items():
        lines.append("%s: %s" % (k, v))
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def send_json(w, status, obj, extra=None, raw=None):
    data = raw if raw is not None else json.dumps(obj).encode()
    w.write(head(status, "application/json", len(data), extra) + data)
    await w.drain()


def frame(s):
    d = s.encode()
    return b"%x\r\n%s\r\n" % (len(d), d)


async def read_request(r):
    line = await r.readline()
    if not line:
        return None
    parts = line.decode("latin-1").split()
    if len(parts) < 2:
        return None
    headers = {}
    while True:
        h = await r.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    body = b""
    if "content-length" in headers:
        body = await r.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await r.readline()).split(b";")[0], 16)
            if size == 0:
                await r.readline()
                break
            body += await r.readexactly(size)
            await r.readline()
    return parts[0], parts[1], headers, body


async def wait_or_eof(r, seconds):
    """Sleeps; True if the client closed the connection meanwhile."""
    try:
        data = await asyncio.wait_for(r.read(1), seconds)
        return data == b""
    except asyncio.TimeoutError:
        return False


async def control(w, method, path, body):
    if path == "/_mock/script" and method == "POST":
        STATE["script"].extend(json.loads(body or b"[]"))
    elif path == "/_mock/default" and method == "POST":
        STATE["default"] = json.loads(body or b"{}") or {"kind": "ok"}
    elif path == "/_mock/reset" and method == "POST":
        STATE.update(script=[], default={"kind": "ok"}, records=[], aborted=0, stream_chunks=0, streams_done=0)
    elif path == "/_mock/drop_idle" and method == "POST":
        for other in list(STATE["idle"]):   # keep-alive connections between requests
            if other is not w:
                other.close()
    elif path == "/_mock/requests":
        return await send_json(w, 200, STATE["records"])
    elif path == "/_mock/stats":
        return await send_json(w, 200, {"requests": len(STATE["records"]), "open_connections": STATE["open"],
                                        "aborted_streams": STATE["aborted"], "stream_chunks": STATE["stream_chunks"],
                                        "streams_done": STATE["streams_done"], "connections": STATE["connections"]})
    else:
        return await send_json(w, 404, {"error": "unknown control path"})
    await send_json(w, 200, {"ok": True})


def next_behaviour():
    return STATE["script"].pop(0) if STATE["script"] else dict(STATE["default"])


async def health(w, path):
    b = STATE["default"]
    if FLAVOR == "llamacpp" and path == "/health":
        if b.get("kind") == "loading":
            return await send_json(w, 503, {"error": {"code": 503, "message": "Loading model",
                                                      "type": "unavailable_error"}})
        return await send_json(w, 200, {"status": "ok"})
    if b.get("kind") in ("status", "loading") and b.get("code", 503) >= 500:
        return await send_json(w, b.get("code", 503), error_body(503, "unavailable"))
    if path == "/api/tags":
        return await send_json(w, 200, {"models": [{"name": "llama3.1:8b", "model": "llama3.1:8b", "size": 1}]})
    if path == "/health":
        return await send_json(w, 200, {})
    return await send_json(w, 200, {"object": "list", "data": [{"id": "mock-model", "object": "model",
                                                                 "created": now(), "owned_by": NAME}]})


async def stream(r, w, model, b, req):
    """An SSE answer; returns False when the connection must be dropped."""
    kind = b.get("kind", "ok")
    n = int(b.get("chunks", 5))
    delay = b.get("chunk_delay_ms", 0) / 1000.0
    after = int(b.get("after", 2))
    w.write(head(200, "text/event-stream", None, {"Cache-Control": "no-cache"}))
    w.write(frame(chunk(model, {"role": "assistant", "content": ""})))
    await w.drain()
    if kind == "stream_error" and after == 0:
        w.write(frame("data: " + json.dumps({"error": {"message": "model crashed", "type": "server_error",
                                                       "code": 500}}) + "\n\n"))
        w.write(b"0\r\n\r\n")
        await w.drain()
        return True
    words = (b.get("content") or "hello from %s" % NAME).split(" ")
    for i in range(n):
        if kind in ("die_mid_stream", "stall", "stream_error") and i == after:
            if kind == "die_mid_stream":
                w.transport.abort()
                return False
            if kind == "stall":
                await wait_or_eof(r, 3600)
                return False
            w.write(frame("data: " + json.dumps({"error": {"message": "model crashed", "type": "server_error",
                                                           "code": 500}}) + "\n\n"))
            w.write(b"0\r\n\r\n")
            await w.drain()
            return True
        if kind == "malformed" and i == 1:
            w.write(frame("data: {not json\n\n"))
        w.write(frame(chunk(model, {"content": words[i % len(words)] + " "})))
        STATE["stream_chunks"] += 1     # handed to the transport: drain() waits while the peer reads nothing
        try:
            await w.drain()
        except ConnectionError:
            STATE["aborted"] += 1
            return False
        if delay and await wait_or_eof(r, delay):
            STATE["aborted"] += 1
            return False
    if kind == "no_finish":
        w.write(b"0\r\n\r\n")
        await w.drain()
        return True
    w.write(frame(chunk(model, {}, "stop")))
    if (req.get("stream_options") or {}).get("include_usage"):
        w.write(frame(chunk(model, None, usage={"prompt_tokens": 12, "completion_tokens": n,
                                                "total_tokens": 12 + n})))
    if kind == "no_done":
        await w.drain()
        if b.get("hold_ms"):
            await wait_or_eof(r, b["hold_ms"] / 1000.0)
            return False
        w.write(b"0\r\n\r\n")
        await w.drain()
        return True
    w.write(frame("data: [DONE]\n\n") + b"0\r\n\r\n")
    try:
        await w.drain()
    except ConnectionError:
        STATE["aborted"] += 1
        return False
    STATE["streams_done"] += 1
    return True


async def api(r, w, method, path, headers, body):
    """Answers one recorded API request; returns False to drop the connection."""
    b = next_behaviour()
    kind = b.get("kind", "ok")
    try:
        req = json.loads(body) if body else {}
    except ValueError:
        req = {}
    if not isinstance(req, dict):
        req = {}
    model = req.get("model") or "mock-model"
    if kind == "close":
        w.transport.abort()
        return False
    if kind == "hang":
        await wait_or_eof(r, 3600)
        return False
    if kind == "hang_body":
        w.write(head(200, "application/json", 100))
        await w.drain()
        await wait_or_eof(r, 3600)
        return False
    if kind == "delay" and await wait_or_eof(r, b.get("ms", 1000) / 1000.0):
        return False
    if kind == "status":
        code = int(b.get("code", 500))
        extra = {"Retry-After": str(b["retry_after"])} if "retry_after" in b else None
        raw = b["body"].encode() if isinstance(b.get("body"), str) else None
        await send_json(w, code, b.get("body") if isinstance(b.get("body"), dict)
                        else error_body(code, "mock %d" % code, "invalid_request_error" if code < 500 else None),
                        extra, raw)
        return True
    if kind == "rate_limit":
        extra = {"Retry-After": str(b["retry_after"])} if "retry_after" in b else None
        await send_json(w, 429, error_body(429, "Rate limit reached for requests", "requests",
                                           "rate_limit_exceeded"), extra)
        return True
    if kind == "loading":
        await send_json(w, 503, error_body(503, "Loading model", "unavailable_error"))
        return True
    if kind == "context_length":
        code, eb = context_length_error()
        await send_json(w, code, eb)
        return True
    if path.endswith("/embeddings"):
        await send_json(w, 200, embeddings(model, req.get("input", "")))
        return True
    if not path.endswith("/chat/completions"):
        await send_json(w, 404, error_body(404, "not found"))
        return True
    if req.get("stream"):
        return await stream(r, w, model, b, req)
    if kind == "malformed":
        await send_json(w, 200, None, raw=b'{"id": "x", "choices": [{"message": {"content": "trunc')
        return True
    if kind in ("slow_chunks", "die_mid_stream") and not req.get("stream"):
        data = json.dumps(completion(model, b.get("content") or "hello from " + NAME)).encode()
        w.write(head(200, "application/json", len(data)) + data[:len(data) // 2])
        await w.drain()
        if kind == "die_mid_stream":
            w.transport.abort()
            return False
        await asyncio.sleep(b.get("chunk_delay_ms", 500) / 1000.0)
        w.write(data[len(data) // 2:])
        await w.drain()
        return True
    await send_json(w, 200, completion(model, b.get("content") or "hello from " + NAME))
    return True


async def serve(r, w):
    STATE["open"] += 1
    api_seen = False
    try:
        while True:
            STATE["idle"].add(w)
            req = await read_request(r)
            STATE["idle"].discard(w)
            if req is None:
                break
            method, path, headers, body = req
            path, _, query = path.partition("?")
            if path.startswith("/_mock/"):
                await control(w, method, path, body)
                continue
            if method == "GET" and path in ("/v1/models", "/models", "/api/tags", "/health"):
                await health(w, path)
                continue
            if not api_seen:            # connections that carried API requests
                api_seen = True
                STATE["connections"] += 1
            STATE["records"].append({"method": method, "path": path, "query": query, "headers": headers,
                                     "body": body.decode("utf-8", "surrogateescape")
                                     .encode("utf-8", "backslashreplace").decode(), "t": time.time()})
            if not await api(r, w, method, path, headers, body):
                break
            if headers.get("connection", "").lower() == "close":
                break
    except (ConnectionError, asyncio.IncompleteReadError, ValueError):
        pass
    finally:
        STATE["idle"].discard(w)
        STATE["open"] -= 1
        try:
            w.close()
        except Exception:
            pass


async def main():
    global FLAVOR, NAME
    ap = argparse.ArgumentParser()
    ap.add_argument("--flavor", default="openai", choices=["openai", "ollama", "llamacpp", "vllm"])
    ap.add_argument("--name", default="mock")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    a = ap.parse_args()
    FLAVOR, NAME = a.flavor, a.name
    ctx = None
    if a.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls[0], a.tls[1])
    srv = await asyncio.start_server(serve, "127.0.0.1", a.port, backlog=4096, ssl=ctx, limit=1 << 24)
    print("PORT %d" % srv.sockets[0].getsockname()[1], flush=True)
    async with srv:
        await srv.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
