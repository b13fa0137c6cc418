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


# The other architectures (MoE routing, sliding windows smaller than the sequences, soft-caps,
# LongRoPE): KV budgets that force preemption with their small KV rows.
ARCH_MODELS = [("tiny-qwen3-q8_0", "0.05"), ("tiny-qwen3moe-q8_0", "0.03"),
               ("tiny-llama-moe-q8_0", "0.02"), ("tiny-gemma2-q8_0", "0.04"),
               ("tiny-gemma3-q8_0", "0.015"), ("tiny-phi3-q8_0", "0.01")]
BATCH_CASES = [(STORIES, 24, "0.1"), (TINY_LLAMA, 12, "0.4")] + [
    (os.path.join(FIXTURES, "models", m + ".gguf"), 12, kv) for m, kv in ARCH_MODELS]
BATCH_IDS = ["stories260K", "tiny-llama-q8_0"] + [m for m, _ in ARCH_MODELS]


@pytest.mark.parametrize("model,n,small_kv", BATCH_CASES, ids=BATCH_IDS)
def test_greedy_batch_equals_generate_alone(model, n, small_kv):
    if not os.path.exists(model):
        pytest.skip("fixture missing: " + model)
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


def test_prefix_cache_edge_cases():
    """Prompts whose length is an exact multiple of the page size (the whole prompt is cached:
    at least its last token must still be computed), identical prompts submitted together,
    and a pool small enough that sequences holding shared pages are preempted and cached pages
    are evicted while later requests want them: every text equals `generate` alone."""
    words = ("Once upon a time there was a little girl named Lily who loved to play in the park "
             "with her big red ball").split()
    prompts = [" ".join(words[:k]) for k in (7, 9, 14, 20)]  # 8, 12, 20, 28 tokens with BOS
    n = 10
    want = {p: generate(STORIES, p, n, ["--temp", "0"]) for p in prompts}
    reqs = [{"id": i, "prompt": p, "max_tokens": n, "temperature": 0}
            for i, p in enumerate(prompts * 4)]
    for opts in (["--page-tokens", "4", "--max-batch-tokens", "4"],
                 ["--page-tokens", "4", "--max-seqs", "1"],
                 ["--page-tokens", "4", "--kv-mem", "0.06", "--max-seqs", "16"]):
        out, stats = batch(STORIES, reqs, opts)
        for r, q in zip(out, reqs):
            assert r["id"] == q["id"]
            assert r["text"] == want[q["prompt"]], (opts, q, r)
            assert r["finish_reason"] == "length"
            assert 0 <= r["cached_tokens"] < r["prompt_tokens"]
            assert r["cached_tokens"] % 4 == 0
        if "--max-seqs" in opts and opts[opts.index("--max-seqs") + 1] == "1":
            # one at a time: every repeat of a prompt finds all of its full pages but the last
            for r, q in zip(out[len(prompts):], reqs[len(prompts):]):
                assert r["cached_tokens"] == (r["prompt_tokens"] - 1) // 4 * 4, r
        if "--kv-mem" in opts:
            assert stats.get("preemptions", 0) > 0, stats


def test_max_tokens_one_and_context_finish():
    full = generate(STORIES, "Once upon a time", 40, ["--temp", "0"])
    out, _ = batch(STORIES, [
        {"id": "one", "prompt": "Once upon a time", "max_tokens": 1, "temperature": 0},
        {"id": "ctx", "prompt": "Once upon a time", "max_tokens": 100000, "temperature": 0},
    ], ["-c", "24"])
    assert out[0]["completion_tokens"] == 1 and out[0]["finish_reason"] == "length"
    assert full.startswith(out[0]["text"]) and out[0]["text"]
    # the context (24 tokens) ends the second request: prompt + completion fill it exactly
    assert out[1]["finish_reason"] == "length"
    assert out[1]["prompt_tokens"] + out[1]["completion_tokens"] == 24
    assert full.startswith(out[1]["text"])


@pytest.mark.parametrize("content,rc", [
    ("", 0), ("\n\n   \n", 0), ("[1,2]\n", 2), ('{"prompt":"a","max_tokens":1e300}\n', 2),
    ('{"prompt":"a","max_tokens":99999999999999999999999}\n', 2),
    ('{"prompt":"a","seed":18446744073709551615}\n', 2), ('{"prompt":"a","seed":1.5}\n', 2),
    ('{"prompt":"a","prompt":"b"}\n', 2), ('{"prompt":"a\\u0000b"}\n', 2),
    ('{"prompt":"a"} x\n', 2), ('{"prompt":"a","top_p":0}\n', 2),
    ('{"prompt":"a","temperature":"0"}\n', 2), ('{"prompt":"a","stop":[1]}\n', 2),
])
def test_hostile_jsonl(content, rc):
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as f:
        f.write(content.encode())
        path = f.name
    try:
        p = run(["batch", "-m", STORIES, "-f", path], check=False)
    finally:
        os.unlink(path)
    assert p.returncode == rc, p.stderr
    if rc:
        lines = p.stderr.decode().strip().split("\n")
        assert len(lines) == 1 and ":1" in lines[0], p.stderr
        assert p.stdout == b""
    else:
        assert p.stdout == b"" and p.stderr == b""


def test_many_lines_in_input_order():
    reqs = [{"id": i, "prompt": "Once upon a time %d" % (i % 37), "max_tokens": 1,
             "temperature": 0} for i in range(3000)]
    out, _ = batch(STORIES, reqs)
    assert [r["id"] for r in out] == list(range(3000))
    by_prompt = {}
    for r, q in zip(out, reqs):
        assert by_prompt.setdefault(q["prompt"], r["tokens"]) == r["tokens"]
