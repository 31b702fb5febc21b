"""test_service.py — systemd's Type=notify: on a test NOTIFY_SOCKET the daemon
says READY=1 once listening, RELOADING=1 with MONOTONIC_USEC then READY=1
around a SIGHUP reload (accepted or rejected), and STOPPING=1 at SIGTERM."""
import os
import shutil
import signal
import socket
import tempfile
import time

from harness import Airlock, Mock, backend, check, test


class NotifySocket:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="airlock-notify-")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []

    def wait_for(self, field, timeout=5.0):
        """Reads datagrams until one holds the line `field`; returns it."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.time()))
            try:
                msg = self.sock.recv(4096).decode()
            except socket.timeout:
                break
            self.messages.append(msg)
            if field in msg.split("\n"):
                return msg
        raise AssertionError("no %s on NOTIFY_SOCKET; got %r" % (field, self.messages))

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@test("service: sd_notify READY, RELOADING + MONOTONIC_USEC, READY, STOPPING")
def sd_notify_sequence():
    ns = NotifySocket()
    up = Mock(name="up")
    try:
        a = Airlock("backends:\n" + backend("local", up) + "routes:\n  - { name: r, use: [local] }\n",
                    env={"NOTIFY_SOCKET": ns.path})
        ready = ns.wait_for("READY=1")
        check("STATUS=serving 1 backends, 2 workers" in ready, "status in %r" % ready)
        a.signal(signal.SIGHUP)
        rel = ns.wait_for("RELOADING=1")
        usec = [l for l in rel.split("\n") if l.startswith("MONOTONIC_USEC=")]
        check(usec, "MONOTONIC_USEC with RELOADING=1: %r" % rel)
        now = time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6
        check(abs(int(usec[0].split("=")[1]) - now) < 10e6, "MONOTONIC_USEC is CLOCK_MONOTONIC: %r" % usec)
        again = ns.wait_for("READY=1")
        check("last reload ok" in again, "status after reload: %r" % again)
        with open(a.path, "w") as f:
            f.write("listen: [\n")                       # rejected: the old config keeps serving
        a.signal(signal.SIGHUP)
        ns.wait_for("RELOADING=1")
        check("rejected" in ns.wait_for("READY=1"), "READY=1 after a rejected reload says so")
        check(a.chat("hi").status == 200, "still serving")
        a.signal(signal.SIGTERM)
        ns.wait_for("STOPPING=1")
        a.stop()
    finally:
        up.stop()
        ns.close()
