"""test_sdk.py — the official `openai` npm client, pointed at airlock by its
base URL alone, gets answers, streams and model lists, and raises the
exception class its users catch for each error airlock returns."""
import json

from harness import CLOUD_ENV, Airlock, Mock, backend, check, sdk, test, two_backends


@test("sdk: the official openai client chats, streams and lists models through airlock", timeout=90)
def _():
    m = Mock("vllm", "up")
    a = Airlock("backends:\n" + backend("b", m, "local", "vllm", "served"))
    try:
        url = a.base + "/v1"
        r = sdk("openai", url, "chat", {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        check(r["ok"], "chat: %r" % r)
        check(r["result"]["choices"][0]["message"]["content"] == "hello from up", "content: %r" % r)
        check(r["headers"].get("x-airlock-backend") == "b", "x-airlock-backend: %r" % r["headers"])
        s = sdk("openai", url, "chat_stream", {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        check(s["ok"], "stream: %r" % s)
        text = "".join((c["choices"][0]["delta"].get("content") or "") for c in s["chunks"] if c.get("choices"))
        check(text.startswith("hello"), "streamed text %r" % text)
        check(s["chunks"][-1]["choices"][0].get("finish_reason") == "stop", "finish_reason at the end")
        ms = sdk("openai", url, "models")
        check(ms["ok"] and any(x.get("id") for x in ms["result"]), "models: %r" % ms)
        check(len(m.requests()) == 2, "two completions reached the upstream")
    finally:
        a.stop()
        m.stop()


@test("sdk: airlock's errors raise the openai client's matching exception classes", timeout=90)
def _():
    cloud = Mock("openai", "cloud")
    a = Airlock("backends:\n" + backend("cloud", cloud, "cloud", "openai", "gpt",
                                        "api_key_env: T_CLOUD_KEY, clearance: internal"), env=CLOUD_ENV)
    try:
        url = a.base + "/v1"
        bad = sdk("openai", url, "chat", {"model": "m", "messages": "not a list"})
        check(not bad["ok"] and bad["error_class"] == "BadRequestError" and bad["status"] == 400,
              "bad body: %r" % bad)
        # A secret and only a cloud backend: no cleared backend, a 503 that
        # the SDK raises as InternalServerError, and nothing reaches the cloud.
        r = sdk("openai", url, "chat",
                {"model": "m", "messages": [{"role": "user", "content": "card 4111 1111 1111 1111"}]})
        check(not r["ok"] and r["status"] == 503 and r["error_class"] == "InternalServerError",
              "secret with no cleared backend: %r" % r)
        check(cloud.requests() == [], "the cloud received %r" % cloud.requests())
    finally:
        a.stop()
        cloud.stop()
