#!/usr/bin/env python3
"""run.py — the integration suite: imports tests/integration/test_*.py, runs
every registered test against the real daemon and real test upstreams, each
within its time bound, and ends with one line "N passed, N failed".

    python3 tests/integration/run.py [SUBSTRING ...]   (AIRLOCK_BIN, VALGRIND)
"""
import glob
import importlib
import os
import resource
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    for path in sorted(glob.glob(os.path.join(HERE, "test_*.py"))):
        importlib.import_module(os.path.basename(path)[:-3])
    wanted = sys.argv[1:]
    passed = failed = 0
    for name, fn, timeout in harness.TESTS:
        if wanted and not any(w in name for w in wanted):
            continue
        if harness.VALGRIND:
            timeout *= 6
        result = {}

        def body():
            try:
                fn()
                result["ok"] = True
            except Exception as e:  # noqa: BLE001 — every failure is reported
                result["err"] = "%s: %s" % (type(e).__name__, e)
                result["tb"] = traceback.format_exc()

        t0 = time.time()
        th = threading.Thread(target=body, daemon=True)
        th.start()
        th.join(timeout)
        dt = time.time() - t0
        if th.is_alive():
            failed += 1
            print("FAIL %s: no result within %d s (hang)" % (name, timeout), flush=True)
            harness._kill_all()
        elif result.get("ok"):
            passed += 1
            print("PASS %s (%.2fs)" % (name, dt), flush=True)
        else:
            failed += 1
            print("FAIL %s (%.2fs): %s" % (name, dt, result["err"]), flush=True)
            if os.environ.get("VERBOSE"):
                print(result["tb"], flush=True)
    harness._kill_all()
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
