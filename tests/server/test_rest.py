"""Black-box tests of the OpenAI-compatible REST API of `inferneo serve` (DESIGN.md section 8).

The real binary (INFERNEO_BIN) serves models/stories260K.gguf (repo root INFERNEO_ROOT) on a free
loopback port; the tests talk to it with httpx and raw sockets. Greedy outputs are checked against
`inferneo generate --temp 0` on the same (formatted) prompt; response shapes against OpenAI's.
"""
import base64
import concurrent.futures
import contextlib
import json
import math
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time

import httpx
import pytest

ROOT = os.environ.get("INFERNEO_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("INFERNEO_BIN") or os.path.join(ROOT, "build", "inferneo")
MODEL = os.path.join(ROOT, "models", "stories260K.gguf")
NAME, ALIAS = "stories", "tiny-alias"
KEY = "sk-test-secret-4242"
PROMPTS = ["Once upon a time", "The little dog", "Lily and Tom", "The cat sat"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, *extra):
        self.extra = list(extra)
        self.lines = []
        self.lock = threading.Lock()

    def start(self):
        for _ in range(3):
            self.port = free_port()
            cmd = [BIN, "serve", "-m", MODEL, "--port", str(self.port), "-t", "1"] + self.extra
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            threading.Thread(target=self._read, daemon=True).start()
            deadline = time.time() + 30
            while time.time() < deadline and self.proc.poll() is None:
                if "listening on http://127.0.0.1:%d" % self.port in self.output():
                    return self
                time.sleep(0.02)
            if self.proc.poll() is None:
                self.proc.kill()
                raise AssertionError("no 'listening on' line within 30 s:\n" + self.output())
            if "in use" not in self.output():
                break
        raise AssertionError("the server exited: %s\n%s" % (self.proc.returncode, self.output()))

    def _read(self):
        for line in iter(self.proc.stdout.readline, b""):
            with self.lock:
                self.lines.append(line.decode("utf-8", "replace"))

    def output(self):
        with self.lock:
            return "".join(self.lines)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise AssertionError("no exit within 20 s of SIGTERM:\n" + self.output()[-3000:])
        return self.proc.returncode

    def alive(self):
        assert self.proc.poll() is None, "the server died:\n" + self.output()[-3000:]
        assert httpx.get(self.url("/health"), timeout=10).status_code == 200


@pytest.fixture(scope="module")
def srv():
    s = Server("--served-model-name", NAME + "," + ALIAS).start()
    yield s
    assert s.stop() == 0


FILE_KEY = "sk-from-a-file-777"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    keyfile = tmp_path_factory.mktemp("keys") / "keys.txt"
    keyfile.write_text("# API keys\n\n  %s  \n" % FILE_KEY)
    s = Server("--api-key", KEY, "--api-key-file", str(keyfile), "--cors-origin",
               "http://allowed.example", "--max-body", "65536", "--max-seqs", "1",
               "--queue", "2").start()
    yield s
    assert s.stop() == 0


def post(s, path, body, **kw):
    return httpx.post(s.url(path), json=body, timeout=60, **kw)


def err(r, status, code=None, etype=None, param=None):
    assert r.status_code == status, (r.status_code, r.text)
    e = r.json()["error"]
    assert set(e) == {"message", "type", "param", "code"}, e
    assert isinstance(e["message"], str) and e["message"]
    if code:
        assert e["code"] == code, e
    if etype:
        assert e["type"] == etype, e
    if param:
        assert e["param"] == param, e
    return e


def generate(prompt, n):
    """`inferneo generate --temp 0`: the reference greedy continuation."""
    p = subprocess.run([BIN, "generate", "-m", MODEL, "-p", prompt, "-n", str(n), "--temp", "0",
                        "-t", "1"], capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout.decode("utf-8")


def chatml(messages):
    """The fallback template (stories260K has no chat template)."""
    return "".join("<|im_start|>%s\n%s<|im_end|>\n" % (m["role"], m["content"])
                   for m in messages) + "<|im_start|>assistant\n"


def sse(s, path, body, headers=None):
    """Streams a request; returns (response headers, [parsed events], done_seen)."""
    events, done = [], False
    with httpx.stream("POST", s.url(path), json=body, timeout=60, headers=headers) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        buf = ""
        for chunk in r.iter_text():
            buf += chunk
            while "\n\n" in buf:
                ev, buf = buf.split("\n\n", 1)
                assert ev.startswith("data: "), ev
                assert not done, "an event after [DONE]"
                data = ev[len("data: "):]
                if data == "[DONE]":
                    done = True
                else:
                    events.append(json.loads(data))
        assert buf == ""
        return r.headers, events, done


def same_usage(a, b):
    """Token counts agree (cached_tokens may differ: the prefix cache warms up)."""
    return all(a[k] == b[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens"))


def metrics(s, **kw):
    text = httpx.get(s.url("/metrics"), timeout=10, **kw).text
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def wait_idle(s, within):
    t0 = time.time()
    while True:
        m = metrics(s)
        if m["inferneo_requests_running"] == 0 and m["inferneo_kv_pages_in_use"] == 0:
            return time.time() - t0
        assert time.time() - t0 < within, "still busy after %.1f s: %r" % (within, m)
        time.sleep(0.02)


# ---- basics ------------------------------------------------------------------------------------

def test_health_models_and_log(srv):
    r = httpx.get(srv.url("/health"))
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    r = httpx.get(srv.url("/v1/models"))
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == [NAME, ALIAS]
    for m in body["data"]:
        assert m["object"] == "model" and m["owned_by"] and isinstance(m["created"], int)
    assert httpx.get(srv.url("/v1/models/" + ALIAS)).json()["id"] == ALIAS
    err(httpx.get(srv.url("/v1/models/nope")), 404, "model_not_found")
    assert re.search(r"GET /v1/models 200 [0-9.]+ ms", srv.output())


def test_completion_shape_and_greedy_equals_generate(srv):
    for prompt in PROMPTS[:2]:
        r = post(srv, "/v1/completions", {"model": NAME, "prompt": prompt, "max_tokens": 24,
                                          "temperature": 0})
        assert r.status_code == 200, r.text
        b = r.json()
        assert b["id"].startswith("cmpl-") and b["object"] == "text_completion"
        assert isinstance(b["created"], int) and b["model"] == NAME
        (c,) = b["choices"]
        assert set(c) == {"index", "text", "logprobs", "finish_reason"}
        assert c["index"] == 0 and c["logprobs"] is None
        assert c["finish_reason"] in ("length", "stop")
        assert c["text"] == generate(prompt, 24)
        u = b["usage"]
        assert u["prompt_tokens"] > 0 and u["completion_tokens"] <= 24
        assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
        assert u["prompt_tokens_details"]["cached_tokens"] >= 0
    assert re.search(r"POST /v1/completions 200 tokens=\d+\+\d+ [0-9.]+ ms", srv.output())
    # an alias is accepted and reported back; no model means the served one
    b = post(srv, "/v1/completions", {"model": ALIAS, "prompt": "x", "max_tokens": 2}).json()
    assert b["model"] == ALIAS
    assert post(srv, "/v1/completions", {"prompt": "x", "max_tokens": 2}).json()["model"] == NAME


def test_completion_stream(srv):
    body = {"model": NAME, "prompt": PROMPTS[2], "max_tokens": 30, "temperature": 0}
    want = post(srv, "/v1/completions", body).json()
    headers, events, done = sse(srv, "/v1/completions",
                                dict(body, stream=True, stream_options={"include_usage": True}))
    assert done
    text = "".join(e["choices"][0]["text"] for e in events if e["choices"])
    assert text == want["choices"][0]["text"]
    for e in events:
        assert e["id"].startswith("cmpl-") and e["object"] == "text_completion"
        assert e["id"] == events[0]["id"]
    finals = [e for e in events if e["choices"] and e["choices"][0]["finish_reason"]]
    assert len(finals) == 1 and finals[0]["choices"][0]["finish_reason"] == \
        want["choices"][0]["finish_reason"]
    assert events[-1]["choices"] == [] and same_usage(events[-1]["usage"], want["usage"])
    # without include_usage: no usage chunk
    _, events, done = sse(srv, "/v1/completions", dict(body, stream=True))
    assert done and all(e["choices"] for e in events) and "usage" not in events[-1]


def test_chat_greedy_equals_generate_and_stream(srv):
    msgs = [{"role": "system", "content": "You tell stories."},
            {"role": "user", "content": "Tell me about a cat."}]
    body = {"model": NAME, "messages": msgs, "max_tokens": 20, "temperature": 0}
    r = post(srv, "/v1/chat/completions", body)
    assert r.status_code == 200, r.text
    b = r.json()
    assert b["id"].startswith("chatcmpl-") and b["object"] == "chat.completion"
    (c,) = b["choices"]
    assert set(c) == {"index", "message", "logprobs", "finish_reason"}
    assert c["message"]["role"] == "assistant"
    assert c["message"]["content"] == generate(chatml(msgs), 20)
    # content as an array of text parts means the same
    parts = [dict(m, content=[{"type": "text", "text": m["content"]}]) for m in msgs]
    r2 = post(srv, "/v1/chat/completions", dict(body, messages=parts, max_completion_tokens=20))
    assert r2.json()["choices"][0]["message"]["content"] == c["message"]["content"]

    _, events, done = sse(srv, "/v1/chat/completions",
                          dict(body, stream=True, stream_options={"include_usage": True}))
    assert done
    first = events[0]["choices"][0]
    assert first["delta"]["role"] == "assistant" and first["finish_reason"] is None
    for e in events:
        assert e["object"] == "chat.completion.chunk" and e["id"] == events[0]["id"]
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"])
    assert text == c["message"]["content"]
    last = events[-2]["choices"][0]
    assert last["delta"] == {} and last["finish_reason"] == c["finish_reason"]
    assert events[-1]["choices"] == [] and same_usage(events[-1]["usage"], b["usage"])


def test_n_seed_stop_echo_logprobs_and_prompt_lists(srv):
    body = {"prompt": PROMPTS[0], "max_tokens": 16, "temperature": 0.9, "seed": 7, "n": 3}
    a = post(srv, "/v1/completions", body).json()
    b = post(srv, "/v1/completions", body).json()
    assert [c["index"] for c in a["choices"]] == [0, 1, 2]
    assert [c["text"] for c in a["choices"]] == [c["text"] for c in b["choices"]]
    assert len({c["text"] for c in a["choices"]}) > 1, "n choices with one seed are all equal"
    assert a["usage"]["completion_tokens"] <= 3 * 16

    greedy = generate(PROMPTS[0], 24)
    stop = greedy[8:12]
    r = post(srv, "/v1/completions", {"prompt": PROMPTS[0], "max_tokens": 24, "temperature": 0,
                                      "stop": ["@@never@@", stop]}).json()["choices"][0]
    assert r["finish_reason"] == "stop" and r["text"] == greedy[:greedy.index(stop)]

    r = post(srv, "/v1/completions", {"prompt": PROMPTS[0], "max_tokens": 5, "temperature": 0,
                                      "echo": True}).json()["choices"][0]
    assert r["text"] == PROMPTS[0] + generate(PROMPTS[0], 5)

    r = post(srv, "/v1/completions", {"prompt": PROMPTS[1], "max_tokens": 6, "temperature": 0,
                                      "logprobs": 2}).json()
    lp = r["choices"][0]["logprobs"]
    n = r["usage"]["completion_tokens"]
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == n
    assert "".join(lp["tokens"]) == r["choices"][0]["text"]
    for tok, l, top in zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"]):
        assert l <= 0 and 1 <= len(top) <= 2
        assert max(top.values()) == pytest.approx(l, abs=1e-4)  # greedy: chosen is the best
    r = post(srv, "/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}],
                                           "max_tokens": 4, "temperature": 0, "logprobs": True,
                                           "top_logprobs": 3}).json()
    content = r["choices"][0]["logprobs"]["content"]
    assert len(content) == r["usage"]["completion_tokens"]
    for ent in content:
        assert set(ent) == {"token", "logprob", "bytes", "top_logprobs"}
        assert len(ent["top_logprobs"]) == 3 and bytes(ent["bytes"]).decode() == ent["token"]

    r = post(srv, "/v1/completions", {"prompt": PROMPTS[:3], "max_tokens": 8, "temperature": 0,
                                      "n": 2}).json()
    assert [c["index"] for c in r["choices"]] == list(range(6))
    for i, c in enumerate(r["choices"]):
        assert c["text"] == generate(PROMPTS[i // 2], 8)
    single = [post(srv, "/v1/completions", {"prompt": p, "max_tokens": 1}).json()
              for p in PROMPTS[:3]]
    assert r["usage"]["prompt_tokens"] == sum(x["usage"]["prompt_tokens"] for x in single)

    toks = httpx.post(srv.url("/tokenize"), json={"content": PROMPTS[0],
                                                  "add_special": True}).json()["tokens"]
    r = post(srv, "/v1/completions", {"prompt": toks, "max_tokens": 8, "temperature": 0}).json()
    assert r["choices"][0]["text"] == generate(PROMPTS[0], 8)


def test_embeddings_and_tokenize(srv):
    r = post(srv, "/v1/embeddings", {"model": NAME, "input": ["hello world", "a cat"]})
    assert r.status_code == 200, r.text
    b = r.json()
    assert b["object"] == "list" and b["model"] == NAME and len(b["data"]) == 2
    for i, d in enumerate(b["data"]):
        assert d["object"] == "embedding" and d["index"] == i
        assert math.isclose(math.sqrt(sum(x * x for x in d["embedding"])), 1.0, rel_tol=1e-4)
    assert b["data"][0]["embedding"] != b["data"][1]["embedding"]
    assert b["usage"]["prompt_tokens"] == b["usage"]["total_tokens"] > 0
    b64 = post(srv, "/v1/embeddings", {"input": "hello world", "encoding_format": "base64"}).json()
    raw = base64.b64decode(b64["data"][0]["embedding"])
    vec = struct.unpack("<%df" % (len(raw) // 4), raw)
    assert vec == pytest.approx(b["data"][0]["embedding"], abs=1e-6)

    t = httpx.post(srv.url("/tokenize"), json={"content": "Once upon a time"}).json()["tokens"]
    assert t and all(isinstance(x, int) for x in t)
    d = httpx.post(srv.url("/detokenize"), json={"tokens": t}).json()
    assert d["content"].strip() == "Once upon a time"
    ts = httpx.post(srv.url("/tokenize"), json={"content": "x", "add_special": True}).json()
    assert len(ts["tokens"]) == len(httpx.post(srv.url("/tokenize"),
                                               json={"content": "x"}).json()["tokens"]) + 1
    err(httpx.post(srv.url("/detokenize"), json={"tokens": [10 ** 9]}), 400)
    err(httpx.post(srv.url("/tokenize"), json={"content": 5}), 400)


# ---- errors ------------------------------------------------------------------------------------

def test_validation_errors(srv):
    c = "/v1/completions"
    r = httpx.post(srv.url(c), content=b'{"prompt": "x",\n  "max_tokens": }', timeout=10)
    e = err(r, 400, "invalid_json")
    assert "line 2" in e["message"] and "column" in e["message"]
    err(httpx.post(srv.url(c), content=b"[1, 2]"), 400)
    err(httpx.post(srv.url(c), content=b'{"prompt": "a", "prompt": "b"}'), 400)
    err(post(srv, c, {"prompt": "x", "temperature": "hot"}), 400, "invalid_type",
        "invalid_request_error", "temperature")
    err(post(srv, c, {"prompt": "x", "temperature": 2.5}), 400, param="temperature")
    err(post(srv, c, {"prompt": "x", "top_p": 1.5}), 400, param="top_p")
    err(post(srv, c, {"prompt": "x", "max_tokens": 0}), 400, param="max_tokens")
    err(post(srv, c, {"prompt": "x", "n": 0}), 400, param="n")
    err(post(srv, c, {"prompt": "x", "logprobs": 21}), 400, param="logprobs")
    err(post(srv, c, {"prompt": "x", "stop": ["a"] * 9}), 400, param="stop")
    err(post(srv, c, {"prompt": "x", "stop": [1]}), 400, param="stop")
    err(post(srv, c, {"prompt": "x", "frequency_penalty": -3}), 400)
    err(post(srv, c, {"prompt": "x", "stream": "yes"}), 400, param="stream")
    err(post(srv, c, {"prompt": "x", "stream_options": {"include_usage": True}}), 400)
    err(post(srv, c, {"prompt": "x", "bogus": 1}), 400, "unknown_parameter", param="bogus")
    err(post(srv, c, {"prompt": []}), 400)
    err(post(srv, c, {}), 400, param="prompt")
    err(post(srv, c, {"prompt": [1, "a"]}), 400)
    err(post(srv, c, {"prompt": [99999999]}), 400)
    err(post(srv, c, {"model": "gpt-4", "prompt": "x"}), 404, "model_not_found",
        "invalid_request_error")
    err(post(srv, c, {"prompt": "x", "logit_bias": {"1": 5}}), 400, "unsupported_parameter")
    # messages quoting long non-ASCII input stay valid JSON
    err(post(srv, c, {"model": "\u00e9" * 300, "prompt": "x"}), 404, "model_not_found")
    err(post(srv, c, {"prompt": "x", "\u00e9" * 300: 1}), 400, "unknown_parameter")
    ch = "/v1/chat/completions"
    msg = [{"role": "user", "content": "hi"}]
    err(post(srv, ch, {"messages": msg, "response_format": {"type": "json_object"}}), 400,
        "unsupported_parameter", param="response_format")
    err(post(srv, ch, {"messages": msg, "response_format": {"type": "json_schema",
                                                            "json_schema": {}}}),
        400, "unsupported_parameter")
    err(post(srv, ch, {"messages": msg, "tools": [{"type": "function", "function":
                                                   {"name": "f"}}]}),
        400, "unsupported_parameter", param="tools")
    assert post(srv, ch, {"messages": msg, "response_format": {"type": "text"},
                          "max_tokens": 1}).status_code == 200
    err(post(srv, ch, {"messages": []}), 400, param="messages")
    err(post(srv, ch, {"messages": [{"role": "wizard", "content": "x"}]}), 400)
    err(post(srv, ch, {"messages": [{"role": "user", "content": 5}]}), 400)
    err(post(srv, ch, {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
        400, "unsupported_parameter")
    err(post(srv, ch, {"messages": msg, "top_logprobs": 2}), 400, param="top_logprobs")
    err(post(srv, "/v1/embeddings", {"input": ""}), 400)
    # context: a prompt longer than the context, and prompt + max_tokens over it
    long_prompt = "Once upon a time " * 700
    e = err(post(srv, c, {"prompt": long_prompt, "max_tokens": 4}), 400,
            "context_length_exceeded")
    assert "2048" in e["message"]
    err(post(srv, c, {"prompt": "Once upon a time", "max_tokens": 4000}), 400,
        "context_length_exceeded")
    # routes and methods
    err(httpx.get(srv.url("/v2/nothing")), 404)
    r = httpx.get(srv.url("/v1/completions"))
    err(r, 405)
    assert "POST" in r.headers["allow"]
    err(httpx.post(srv.url("/health"), json={}), 405)
    srv.alive()


def test_auth_cors_and_body_limit(guarded):
    g = guarded
    assert httpx.get(g.url("/health")).status_code == 200  # no key needed
    for path in ("/v1/models", "/metrics"):
        e = err(httpx.get(g.url(path)), 401, "invalid_api_key", "authentication_error")
        err(httpx.get(g.url(path), headers={"Authorization": "Bearer wrong"}), 401,
            "invalid_api_key")
    assert e
    err(post(g, "/v1/completions", {"prompt": "x"}), 401)
    ok = {"Authorization": "Bearer " + KEY}
    assert httpx.get(g.url("/v1/models"), headers=ok).status_code == 200
    assert httpx.get(g.url("/v1/models"),
                     headers={"Authorization": "Bearer " + FILE_KEY}).status_code == 200
    err(httpx.get(g.url("/v1/models"), headers={"Authorization": "Basic " + KEY}), 401)
    r = post(g, "/v1/completions", {"prompt": "x", "max_tokens": 2}, headers=ok)
    assert r.status_code == 200, r.text
    # the keep-alive connection stays usable after a 401 with a body
    with httpx.Client(timeout=10) as cl:
        assert cl.post(g.url("/v1/completions"), json={"prompt": "x"}).status_code == 401
        assert cl.get(g.url("/v1/models"), headers=ok).status_code == 200

    # CORS: preflight and simple requests from an allowed origin only
    pre = {"Origin": "http://allowed.example", "Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "authorization, content-type"}
    r = httpx.options(g.url("/v1/chat/completions"), headers=pre)
    assert r.status_code in (200, 204)
    assert r.headers["access-control-allow-origin"] == "http://allowed.example"
    assert "POST" in r.headers["access-control-allow-methods"]
    assert "authorization" in r.headers["access-control-allow-headers"].lower()
    r = httpx.options(g.url("/v1/chat/completions"), headers=dict(pre, Origin="http://evil"))
    assert "access-control-allow-origin" not in r.headers
    r = httpx.get(g.url("/v1/models"), headers=dict(ok, Origin="http://allowed.example"))
    assert r.headers["access-control-allow-origin"] == "http://allowed.example"
    r = httpx.get(g.url("/v1/models"), headers=dict(ok, Origin="http://evil"))
    assert "access-control-allow-origin" not in r.headers

    # body over --max-body: 413 (before auth, before reading it all)
    big = {"prompt": "x" * 70000}
    err(post(g, "/v1/completions", big, headers=ok), 413)
    err(post(g, "/v1/completions", big), 413)
    assert httpx.get(g.url("/health")).status_code == 200
    assert KEY not in g.output() and FILE_KEY not in g.output(), "an API key was logged"


def test_declared_oversized_body_is_answered_413_to_ordinary_clients(guarded):
    """A body declared over --max-body gets its 413 even though the client sends all of it
    before reading (lingering close): httpx sees the response, not a broken pipe."""
    ok = {"Authorization": "Bearer " + KEY, "content-type": "application/json"}
    for size in (70000, 2 << 20):
        r = httpx.post(guarded.url("/v1/completions"), content=b"x" * size, headers=ok,
                       timeout=30)
        assert r.status_code == 413, r.text
        assert r.json()["error"]["code"] == "request_too_large"
    assert httpx.get(guarded.url("/health")).status_code == 200


def test_connect_and_unknown_methods_get_a_status_line(srv):
    for req in (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
                b"CONNECT /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
            s.sendall(req)
            head = s.recv(4096)
        assert head.startswith(b"HTTP/1.1 405 "), head
        assert b"method_not_allowed" in head
    for method in (b"BREW", b"TRACE", b"PROPFIND"):
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
            s.sendall(method + b" /coffee HTTP/1.1\r\nHost: x\r\n\r\n")
            head = s.recv(4096)
        assert head.startswith(b"HTTP/1.1 405 "), head
        assert b"method_not_allowed" in head and b"allow: " in head.lower()
    assert httpx.get(srv.url("/ready")).json() == {"status": "ok"}


def test_small_kv_memory_preempts_or_refuses_never_truncates():
    """--kv-mem 1 (1 MiB: 1632 tokens of this model): the effective context is what the pool
    holds; a request that cannot fit is refused up front; eight 400-token requests that cannot
    all fit at once are preempted and resumed, and each still makes all 400 tokens."""
    s = Server("--kv-mem", "1").start()
    try:
        ctx = httpx.get(s.url("/v1/models")).json()["data"][0]["max_model_len"]
        assert 400 < ctx <= 1640, ctx
        err(post(s, "/v1/completions", {"prompt": "Once", "max_tokens": ctx}), 400,
            "context_length_exceeded")
        def one(i):
            r = post(s, "/v1/completions", {"prompt": "Once upon a time %d" % i,
                                            "max_tokens": 400, "ignore_eos": True})
            assert r.status_code == 200, r.text
            return r.json()
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            for js in ex.map(one, range(8)):
                assert js["usage"]["completion_tokens"] == 400, js["usage"]
                assert js["choices"][0]["finish_reason"] == "length"
    finally:
        assert s.stop() == 0


def test_queue_full_is_429(guarded):
    ok = {"Authorization": "Bearer " + KEY}
    # --max-seqs 1 --queue 2: one long request runs, then a request of n=64 cannot all queue
    with httpx.stream("POST", guarded.url("/v1/completions"), headers=ok, timeout=60,
                      json={"prompt": "Once", "max_tokens": 2000, "stream": True}) as r:
        assert r.status_code == 200
        next(r.iter_text())
        time.sleep(0.2)
        r429 = post(guarded, "/v1/completions", {"prompt": "x", "n": 64, "max_tokens": 4},
                    headers=ok)
        e = err(r429, 429)
        assert e["type"] == "rate_limit_error"
        assert r429.headers.get("retry-after", "").isdigit(), r429.headers
    m = metrics(guarded, headers=ok)
    assert m['inferneo_requests_total{endpoint="/v1/completions",status="429"}'] >= 1


# ---- metrics, concurrency, disconnects ---------------------------------------------------------

def test_metrics(srv):
    before = metrics(srv)
    post(srv, "/v1/completions", {"prompt": "Once", "max_tokens": 8})
    m = metrics(srv)
    key = 'inferneo_requests_total{endpoint="/v1/completions",status="200"}'
    assert m[key] == before.get(key, 0) + 1
    for name in ("inferneo_prompt_tokens_total", "inferneo_generation_tokens_total",
                 "inferneo_prefix_cache_hit_tokens_total", "inferneo_requests_running",
                 "inferneo_requests_waiting", "inferneo_kv_pages_total",
                 "inferneo_kv_pages_in_use", "inferneo_kv_pages_cached",
                 "inferneo_time_to_first_token_seconds_count",
                 "inferneo_time_per_output_token_seconds_count"):
        assert name in m, name
    assert m["inferneo_generation_tokens_total"] >= before["inferneo_generation_tokens_total"] + 8
    assert m['inferneo_time_to_first_token_seconds_bucket{le="+Inf"}'] == \
        m["inferneo_time_to_first_token_seconds_count"] > 0
    text = httpx.get(srv.url("/metrics")).text
    assert "# TYPE inferneo_time_to_first_token_seconds histogram" in text


def test_32_concurrent_streams_are_independent(srv):
    want = {p: post(srv, "/v1/completions", {"prompt": p, "max_tokens": 40,
                                             "temperature": 0}).json()["choices"][0]["text"]
            for p in PROMPTS}

    def one(i):
        p = PROMPTS[i % len(PROMPTS)]
        _, events, done = sse(srv, "/v1/completions", {"prompt": p, "max_tokens": 40,
                                                       "temperature": 0, "stream": True})
        assert done
        return p, "".join(e["choices"][0]["text"] for e in events)

    with concurrent.futures.ThreadPoolExecutor(32) as ex:
        for p, text in ex.map(one, range(32)):
            assert text == want[p]
    wait_idle(srv, 2.0)


def raw_stream(port, body):
    """Opens a streaming request on a raw socket and returns it after the first event."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    data = json.dumps(body).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (len(data), data))
    got = b""
    while b"data: " not in got:
        chunk = s.recv(65536)
        assert chunk, "closed before the first event"
        got += chunk
    return s


def test_50_clients_vanish_mid_stream(srv):
    socks = [raw_stream(srv.port, {"prompt": PROMPTS[i % 4], "max_tokens": 1500,
                                   "stream": True}) for i in range(50)]
    time.sleep(0.3)
    assert metrics(srv)["inferneo_requests_running"] >= 20
    for i, s in enumerate(socks):
        if i % 2:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    wait_idle(srv, 1.0)
    assert "POST /v1/completions 499" in srv.output()
    srv.alive()


# ---- hostile HTTP ------------------------------------------------------------------------------

def raw(port, payload, read=True, timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(payload)
        if not read:
            return b""
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out and b"content-length: " in out.lower():
                head, _, rest = out.partition(b"\r\n\r\n")
                n = int(re.search(rb"content-length: (\d+)", head.lower()).group(1))
                if len(rest) >= n:
                    break
        return out
    finally:
        s.close()


def test_hostile_http(srv):
    port = srv.port
    raw(port, os.urandom(4096))
    raw(port, b"GARBAGE / HTTP/1.1\r\n\r\n")
    raw(port, b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 200000 + b"\r\n\r\n")
    raw(port, b"GET /health HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(3000)) +
        b"\r\n")
    raw(port, b"POST /v1/completions HTTP/1.1\r\nContent-Length: 1000\r\n\r\n{\"prompt\"",
        read=False)
    raw(port, b"POST /v1/completions HTTP/1.1\r\nContent-Length: -5\r\n\r\n")
    raw(port, b"POST /v1/completions HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n")
    raw(port, b"POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello"
        b"\r\n0\r\n\r\n")
    raw(port, b"POST /v1/completions HTTP/1.1\r\nContent-Length: 8\r\n\r\n\xff\xfe\x00{}\x00\xc0\xaf")
    # a slow sender does not stall anyone else
    slow = socket.create_connection(("127.0.0.1", port))
    slow.sendall(b"POST /v1/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
    t0 = time.time()
    for _ in range(5):
        r = post(srv, "/v1/completions", {"prompt": "Once", "max_tokens": 4})
        assert r.status_code == 200
    assert time.time() - t0 < 10
    slow.sendall(b'"pro')
    # 10k-element arrays
    err(post(srv, "/v1/completions", {"prompt": [1] * 10000, "max_tokens": 2}), 400,
        "context_length_exceeded")
    err(post(srv, "/v1/completions", {"prompt": "x", "stop": ["s"] * 10000}), 400)
    err(post(srv, "/v1/completions", {"prompt": ["x"] * 10000}), 400)
    err(post(srv, "/v1/chat/completions",
             {"messages": [{"role": "user", "content": "a"}] * 10000}), 400,
        "context_length_exceeded")
    err(post(srv, "/v1/completions", {"prompt": "x", "max_tokens": [[[[[[1]]]]]] * 10000}), 400)
    deep = b"[" * 100000 + b"]" * 100000
    err(httpx.post(srv.url("/v1/completions"), content=b'{"prompt": ' + deep + b"}"), 400)
    # pipelined requests on one connection are answered in order
    req = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(req * 3)
    got = b""
    deadline = time.time() + 10
    while got.count(b'{"status":"ok"}') < 3 and time.time() < deadline:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    s.close()
    assert got.count(b"HTTP/1.1 200") == 3
    # a POST pipelined behind another request: answered, or the connection closed after the
    # earlier answers, but the server never spins or stalls (libwebsockets 4.1 loops here)
    body = json.dumps({"prompt": "Once", "max_tokens": 2}).encode()
    post_req = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                % len(body)) + body
    for pipeline in (req + post_req, post_req + post_req, req + req + post_req):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(pipeline + b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        got = b""
        with contextlib.suppress(OSError):
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        s.close()
        assert got.startswith(b"HTTP/1.1 200") and b" 400 " not in got, got[:300]
        t0 = time.time()
        r = post(srv, "/v1/completions", {"prompt": "Once", "max_tokens": 2})
        assert r.status_code == 200 and time.time() - t0 < 2, "the server stalled"
    # Content-Length that is not a length: 400 (not 413)
    for bad_len in (b"-5", b"5, 7", b"abc"):
        out = raw(port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " + bad_len
                  + b"\r\n\r\n{}")
        assert out.startswith(b"HTTP/1.1 400") and b"invalid_content_length" in out, out[:200]
    slow.close()
    srv.alive()


# ---- HTTP gaps: oversized headers, chunked bodies, HEAD, pipelining -----------------------------

def raw_all(port, payload, timeout=10):
    """Sends payload (ignoring a send error: the server may answer and close early) and reads
    until the server closes the connection."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out = b""
    try:
        with contextlib.suppress(OSError):
            s.sendall(payload)
        with contextlib.suppress(OSError):
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
    finally:
        s.close()
    return out


def raw_json(out):
    head, _, body = out.partition(b"\r\n\r\n")
    n = int(re.search(rb"content-length: (\d+)", head.lower()).group(1))
    return head, json.loads(body[:n])


def test_oversized_headers_are_431(srv):
    port = srv.port
    cases = [
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\r\n" +
        b"".join(b"X-%d: v\r\n" % i for i in range(3000)) + b"\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"Accept: v\r\n" * 3000 + b"\r\n",
        b"GET /health?" + b"q" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nX-Big: " +
        b"b" * 40000 + b"\r\n\r\n{}",
    ]
    for payload in cases:
        out = raw_all(port, payload)
        assert out.startswith(b"HTTP/1.1 431 "), (payload[:40], out[:200])
        head, body = raw_json(out)
        assert b"connection: close" in head.lower()
        e = body["error"]
        assert set(e) == {"message", "type", "param", "code"}
        assert e["code"] == "request_header_fields_too_large"
        assert e["type"] == "invalid_request_error" and e["message"]
    # a real client sees the status too
    r = httpx.get(srv.url("/health"), headers={"X-Big": "c" * 100000}, timeout=10)
    err(r, 431, "request_header_fields_too_large")
    # the same on a keep-alive connection after a normal request
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        first = s.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        with contextlib.suppress(OSError):
            s.sendall(b"GET /health HTTP/1.1\r\nX-Big: " + b"d" * 50000 + b"\r\n\r\n")
        got = b""
        with contextlib.suppress(OSError):
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        got = first + got
        assert got.startswith(b"HTTP/1.1 200"), got[:200]
        assert b'{"status":"ok"}HTTP/1.1 431 ' in got, got[:400]
    # headers under the limit are fine
    r = httpx.get(srv.url("/health"), headers={"X-Fine": "e" * 10000})
    assert r.status_code == 200
    assert re.search(r"GET /health 431 ", srv.output())
    srv.alive()


def chunked(body, sizes=(7, 1, 30)):
    out, at, k = b"", 0, 0
    while at < len(body):
        piece = body[at:at + sizes[k % len(sizes)]]
        out += b"%X;ext=%d\r\n" % (len(piece), k) + piece + b"\r\n"
        at += len(piece)
        k += 1
    return out + b"0\r\nX-Trailer: yes\r\n\r\n"


def test_chunked_request_bodies(srv, guarded):
    req = {"prompt": "Once upon a time", "max_tokens": 6, "temperature": 0}
    want = post(srv, "/v1/completions", req).json()["choices"][0]["text"]

    def pieces():
        data = json.dumps(req).encode()
        for i in range(0, len(data), 5):
            yield data[i:i + 5]

    # httpx sends a generator body with Transfer-Encoding: chunked and no Content-Length
    r = httpx.post(srv.url("/v1/completions"), content=pieces(),
                   headers={"Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["text"] == want
    # streamed answer to a chunked request
    r = httpx.post(srv.url("/v1/completions"), content=pieces(), timeout=60)
    assert r.status_code == 200
    # chunk extensions, trailers, upper-case hex, "Chunked"
    body = json.dumps(req).encode()
    out = raw_all(srv.port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                  b"Transfer-Encoding: Chunked\r\n\r\n" + chunked(body, (26, 3, 200)))
    head, js = raw_json(out)
    assert head.startswith(b"HTTP/1.1 200") and b"connection: close" in head.lower(), head
    assert js["choices"][0]["text"] == want
    # an empty chunked body is an empty body
    out = raw_all(srv.port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400") and b"invalid_json" in out, out[:300]
    # malformed framing
    for bad in (b"zz\r\n", b"5\r\nhelloXX", b"5\nhello\r\n0\r\n\r\n", b"1234567890abcdef0\r\n",
                b"\r\n"):
        out = raw_all(srv.port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n" + bad)
        assert out.startswith(b"HTTP/1.1 4") and b"connection: close" in out.lower(), out[:300]
        assert b"invalid_chunked_body" in out or b"request_too_large" in out, out[:300]
    # other transfer codings, or both framings at once, are refused
    out = raw_all(srv.port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                  b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 501"), out[:200]
    out = raw_all(srv.port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400"), out[:200]

    # --max-body (65536) applies to the decoded body: many small chunks, or one huge size
    g = guarded
    ok = {"Authorization": "Bearer " + KEY, "Content-Type": "application/json"}
    big = json.dumps({"prompt": "x" * 70000}).encode()
    # (raw socket: the server may answer 413 and close while the client is still sending,
    # which an HTTP client reports as a broken pipe instead of the response)
    out = raw_all(g.port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                  + KEY.encode() + b"\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n" + chunked(big, (4096,)))
    assert out.startswith(b"HTTP/1.1 413") and b"request_too_large" in out, out[:300]
    out = raw_all(g.port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                  + KEY.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\nffffffff\r\nabc")
    assert out.startswith(b"HTTP/1.1 413"), out[:200]
    # errors decided from the headers still come after the body has been read
    r = httpx.post(g.url("/v1/completions"), content=pieces(), timeout=30)
    err(r, 401, "invalid_api_key")
    r = httpx.post(g.url("/v1/completions"), content=pieces(), headers=ok, timeout=60)
    assert r.status_code == 200, r.text
    srv.alive()


def test_head_on_get_routes(srv, guarded):
    for path in ("/health", "/v1/models", "/v1/models/" + ALIAS, "/metrics"):
        g = httpx.get(srv.url(path))
        h = httpx.head(srv.url(path))
        assert h.status_code == 200 and h.content == b"", (path, h.status_code)
        assert h.headers["content-type"] == g.headers["content-type"]
        if path != "/metrics":  # the metrics text changes between the two requests
            assert h.headers["content-length"] == g.headers["content-length"]
        else:
            assert int(h.headers["content-length"]) > 0
    assert re.search(r"HEAD /health 200 ", srv.output())
    # HEAD is not a POST route's method; GET routes advertise it
    h = httpx.head(srv.url("/v1/completions"))
    assert h.status_code == 405 and h.content == b"" and "HEAD" not in h.headers["allow"]
    r = httpx.post(srv.url("/health"), json={})
    assert r.status_code == 405 and "HEAD" in r.headers["allow"]
    h = httpx.head(srv.url("/nope"))
    assert h.status_code == 404 and h.content == b""
    # keys are required as for GET
    assert httpx.head(guarded.url("/v1/models")).status_code == 401
    assert httpx.head(guarded.url("/v1/models"),
                      headers={"Authorization": "Bearer " + KEY}).status_code == 200
    # pipelined HEAD/GET on one keep-alive connection: bodies only for the GETs
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"HEAD /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        got = b""
        with contextlib.suppress(OSError):
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
    parts = got.split(b"HTTP/1.1 ")[1:]
    assert len(parts) == 4, got
    assert all(p.startswith(b"200") for p in parts)
    assert parts[0].endswith(b"\r\n\r\n") and parts[2].endswith(b"\r\n\r\n")
    assert parts[1].endswith(b'{"status":"ok"}') and parts[3].endswith(b'{"status":"ok"}')


# ---- lifecycle ---------------------------------------------------------------------------------

def test_bad_model_path_fails_cleanly():
    p = subprocess.run([BIN, "serve", "-m", "/nonexistent.gguf", "--port", str(free_port())],
                       capture_output=True, timeout=30)
    assert p.returncode != 0
    assert b"nonexistent" in p.stderr


def test_sigterm_lets_streams_finish_and_exits_0():
    s = Server().start()
    try:
        result = {}

        def stream():
            result["r"] = sse(s, "/v1/completions", {"prompt": "Once", "max_tokens": 150,
                                                     "stream": True, "temperature": 0})

        t = threading.Thread(target=stream)
        t.start()
        time.sleep(0.3)
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        try:  # new requests are refused while draining
            r = httpx.post(s.url("/v1/completions"), json={"prompt": "x"}, timeout=5)
            assert r.status_code == 503
        except httpx.TransportError:
            pass
        t.join(20)
        _, events, done = result["r"]
        assert done and events[-1]["choices"][0]["finish_reason"] in ("length", "stop")
        assert s.proc.wait(10) == 0
    finally:
        if s.proc.poll() is None:
            s.proc.kill()


def test_loading_state_is_503_then_ready():
    """The port opens before the model is loaded (INFERNEO_LOAD_DELAY_MS holds the load back):
    /health says 503 "loading", requests get 503 model_loading, then everything works."""
    port = free_port()
    env = dict(os.environ, INFERNEO_LOAD_DELAY_MS="2500")
    proc = subprocess.Popen([BIN, "serve", "-m", MODEL, "--port", str(port), "-t", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    url = "http://127.0.0.1:%d" % port
    try:
        deadline = time.time() + 10
        while True:
            try:
                r = httpx.get(url + "/health", timeout=5)
                break
            except httpx.TransportError:
                assert time.time() < deadline, "the port did not open while loading"
                time.sleep(0.02)
        assert r.status_code == 503 and r.json() == {"status": "loading"}, r.text
        r = httpx.post(url + "/v1/completions", json={"prompt": "Once", "max_tokens": 2},
                       timeout=5)
        err(r, 503, "model_loading")
        assert r.headers.get("retry-after", "").isdigit(), r.headers
        r = httpx.post(url + "/v1/chat/completions",
                       json={"messages": [{"role": "user", "content": "hi"}]}, timeout=5)
        err(r, 503, "model_loading")
        deadline = time.time() + 30
        while httpx.get(url + "/health", timeout=5).status_code != 200:
            assert time.time() < deadline and proc.poll() is None, "never became ready"
            time.sleep(0.05)
        r = httpx.post(url + "/v1/completions",
                       json={"prompt": "Once", "max_tokens": 3, "temperature": 0}, timeout=30)
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 3, r.text
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()


def test_sigterm_while_loading_exits_promptly():
    port = free_port()
    env = dict(os.environ, INFERNEO_LOAD_DELAY_MS="60000")
    proc = subprocess.Popen([BIN, "serve", "-m", MODEL, "--port", str(port), "-t", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.time() + 10
        while True:
            try:
                assert httpx.get("http://127.0.0.1:%d/health" % port, timeout=5).status_code == 503
                break
            except httpx.TransportError:
                assert time.time() < deadline, "the port did not open while loading"
                time.sleep(0.02)
        t0 = time.time()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert time.time() - t0 < 5
    finally:
        if proc.poll() is None:
            proc.kill()
