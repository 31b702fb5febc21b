#!/usr/bin/env python3
"""bench.py — the Python side of bench/run.sh (stdlib only): free ports, the
request bodies, timed client loops (time to first chunk, failover latency),
wrk output parsing, and the results table.

  bench.py ports N                       N free loopback ports
  bench.py body chat|stream              the request body on stdout
  bench.py ttfc URL N                    streaming: time to first body byte
  bench.py requests URL N CONC [stream]  latency of N requests over CONC connections
  bench.py wrk FILE                      wrk --latency output as JSON
  bench.py report RESULTS.json OUT.md    print and write the table
Every client loop is bounded in count and per-request time."""
import http.client
import json
import socket
import statistics
import sys
import threading
import time
import urllib.parse

CHAT = {
    "model": "bench-model",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Say hello in one short sentence."},
    ],
    "max_tokens": 32,
}
REQUEST_TIMEOUT = 10.0


def body(kind):
    b = dict(CHAT)
    if kind == "stream":
        b["stream"] = True
    return json.dumps(b, separators=(",", ":")).encode()


def ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    out = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return out


def pct(values, p):
    """Nearest-rank percentile of a list (ms)."""
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def _conn(url):
    u = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=REQUEST_TIMEOUT), u.path


def ttfc(url, n):
    """n streaming requests on one keep-alive connection (reopened after an
    error); time from sending to the first body byte, and to the end."""
    payload = body("stream")
    first, total, errors = [], [], []
    conn, path = _conn(url)
    for _ in range(n):
        try:
            t0 = time.perf_counter()
            conn.request("POST", path, payload, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(1)
            t1 = time.perf_counter()
            rest = chunk + resp.read()
            t2 = time.perf_counter()
            if resp.status != 200 or b"[DONE]" not in rest:
                errors.append("status %d%s" % (resp.status, "" if b"[DONE]" in rest else " no [DONE]"))
                continue
            first.append((t1 - t0) * 1000)
            total.append((t2 - t0) * 1000)
        except (OSError, http.client.HTTPException) as e:
            errors.append(type(e).__name__)
            conn.close()
            conn, path = _conn(url)
    conn.close()
    return {"n": n, "ok": len(first), "errors": len(errors), "error_kinds": sorted(set(errors))[:5],
            "p50_ms": pct(first, 50), "p99_ms": pct(first, 99),
            "total_p50_ms": pct(total, 50)}


def requests(url, n, conc, kind):
    """n requests spread over conc keep-alive connections; latency of each,
    the backends that answered (x-airlock-backend) and attempts."""
    payload = body(kind)
    lat, errors, backends, attempts = [], [], {}, {}
    lock = threading.Lock()
    todo = [n]

    def worker():
        conn, path = _conn(url)
        while True:
            with lock:
                if todo[0] == 0:
                    break
                todo[0] -= 1
            try:
                t0 = time.perf_counter()
                conn.request("POST", path, payload, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                dt = (time.perf_counter() - t0) * 1000
                with lock:
                    if resp.status == 200:
                        lat.append(dt)
                    else:
                        errors.append("status %d: %s" % (resp.status, data[:120].decode("utf-8", "replace")))
                    b = resp.getheader("x-airlock-backend") or "-"
                    a = resp.getheader("x-airlock-attempts") or "-"
                    backends[b] = backends.get(b, 0) + 1
                    attempts[a] = attempts.get(a, 0) + 1
            except (OSError, http.client.HTTPException) as e:
                with lock:
                    errors.append(type(e).__name__)
                conn.close()
                conn, path = _conn(url)
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(conc)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"n": n, "conc": conc, "ok": len(lat), "errors": len(errors),
            "error_kinds": sorted(set(errors))[:5], "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99),
            "max_ms": max(lat) if lat else None, "backends": backends, "attempts": attempts,
            "seconds": round(time.perf_counter() - t0, 2)}


UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text):
    for u in ("us", "ms", "s", "m"):
        if text.endswith(u):
            try:
                return float(text[: -len(u)]) * UNITS[u]
            except ValueError:
                return None
    return None


