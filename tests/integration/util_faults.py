"""util_faults.py — fault makers the resilience, policy and leak suites need
beyond tests/upstream/mockup.py:

  RawUpstream    answers each API request with scripted raw bytes (any
                 framing, any pause, a close at any byte), for faults a
                 well-behaved server never makes: CRLF or byte-by-byte SSE,
                 [DONE] without finish_reason, an HTML page in a 200 ...
  BlackHole      a listener whose accept queue is full: connects are never
                 answered (SYNs dropped), the only way to see connect_ms fire
                 on loopback
  mock_at(port)  a mockup.py upstream on a fixed port, to kill a backend and
                 bring it back where the daemon expects it
  scanned_text() the classifier's scanned text as docs/policy.md defines it,
                 to check explain's byte offsets
"""
import json
import socket
import struct
import subprocess
import sys
import threading
import time

from harness import MOCKUP, Mock, _children


# ---- raw scripted upstream -------------------------------------------------

def http_head(status=200, ctype="application/json", length=None, extra=None, reason="OK"):
    lines = ["HTTP/1.1 %d %s" % (status, reason), "Content-Type: " + ctype]
    if length is not None:
        lines.append("Content-Length: %d" % length)
    elif status != 204:
        lines.append("Transfer-Encoding: chunked")
    lines += ["%s: %s" % kv for kv in (extra or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunked(data):
    if isinstance(data, str):
        data = data.encode()
    return b"%x\r\n%s\r\n" % (len(data), data)


END = b"0\r\n\r\n"


def sse_chunk(content=None, finish=None, role=False, model="raw"):
    delta = {}
    if role:
        delta["role"] = "assistant"
    if content is not None:
        delta["content"] = content
    return {"id": "chatcmpl-raw", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def sse(obj, eol="\n", space=True):
    data = obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"))
    return ("data:" + (" " if space else "") + data + eol + eol).encode()


def stream_response(events, eol="\n", space=True, end=True, split=None):
    """[head, chunk, chunk, ..., END] for an SSE answer of `events`
    (dicts or raw data strings); split=N sends the body N bytes a chunk."""
    body = b"".join(sse(e, eol, space) for e in events)
    out = [http_head(200, "text/event-stream")]
    if split:
        out += [chunked(body[i:i + split]) for i in range(0, len(body), split)]
    else:
        out.append(chunked(body))
    if end:
        out.append(END)
    return out


def good_events(words=("hello", " from", " raw")):
    return [sse_chunk("", role=True)] + [sse_chunk(w) for w in words] + [sse_chunk(None, "stop")]


def json_response(obj, status=200, extra=None):
    data = obj if isinstance(obj, (bytes, str)) else json.dumps(obj)
    data = data.encode() if isinstance(data, str) else data
    return [http_head(status, "application/json", len(data), extra) + data]


def completion(content="hello from raw"):
    return {"id": "chatcmpl-raw", "object": "chat.completion", "created": 1, "model": "raw",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}}


class RawUpstream:
    """Each API request takes the next scripted answer: a list of items,
    bytes (sent as they are), ("sleep", seconds), ("hold",) (keep the
    connection open, send nothing more, until the peer leaves), ("close",)
    (drop the connection) or ("reset",) (drop it with an RST). After the last item the connection is closed
    unless the answer's framing lets it be reused (keep=True)."""

    def __init__(self, default=None):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.root = "http://127.0.0.1:%d" % self.port
        self.url = self.root + "/v1"
        self.lock = threading.Lock()
        self.script_items = []
        self.default_items = default or json_response(completion())
        self.records = []
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def script(self, answers):
        with self.lock:
            self.script_items.extend(answers)

    def default(self, answer):
        with self.lock:
            self.default_items = answer

    def count(self):
        with self.lock:
            return len(self.records)

    def requests(self):
        with self.lock:
            return list(self.records)

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _read_request(f):
        line = f.readline()
        if not line:
            return None
        parts = line.decode("latin-1").split()
        headers = {}
        while True:
            h = f.readline()
            if h in (b"\r\n", b"\n", b""):
                break
            k, _, v = h.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        body = f.read(int(headers.get("content-length", "0") or 0))
        return parts[0], parts[1] if len(parts) > 1 else "/", headers, body

    def _serve(self, c):
        f = c.makefile("rb")
        try:
            while True:
                req = self._read_request(f)
                if req is None:
                    return
                method, path, headers, body = req
                if method == "GET":     # health probes: always fine, never recorded
                    c.sendall(json_response({"object": "list", "data": []})[0])
                    continue
                with self.lock:
                    self.records.append({"method": method, "path": path, "headers": headers,
                                         "body": body.decode("utf-8", "replace"), "t": time.time()})
                    items = self.script_items.pop(0) if self.script_items else self.default_items
                keep = False
                for it in items:
                    if isinstance(it, (bytes, bytearray)):
                        c.sendall(it)
                    elif it[0] == "sleep":
                        time.sleep(it[1])
                    elif it[0] == "hold":
                        c.settimeout(it[1] if len(it) > 1 else 60)
                        try:
                            while c.recv(1024):
                                pass
                        except OSError:
                            pass
                        return
                    elif it[0] == "close":
                        return
                    elif it[0] == "reset":      # an RST, not a FIN
                        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        c.close()
                        return
                    elif it[0] == "keep":
                        keep = True
                if not keep:
                    return
        except OSError:
            pass
        finally:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def stop(self):
        self.stopping = True
        self.sock.close()


# ---- a listener that never completes a connect ---------------------------

class BlackHole:
    """A port whose accept queue is full and never drained: the kernel drops
    further SYNs, so a connect neither succeeds nor is refused."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.url = "http://127.0.0.1:%d/v1" % self.port
        self.fillers = []
        for _ in range(8):          # fill the queue (backlog 0 admits one or two)
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            self.fillers.append(s)
        time.sleep(0.05)

    def stop(self):
        for s in self.fillers:
            s.close()
        self.sock.close()


# ---- a listener that accepts and then says nothing (or one fixed thing) ---

class Silent:
    """Accepts every connection; with greet=None it never sends a byte (a TLS
    client waits for its ServerHello forever), else it sends `greet` at once
    and closes (a plain HTTP server answering a TLS ClientHello)."""

    def __init__(self, greet=None):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.greet = greet
        self.accepted = 0
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            if self.greet is not None:
                try:
                    c.recv(4096)
                    c.sendall(self.greet)
                except OSError:
                    pass
                c.close()
            else:
                self.conns.append(c)

    def stop(self):
        for c in self.conns:
            c.close()
        self.sock.close()


# ---- a mockup.py upstream on a chosen port -------------------------------

def mock_at(port, flavor="openai", name="mock"):
    """Like harness.Mock, but listening on `port` (to restart a killed one)."""
    m = Mock.__new__(Mock)
    deadline = time.time() + 5
    while True:
        proc = subprocess.Popen([sys.executable, MOCKUP, "--flavor", flavor, "--name", name, "--port", str(port)],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        _children.append(proc)
        line = proc.stdout.readline()
        if line.startswith("PORT"):
            break
        proc.wait(5)
        if time.time() > deadline:
            raise RuntimeError("mock could not bind port %d" % port)
        time.sleep(0.1)         # the old socket may linger a moment
    m.proc, m.port, m.name, m.flavor, m.tls = proc, port, name, flavor, False
    m.root = "http://127.0.0.1:%d" % port
    m.url = m.root + "/v1"
    return m


# ---- the classifier's scanned text (docs/policy.md, "explain") ------------

def scanned_text(body):
    """Depth-first, document order: every key and every string value, each
    followed by a newline; after a content array with two or more text parts,
    those texts joined. Enough for bodies without nested escaped JSON."""
    out = []

    def walk(v):
        if isinstance(v, dict):
            for k, x in v.items():
                out.append(k + "\n")
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
            texts = [x.get("text") for x in v if isinstance(x, dict) and isinstance(x.get("text"), str)]
            if len(texts) >= 2:
                out.append("".join(texts) + "\n")
        elif isinstance(v, str):
            out.append(v + "\n")
        elif isinstance(v, int) and not isinstance(v, bool) and len(str(abs(v))) >= 9:
            out.append(str(v) + "\n")
    walk(body)
    return "".join(out).encode()
