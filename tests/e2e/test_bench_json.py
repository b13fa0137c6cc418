"""`inferneo bench --json` and `--depth`: one JSON object per test on a tiny synthetic model.

Checks the fields a tracking tool reads (format, threads, depth, test, tok/s, GB/s, bandwidth
ratio), that GB/s is the weight bytes times the decode rate and the ratio GB/s over the measured
bandwidth, that --depth is echoed and runs, and that bad values are refused.
"""

import json
import os
import subprocess
import tempfile

import pytest

ROOT = os.environ.get("INFERNEO_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("INFERNEO_BIN", os.path.join(ROOT, "build", "inferneo"))


def run(args, timeout=120):
    return subprocess.run([BIN] + args, capture_output=True, timeout=timeout)


@pytest.fixture(scope="module")
def model():
    if not os.path.exists(BIN):
        pytest.fail(f"binary not found: {BIN}")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "tiny-q4_k_m.gguf")
        p = run(["synth", "--shape", "tiny:256,4,4,2,512,400", "--type", "q4_k_m", "-o", path])
        assert p.returncode == 0, p.stderr.decode(errors="replace")
        yield path


def bench_json(model, extra):
    p = run(["bench", "-m", model, "-t", "2", "-p", "16", "-n", "4", "-r", "1", "--json"] + extra)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    lines = p.stdout.decode().strip().splitlines()
    return [json.loads(line) for line in lines]


@pytest.mark.parametrize("depth", [0, 24])
def test_bench_json(model, depth):
    objs = bench_json(model, ["--depth", str(depth)] if depth else [])
    assert [o["test"] for o in objs] == ["pp16", "tg4"]
    info = run(["info", model]).stdout.decode()
    weight_bytes = int(next(l for l in info.splitlines() if l.startswith("weight bytes")).split()[2])
    for o in objs:
        assert o["model"] == "tiny-q4_k_m.gguf"
        assert o["format"] == "q4_K+q6_K"  # most tensors first
        assert o["threads"] == 2 and o["depth"] == depth and o["repetitions"] == 1
        assert o["tok_s"] > 0
        assert o["bw_gb_s"] is None or o["bw_gb_s"] > 0
    pp, tg = objs
    assert pp["n_prompt"] == 16 and pp["n_gen"] == 0
    assert pp["gb_s"] is None and pp["bw_ratio"] is None
    assert tg["n_prompt"] == 0 and tg["n_gen"] == 4
    assert tg["gb_s"] == pytest.approx(weight_bytes * tg["tok_s"] * 1e-9, rel=1e-3)
    if tg["bw_gb_s"]:
        assert tg["bw_ratio"] == pytest.approx(tg["gb_s"] / tg["bw_gb_s"], rel=1e-3)


def test_bench_text_depth(model):
    p = run(["bench", "-m", model, "-t", "2", "-p", "8", "-n", "2", "-r", "1", "-d", "40"])
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    out = p.stdout.decode()
    assert "pp8 @ d40:" in out and "tg2 @ d40:" in out and "format: q4_K+q6_K" in out


@pytest.mark.parametrize("args", [["--depth", "-1"], ["--depth", "x"], ["-d"],
                                  ["--json", "--concurrency", "2"]])
def test_bench_bad_args(model, args):
    p = run(["bench", "-m", model, "-p", "4", "-n", "2", "-r", "1"] + args)
    assert p.returncode == 2, (args, p.stdout, p.stderr)
