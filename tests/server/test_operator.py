"""What an operator sees of `inferneo serve`: log lines (ISO-8601 time, level, the reason of
every 4xx/5xx; --log-format json), one clear sentence and exit code 1 for startup errors (no raw
library lines), the warning when -c exceeds the trained context, Retry-After on 503."""
import json
import os
import re
import signal
import socket
import subprocess
import time

import httpx

ROOT = os.environ.get("INFERNEO_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("INFERNEO_BIN") or os.path.join(ROOT, "build", "inferneo")
MODEL = os.path.join(ROOT, "models", "stories260K.gguf")
ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(*extra, wait=True):
    port = free_port()
    proc = subprocess.Popen([BIN, "serve", "-m", MODEL, "--port", str(port), "-t", "1", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = "http://127.0.0.1:%d" % port
    deadline = time.time() + 30
    while wait:
        try:
            if httpx.get(url + "/health", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert proc.poll() is None and time.time() < deadline, "the server did not start"
        time.sleep(0.05)
    return proc, url, port


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    out, errs = proc.communicate(timeout=30)
    assert proc.returncode == 0, errs
    return errs.decode()


def test_log_lines_have_time_level_and_reason():
    proc, url, _ = serve()
    httpx.post(url + "/v1/completions", json={"prompt": "Once", "max_tokens": 2})
    r = httpx.post(url + "/v1/completions", json={"prompt": "Once", "temperature": 9})
    assert r.status_code == 400
    httpx.get(url + "/nope")
    log = stop(proc)
    lines = [l for l in log.splitlines() if l]
    for l in lines:
        assert re.match(ISO + r" (debug|info |warn |error) ", l), l
    assert re.search(r"POST /v1/completions 200 tokens=\d+\+2 [0-9.]+ ms$", log, re.M), log
    assert re.search(r'POST /v1/completions 400 [0-9.]+ ms reason="invalid_value: '
                     r"'temperature' must be in \[0, 2\], got 9\"", log), log
    assert re.search(r'GET /nope 404 [0-9.]+ ms reason="unknown_url: ', log), log


def test_json_log_format():
    proc, url, _ = serve("--log-format", "json")
    httpx.post(url + "/v1/completions", json={"prompt": "Once", "max_tokens": 2, "bogus": 1})
    log = stop(proc)
    objs = [json.loads(l) for l in log.splitlines() if l]
    assert objs and all(set(o) == {"time", "level", "msg"} for o in objs), objs
    assert all(re.fullmatch(ISO, o["time"]) for o in objs)
    bad = [o for o in objs if " 400 " in o["msg"]]
    assert bad and "unknown_parameter" in bad[0]["msg"], objs
    assert any(o["msg"] == "SIGTERM received: stopping" for o in objs), objs


def run_fail(*args):
    p = subprocess.run([BIN, "serve", *args], capture_output=True, timeout=30)
    err = p.stderr.decode()
    assert p.returncode == 1, (p.returncode, err)
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and "lws" not in err, err
    return lines[0]


def test_startup_errors_are_one_sentence_and_exit_1():
    line = run_fail("-m", "/nonexistent/model.gguf", "--port", str(free_port()))
    assert "cannot open the model file '/nonexistent/model.gguf': No such file" in line, line
    line = run_fail("-m", "/tmp", "--port", str(free_port()))
    assert "is not a file" in line, line
    with socket.socket() as s:  # a port in use
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        line = run_fail("-m", MODEL, "--port", str(port))
    assert line == "inferneo: cannot listen on 127.0.0.1:%d: Address already in use" % port, line
    p = subprocess.run([BIN, "serve", "-m", MODEL, "--log-format", "xml"], capture_output=True)
    assert p.returncode == 2 and b"--log-format must be text or json" in p.stderr  # usage: 2


def test_context_over_trained_context_warns():
    proc, url, _ = serve("-c", "100000")
    assert httpx.get(url + "/v1/models").json()["data"][0]["max_model_len"] == 100000
    log = stop(proc)
    assert re.search(r"warn  the context asked for \(-c 100000\) exceeds the model's trained "
                     r"context \(\d+\)", log), log
    proc, url, _ = serve("-c", "256")
    assert "exceeds the model's trained context" not in stop(proc)


def test_retry_after_while_loading():
    env = dict(os.environ, INFERNEO_LOAD_DELAY_MS="3000")
    port = free_port()
    proc = subprocess.Popen([BIN, "serve", "-m", MODEL, "--port", str(port), "-t", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.time() + 10
        while True:
            try:
                r = httpx.post("http://127.0.0.1:%d/v1/completions" % port,
                               json={"prompt": "x"}, timeout=5)
                break
            except httpx.TransportError:
                assert time.time() < deadline
                time.sleep(0.02)
        assert r.status_code == 503 and r.headers["retry-after"] == "5", (r, r.headers)
    finally:
        stop(proc)


def test_progress_bar_on_a_terminal_only():
    """On a terminal (a pty here) the load draws a progress bar up to 100%; piped, it does not."""
    import pty
    port = free_port()
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["TERM"] = "xterm"
        os.execv(BIN, [BIN, "serve", "-m", MODEL, "--port", str(port), "-t", "1"])
    out = b""
    deadline = time.time() + 30
    try:
        while b"listening on" not in out and time.time() < deadline:
            try:
                out += os.read(fd, 4096)
            except OSError:
                break
    finally:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
    assert b"\rloading model [" in out and b"] 100%" in out, out
    proc, url, _ = serve()
    assert "loading model [" not in stop(proc)
