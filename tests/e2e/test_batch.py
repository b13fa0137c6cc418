"""End-to-end tests of `inferneo batch`: continuous batching must not change greedy output
(compared with `inferneo generate --temp 0` run alone), also when the KV pool is so small that
sequences are preempted and recomputed; prefix-cache reuse gives the same output as no cache;
seeded sampling gives the same text alone and in a batch; stop strings are never emitted.
"""
import json
import os
import re
import subprocess
import tempfile

import pytest

ROOT = os.environ.get("INFERNEO_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("INFERNEO_BIN") or os.path.join(ROOT, "build", "inferneo")
FIXTURES = os.environ.get("INFERNEO_FIXTURES") or os.path.join(ROOT, "..", "shared", "fixtures")

STORIES = os.path.join(ROOT, "models", "stories260K.gguf")
TINY_LLAMA = os.path.join(FIXTURES, "models", "tiny-llama-q8_0.gguf")

SUBJECTS = ["Once upon a time", "The little dog", "Lily and Tom", "The cat", "One day, a bird",
            "Sam had a red ball", "The sun was", "Mom said"]
ENDINGS = ["", " there was", " and", ". Then"]
PROMPTS = [s + e for s in SUBJECTS for e in ENDINGS]  # 32 distinct prompts
assert len(set(PROMPTS)) == 32


def run(args, input_text=None, check=True):
    p = subprocess.run([BIN] + args, input=input_text, capture_output=True, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError("inferneo %s failed (%d): %s" % (
            " ".join(args[:1]), p.returncode, p.stderr.decode(errors="replace")))
    return p


def generate(model, prompt, n, extra=()):
    p = run(["generate", "-m", model, "-p", prompt, "-n", str(n), "-t", "2"] + list(extra))
    return p.stdout.decode("utf-8", errors="replace")


def batch(model, requests, extra=()):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for r in requests:
            f.write(json.dumps(r) + "\n")
        path = f.name
    try:
        p = run(["batch", "-m", model, "-f", path, "-t", "2", "-v"] + list(extra))
    finally:
        os.unlink(path)
    lines = [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]
    assert len(lines) == len(requests)
    stats = {}
    m = re.search(r"preemptions (\d+) \| prefix hit tokens (\d+)", p.stderr.decode())
    if m:
        stats = {"preemptions": int(m.group(1)), "prefix_hit_tokens": int(m.group(2))}
    return lines, stats


def greedy_requests(n):
    return [{"id": "r%d" % i, "prompt": p, "max_tokens": n, "temperature": 0}
            for i, p in enumerate(PROMPTS)]


def check_against_generate(model, n, out, expected):
    for i, (r, want) in enumerate(zip(out, expected)):
        assert r["id"] == "r%d" % i  # input order
        assert r["text"] == want, "request %d (%r): batch %r != generate %r" % (
            i, PROMPTS[i], r["text"], want)
        assert r["finish_reason"] in ("stop", "length")
        assert r["completion_tokens"] == len(r["tokens"])
        if r["finish_reason"] == "length":
            assert r["completion_tokens"] == n
        assert r["prompt_tokens"] > 0


@pytest.mark.parametrize("model,n,small_kv", [(STORIES, 24, "0.1"), (TINY_LLAMA, 12, "0.4")],
                         ids=["stories260K", "tiny-llama-q8_0"])
def test_greedy_batch_equals_generate_alone(model, n, small_kv):
    expected = [generate(model, p, n, ["--temp", "0"]) for p in PROMPTS]
    reqs = greedy_requests(n)
    out, stats = batch(model, reqs)
    check_against_generate(model, n, out, expected)
    # a pool so small that sequences are preempted and recomputed: same texts
    out, stats = batch(model, reqs, ["--kv-mem", small_kv, "--max-seqs", "32"])
    assert stats.get("preemptions", 0) > 0, stats
    check_against_generate(model, n, out, expected)
    # tiny steps (chunked prefill across many steps, small pages): same texts
    out, stats = batch(model, reqs, ["--max-batch-tokens", "32", "--page-tokens", "4",
                                     "--max-seqs", "7"])
    check_against_generate(model, n, out, expected)


def test_shared_prefix_uses_cache_and_matches_no_cache():
    prefix = ("Once upon a time, there was a little girl named Lily. She loved to play outside "
              "in the park with her friends. One day, she saw a big red ball near the tree. "
              "She ran to the ball and picked it up. ")
    reqs = [{"id": i, "prompt": prefix + s, "max_tokens": 16, "temperature": 0}
            for i, s in enumerate(SUBJECTS)]
    # a small step budget: the first request's prefill spans steps, the others are admitted
    # after its first pages are in the cache
    opts = ["--max-batch-tokens", "32"]
    cached, stats = batch(STORIES, reqs, opts)
    plain, _ = batch(STORIES, reqs, opts + ["--no-prefix-cache"])
    assert cached[0]["cached_tokens"] == 0
    for r in cached[1:]:
        assert r["cached_tokens"] > 0, r
        assert r["cached_tokens"] % 16 == 0
        assert r["cached_tokens"] < r["prompt_tokens"]
    assert stats["prefix_hit_tokens"] >= sum(r["cached_tokens"] for r in cached)
    assert all(r["cached_tokens"] == 0 for r in plain)
    for a, b in zip(cached, plain):
        assert a["text"] == b["text"]
        assert a["tokens"] == b["tokens"]
    # and the same as generate alone
    assert cached[3]["text"] == generate(STORIES, reqs[3]["prompt"], 16, ["--temp", "0"])


def test_seeded_sampling_alone_and_in_batch():
    target = {"id": "seeded", "prompt": "The little dog", "max_tokens": 32, "temperature": 0.9,
              "seed": 1234}
    alone, _ = batch(STORIES, [target])
    others = [{"id": i, "prompt": p, "max_tokens": 20, "temperature": 0.7, "seed": i}
              for i, p in enumerate(PROMPTS[:15])]
    mixed, _ = batch(STORIES, others + [target] + others[:5], ["--max-seqs", "8"])
    assert mixed[15]["id"] == "seeded"
    assert mixed[15]["text"] == alone[0]["text"]
    assert mixed[15]["tokens"] == alone[0]["tokens"]
    # generate with the same sampling options and seed gives the same text
    gen = generate(STORIES, target["prompt"], 32, ["--temp", "0.9", "--seed", "1234"])
    assert gen == alone[0]["text"]
    # another seed gives another text (with overwhelming probability)
    other, _ = batch(STORIES, [dict(target, seed=99)])
    assert other[0]["text"] != alone[0]["text"]


def test_stop_string_not_emitted():
    prompt = "Once upon a time"
    full = generate(STORIES, prompt, 48, ["--temp", "0"])
    assert len(full) > 30
    stop = full[20:24]
    cut = full.find(stop)
    out, _ = batch(STORIES, [
        {"id": 0, "prompt": prompt, "max_tokens": 48, "temperature": 0, "stop": stop},
        {"id": 1, "prompt": prompt, "max_tokens": 48, "temperature": 0,
         "stop": ["zzzz-not-there", stop]},
        {"id": 2, "prompt": prompt, "max_tokens": 48, "temperature": 0, "stop": ["qqqq"]},
    ])
    for r in out[:2]:
        assert r["finish_reason"] == "stop"
        assert r["text"] == full[:cut]
        assert stop not in r["text"]
    assert out[2]["text"] == full


def test_bad_input_is_rejected():
    for bad in ['{"prompt": 3}', '{"max_tokens": 4}', '{"prompt": "a", "bogus": 1}',
                '{"prompt": "a", "temperature": -1}', '{"prompt": "a", "max_tokens": 0}',
                'not json', '{"prompt": "a", "stop": ["1","2","3","4","5","6","7","8","9"]}']:
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
            f.write('{"prompt": "ok"}\n' + bad + "\n")
            path = f.name
        try:
            p = run(["batch", "-m", STORIES, "-f", path], check=False)
        finally:
            os.unlink(path)
        assert p.returncode == 2, bad
        assert b":2" in p.stderr, p.stderr  # names the line
        assert p.stdout == b""


def test_context_overflow_is_a_per_request_error():
    out, _ = batch(STORIES, [{"id": "long", "prompt": "The cat sat. " * 40, "max_tokens": 4},
                             {"id": "ok", "prompt": "The cat", "max_tokens": 4,
                              "temperature": 0}], ["-c", "64"])
    assert out[0]["finish_reason"] == "error"
    assert "context" in out[0]["error"]
    assert out[1]["finish_reason"] in ("stop", "length")
    assert out[1]["text"] == generate(STORIES, "The cat", 4, ["--temp", "0"])
