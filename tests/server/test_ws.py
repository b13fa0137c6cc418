"""Black-box tests of the WebSocket API of `inferneo serve` (the user's spec:
../shared/seed/websocket-api.md; decisions it leaves open: DESIGN.md section 8).

The real binary is started on a free loopback port with models/stories260K.gguf and driven with
the `websockets` library (Debian's, legacy asyncio API), httpx, and raw sockets where a library
would refuse to send what we need (invalid UTF-8, bad fragmentation, frames before the upgrade).

The seed's Python client is extracted from the seed markdown at test time and run unmodified; the
only thing the test changes is the environment: `websockets.connect` is wrapped so that the
seed's hard-coded ws://localhost:8000 reaches the port this test's server listens on.
"""
import asyncio
import base64
import contextlib
import hashlib
import io
import json
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
import websockets
from websockets.exceptions import ConnectionClosed

ROOT = os.environ.get("INFERNEO_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("INFERNEO_BIN") or os.path.join(ROOT, "build", "inferneo")
SEED = os.path.join(ROOT, "..", "shared", "seed", "websocket-api.md")
if not os.path.exists(SEED):
    SEED = os.path.join(ROOT, "docs", "websocket-api.md")
MODEL = os.path.join(ROOT, "models", "stories260K.gguf")

ALIAS = "meta-llama/Llama-2-7b-chat-hf"  # the model name the seed's clients ask for
CHAT = "/v1/chat/completions"
COMPL = "/v1/completions"
STORY = "Once upon a time"
PROMPTS = ["Once upon a time", "The little dog", "Lily and Tom", "The cat sat",
           "One day, a bird", "Sam had a red ball", "The sun was", "Mom said"]
# The served names: the seed's clients ask for ALIAS; "stories" stays the reported id.
SERVED_ARGS = ["--served-model-name", "stories," + ALIAS]


# ---- the server process --------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `inferneo serve` process; its output is kept for failure messages."""

    def __init__(self, *extra):
        self.extra = list(extra)
        self.proc = None
        self.lines = []
        self.lock = threading.Lock()

    def start(self):
        for attempt in range(3):
            self.port = free_port()
            cmd = [BIN, "serve", "-m", MODEL, "--host", "127.0.0.1", "--port", str(self.port)]
            cmd += self.extra
            self.cmd = " ".join(cmd)
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         cwd=ROOT)
            self.reader = threading.Thread(target=self._read, daemon=True)
            self.reader.start()
            deadline = time.time() + 30
            while time.time() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    if httpx.get(self.url("/health"), timeout=2).status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("`%s`: GET /health never answered 200 within 30 s; output:\n%s"
                                     % (self.cmd, self.output()))
            if "in use" not in self.output():  # a port race: try another port
                break
        raise AssertionError("`%s` exited with status %s before serving; output:\n%s"
                             % (self.cmd, self.proc.returncode, self.output()))

    def _read(self):
        for line in iter(self.proc.stdout.readline, b""):
            with self.lock:
                self.lines.append(line.decode("utf-8", "replace"))

    def output(self, last=60):
        time.sleep(0.05)
        with self.lock:
            return "".join(self.lines[-last:])

    def all_output(self):
        with self.lock:
            return "".join(self.lines)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def ws_url(self, path=CHAT):
        return "ws://127.0.0.1:%d%s" % (self.port, path)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self, what):
        if not self.alive():
            raise AssertionError("the server died (status %s) %s; last output:\n%s"
                                 % (self.proc.returncode, what, self.output()))
        r = httpx.get(self.url("/health"), timeout=10)
        assert r.status_code == 200, "GET /health answered %d %s" % (r.status_code, what)

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def check_clean(self):
        """No sanitizer report (ASan aborts; UBSan prints and goes on) in the server's output."""
        out = self.all_output()
        m = re.search(r"runtime error:|AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer",
                      out)
        assert not m, "the server's output has a sanitizer report:\n%s" % out[max(0, m.start()
                                                                                  - 2000):][:6000]

    def stop(self, timeout=20):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the server did not exit within %d s of SIGTERM; output:\n%s"
                                 % (timeout, self.output()))


@pytest.fixture(scope="module")
def srv():
    s = Server(*SERVED_ARGS).start()
    yield s
    s.stop()
    s.check_clean()


# ---- WebSocket helpers ---------------------------------------------------------------------------

async def connect(server, path=CHAT, **kw):
    kw.setdefault("max_size", 1 << 24)
    kw.setdefault("max_queue", None)  # never stop reading: close frames must get through
    return await websockets.connect(server.ws_url(path), open_timeout=10, ping_interval=None,
                                    close_timeout=5, compression=None, **kw)


