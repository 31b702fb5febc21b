"""harness.py — what the integration tests share: the real daemon (Airlock),
the scriptable test upstreams (Mock), a small HTTP client that records
timing, and the test registry run.py drives. Every process started here is
killed at exit, whatever happens to the test."""
import atexit
import http.client
import itertools
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.abspath(os.environ.get("AIRLOCK_BIN", os.path.join(ROOT, "build", "airlock")))
VALGRIND = os.environ.get("VALGRIND")
SLOW = 8.0 if VALGRIND else 1.0        # time factor for start-up bounds
MOCKUP = os.path.join(ROOT, "tests", "upstream", "mockup.py")

TESTS = []
_children = []
SYNC_MARK = "logsync-"                 # request ids of Airlock.sync_logs' markers
_sync_ids = itertools.count(1)


def test(name, timeout=60):
    def register(fn):
        TESTS.append((name, fn, timeout))
        return fn
    return register


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def _kill_all():
    for p in _children:
        if p.poll() is None:
            p.kill()
            try:
                p.wait(5)
            except Exception:
                pass


atexit.register(_kill_all)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def closed_port():
    """A loopback port nothing listens on (connection refused)."""
    return free_port()


# ---- test upstreams --------------------------------------------------------

class Mock:
    def __init__(self, flavor="openai", name="mock", tls=None):
        args = [sys.executable, MOCKUP, "--flavor", flavor, "--name", name, "--port", "0"]
        if tls:
            args += ["--tls", tls[0], tls[1]]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        _children.append(self.proc)
        line = self.proc.stdout.readline()
        m = re.match(r"PORT (\d+)", line or "")
        if not m:
            raise RuntimeError("mock %s did not start" % name)
        self.port = int(m.group(1))
        self.name = name
        self.flavor = flavor
        self.tls = bool(tls)
        self.root = "http://127.0.0.1:%d" % self.port
        self.url = self.root + "/v1"

    def _call(self, method, path, body=None):
        if self.tls:
            import ssl
            c = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=10,
                                            context=ssl._create_unverified_context())
        else:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request(method, path, body=json.dumps(body) if body is not None else None)
        r = c.getresponse()
        data = r.read()
        c.close()
        return json.loads(data) if data else None

    def script(self, items):
        self._call("POST", "/_mock/script", items)

    def default(self, behaviour):
        self._call("POST", "/_mock/default", behaviour)

    def requests(self):
        return self._call("GET", "/_mock/requests")

    def count(self):
        return self._call("GET", "/_mock/stats")["requests"]

    def stats(self):
        return self._call("GET", "/_mock/stats")

    def reset(self):
        self._call("POST", "/_mock/reset")

    def drop_idle(self):
        self._call("POST", "/_mock/drop_idle")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


# ---- the daemon ------------------------------------------------------------

class Resp:
    def __init__(self, status, headers, body, elapsed):
        self.status = status
        self.headers = headers
        self.body = body
        self.elapsed = elapsed

    def json(self):
        return json.loads(self.body)


class StreamResult:
    def __init__(self):
        self.status = 0
        self.headers = {}
        self.events = []            # (seconds since start, data string)
        self.done = False
        self.error_event = None
        self.first_chunk_s = None
        self.total_s = None
        self.raw = b""

    def content(self):
        out = []
        for _, d in self.events:
            try:
                ev = json.loads(d)
            except ValueError:
                continue
            for ch in ev.get("choices") or []:
                out.append((ch.get("delta") or {}).get("content") or "")
        return "".join(out)

    def finish_reason(self):
        for _, d in self.events:
            try:
                ev = json.loads(d)
            except ValueError:
                continue
            for ch in ev.get("choices") or []:
                if ch.get("finish_reason"):
                    return ch["finish_reason"]
        return None


