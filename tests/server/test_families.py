"""Chat through every model family's own template, over REST and the WebSocket API (issue 13,
item 5): the fixture models of each architecture answer a multi-turn conversation with a system
message; REST (non-streaming) and WS (streaming) give the same greedy text; a template that
refuses a role (Mistral's "roles must alternate") is a clear 400, never a 500."""
import asyncio
import json
import os
import signal
import socket
import subprocess
import time

import httpx
import pytest
import websockets

ROOT = os.environ.get("INFERNEO_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("INFERNEO_BIN") or os.path.join(ROOT, "build", "inferneo")
FIX = os.environ.get("INFERNEO_FIXTURES", os.path.join(ROOT, "..", "shared", "fixtures"))
CHAT = {"messages": [{"role": "system", "content": "You are terse."},
                     {"role": "user", "content": "Hello there"},
                     {"role": "assistant", "content": "Hi."},
                     {"role": "user", "content": "Again"}],
        "max_tokens": 8, "temperature": 0}
MODELS = ["tiny-qwen3-f16", "tiny-qwen3moe-q8_0", "tiny-phi3-q8_0", "tiny-gemma3-f16",
          "tiny-gemma2-q8_0", "tiny-qwen2-f16", "tiny-llama-q4_0", "tiny-llama-moe-f16"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("name", MODELS)
def test_family_chat_rest_equals_ws(name):
    path = os.path.join(FIX, "models", name + ".gguf")
    if not os.path.exists(path):
        pytest.skip("fixture %s missing" % path)
    port = free_port()
    proc = subprocess.Popen([BIN, "serve", "-m", path, "--port", str(port), "-t", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = "http://127.0.0.1:%d" % port
    try:
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(url + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.time() < deadline, "server did not start"
            time.sleep(0.05)
        r = httpx.post(url + "/v1/chat/completions", json=CHAT, timeout=120)

        async def ws():
            async with websockets.connect("ws://127.0.0.1:%d/v1/chat/completions" % port) as w:
                await w.send(json.dumps(dict(CHAT, stream=True, request_id=7)))
                text = ""
                while True:
                    d = json.loads(await asyncio.wait_for(w.recv(), 120))
                    assert d["request_id"] == 7
                    if "error" in d:
                        return d
                    text += d["choices"][0]["delta"].get("content") or ""
                    if d["choices"][0]["finish_reason"]:
                        return text

        got = asyncio.run(ws())
        if r.status_code == 400:  # the template refuses the conversation: same error on WS
            e = r.json()["error"]
            assert e["code"] == "invalid_messages" and e["param"] == "messages", e
            assert got["error"]["code"] == "invalid_messages", got
            # the template's own alternation rule: without the system message it is accepted
            alt = dict(CHAT, messages=CHAT["messages"][1:])
            r = httpx.post(url + "/v1/chat/completions", json=alt, timeout=120)
            assert r.status_code == 200, r.text
            return
        assert r.status_code == 200, r.text
        js = r.json()
        assert js["usage"]["completion_tokens"] > 0
        assert got == js["choices"][0]["message"]["content"], (got, js)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