def wrk(path):
    out = {"p50_ms": None, "p99_ms": None, "rps": None, "requests": None,
           "non2xx": 0, "socket_errors": 0, "timeouts": 0}
    try:
        lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    except OSError:
        return out
    in_dist = False
    for line in lines:
        s = line.strip()
        if s.startswith("Latency Distribution"):
            in_dist = True
            continue
        if in_dist:
            parts = s.split()
            if len(parts) == 2 and parts[0].endswith("%"):
                if parts[0] == "50%":
                    out["p50_ms"] = _ms(parts[1])
                elif parts[0] == "99%":
                    out["p99_ms"] = _ms(parts[1])
                continue
            in_dist = False
        if s.startswith("Requests/sec:"):
            out["rps"] = float(s.split()[1])
        elif " requests in " in s:
            out["requests"] = int(s.split()[0])
        elif s.startswith("Non-2xx or 3xx responses:"):
            out["non2xx"] = int(s.split()[-1])
        elif s.startswith("Socket errors:"):
            # Socket errors: connect 0, read 0, write 0, timeout 0
            nums = [int(x.strip(",")) for x in s.split() if x.strip(",").isdigit()]
            out["socket_errors"] = sum(nums[:3])
            out["timeouts"] = nums[3] if len(nums) > 3 else 0
    return out


def _f(v, unit="", digits=3):
    if v is None:
        return "n/a"
    return ("%." + str(digits) + "f%s") % (v, unit)


def _us(v):
    return "n/a" if v is None else "%.0f µs" % (v * 1000)


