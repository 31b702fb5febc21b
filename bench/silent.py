#!/usr/bin/env python3
"""silent.py — a backend that accepts connections and reads requests but never
answers, for the failover benchmark. Counts the connections and request lines
it got and keeps them in COUNTFILE as JSON. Exits after MAX_SECONDS or on
SIGTERM; holds at most 2048 connections (the oldest is closed past that).

  silent.py PORT COUNTFILE [MAX_SECONDS]"""
import json
import os
import re
import selectors
import signal
import socket
import sys
import time

REQUEST_LINE = re.compile(rb"(?:GET|POST|HEAD|PUT) \S+ HTTP/1\.[01]\r\n")
MAX_CONNS = 2048


def main():
    port, countfile = int(sys.argv[1]), sys.argv[2]
    deadline = time.monotonic() + (float(sys.argv[3]) if len(sys.argv) > 3 else 300.0)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))

    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", port))
    lsock.listen(512)
    lsock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ)
    conns = {}          # socket -> unparsed tail
    counts = {"connections": 0, "requests": 0, "open": 0}

    def save():
        tmp = countfile + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(counts, fh)
        os.replace(tmp, countfile)

    def drop(s):
        sel.unregister(s)
        conns.pop(s, None)
        s.close()

    save()
    while not stop and time.monotonic() < deadline:
        changed = False
        for key, _ in sel.select(timeout=0.2):
            s = key.fileobj
            if s is lsock:
                try:
                    c, _ = lsock.accept()
                except OSError:
                    continue
                c.setblocking(False)
                if len(conns) >= MAX_CONNS:
                    drop(next(iter(conns)))
                conns[c] = b""
                sel.register(c, selectors.EVENT_READ)
                counts["connections"] += 1
                changed = True
                continue
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if not data:
                drop(s)
                changed = True
                continue
            buf = conns[s] + data
            end = 0
            for m in REQUEST_LINE.finditer(buf):
                counts["requests"] += 1
                end = m.end()
                changed = True
            conns[s] = buf[end:][-256:]     # a request line split across reads
        if changed:
            counts["open"] = len(conns)
            save()
    save()


if __name__ == "__main__":
    main()