async def recv_json(ws, what, timeout=30):
    try:
        m = await asyncio.wait_for(ws.recv(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError("the server sent nothing for %g s while we waited for %s"
                             % (timeout, what)) from None
    except ConnectionClosed as e:
        raise AssertionError("the server closed the socket (code %s, reason %r) while we waited "
                             "for %s" % (e.code, e.reason, what)) from None
    assert isinstance(m, str), ("the server sent a binary frame (%d bytes) while we waited for %s;"
                                " every frame must be one JSON text message" % (len(m), what))
    try:
        return json.loads(m)
    except ValueError:
        raise AssertionError("the server sent a text frame that is not JSON while we waited for "
                             "%s: %r" % (what, m[:300])) from None


async def expect_pong(ws, what):
    """{"type":"ping"} must be answered by {"type":"pong"}: proves the socket is open and served."""
    await ws.send(json.dumps({"type": "ping"}))
    while True:
        d = await recv_json(ws, "the pong to {\"type\":\"ping\"} " + what, timeout=10)
        if d.get("type") == "pong":
            return
        # frames of requests still finishing may come first; anything else is unexpected
        assert "choices" in d, "expected {\"type\":\"pong\"} %s, got %r" % (what, d)


class Result:
    def __init__(self):
        self.text = ""
        self.frames = []
        self.finish = None
        self.error = None
        self.n_content = 0


def frame_text(d):
    ch = d["choices"][0]
    if "delta" in ch:
        return ch["delta"].get("content") or ""
    return ch.get("text") or ""


async def collect(ws, ids, timeout=60, what="the requests"):
    """Reads frames until every request in ids has finished (a finish_reason or an error)."""
    res = {i: Result() for i in ids}
    pending = set(ids)
    deadline = time.time() + timeout
    while pending:
        left = deadline - time.time()
        assert left > 0, "requests %r of %s never finished within %g s" % (
            sorted(pending, key=str), what, timeout)
        d = await recv_json(ws, "the frames of requests %r of %s" % (sorted(pending, key=str),
                                                                       what), timeout=left)
        if d.get("type") == "pong":
            continue
        assert "request_id" in d, ("a frame about a request has no top-level request_id (the "
                                   "server must echo it in every frame): %r" % d)
        rid = d["request_id"]
        assert rid in res, ("frame with request_id %r (type %s) that we never sent (ours: %r); "
                            "the id must be echoed exactly, same JSON type: %r"
                            % (rid, type(rid).__name__, list(res), d))
        r = res[rid]
        assert rid in pending, "frame for request %r after it had finished: %r" % (rid, d)
        r.frames.append(d)
        if "error" in d:
            r.error = d["error"]
            pending.discard(rid)
            continue
        assert d.get("choices"), "frame without choices or error: %r" % d
        t = frame_text(d)
        if t:
            r.n_content += 1
        r.text += t
        fr = d["choices"][0].get("finish_reason")
        if fr:
            r.finish = fr
            pending.discard(rid)
    return res


def ok(r, rid, what=""):
    assert r.error is None, "request %r %s got an error frame: %r" % (rid, what, r.error)
    assert r.finish in ("stop", "length"), "request %r %s finished with %r" % (rid, what, r.finish)
    return r.text


def chat_req(content, max_tokens=24, **kw):
    d = {"model": ALIAS, "messages": [{"role": "user", "content": content}],
         "max_tokens": max_tokens, "temperature": 0, "stream": True}
    d.update(kw)
    return d


def compl_req(prompt, max_tokens=24, **kw):
    d = {"model": ALIAS, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
         "stream": True}
    d.update(kw)
    return d


async def one_request(server, path, req, rid="one", timeout=60):
    ws = await connect(server, path)
    try:
        await ws.send(json.dumps(dict(req, request_id=rid)))
        return (await collect(ws, [rid], timeout=timeout))[rid]
    finally:
        await ws.close()


def rest(server, path, req):
    body = {k: v for k, v in req.items() if k != "stream"}
    r = httpx.post(server.url(path), json=body, timeout=60)
    assert r.status_code == 200, "REST %s answered %d: %s" % (path, r.status_code, r.text[:500])
    ch = r.json()["choices"][0]
    return ch["message"]["content"] if path == CHAT else ch["text"]


def metrics(server):
    r = httpx.get(server.url("/metrics"), timeout=10)
    assert r.status_code == 200, "GET /metrics answered %d" % r.status_code
    out = {}
    for line in r.text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if m:
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(3))
    for name in ("inferneo_requests_running", "inferneo_kv_pages_in_use"):
        assert name in out, "GET /metrics has no %s gauge:\n%s" % (name, r.text[:2000])
    return out


def wait_idle(server, within, what):
    """running requests 0 and KV pages in use 0, polled for `within` seconds."""
    t0 = time.time()
    while True:
        m = metrics(server)
        run, pages = m["inferneo_requests_running"], m["inferneo_kv_pages_in_use"]
        if run == 0 and pages == 0:
            return time.time() - t0
        if time.time() - t0 > within:
            raise AssertionError(
                "%.2f s after %s, /metrics still shows inferneo_requests_running %g and "
                "inferneo_kv_pages_in_use %g (want 0 and 0 within %g s): requests of gone clients "
                "are not cancelled or their KV pages not freed" % (time.time() - t0, what, run,
                                                                   pages, within))
        time.sleep(0.02)


def run(coro):
    return asyncio.run(coro)


# ---- raw sockets (what the libraries will not send) ----------------------------------------------

def ws_frame(opcode, payload=b"", fin=True, mask=True, rsv=0, declared=None):
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload) if declared is None else declared
    mb = 0x80 if mask else 0
    if n < 126:
        hdr = bytes([b0, mb | n])
    elif n < 65536:
        hdr = bytes([b0, mb | 126]) + struct.pack(">H", n)
    else:
        hdr = bytes([b0, mb | 127]) + struct.pack(">Q", n)
    if mask:
        key = os.urandom(4)
        hdr += key
        if payload:
            k = (key * (len(payload) // 4 + 1))[:len(payload)]
            payload = (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(
                len(payload), "big")
    return hdr + payload


def upgrade_request(port, path=CHAT, key=None, extra=""):
    key = key or base64.b64encode(os.urandom(16)).decode()
    return ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n"
            % (path, port, key, extra)).encode(), key


class RawWS:
    """A hand-driven client: blocking socket, explicit frames."""

    def __init__(self, port, path=COMPL, pre=b"", expect_101=True):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        req, key = upgrade_request(port, path)
        self.sock.sendall(req + pre)
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.head = head.decode("latin-1")
        self.status = int(self.head.split(" ")[1]) if self.head.startswith("HTTP/1.1 ") else 0
        if expect_101:
            assert self.status == 101, "the upgrade was answered %r" % self.head[:200]
            want = base64.b64encode(hashlib.sha1(
                (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
            assert want in self.head, "wrong or missing Sec-WebSocket-Accept: %r" % self.head

    def send(self, data):
        self.sock.sendall(data)

    def _need(self, n, deadline):
        while len(self.buf) < n:
            self.sock.settimeout(max(0.01, deadline - time.time()))
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk

    def recv_frame(self, timeout=10):
        """(opcode, payload), or ("eof", None) / ("timeout", None)."""
        deadline = time.time() + timeout
        try:
            self._need(2, deadline)
            b0, b1 = self.buf[0], self.buf[1]
            n, off = b1 & 0x7F, 2
            if n == 126:
                self._need(4, deadline)
                n, off = struct.unpack(">H", self.buf[2:4])[0], 4
            elif n == 127:
                self._need(10, deadline)
                n, off = struct.unpack(">Q", self.buf[2:10])[0], 10
            assert not b1 & 0x80, "the server sent a masked frame (RFC 6455 5.1 forbids it)"
            self._need(off + n, deadline)
            payload = self.buf[off:off + n]
            self.buf = self.buf[off + n:]
            return b0 & 0x0F, payload
        except EOFError:
            return "eof", None
        except (socket.timeout, TimeoutError):
            return "timeout", None
        except ConnectionResetError:
            return "eof", None

    def outcome(self, timeout=10):
        """What the server did after a bad frame: ("error", obj) for a JSON error frame,
        ("close", code) for a close frame, ("eof"|"timeout", None), ("text", obj) otherwise."""
        deadline = time.time() + timeout
        while True:
            op, p = self.recv_frame(max(0.01, deadline - time.time()))
            if op in ("eof", "timeout"):
                return op, None
            if op == 8:
                return "close", struct.unpack(">H", p[:2])[0] if len(p) >= 2 else 1005
            if op == 1:
                d = json.loads(p.decode("utf-8"))
                return ("error", d) if "error" in d else ("text", d)
            if op in (9, 10):
                continue
            return "opcode%d" % op, p

    def ping_pong(self, what):
        self.send(ws_frame(1, b'{"type":"ping"}'))
        deadline = time.time() + 10
        while True:
            op, p = self.recv_frame(max(0.01, deadline - time.time()))
            assert op == 1, ("after %s the socket no longer answers {\"type\":\"ping\"} (got %r %r)"
                             % (what, op, p))
            if json.loads(p.decode()).get("type") == "pong":
                return

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.close()


# ---- the seed's Python client, run unmodified ----------------------------------------------------

def seed_blocks(lang):
    """The fenced blocks of one language in the seed, with the heading above each."""
    text = open(SEED, encoding="utf-8").read()
    blocks, heading = [], None
    it = iter(text.splitlines(keepends=True))
    for line in it:
        if line.startswith("#"):
            heading = line.strip("# \n")
        elif line.strip() == "```" + lang:
            body = []
            for l2 in it:
                if l2.strip() == "```":
                    break
                body.append(l2)
            blocks.append((heading, "".join(body)))
    return blocks


@contextlib.contextmanager
def seed_host_redirect(server):
    """The seed hard-codes ws://localhost:8000; send it to our server, changing nothing else."""
    real = websockets.connect

    def connect_redirected(uri, *a, **kw):
        return real(uri.replace("ws://localhost:8000", "ws://127.0.0.1:%d" % server.port), *a, **kw)

    websockets.connect = connect_redirected
    try:
        yield
    finally:
        websockets.connect = real


def test_seed_python_client_streams_and_returns_full_response(srv):
    blocks = seed_blocks("python")
    assert len(blocks) == 1, "expected one ```python block in the seed, found %d" % len(blocks)
    code = blocks[0][1]
    assert "class InferneoWebSocketClient" in code and "asyncio.run(main())" in code
    ns = {"__name__": "seed_client"}
    out = io.StringIO()
    with seed_host_redirect(srv), contextlib.redirect_stdout(out):
        exec(compile(code, "websocket-api.md:python", "exec"), ns)  # runs the seed's main()
    s = out.getvalue()
    m = re.search(r"\n\nFull response: (.*)\n\Z", s, re.S)
    assert m, "the seed's Python client did not print its full response; stdout: %r" % s[-500:]
    full = m.group(1)
    assert full, "the seed's Python client returned an empty response (stdout %r)" % s
    streamed = s[:m.start()]
    assert streamed == full, ("the streamed deltas (%r) differ from the returned full response "
                              "(%r)" % (streamed[:200], full[:200]))

    # Drive the same (unmodified) class: greedy, two requests in a row on its one socket.
    async def drive():
        client = ns["InferneoWebSocketClient"](srv.ws_url(CHAT))
        try:
            outs = []
            for q in ("Tell me a story", "What is a cat?"):
                with contextlib.redirect_stdout(io.StringIO()):
                    outs.append(await client.send_request(chat_req(q, 40)))
            return outs
        finally:
            await client.close()

    outs = run(drive())
    for q, got in zip(("Tell me a story", "What is a cat?"), outs):
        want = rest(srv, CHAT, chat_req(q, 40))
        assert got == want, ("greedy text over WebSocket (seed client) %r != REST %r for %r"
                             % (got, want, q))


# ---- protocol basics -----------------------------------------------------------------------------

def test_chunk_format_and_greedy_equals_rest(srv):
    async def body():
        ws = await connect(srv, CHAT)
        ws2 = await connect(srv, COMPL)
        try:
            await ws.send(json.dumps(chat_req("Tell me about a dog", 40, request_id="c1")))
            chat = (await collect(ws, ["c1"]))["c1"]
            await ws.send(json.dumps(chat_req("Tell me about a dog", 40, stream=False,
                                              request_id="c2")))
            full = await recv_json(ws, "the stream:false chat response")
            await ws2.send(json.dumps(compl_req(STORY, 40, request_id=7)))
            comp = (await collect(ws2, [7]))[7]
            await ws2.send(json.dumps(compl_req(STORY, 40, stream=False, request_id=8)))
            cfull = await recv_json(ws2, "the stream:false completion response")
            # no request_id: the server makes one up and echoes it in every frame
            await ws2.send(json.dumps(compl_req(STORY, 4)))
            anon = []
            while True:
                d = await recv_json(ws2, "the frames of a request without request_id")
                anon.append(d)
                if d.get("error") or d["choices"][0].get("finish_reason"):
                    break
            return chat, full, comp, cfull, anon
        finally:
            await ws.close()
            await ws2.close()

    chat, full, comp, cfull, anon = run(body())
    ok(chat, "c1", "(chat, stream)")
    f0 = chat.frames[0]
    for d in chat.frames:
        assert d.get("object") == "chat.completion.chunk", "chat chunk object: %r" % d
        assert isinstance(d.get("id"), str) and d["id"], "chunk without id: %r" % d
        assert isinstance(d.get("created"), int), "chunk without created: %r" % d
        assert isinstance(d.get("model"), str), "chunk without model: %r" % d
        assert d["choices"][0].get("index") == 0 and "delta" in d["choices"][0], d
    assert f0["choices"][0]["delta"].get("role") == "assistant", (
        "the first chat chunk must carry delta.role='assistant': %r" % f0)
    assert all(d["choices"][0]["finish_reason"] is None for d in chat.frames[:-1]), (
        "finish_reason must be null until the last chunk")
    assert len({d["id"] for d in chat.frames}) == 1, "chunks of one request carry different ids"
    assert full.get("request_id") == "c2", "stream:false response without request_id: %r" % full
    assert full.get("object") == "chat.completion", "stream:false chat: %r" % full
    want_chat = rest(srv, CHAT, chat_req("Tell me about a dog", 40))
    assert chat.text == want_chat, "WS streamed greedy chat %r != REST %r" % (chat.text, want_chat)
    assert full["choices"][0]["message"]["content"] == want_chat, (
        "WS stream:false chat %r != REST %r" % (full["choices"][0]["message"]["content"],
                                               want_chat))
    ok(comp, 7, "(completion, stream)")
    assert all(d.get("object") == "text_completion" for d in comp.frames), comp.frames[0]
    want = rest(srv, COMPL, compl_req(STORY, 40))
    assert want, "REST greedy completion is empty"
    assert comp.text == want, "WS streamed greedy completion %r != REST %r" % (comp.text, want)
    assert cfull.get("request_id") == 8 and cfull["choices"][0]["text"] == want, (
        "WS stream:false completion %r != REST %r" % (cfull, want))
    rids = {json.dumps(d.get("request_id")) for d in anon}
    assert len(rids) == 1 and "null" not in rids, (
        "a request without request_id must get a server-made id echoed in every frame: %r" % anon)


def test_ping_pong_and_close_handshake(srv):
    async def body():
        ws = await connect(srv, COMPL)
        await expect_pong(ws, "on an idle socket")
        await ws.send(json.dumps(compl_req(STORY, 200, request_id="p")))
        await ws.send(json.dumps({"type": "ping"}))
        got_pong = False
        while True:  # the pong may come among the chunks of the running request
            d = await recv_json(ws, "chunks and the pong")
            if d.get("type") == "pong":
                got_pong = True
                continue
            assert "error" not in d, d
            if d["choices"][0].get("finish_reason"):
                break
        assert got_pong, "{\"type\":\"ping\"} sent during a request was never answered"
        pong = await ws.ping(b"rfc")  # RFC 6455 ping
        await asyncio.wait_for(pong, 10)
        await ws.close()
        assert ws.close_code == 1000, "the server answered our close 1000 with %r" % ws.close_code

    run(body())
    # a close frame without a status code is answered with 1000
    r = RawWS(srv.port)
    r.send(ws_frame(8, b""))
    kind, code = r.outcome(10)
    r.close()
    assert (kind, code) == ("close", 1000), (
        "a client close without a status must be answered with close 1000, got %r %r"
        % (kind, code))


def test_idle_sockets_are_pinged_and_silent_ones_dropped():
    """--ws-ping-interval 1: an idle socket gets an RFC 6455 ping each second; one that answers
    stays open and usable, one that never answers is dropped after about 3 intervals."""
    s = Server(*SERVED_ARGS, "--ws-ping-interval", "1").start()
    try:
        live, mute = RawWS(s.port), RawWS(s.port)
        t0 = time.time()
        pings = 0
        while time.time() - t0 < 6:
            op, p = live.recv_frame(0.5)
            if op == 9:
                pings += 1
                live.send(ws_frame(10, p))  # pong with the ping's payload
            else:
                assert op == "timeout", ("an idle socket got %r %r" % (op, p))
        assert pings >= 2, "an idle socket got %d pings in 6 s with --ws-ping-interval 1" % pings
        live.ping_pong("answering the server's pings")
        live.close()
        # the socket that never answered: by now pings then a close, or EOF
        seen = []
        while True:
            op, p = mute.recv_frame(5)
            seen.append(op)
            if op in ("eof", "timeout", 8):
                break
        assert 9 in seen and seen[-1] in ("eof", 8), (
            "a socket that never answers pings must be dropped: saw %r" % seen)
        mute.close()
        assert s.rss_kib() > 0
    finally:
        assert s.stop() == 0


# ---- multiplexing and cancel ---------------------------------------------------------------------

def test_eight_multiplexed_equal_eight_sockets(srv):
    ids = ["r0", 1, "r2", 3, "r4", 5, "r6", 7]  # strings and numbers: both echoed as sent

    async def body():
        ws = await connect(srv, COMPL)
        try:
            for rid, p in zip(ids, PROMPTS):
                await ws.send(json.dumps(compl_req(p, 48, request_id=rid)))
            mux = await collect(ws, ids, what="8 requests on one socket")
        finally:
            await ws.close()
        sep = await asyncio.gather(*[one_request(srv, COMPL, compl_req(p, 48), rid)
                                     for rid, p in zip(ids, PROMPTS)])
        return mux, sep

    mux, sep = run(body())
    for rid, p, s in zip(ids, PROMPTS, sep):
        a, b = ok(mux[rid], rid, "(multiplexed)"), ok(s, rid, "(own socket)")
        assert a == b, ("request %r (%r): multiplexed text %r != own-socket text %r"
                        % (rid, p, a, b))
    assert len({ok(s, 0) for s in sep}) > 1, "8 different prompts gave one text"


def test_numeric_request_ids_compare_by_value(srv):
    """request_id 1 and 1.0 are the same id (numbers compare by value; a string "1" is another
    id): a duplicate while in flight is refused, and a cancel with 1.0 cancels request 1."""
    async def body():
        ws = await connect(srv, COMPL)
        try:
            await ws.send(json.dumps(compl_req("Once upon a time", max_tokens=1900,
                                               ignore_eos=True, stream=True, request_id=1)))
            first = await recv_json(ws, "the first chunk of request 1")
            assert first["request_id"] == 1
            await ws.send(json.dumps(compl_req("x", max_tokens=2, request_id=1.0)))
            await ws.send(json.dumps({"type": "cancel", "request_id": 1.0}))
            dup = fin = None
            while fin is None:
                d = await recv_json(ws, "the duplicate error and the cancelled end")
                if "error" in d:
                    dup = d
                elif d["choices"][0].get("finish_reason"):
                    fin = d
            assert dup["error"]["code"] == "duplicate_request_id", dup
            assert fin["choices"][0]["finish_reason"] == "cancelled", fin
            assert fin["request_id"] == 1
            await expect_pong(ws, "after the cancel")
        finally:
            await ws.close()
    run(body())


def test_cancel_one_leaves_others_intact(srv):
    async def body():
        ws = await connect(srv, COMPL)
        try:
            await ws.send(json.dumps(compl_req(PROMPTS[1], 1500, request_id="victim")))
            await ws.send(json.dumps(compl_req(PROMPTS[0], 160, request_id="a")))
            await ws.send(json.dumps(compl_req(PROMPTS[2], 160, request_id="b")))
            # wait for the victim's first content, then cancel it
            seen = {"victim": Result(), "a": Result(), "b": Result()}
            while seen["victim"].n_content < 2:
                d = await recv_json(ws, "the first chunks of the victim")
                assert "error" not in d, d
                r = seen[d["request_id"]]
                r.frames.append(d)
                r.text += frame_text(d)
                r.n_content += bool(frame_text(d))
                assert not d["choices"][0].get("finish_reason") or d["request_id"] != "victim", (
                    "the 1500-token victim finished before we could cancel it: %r" % d)
                if d["choices"][0].get("finish_reason"):
                    r.finish = d["choices"][0]["finish_reason"]
            t0 = time.time()
            await ws.send(json.dumps({"type": "cancel", "request_id": "victim"}))
            pending = [k for k in seen if seen[k].finish is None]
            rest_ = await collect(ws, pending, what="the requests after the cancel")
            for k, v in rest_.items():
                seen[k].text += v.text
                seen[k].frames += v.frames
                seen[k].finish, seen[k].error = v.finish, v.error
            dt = time.time() - t0
            await expect_pong(ws, "after a cancel")
            return seen, dt
        finally:
            await ws.close()

    seen, dt = run(body())
    v = seen["victim"]
    assert v.error is None, "the cancelled request got an error frame: %r" % v.error
    assert v.finish == "cancelled", ("{\"type\":\"cancel\"} must end the request with "
                                     "finish_reason 'cancelled'; got %r" % v.finish)
    assert len(v.frames) < 1500, "the cancelled request ran to the end"
    for k, p in (("a", PROMPTS[0]), ("b", PROMPTS[2])):
        want = rest(srv, COMPL, compl_req(p, 160))
        assert ok(seen[k], k) == want, ("request %r beside the cancelled one: %r != alone %r"
                                        % (k, seen[k].text, want))
    wait_idle(srv, 2.0, "the cancel")


def test_default_inflight_limit_16(srv):
    async def body():
        ws = await connect(srv, COMPL)
        for i in range(17):
            await ws.send(json.dumps(compl_req(STORY, 1500, request_id=i)))
        err = None
        deadline = time.time() + 30
        while err is None and time.time() < deadline:
            d = await recv_json(ws, "a too_many_requests error for the 17th request in flight")
            if "error" in d:
                err = d
            else:
                assert not d["choices"][0].get("finish_reason"), (
                    "request %r finished before 17 were in flight: %r" % (d["request_id"], d))
        await ws.close()  # a client close cancels all its requests at once
        t0 = time.time()
        return err, t0

    err, t0 = run(body())
    assert err["request_id"] == 16, "the error is not about the 17th request: %r" % err
    assert err["error"].get("code") == "too_many_requests", (
        "17 requests in flight on one socket (default --ws-max-inflight 16): want error code "
        "too_many_requests, got %r" % err)
    wait_idle(srv, 1.0, "a client closed a socket with 16 requests in flight")


# ---- errors --------------------------------------------------------------------------------------

def check_error(d, code, rid, what, etype="invalid_request_error"):
    assert "error" in d and "choices" not in d, "%s: want an error frame, got %r" % (what, d)
    e = d["error"]
    assert isinstance(e, dict) and isinstance(e.get("message"), str) and e["message"], (
        "%s: the error must be {message, type, code}: %r" % (what, d))
    assert e.get("type") == etype, "%s: error type %r, want %r: %r" % (what, e.get("type"), etype,
                                                                       d)
    if code:
        assert e.get("code") == code, "%s: error code %r, want %r: %r" % (what, e.get("code"), code,
                                                                          d)
    if rid is not None:
        assert d.get("request_id") == rid, "%s: the error frame must echo request_id %r: %r" % (
            what, rid, d)


def test_error_frames_keep_socket_open(srv):
    long_prompt = " ".join("word%d" % i for i in range(3000))
    cases = [
        ("unknown model", json.dumps(chat_req("Hi", model="no-such-model", request_id="m")),
         "model_not_found", "m"),
        ("invalid JSON", '{"model": "x", "messages": [', "invalid_json", None),
        ("a JSON array", "[1, 2, 3]", None, None),
        ("a JSON number", "42", None, None),
        ("messages as a string", json.dumps({"messages": "hello", "request_id": "t1"}), None,
         "t1"),
        ("max_tokens as a string", json.dumps(chat_req("Hi", max_tokens="ten", request_id="t2")),
         None, "t2"),
        ("temperature as a string", json.dumps(chat_req("Hi", temperature="hot",
                                                        request_id="t3")), None, "t3"),
        ("no messages", json.dumps({"model": ALIAS, "max_tokens": 4, "request_id": "t4"}), None,
         "t4"),
        ("a message without role", json.dumps({"messages": [{"content": "x"}], "request_id": 5}),
         None, 5),
        ("an unknown type", json.dumps({"type": "frobnicate", "request_id": "t6"}), None, "t6"),
        ("a cancel without request_id", json.dumps({"type": "cancel"}), None, None),
        # the URL picks the endpoint, as in REST: a prompt on a chat socket is refused
        ("a completion request on a chat socket",
         json.dumps(compl_req("Hi", 4, request_id="wrong-url")), "invalid_value", "wrong-url"),
        ("context overflow", json.dumps(chat_req(long_prompt, 16, request_id="ctx")),
         "context_length_exceeded", "ctx"),
    ]

    async def body():
        ws = await connect(srv)
        try:
            for what, frame, code, rid in cases:
                await ws.send(frame)
                d = await recv_json(ws, "the error frame for " + what)
                check_error(d, code, rid, what)
                await expect_pong(ws, "after " + what)
            # and the socket still serves requests
            await ws.send(json.dumps(chat_req("Hello", 8, request_id="after")))
            ok((await collect(ws, ["after"]))["after"], "after", "after the bad frames")
        finally:
            await ws.close()

    run(body())
    # The seed's Error Response Format over REST uses the same codes
    r = httpx.post(srv.url(CHAT), json={"model": "no-such-model",
                                        "messages": [{"role": "user", "content": "Hi"}]})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found", r.text


# ---- hostile frames never crash the server nor disturb other sockets -----------------------------

def test_malformed_frames_never_crash_or_disturb(srv):
    want = rest(srv, COMPL, compl_req(PROMPTS[3], 120))
    done = threading.Event()
    witness_err = []

    async def witness():
        ws = await connect(srv, COMPL)
        n = 0
        try:
            while not done.is_set() or n == 0:
                rid = "w%d" % n
                await ws.send(json.dumps(compl_req(PROMPTS[3], 120, request_id=rid)))
                got = ok((await collect(ws, [rid], what="the witness"))[rid], rid, "(witness)")
                assert got == want, ("a healthy socket's greedy text changed while other sockets "
                                     "sent bad frames: %r != %r" % (got, want))
                n += 1
        except BaseException as e:  # noqa: B902 - reported below
            witness_err.append(e)
        finally:
            await ws.close()
        return n

    rss0 = srv.rss_kib()
    results = []

    def expect(what, outcome, allowed):
        results.append((what, outcome))
        assert outcome[0] in allowed or (outcome[0] == "close" and outcome[1] in allowed), (
            "%s: the server answered %r; acceptable: %r" % (what, outcome, allowed))

    def raw_cases():
        P = srv.port
        good = json.dumps(compl_req(STORY, 4, request_id="g")).encode()
        # binary frame: an error frame (socket stays usable) or close 1003
        r = RawWS(P)
        r.send(ws_frame(2, good))
        o = r.outcome()
        expect("a binary frame", o, ("error", 1003))
        if o[0] == "error":
            r.ping_pong("a binary frame")
        r.close()
        # invalid UTF-8 in a text frame: an error frame or close 1007
        r = RawWS(P)
        r.send(ws_frame(1, b'{"prompt": "\xff\xfe\xc3\x28", "max_tokens": 2}'))
        o = r.outcome()
        expect("a text frame with invalid UTF-8", o, ("error", 1007))
        if o[0] == "error":
            r.ping_pong("invalid UTF-8")
        r.close()
        # fragmented request (legal): text + 2 continuations with a ping between: served normally
        r = RawWS(P)
        third = len(good) // 3
        r.send(ws_frame(1, good[:third], fin=False))
        r.send(ws_frame(9, b"mid"))
        r.send(ws_frame(0, good[third:2 * third], fin=False))
        r.send(ws_frame(0, good[2 * third:], fin=True))
        texts, pong = [], False
        deadline = time.time() + 15
        while time.time() < deadline:
            op, p = r.recv_frame(deadline - time.time())
            assert op in (1, 10), ("a legally fragmented request got %r %r instead of its "
                                   "answer" % (op, p))
            if op == 10:
                pong = True
                continue
            d = json.loads(p)
            assert "error" not in d, "a legally fragmented request was refused: %r" % d
            texts.append(frame_text(d))
            if d["choices"][0].get("finish_reason"):
                break
        assert pong, "a ping between fragments of a message was not answered with a pong"
        want4 = rest(srv, COMPL, compl_req(STORY, 4))
        assert "".join(texts) == want4, ("fragmented request text %r != REST %r"
                                         % ("".join(texts), want4))
        results.append(("fragmented request", "served"))
        r.close()
        # continuation frame with no message begun; new text frame inside a fragmented message;
        # fragmented control frame; control frame with 126-byte payload; unmasked frame; reserved
        # bits; reserved opcode: all protocol errors (close, 1002 usually), never a crash
        bad = [
            ("a continuation frame with no message begun", [ws_frame(0, b"{}", fin=True)]),
            ("a text frame inside a fragmented message",
             [ws_frame(1, b'{"prompt":', fin=False), ws_frame(1, b'"x"}', fin=True)]),
            ("a fragmented ping", [ws_frame(9, b"ab", fin=False)]),
            ("a ping with 126 bytes", [ws_frame(9, b"x" * 126)]),
            ("RSV bits without an extension", [ws_frame(1, b'{"type":"ping"}', rsv=7)]),
            ("opcode 3", [ws_frame(3, b"x")]),
            ("a close frame with a 1-byte payload", [ws_frame(8, b"x")]),
            ("a close frame with invalid UTF-8 reason", [ws_frame(8, b"\x03\xe8\xff")]),
        ]
        for what, frames in bad:
            r = RawWS(P)
            r.send(b"".join(frames))
            o = r.outcome(10)
            expect(what, o, ("close", "eof", "error"))
            r.close()
        # an unmasked client frame: close 1002 (RFC 6455 5.1), whether it comes after the 101
        # or together with the upgrade request, after a good frame or alone
        for pre, first in ((b"", b""), (ws_frame(9, b"x", mask=False), b""),
                           (b"", ws_frame(1, good))):
            r = RawWS(P, pre=pre)
            if not pre:
                r.send(first + ws_frame(1, b'{"type":"ping"}', mask=False))
            o = r.outcome(10)
            while first and o[0] == "text":  # the good frame's answer comes first
                o = r.outcome(10)
            assert o == ("close", 1002), "an unmasked frame must close with 1002, got %r" % (o,)
            r.close()
        results.append(("unmasked frames", "close 1002"))
        # a frame header claiming 2^62 bytes: close 1009 (or a protocol close), no huge allocation
        r = RawWS(P)
        r.send(ws_frame(1, b"", declared=1 << 62)[:14] + b"{" * 4096)
        expect("a frame header claiming 2^62 bytes", r.outcome(10), ("close", "eof"))
        r.close()
        # a frame sent together with the upgrade request (before the 101 arrived)
        r = RawWS(P, pre=ws_frame(1, good), expect_101=False)
        if r.status == 101:
            o = r.outcome(10)
            expect("a frame sent before the upgrade completed", o,
                   ("text", "error", "close", "eof"))
        r.close()
        # WebSocket frames on a plain socket, garbage, and a truncated upgrade request
        for what, data in (("frame bytes without an HTTP request", ws_frame(1, good)),
                           ("binary garbage", os.urandom(3000)),
                           ("a truncated upgrade request", upgrade_request(P)[0][:60]),
                           ("an upgrade with version 8",
                            upgrade_request(P)[0].replace(b"Version: 13", b"Version: 8"))):
            s = socket.create_connection(("127.0.0.1", P), timeout=10)
            with contextlib.suppress(OSError):
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                s.settimeout(5)
                s.recv(4096)
            s.close()
            results.append((what, "done"))

    def oversized():
        # 10 MB in one message, and in ten 1 MiB fragments: close 1009 (--max-body 8 MiB). A
        # reader thread watches for the close frame while we are still sending, since the server
        # may close the TCP connection before our send ends (and the RST would hide the frame
        # from a client that reads only after sending).
        big = [("a 10 MB message", [ws_frame(1, b"x" * (10 << 20))]),
               ("a 10 MB fragmented message",
                [ws_frame(1 if i == 0 else 0, b"y" * (1 << 20), fin=(i == 9)) for i in range(10)])]
        for what, frames in big:
            r = RawWS(srv.port)
            got = []
            reader = threading.Thread(target=lambda: got.append(r.outcome(20)))
            reader.start()
            with contextlib.suppress(OSError):
                for f in frames:
                    r.send(f)
            reader.join(25)
            r.close()
            o = got[0] if got else ("timeout", None)
            assert o == ("close", 1009), ("%s: want close 1009 (message too big), got %r"
                                          % (what, o))
            results.append((what, 1009))

    async def hostile():
        await asyncio.to_thread(raw_cases)
        await asyncio.to_thread(oversized)

    async def body():
        w = asyncio.ensure_future(witness())
        try:
            await hostile()
        finally:
            done.set()
            n = await asyncio.wait_for(w, 60)
        return n

    n = run(body())
    print("hostile frames -> server's answers:", *results, sep="\n  ")
    if witness_err:
        raise witness_err[0]
    assert n >= 1
    srv.check_alive("after the hostile frames (%r)" % results)
    grew = srv.rss_kib() - rss0
    assert grew < 200 * 1024, "the server's RSS grew by %d KiB during the hostile frames" % grew


# ---- load: 200 sockets, then 100 abrupt disconnects ----------------------------------------------

def test_200_sockets_then_100_abrupt_disconnects(srv):
    N = 200

    async def body():
        socks = await asyncio.gather(*[connect(srv, COMPL) for _ in range(N)])
        try:
            async def short(i, ws, tag):
                rid = "%s%d" % (tag, i)
                await ws.send(json.dumps(compl_req(PROMPTS[i % 8], 12, request_id=rid,
                                                   temperature=0.8)))
                return ok((await collect(ws, [rid], timeout=60, what="socket %d" % i))[rid], rid,
                          "(socket %d of %d concurrent)" % (i, N))

            await asyncio.gather(*[short(i, ws, "a") for i, ws in enumerate(socks)])

            quitters, keepers = socks[:100], socks[100:]

            for i, ws in enumerate(quitters):
                await ws.send(json.dumps(compl_req(STORY, 1500, request_id="long%d" % i)))
            # the engine runs up to --max-seqs (default 64) of them; the rest wait in the queue
            t0 = time.time()
            while True:
                before = await asyncio.to_thread(metrics, srv)
                if before["inferneo_requests_running"] >= 30 or time.time() - t0 > 10:
                    break
                await asyncio.sleep(0.02)
            for i, ws in enumerate(quitters):
                if i % 2 == 0:  # TCP RST
                    sock = ws.transport.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                ws.transport.abort()  # no close frame
            t0 = time.time()
            dt = await asyncio.to_thread(wait_idle, srv, 1.0, "100 clients vanished mid-stream")
            # the other 100 sockets are unaffected
            await asyncio.gather(*[short(i, ws, "b") for i, ws in enumerate(keepers)])
            return before, time.time() - t0, dt
        finally:
            for ws in socks:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), 5)

    before, _, dt = run(body())
    print("running before the disconnect: %g; idle %.3f s after it"
          % (before["inferneo_requests_running"], dt))
    assert before["inferneo_requests_running"] >= 30, (
        "only %g requests were running before the disconnect: the test proved little"
        % before["inferneo_requests_running"])
    srv.check_alive("after 100 abrupt disconnects")


# ---- auth, rate limit, in-flight limit -----------------------------------------------------------

def test_auth_paths():
    key = "sk-test-6d1f0a"
    s = Server(*SERVED_ARGS, "--api-key", key).start()
    try:
        async def request_works(ws, what):
            await ws.send(json.dumps(chat_req("Hi", 6, request_id="x")))
            r = (await collect(ws, ["x"], what=what))["x"]
            ok(r, "x", what)

        async def body():
            # ?token=
            ws = await websockets.connect(s.ws_url(CHAT + "?token=" + key), open_timeout=10,
                                          compression=None)
            await request_works(ws, "with ?token=KEY")
            await ws.close()
            # Authorization: Bearer
            ws = await websockets.connect(s.ws_url(CHAT), open_timeout=10, compression=None,
                                          extra_headers={"Authorization": "Bearer " + key})
            await request_works(ws, "with Authorization: Bearer KEY")
            await ws.close()
            # first message {"type":"auth"}
            ws = await connect(s)
            await ws.send(json.dumps({"type": "auth", "api_key": key}))
            d = await recv_json(ws, "the answer to {\"type\":\"auth\"} with the right key")
            assert d.get("type") == "auth" and d.get("status") == "ok", (
                "{\"type\":\"auth\",\"api_key\":KEY} must be answered {\"type\":\"auth\","
                "\"status\":\"ok\"}; got %r" % d)
            await request_works(ws, "after an auth message")
            await ws.close()
            # wrong key in the auth message: authentication_error (invalid_api_key), close 1008
            ws = await connect(s)
            await ws.send(json.dumps({"type": "auth", "api_key": "wrong"}))
            d = await recv_json(ws, "the answer to an auth message with a wrong key")
            check_error(d, "invalid_api_key", None, "a wrong api_key",
                        etype="authentication_error")
            try:
                await asyncio.wait_for(ws.wait_closed(), 10)
            except asyncio.TimeoutError:
                raise AssertionError("a wrong key: the socket was not closed") from None
            assert ws.close_code == 1008, "a wrong key: want close 1008, got %r" % ws.close_code
            # no credentials at all: no completion, an authentication_error (or a 401 upgrade)
            try:
                ws = await connect(s)
            except websockets.InvalidStatusCode as e:
                assert e.status_code == 401, "no key: the upgrade was refused with %d" % (
                    e.status_code)
            else:
                await ws.send(json.dumps(chat_req("Hi", 6, request_id="n")))
                d = await recv_json(ws, "the answer to a request without credentials")
                assert d.get("error", {}).get("type") == "authentication_error", (
                    "a request without credentials on a server with --api-key was not refused "
                    "with authentication_error: %r" % d)
                await ws.close()
            # wrong ?token= / Bearer: refused (401 at the upgrade, or error frame + close 1008)
            for what, url, hdr in (("?token=wrong", s.ws_url(CHAT + "?token=wrong"), {}),
                                   ("Bearer wrong", s.ws_url(CHAT),
                                    {"Authorization": "Bearer wrong"})):
                try:
                    ws = await websockets.connect(url, open_timeout=10, extra_headers=hdr,
                                                  compression=None)
                except websockets.InvalidStatusCode as e:
                    assert e.status_code == 401, "%s: upgrade refused with %d, want 401" % (
                        what, e.status_code)
                    continue
                d = await recv_json(ws, "the refusal of " + what)
                check_error(d, "invalid_api_key", None, what, etype="authentication_error")
                await asyncio.wait_for(ws.wait_closed(), 10)
                assert ws.close_code == 1008, "%s: want close 1008, got %r" % (what,
                                                                               ws.close_code)

        run(body())
        s.check_alive("after the auth tests")
        assert s.stop() == 0
        assert key not in s.all_output(), "the API key appears in the server's log"
        s.check_clean()
    finally:
        s.stop()


def test_rate_limit_and_inflight_limit():
    key = "sk-rate-93c2"
    s = Server(*SERVED_ARGS, "--api-key", key, "--rate-limit", "5",
               "--ws-max-inflight", "2").start()
    try:
        async def body():
            ws = await websockets.connect(s.ws_url(COMPL + "?token=" + key), open_timeout=10,
                                          compression=None)
            # in flight: 2 allowed, the third refused with too_many_requests (socket stays)
            for i in range(3):
                await ws.send(json.dumps(compl_req(STORY, 1500, request_id=i)))
            d = await recv_json(ws, "the refusal of a 3rd request in flight (--ws-max-inflight 2)")
            while "error" not in d:
                assert not d["choices"][0].get("finish_reason"), d
                d = await recv_json(ws, "the refusal of a 3rd request in flight")
            assert d.get("request_id") == 2 and d["error"].get("code") == "too_many_requests", (
                "a 3rd request in flight with --ws-max-inflight 2: want error code "
                "too_many_requests for request_id 2, got %r" % d)
            for i in range(2):
                await ws.send(json.dumps({"type": "cancel", "request_id": i}))
            res = await collect(ws, [0, 1], what="the two cancelled requests")
            for i in range(2):
                assert res[i].finish == "cancelled", res[i].finish
            # rate limit: 5 requests/min per key; 3 spent above (the refused one may count)
            errs, oks = [], 0
            for i in range(10, 20):
                await ws.send(json.dumps(compl_req(STORY, 2, request_id=i)))
                r = (await collect(ws, [i], what="rate-limited requests"))[i]
                if r.error:
                    errs.append(r.frames[-1])
                    break
                oks += 1
            assert errs, "with --rate-limit 5, 13 requests in a few seconds were all served"
            check_error(errs[0], "rate_limit_exceeded", errs[0].get("request_id"),
                        "request over --rate-limit", etype="rate_limit_error")
            assert oks >= 2, "the rate limit refused too early (%d served after 3)" % oks
            await expect_pong(ws, "after a rate-limit refusal")
            await ws.close()

        run(body())
        r = httpx.post(s.url(COMPL), json={"prompt": "x", "max_tokens": 2},
                       headers={"Authorization": "Bearer " + key}, timeout=30)
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded", (
            "REST with the same key right after: want 429 rate_limit_exceeded, got %d %s"
            % (r.status_code, r.text[:300]))
        assert s.stop() == 0
        s.check_clean()
    finally:
        s.stop()


# ---- shutdown (last: stops the module's server) --------------------------------------------------

def test_include_usage_rides_on_the_final_chunk(srv):
    """WS streams end with the finish_reason chunk (the seed's clients stop reading there and
    index choices[0] of every frame), so usage rides on that chunk, once, after every choice."""
    async def body():
        ws = await connect(srv, COMPL)
        try:
            await ws.send(json.dumps(compl_req(STORY, 6, n=2, request_id="u",
                                               stream_options={"include_usage": True})))
            frames, finished = [], 0
            while finished < 2:
                d = await recv_json(ws, "the include_usage stream")
                assert "error" not in d, d
                assert d["choices"], "a WS frame with empty choices breaks the seed's clients"
                frames.append(d)
                finished += d["choices"][0]["finish_reason"] is not None
            with_usage = [f for f in frames if f.get("usage")]
            assert with_usage == [frames[-1]], "usage must be on the last frame only"
            u = frames[-1]["usage"]
            assert u["completion_tokens"] == 12 and u["prompt_tokens"] > 0, u
            assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"], u
            await expect_pong(ws, "after the usage stream")  # nothing else came for "u"
        finally:
            await ws.close()

    run(body())


def test_slow_reader_is_cancelled_with_bounded_memory():
    """A client that never reads: its requests are cancelled once --max-send-buffer is queued
    (WS: an error frame per request; SSE: the connection is dropped), and others are served."""
    s = Server(*SERVED_ARGS, "--max-send-buffer", "65536").start()
    try:
        def stuck(head, frames=b""):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", s.port))
            sock.sendall(head)
            if frames:
                time.sleep(0.3)  # the 101 has come (not read: this client never reads)
                sock.sendall(frames)
            return sock

        big = dict(max_tokens=2000, ignore_eos=True, n=16, logprobs=20)  # big chunks
        ws_frames = b"".join(
            ws_frame(1, json.dumps(compl_req(STORY, request_id=i, **big)).encode())
            for i in range(2))
        body = json.dumps(compl_req(STORY, **big)).encode()
        sse = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body)) + body
        socks = [stuck(upgrade_request(s.port, COMPL)[0], ws_frames), stuck(sse)]
        rss0 = s.rss_kib()
        # Both requests may be cancelled within milliseconds (before any poll sees them running):
        # wait for their log lines (written when a request ends) and then for an idle engine.
        deadline = time.time() + 60
        while time.time() < deadline:
            log = s.all_output()
            m = metrics(s)
            ended = (re.search(r"WS /v1/completions 500 ", log)
                     and re.search(r"POST /v1/completions 500 ", log))
            if ended and m["inferneo_requests_running"] + m["inferneo_requests_waiting"] == 0:
                break
            time.sleep(0.1)
        assert m["inferneo_requests_running"] == 0 and m["inferneo_kv_pages_in_use"] == 0, (
            "the slow readers' requests were not cancelled: %r" % m)
        with open(BIN, "rb") as f:  # ASan keeps freed memory in quarantine: RSS says nothing
            sanitized = b"__asan_init" in f.read()
        assert sanitized or s.rss_kib() - rss0 < 64 * 1024, "server memory grew by %d KiB" % (
            s.rss_kib() - rss0)
        want = rest(s, COMPL, compl_req(STORY, 8))  # others are served meanwhile
        assert want
        # the WS client gets one slow_consumer error frame per request when it reads at last
        r = socks[0]
        r.settimeout(5)
        got = b""
        deadline = time.time() + 30
        with contextlib.suppress(OSError):
            while got.count(b'"slow_consumer"') < 2 and time.time() < deadline:
                chunk = r.recv(1 << 20)
                if not chunk:
                    break
                got += chunk
        assert got.count(b'"slow_consumer"') == 2, (
            "expected 2 slow_consumer error frames; got %d bytes ending %r; server log:\n%s"
            % (len(got), got[-600:], s.all_output()[-3000:]))
        for x in socks:
            x.close()
        log = s.all_output()
        assert re.search(r"WS /v1/completions 500 ", log) and re.search(
            r"POST /v1/completions 500 ", log), "the log lines must carry the error status"
    finally:
        assert s.stop() == 0
        s.check_clean()