class Airlock:
    def __init__(self, yaml_text, env=None, workers=2, nofile=None, unread_stderr=False):
        """unread_stderr: nobody reads the daemon's stderr until read_stderr()
        (the listen port is then chosen here, not read from the log)."""
        fd, self.path = tempfile.mkstemp(prefix="airlock-test-", suffix=".yaml")
        fixed_port = free_port() if unread_stderr else None
        if "listen:" not in yaml_text:
            yaml_text = "listen: 127.0.0.1:%d\n" % (fixed_port or 0) + yaml_text
        if "workers:" not in yaml_text:
            yaml_text = "workers: %d\n" % workers + yaml_text
        with os.fdopen(fd, "w") as f:
            f.write(yaml_text)
        full_env = dict(os.environ)
        full_env.update(env or {})
        args = [BIN, "-c", self.path]
        if VALGRIND:
            args = ["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite",
                    "--error-exitcode=99", "--quiet"] + args
        limit = None
        if nofile:          # the daemon's open-file limit, soft and hard
            limit = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=full_env,
                                     preexec_fn=limit)
        _children.append(self.proc)
        self.lines = []
        self._marks_seen = set()
        self._reader = None
        self._port_seen = threading.Event()
        self.port = fixed_port
        if fixed_port:
            self._port_seen.set()
        else:
            self.read_stderr()
        if not self._port_seen.wait(15 * SLOW):
            self.proc.kill()
            raise RuntimeError("airlock did not start:\n" + "\n".join(self.lines[-20:]))
        self.base = "http://127.0.0.1:%d" % self.port
        deadline = time.time() + 10 * SLOW
        while time.time() < deadline:
            try:
                if self.request("GET", "/healthz", timeout=2).status == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("airlock /healthz did not answer")

    def read_stderr(self):
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if SYNC_MARK not in line:
                self.lines.append(line)
            else:
                self._marks_seen.add(line)
            m = re.search(r"listening on [^ ]*:(\d+) with", line)
            if m:
                self.port = int(m.group(1))
                self._port_seen.set()

    def sync_logs(self):
        """Waits until what the daemon has logged so far has been read. Its log
        writer gathers lines for up to 10 ms, so a request's line can trail the
        answer: a /healthz with a marker id is logged after it."""
        if self._reader is None:
            return
        if self.proc.poll() is not None:
            self._reader.join(5)                        # exited: read to EOF
            return
        mark = "%s%d" % (SYNC_MARK, next(_sync_ids))
        try:
            self.request("GET", "/healthz", headers={"x-request-id": mark}, timeout=5 * SLOW)
        except OSError:
            time.sleep(0.2 * SLOW)                      # not accepting (draining): a fixed wait
            return
        deadline = time.time() + 5 * SLOW
        while time.time() < deadline and not any(mark in l for l in list(self._marks_seen)):
            time.sleep(0.005)

    def log_lines(self):
        self.sync_logs()
        out = []
        for line in list(self.lines):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def request_logs(self):
        return [l for l in self.log_lines() if l.get("msg") == "request"]

    def stderr_text(self):
        self.sync_logs()
        return "\n".join(self.lines)

    def request(self, method, path, body=None, headers=None, timeout=30):
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        h = {"Content-Type": "application/json"} if body is not None else {}
        h.update(headers or {})
        t0 = time.time()
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, data, time.time() - t0)
        finally:
            c.close()

    def chat(self, content="hello", model="m", stream=False, headers=None, timeout=30, **extra):
        body = {"model": model, "messages": [{"role": "user", "content": content}]}
        body.update(extra)
        if stream:
            body["stream"] = True
            return self.stream("/v1/chat/completions", body, headers=headers, timeout=timeout)
        return self.request("POST", "/v1/chat/completions", body, headers=headers, timeout=timeout)

    def stream(self, path, body, headers=None, timeout=30, stop_after=None):
        """Reads an SSE answer event by event with arrival times. stop_after=N
        closes the connection after N data events (a client that leaves)."""
        res = StreamResult()
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        t0 = time.time()
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request("POST", path, body=data, headers=h)
            r = c.getresponse()
            res.status = r.status
            res.headers = {k.lower(): v for k, v in r.getheaders()}
            if r.status != 200 or "event-stream" not in res.headers.get("content-type", ""):
                res.raw = r.read()
                res.total_s = time.time() - t0
                return res
            while True:
                line = r.readline()
                if not line:
                    break
                res.raw += line
                line = line.decode("utf-8", "replace").rstrip("\r\n")
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                t = time.time() - t0
                if res.first_chunk_s is None:
                    res.first_chunk_s = t
                if payload == "[DONE]":
                    res.done = True
                    continue
                res.events.append((t, payload))
                try:
                    ev = json.loads(payload)
                    if isinstance(ev, dict) and "error" in ev:
                        res.error_event = ev
                except ValueError:
                    pass
                if stop_after is not None and len(res.events) >= stop_after:
                    c.sock.shutdown(socket.SHUT_RDWR)
                    break
        except (http.client.IncompleteRead, ConnectionError, socket.timeout):
            pass
        finally:
            res.total_s = time.time() - t0
            c.close()
        return res

    def signal(self, sig):
        self.proc.send_signal(sig)

    def reload(self, outcome="reloaded"):
        """SIGHUP, then up to 5 s for one more log line that says `outcome`
        ("reloaded", or "rejected" for a config that fails its check)."""
        def count():
            return sum(outcome in l.get("msg", "") for l in self.log_lines())
        before = count()
        self.signal(signal.SIGHUP)
        deadline = time.time() + 5 * SLOW
        while time.time() < deadline and count() <= before:
            time.sleep(0.05)

    def wait(self, timeout):
        return self.proc.wait(timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15 * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        time.sleep(0.05)
        os.unlink(self.path) if os.path.exists(self.path) else None
        text = self.stderr_text()
        for bad in ("AddressSanitizer", "runtime error:", "LeakSanitizer", "definitely lost"):
            check(bad not in text, "sanitizer/valgrind report in airlock's stderr:\n" + text[-3000:])
        check(self.proc.returncode == 0, "airlock exited %s" % self.proc.returncode)
        return self.proc.returncode


def backend(name, mock_or_url, zone="local", provider="openai", model="m", extra=""):
    """One backend line of YAML; health probes off unless `extra` says so."""
    url = mock_or_url.url if isinstance(mock_or_url, Mock) else mock_or_url
    if "health" not in extra:
        extra = (extra + ", " if extra else "") + "health: { enabled: false }"
    return '  - { name: %s, provider: %s, zone: %s, url: "%s", model: %s, %s }\n' % (
        name, provider, zone, url, model, extra)


def two_backends(local, cloud, local_extra="", cloud_extra="", fallback="", routes=None,
                 local_provider="openai"):
    y = "backends:\n"
    y += backend("local", local, "local", local_provider, "llama", local_extra)
    y += backend("cloud", cloud, "cloud", "openai", "gpt", "api_key_env: T_CLOUD_KEY, clearance: internal" +
                 (", " + cloud_extra if cloud_extra else ""))
    y += routes or "routes:\n  - { name: default, use: [local, cloud] }\n"
    y += fallback
    return y


CLOUD_ENV = {"T_CLOUD_KEY": "sk-cloud-test-key"}


# ---- the official SDKs ---------------------------------------------------

SDK_DIR = os.path.join(ROOT, "tests", "sdk")


def sdk(sdk_name, base_url, op, params=None, api_key="none", headers=None, timeout=30):
    """Runs one call through the official `openai` or `@anthropic-ai/sdk`
    npm client (tests/sdk/call.mjs; installed by scripts/deps.sh test) and
    returns its JSON verdict: {"ok": True, "result"/"chunks": ...} or
    {"ok": False, "error_class": "AuthenticationError", "status": 401, ...}.
    base_url: airlock.base + "/v1" for openai, airlock.base for anthropic."""
    job = {"sdk": sdk_name, "baseURL": base_url, "apiKey": api_key, "op": op,
           "params": params or {}, "headers": headers or {}, "timeoutMs": int(timeout * 1000)}
    p = subprocess.run(["node", os.path.join(SDK_DIR, "call.mjs")], input=json.dumps(job),
                       capture_output=True, text=True, timeout=timeout + 15, cwd=SDK_DIR)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    check(lines, "sdk call printed nothing (exit %s): %s" % (p.returncode, p.stderr[-2000:]))
    return json.loads(lines[-1])