def report(results_path, out_path):
    r = json.load(open(results_path))
    d, n, a = r["direct"], r["nginx"], r["airlock"]
    rows = []

    def row(*cells):
        rows.append("| " + " | ".join(cells) + " |")

    def ratio(x, y):
        return "n/a" if x is None or y is None or y <= 0 else "%.2f×" % (x / y)

    def added(x, base):
        return None if x is None or base is None else x - base

    row("metric", "direct upstream", "via nginx", "via airlock", "airlock / nginx")
    row("---", "---:", "---:", "---:", "---:")
    for key, label in (("p50_ms", "latency p50, c=1"), ("p99_ms", "latency p99, c=1")):
        row(label, _us(d["lat"][key]), _us(n["lat"][key]), _us(a["lat"][key]), ratio(a["lat"][key], n["lat"][key]))
    for key, label in (("p50_ms", "**added p50** over direct"), ("p99_ms", "added p99 over direct")):
        an, aa = added(n["lat"][key], d["lat"][key]), added(a["lat"][key], d["lat"][key])
        row(label, "—", _us(an), _us(aa), ratio(aa, an))
    if all(x.get("lat1", {}).get("p50_ms") is not None for x in (d, n, a)):
        an1, aa1 = added(n["lat1"]["p50_ms"], d["lat1"]["p50_ms"]), added(a["lat1"]["p50_ms"], d["lat1"]["p50_ms"])
        row("latency p50, c=1, every process on one vCPU", _us(d["lat1"]["p50_ms"]), _us(n["lat1"]["p50_ms"]),
            _us(a["lat1"]["p50_ms"]), ratio(a["lat1"]["p50_ms"], n["lat1"]["p50_ms"]))
        row("added p50 over direct, one vCPU (the proxies' own work)", "—", _us(an1), _us(aa1), ratio(aa1, an1))
    if all(x.get("latq", {}).get("p50_ms") is not None for x in (d, n, a)):
        anq, aaq = added(n["latq"]["p50_ms"], d["latq"]["p50_ms"]), added(a["latq"]["p50_ms"], d["latq"]["p50_ms"])
        row("latency p50, c=1, idle vCPUs polling (PM QoS 0)", _us(d["latq"]["p50_ms"]), _us(n["latq"]["p50_ms"]),
            _us(a["latq"]["p50_ms"]), ratio(a["latq"]["p50_ms"], n["latq"]["p50_ms"]))
        row("added p50 over direct, idle vCPUs polling", "—", _us(anq), _us(aaq), ratio(aaq, anq))
    # references in the latency rounds: the libraries alone, nginx untuned
    for ref, what, col in (("busy", "airlock with busy_poll_us: 200", "airlock"),
                           ("floor", "MHD + libcurl alone (bench/floor_proxy.c)", "airlock"),
                           ("stock", "nginx's stock proxy_pass (no upstream keep-alive)", "nginx")):
        x = r.get(ref, {})
        for kind, label in (("lat", ""), ("lat1", ", one vCPU"), ("latq", ", idle vCPUs polling")):
            if (x.get(kind) or {}).get("p50_ms") is None or d.get(kind, {}).get("p50_ms") is None:
                continue
            ax = added(x[kind]["p50_ms"], d[kind]["p50_ms"])
            other = added((n if col == "airlock" else a)[kind]["p50_ms"], d[kind]["p50_ms"])
            ng_col, al_col = (other, ax) if col == "airlock" else (ax, other)
            row("added p50%s, %s in the %s column" % (label, what, col), "—", _us(ng_col), _us(al_col),
                ratio(al_col, ng_col))
    row("**req/s, c=64** (non-stream)", _f(d["tput"]["rps"], "", 0), _f(n["tput"]["rps"], "", 0),
        _f(a["tput"]["rps"], "", 0), ratio(a["tput"]["rps"], n["tput"]["rps"]))
    row("latency p50 / p99, c=64", *["%s / %s" % (_f(x["tput"]["p50_ms"], " ms", 2), _f(x["tput"]["p99_ms"], " ms", 2))
                                      for x in (d, n, a)], "")
    row("req/s, c=64, stream", _f(d["stream"]["rps"], "", 0), _f(n["stream"]["rps"], "", 0),
        _f(a["stream"]["rps"], "", 0), ratio(a["stream"]["rps"], n["stream"]["rps"]))
    row("errors under load (non-2xx / socket / timeout)",
        *["%d / %d / %d" % (x["tput"]["non2xx"] + x["stream"]["non2xx"],
                            x["tput"]["socket_errors"] + x["stream"]["socket_errors"],
                            x["tput"]["timeouts"] + x["stream"]["timeouts"]) for x in (d, n, a)], "")
    row("time to first chunk p50, stream (N=%d)" % d["ttfc"]["n"], _us(d["ttfc"]["p50_ms"]),
        _us(n["ttfc"]["p50_ms"]), _us(a["ttfc"]["p50_ms"]), ratio(a["ttfc"]["p50_ms"], n["ttfc"]["p50_ms"]))
    row("time to first chunk p99, stream", _us(d["ttfc"]["p99_ms"]), _us(n["ttfc"]["p99_ms"]),
        _us(a["ttfc"]["p99_ms"]), ratio(a["ttfc"]["p99_ms"], n["ttfc"]["p99_ms"]))
    row("RSS after load (VmRSS / VmHWM)", "—", "%s / %s (all processes)" % (n["rss_kb"], n["hwm_kb"]),
        "%s / %s (idle before: %s)" % (a["rss_kb"], a["hwm_kb"], a.get("rss_idle_kb", "n/a")), "")

    aa = added(a["lat"]["p50_ms"], d["lat"]["p50_ms"])
    an = added(n["lat"]["p50_ms"], d["lat"]["p50_ms"])
    verdict = []
    if aa is not None and an is not None and an > 0:
        verdict.append("added p50: airlock %s vs nginx %s = %.2f× (target ≤ 2×): **%s**"
                       % (_us(aa), _us(an), aa / an, "met" if aa <= 2 * an else "missed"))
    ab = added((r.get("busy", {}).get("lat") or {}).get("p50_ms"), d["lat"]["p50_ms"])
    if ab is not None and an is not None and an > 0:
        verdict.append("added p50, airlock with busy_poll_us: 200: %s vs nginx %s = %.2f× (target ≤ 2×): **%s**"
                       % (_us(ab), _us(an), ab / an, "met" if ab <= 2 * an else "missed"))
    if (a.get("latq") or {}).get("p50_ms") is not None and (n.get("latq") or {}).get("p50_ms") is not None:
        aq, nq = added(a["latq"]["p50_ms"], d["latq"]["p50_ms"]), added(n["latq"]["p50_ms"], d["latq"]["p50_ms"])
        if aq is not None and nq and nq > 0:
            verdict.append("added p50 with idle vCPUs polling (PM QoS 0): airlock %s vs nginx %s = %.2f× (%s 2×)"
                           % (_us(aq), _us(nq), aq / nq, "within" if aq <= 2 * nq else "over"))
    if a["tput"]["rps"] and n["tput"]["rps"]:
        q = a["tput"]["rps"] / n["tput"]["rps"]
        verdict.append("throughput at c=64: airlock %.0f vs nginx %.0f req/s = %.2f× (target ≥ 0.5×): **%s**"
                       % (a["tput"]["rps"], n["tput"]["rps"], q, "met" if q >= 0.5 else "missed"))

    f = r.get("failover", {})
    frows = []

    def frow(*cells):
        frows.append("| " + " | ".join(cells) + " |")

    frow("failover scenario", "requests (conc.)", "ok", "p50", "p99", "answered by / attempts", "dead backend received")
    frow("---", "---:", "---:", "---:", "---:", "---", "---:")
    base = f.get("baseline")
    for key, label in (("baseline", "no failure (fast only), for reference"),
                       ("refused", "first backend refuses connections"),
                       ("silent", "first backend silent, first_byte_ms: 500"),
                       ("circuit", "circuit (failures: 3, open_ms: %s), silent first backend, %ss load at c=%s"
                        % ((f.get("circuit") or {}).get("waste", {}).get("open_ms", "?"),
                           f.get("circuit_seconds", "?"), f.get("circuit_conc", "?")))):
        x = f.get(key)
        if not x:
            continue
        if key == "circuit":
            w = x["wrk"]
            dead = x.get("dead", {})
            ws = x.get("waste") or {}
            frow(label, "%s (%s)" % (w.get("requests"), f.get("circuit_conc")),
                 "%s non-2xx" % w.get("non2xx"), _f(w.get("p50_ms"), " ms", 2), _f(w.get("p99_ms"), " ms", 1),
                 "—", "%s requests: %s before it opened, %s half-open trials, %s wasted" %
                 (dead.get("requests"), ws.get("before_open", "?"), ws.get("trials", "?"), ws.get("waste", "?")))
            if ws and f.get("circuit_seconds"):
                verdict.append("requests wasted on a dead backend once its circuit is open: %.1f per minute beyond "
                               "the half-open trials (target: none): **%s**" %
                               (ws["waste"] * 60.0 / float(f["circuit_seconds"]), "met" if ws["waste"] == 0 else "missed"))
            continue
        dead = x.get("dead")
        frow(label, "%d (%d)" % (x["n"], x["conc"]), "%d" % x["ok"] + (" (%d errors)" % x["errors"] if x["errors"] else ""),
             _f(x["p50_ms"], " ms", 2), _f(x["p99_ms"], " ms", 2),
             ", ".join("%s: %d" % kv for kv in sorted(x["backends"].items())) + " / " +
             ", ".join("%s: %d" % kv for kv in sorted(x["attempts"].items())),
             "n/a (refused)" if key == "refused" else
             ("—" if not dead else "%s connections, %s requests" % (dead.get("connections"), dead.get("requests"))))

    notes = r.get("notes", [])
    md = []
    md.append("Run %s on %s (%s cores), airlock %s, nginx %s, wrk %s." % (
        r.get("date"), r.get("host"), r.get("cores"), r.get("airlock_version"), r.get("nginx_version"), r.get("wrk_version")))
    md.append("")
    md.extend(rows)
    md.append("")
    md.extend("- " + v for v in verdict)
    md.append("")
    if frows and len(frows) > 2:
        md.extend(frows)
        md.append("")
    if notes:
        md.extend("- " + x for x in notes)
        md.append("")
    text = "\n".join(md)
    with open(out_path, "w") as fh:
        fh.write("# airlock benchmark results\n\n" + text)
    print(text)


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "ports":
        print(" ".join(str(p) for p in ports(int(argv[2]))))
    elif cmd == "body":
        sys.stdout.write(body(argv[2]).decode())
    elif cmd == "ttfc":
        print(json.dumps(ttfc(argv[2], int(argv[3]))))
    elif cmd == "requests":
        print(json.dumps(requests(argv[2], int(argv[3]), int(argv[4]), argv[5] if len(argv) > 5 else "chat")))
    elif cmd == "wrk":
        print(json.dumps(wrk(argv[2])))
    elif cmd == "report":
        report(argv[2], argv[3])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
