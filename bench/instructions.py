#!/usr/bin/env python3
"""instructions.py — user-space instructions per proxied request, counted by
callgrind: airlock and a plain nginx reverse proxy, each in front of the same
nginx upstream, one keep-alive connection, one request at a time. Unlike
wall-clock figures on a shared VM, the counts repeat to within a percent,
so a change's effect on the work per request can be seen. Each proxy is run
twice (FEW and MANY requests) and the difference is divided by MANY - FEW,
which takes start-up and shutdown out.

    python3 bench/instructions.py [AIRLOCK_BINARY [FLOOR_BINARY]]   (needs valgrind, nginx)
Prints a markdown table of instructions per request by library. FLOOR_BINARY
is bench/floor_proxy.c built: the required libraries alone, as a proxy; its
column is what airlock's libraries cost before any of airlock's own work.
"""
import collections
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

FEW, MANY = 200, 1200
BODY = (b'{"model":"bench-model","messages":[{"role":"system","content":"You are a helpful '
        b'assistant."},{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":32}')
COMPLETION = ('{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"bench-model",'
              '"choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?"},'
              '"finish_reason":"stop"}],"usage":{"prompt_tokens":24,"completion_tokens":9,"total_tokens":33}}')


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def nginx_conf(tmp, name, body):
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    temps = " ".join("%s_temp_path %s/%s;" % (k, d, k) for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write("worker_processes 1;\npid %s/nginx.pid;\nerror_log %s/error.log warn;\n"
                "events { worker_connections 1024; }\nhttp {\n  %s\n  keepalive_requests 1000000;\n%s\n}\n"
                % (d, d, temps, body))
    return d, path


def wait_ok(port, deadline=30.0):
    end = time.time() + deadline
    while time.time() < end:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("POST", "/v1/chat/completions", BODY, {"Content-Type": "application/json"})
            if c.getresponse().status == 200:
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def load(port, n):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(n):
        c.request("POST", "/v1/chat/completions", BODY, {"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        if r.status != 200:
            raise SystemExit("instructions: HTTP %d from port %d" % (r.status, port))
    c.close()


def callgrind(cmd, port, n, out, stop_signal):
    """Runs cmd under callgrind, sends n requests (after one to wait for it), stops it."""
    p = subprocess.Popen(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out] + cmd,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_ok(port):
            raise SystemExit("instructions: %s did not answer on port %d" % (cmd[0], port))
        load(port, n)
    finally:
        # again every second: under valgrind a signal that lands while the
        # process sleeps in epoll_wait can wait there until the next one
        for _ in range(30):
            p.send_signal(stop_signal)
            try:
                p.wait(timeout=1)
                break
            except subprocess.TimeoutExpired:
                pass
        else:
            p.kill()
            p.wait()


def by_library(path):
    """Instructions by shared object, with libc's allocator and memset apart."""
    text = subprocess.run(["callgrind_annotate", "--threshold=100", path],
                          capture_output=True, text=True, check=True).stdout
    counts = collections.Counter()
    for line in text.splitlines():
        m = re.match(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S.*?) \[(.+)\]\s*$", line)
        if not m:
            continue
        n, fn = int(m.group(1).replace(",", "")), m.group(2)
        obj = re.sub(r"\.so[.\d]*$", "", os.path.basename(m.group(3)))
        if obj == "libc":
            if "memset" in fn:
                obj = "libc: memset"
            elif re.search(r"malloc|free|calloc|realloc|arena", fn):
                obj = "libc: malloc/free"
            else:
                obj = "libc: other"
        counts[obj] += n
    return counts


def per_request(tmp, name, cmd, port, stop_signal):
    few, many = os.path.join(tmp, name + ".few.cg"), os.path.join(tmp, name + ".many.cg")
    callgrind(cmd, port, FEW, few, stop_signal)
    callgrind(cmd, port, MANY, many, stop_signal)
    a, b = by_library(few), by_library(many)
    return {k: (b[k] - a[k]) / (MANY - FEW) for k in set(a) | set(b)}


def main():
    airlock = sys.argv[1] if len(sys.argv) > 1 else "build/airlock"
    floor = sys.argv[2] if len(sys.argv) > 2 else None
    for tool in ("valgrind", "callgrind_annotate", "nginx"):
        if not shutil.which(tool):
            raise SystemExit("instructions: %s not found" % tool)
    tmp = tempfile.mkdtemp(prefix="airlock-ir.")
    up, px, al, fl = free_ports(4)
    upstream = None
    try:
        _, up_conf = nginx_conf(tmp, "up", "  access_log off;\n  server { listen 127.0.0.1:%d;\n"
                                "    location = /v1/chat/completions { default_type application/json; return 200 '%s'; } }"
                                % (up, COMPLETION))
        upstream = subprocess.Popen(["nginx", "-c", up_conf, "-g", "daemon off;"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_ok(up):
            raise SystemExit("instructions: the upstream did not start")
        pxdir, px_conf = nginx_conf(tmp, "proxy", "  access_log %s/access.log;\n"
                                    "  upstream fast { server 127.0.0.1:%d; keepalive 64; }\n"
                                    "  server { listen 127.0.0.1:%d; location / { proxy_pass http://fast;"
                                    " proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_buffering off; } }"
                                    % (os.path.join(tmp, "proxy"), up, px))
        al_conf = os.path.join(tmp, "airlock.yaml")
        with open(al_conf, "w") as f:
            f.write("listen: 127.0.0.1:%d\nworkers: 1\nbackends:\n"
                    "  - { name: fast, provider: openai, zone: local, url: \"http://127.0.0.1:%d/v1\", "
                    "model: bench-model, health: { enabled: false } }\n"
                    "routes:\n  - { name: default, use: [fast] }\nsensitivity: { detectors: [] }\n" % (al, up))
        rows = {
            "nginx": per_request(tmp, "nginx", ["nginx", "-c", px_conf, "-g", "daemon off; master_process off;"],
                                 px, signal.SIGQUIT),
            "airlock": per_request(tmp, "airlock", [airlock, "-c", al_conf], al, signal.SIGTERM),
        }
        if floor:
            rows["floor"] = per_request(tmp, "floor", [floor, str(fl), "http://127.0.0.1:%d/v1/chat/completions" % up,
                                                       "1"], fl, signal.SIGTERM)
    finally:
        if upstream:
            upstream.terminate()
            upstream.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    libs = sorted({k for r in rows.values() for k, v in r.items() if v >= 500},
                  key=lambda k: -max(r.get(k, 0) for r in rows.values()))
    names = [n for n in ("nginx", "floor", "airlock") if n in rows]
    heads = {"nginx": "nginx", "floor": "MHD + libcurl alone", "airlock": "airlock"}
    print("| user-space instructions per request | %s |" % " | ".join(heads[n] for n in names))
    print("| --- |%s" % (" ---: |" * len(names)))
    for k in libs:
        print("| %s | %s |" % (k, " | ".join("%.0f" % rows[n].get(k, 0) if rows[n].get(k, 0) >= 500 else "—"
                                           for n in names)))
    totals = [sum(v for v in rows[n].values() if v > 0) for n in names]
    print("| **total** | %s |" % " | ".join("**%.0f**" % t for t in totals))
    print("\nCounted by callgrind over %d requests on one keep-alive connection (runs of %d and %d, "
          "differenced); airlock: 1 worker, no detectors; nginx: 1 process, access log on%s." % (
              MANY - FEW, FEW, MANY, "; MHD + libcurl alone: bench/floor_proxy.c, 1 thread" if floor else ""))


if __name__ == "__main__":
    main()
