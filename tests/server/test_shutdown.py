"""Shutdown finishes what it started (DESIGN.md section 8): SIGTERM with streams running and
--drain-timeout 1 gives every client a proper end: SSE a chunk with finish_reason then [DONE];
WebSocket the final chunk then close 1001; a non-streaming request a 503 JSON body; exit 0.
The requests ask for far more tokens than one second of decoding makes (ignore_eos keeps them
going), so all of them are still running when the drain time ends.
"""
import asyncio
import json
import signal
import time

import httpx
import pytest
import websockets

from test_rest import Server

N_SSE, N_WS = 10, 10


def body(i, stream):
    return {"prompt": "Once upon a time %d" % i, "max_tokens": 1900, "ignore_eos": True,
            "stream": stream}


async def sse_client(srv, i, started, out):
    events = []
    async with httpx.AsyncClient(timeout=60) as c:
        async with c.stream("POST", srv.url("/v1/completions"), json=body(i, True)) as r:
            assert r.status_code == 200
            async for line in r.aiter_lines():
                line = line.rstrip("\r\n")
                if not line.startswith("data: "):
                    continue
                events.append(line[6:])
                if len(events) == 2:
                    started.release()
    out[("sse", i)] = events


async def ws_client(srv, i, started, out):
    frames = []
    async with websockets.connect("ws://127.0.0.1:%d/v1/completions" % srv.port) as ws:
        await ws.send(json.dumps(dict(body(i, True), request_id=i)))
        try:
            while True:
                frames.append(json.loads(await asyncio.wait_for(ws.recv(), 60)))
                if len(frames) == 2:
                    started.release()
        except websockets.ConnectionClosed as e:
            out[("ws", i)] = (frames, e.rcvd.code if e.rcvd else None)


async def plain_client(srv, out):
    async with httpx.AsyncClient(timeout=60) as c:
        r = await c.post(srv.url("/v1/completions"), json=body(99, False))
        out["plain"] = (r.status_code, r.json())


async def scenario(srv):
    started = asyncio.Semaphore(0)
    out = {}
    tasks = [asyncio.create_task(sse_client(srv, i, started, out)) for i in range(N_SSE)]
    tasks += [asyncio.create_task(ws_client(srv, i, started, out)) for i in range(N_WS)]
    tasks.append(asyncio.create_task(plain_client(srv, out)))
    for _ in range(N_SSE + N_WS):
        await asyncio.wait_for(started.acquire(), 60)
    await asyncio.sleep(0.2)
    srv.proc.send_signal(signal.SIGTERM)
    t0 = time.time()
    await asyncio.wait_for(asyncio.gather(*tasks), 30)
    return out, time.time() - t0


def test_sigterm_ends_every_request_properly():
    srv = Server("--drain-timeout", "1", "--max-seqs", "32").start()
    try:
        out, took = asyncio.run(scenario(srv))
        code = srv.proc.wait(20)
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
    log = srv.output()
    assert code == 0, log
    assert took < 10, "clients ended %.1f s after SIGTERM (drain 1 s)" % took
    for i in range(N_SSE):
        ev = out[("sse", i)]
        assert ev[-1] == "[DONE]", "SSE stream %d did not end with [DONE]: %r" % (i, ev[-3:])
        finals = [json.loads(e) for e in ev[:-1] if e.startswith("{")]
        assert finals and finals[-1]["choices"][0]["finish_reason"] is not None, ev[-3:]
        assert all(f["choices"][0]["finish_reason"] is None for f in finals[:-1])
        assert len(ev) > 3, "stream %d produced nothing before the end" % i
    for i in range(N_WS):
        frames, close = out[("ws", i)]
        assert close == 1001, "WS %d closed with %r" % (i, close)
        assert frames[-1]["choices"][0]["finish_reason"] is not None, frames[-1]
        assert frames[-1]["request_id"] == i
    status, js = out["plain"]
    assert status == 503 and js["error"]["code"] == "shutting_down", (status, js)
    # logged with the real reason, not as a client that went away
    assert " 499 " not in log, log
    assert log.count("/v1/completions 503") >= N_SSE + N_WS + 1, log
