"""test_providers.py — issue 16: each provider spoken in its own dialect.
Azure: the deployment URL, ?api-version= and the api-key header."""
import os
import subprocess
import tempfile

from harness import BIN, Airlock, Mock, backend, check, test


@test("azure: api_version is required; requests carry ?api-version= and api-key, never Authorization")
def _():
    fd, path = tempfile.mkstemp(suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        f.write("backends:\n  - { name: az, provider: azure, zone: cloud, url: 'https://r.openai.azure.com/"
                "openai/deployments/d' }\nroutes:\n  - { name: default, use: [az] }\n")
    try:
        p = subprocess.run([BIN, "--check", "-c", path], capture_output=True, text=True, timeout=10)
        check(p.returncode == 1, "rc %d: %s" % (p.returncode, p.stderr))
        check(any(l.startswith(path + ":2:") and "api_version" in l for l in p.stderr.splitlines()), p.stderr)
    finally:
        os.unlink(path)
    m = Mock()
    try:
        y = "backends:\n" + backend("az", m.url + "/openai/deployments/dep1", "cloud", "azure", "gpt",
                                    "api_key_env: T_AZ_KEY, api_version: 2024-10-21, clearance: internal")
        y += "routes:\n  - { name: default, use: [az] }\n"
        a = Airlock(y, env={"T_AZ_KEY": "az-secret-key"})
        try:
            r = a.chat("hello")
            check(r.status == 200, "chat %d %r" % (r.status, r.body[:200]))
            r = a.request("POST", "/v1/embeddings", {"model": "e", "input": "hi"})
            check(r.status == 200, "embeddings %d %r" % (r.status, r.body[:200]))
        finally:
            a.stop()
        reqs = m.requests()
        check(len(reqs) == 2, "requests %r" % reqs)
        check(reqs[0]["path"].split("/v1", 1)[-1] == "/openai/deployments/dep1/chat/completions", reqs[0]["path"])
        check(reqs[1]["path"].split("/v1", 1)[-1] == "/openai/deployments/dep1/embeddings", reqs[1]["path"])
        for q in reqs:
            check(q["query"] == "api-version=2024-10-21", "query %r" % q["query"])
            h = {k.lower(): v for k, v in q["headers"].items()}
            check(h.get("api-key") == "az-secret-key", "api-key %r" % h.get("api-key"))
            check("authorization" not in h, "Authorization sent to azure: %r" % h)
    finally:
        m.stop()
