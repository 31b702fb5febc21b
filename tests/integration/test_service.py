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


def _analyze(*args):
    import subprocess
    return subprocess.run(["systemd-analyze"] + list(args), capture_output=True, text=True, timeout=60)


@test("service: packaging/airlock.service scores <= 2.0 in systemd-analyze security and verifies")
def unit_security():
    import re
    from harness import BIN, ROOT
    unit = os.path.join(ROOT, "packaging", "airlock.service")
    r = _analyze("security", "--offline=true", unit)
    m = re.search(r"Overall exposure level for airlock.service: ([0-9.]+)", r.stdout + r.stderr)
    check(m, "no score from systemd-analyze security:\n" + r.stdout[-2000:] + r.stderr[-2000:])
    print("    systemd-analyze security exposure: %s" % m.group(1), flush=True)
    check(float(m.group(1)) <= 2.0, "exposure %s > 2.0" % m.group(1))
    d = tempfile.mkdtemp(prefix="airlock-unit-")
    try:
        copy = os.path.join(d, "airlock.service")
        with open(unit) as f:
            text = f.read()
        check("ExecStart=/usr/local/bin/airlock " in text, "ExecStart names the installed binary")
        with open(copy, "w") as f:
            f.write(text.replace("/usr/local/bin/airlock", os.path.abspath(BIN)))
        v = _analyze("verify", copy)
        check(v.returncode == 0, "systemd-analyze verify failed:\n" + v.stdout + v.stderr)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@test("service: make install DESTDIR lays out binary, unit, config; keeps an edited config; uninstall")
def make_install():
    import subprocess
    from harness import BIN, ROOT
    d = tempfile.mkdtemp(prefix="airlock-install-")
    build = os.path.dirname(os.path.abspath(BIN))
    make = ["make", "-s", "-C", ROOT, "BUILD=" + os.path.relpath(build, ROOT), "DESTDIR=" + d, "PREFIX=/opt/al"]
    try:
        r = subprocess.run(make + ["install"], capture_output=True, text=True, timeout=120)
        check(r.returncode == 0, "make install: " + r.stdout[-1000:] + r.stderr[-1000:])
        for f in ("opt/al/bin/airlock", "opt/al/lib/systemd/system/airlock.service",
                  "etc/airlock/airlock.yaml", "etc/airlock/airlock.yaml.example"):
            check(os.path.isfile(os.path.join(d, f)), "installed " + f)
        with open(os.path.join(d, "opt/al/lib/systemd/system/airlock.service")) as f:
            check("ExecStart=/opt/al/bin/airlock -c /etc/airlock/airlock.yaml" in f.read(), "ExecStart under PREFIX")
        conf = os.path.join(d, "etc/airlock/airlock.yaml")
        with open(conf, "a") as f:
            f.write("# edited by the operator\n")
        r = subprocess.run(make + ["install"], capture_output=True, text=True, timeout=120)
        check(r.returncode == 0, "second make install")
        with open(conf) as f:
            check("# edited by the operator" in f.read(), "a second install keeps the edited config")
        r = subprocess.run(make + ["uninstall"], capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, "make uninstall")
        for f in ("opt/al/bin/airlock", "opt/al/lib/systemd/system/airlock.service",
                  "etc/airlock/airlock.yaml.example"):
            check(not os.path.exists(os.path.join(d, f)), "uninstalled " + f)
        check(os.path.exists(conf), "uninstall leaves the operator's config")
    finally:
        shutil.rmtree(d, ignore_errors=True)