def test_zz_sigterm_closes_sockets_1001_and_exits_0(srv):
    async def body():
        idle = await connect(srv)
        busy = await connect(srv, COMPL)
        await expect_pong(idle, "before the shutdown")
        await busy.send(json.dumps(compl_req(STORY, 600, request_id="s")))
        await recv_json(busy, "the first chunk before the shutdown")
        srv.proc.send_signal(signal.SIGTERM)
        codes = []
        for ws in (idle, busy):
            try:
                async def drain():
                    with contextlib.suppress(ConnectionClosed):
                        while True:
                            await ws.recv()
                await asyncio.wait_for(drain(), 15)
                await asyncio.wait_for(ws.wait_closed(), 5)
            except asyncio.TimeoutError:
                raise AssertionError("a socket was still open 15 s after SIGTERM") from None
            codes.append(ws.close_code)
        return codes

    codes = run(body())
    try:
        rc = srv.proc.wait(15)
    except subprocess.TimeoutExpired:
        srv.proc.kill()
        srv.proc.wait()
        raise AssertionError("the server closed its sockets (codes %r) but did not exit within "
                             "15 s of SIGTERM (--shutdown-grace is 5 s); output:\n%s"
                             % (codes, srv.output())) from None
    assert codes == [1001, 1001], "on shutdown sockets must be closed with 1001, got %r" % codes
    assert rc == 0, "the server exited with %d on SIGTERM (want 0); output:\n%s" % (rc,
                                                                                    srv.output())
    srv.check_clean()
