"""Golden end-to-end tests: our logits and greedy decoding against llama.cpp's (fixtures/golden).

For every model in fixtures/models with a golden json:
  - `inferneo logits` must reproduce the prompt tokens and every prompt position's logits within
    the README's tolerance (max |ours - ref| <= tol * (max|ref| + 1); argmax equal wherever the
    reference's top-2 margin is at least 0.01 * max|ref|);
  - `inferneo generate --temp 0` must reproduce the greedy bytes up to the first step whose
    reference top-2 margin is below 0.05.
For stories260K (a real pretrained model) the published greedy texts must match exactly.
One model is also run with INFERNEO_ISA=ref to check the scalar reference kernels end to end.
"""

import array
import json
import math
import os
import re
import subprocess
import tempfile

import pytest

ROOT = os.environ.get("INFERNEO_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("INFERNEO_BIN", os.path.join(ROOT, "build", "inferneo"))
FIX = os.environ.get("INFERNEO_FIXTURES", os.path.join(ROOT, "..", "shared", "fixtures"))
GOLDEN = os.path.join(FIX, "golden")
MODELS = os.path.join(FIX, "models")
THREADS = "2"


def golden_models():
    out = []
    if not os.path.isdir(GOLDEN):
        return out
    for name in sorted(os.listdir(GOLDEN)):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(GOLDEN, name)) as f:
            g = json.load(f)
        if "model" in g and "logits_file" in g:
            if os.path.exists(os.path.join(MODELS, g["model"])):
                out.append(name[: -len(".json")])
    return out


def load_golden(stem):
    with open(os.path.join(GOLDEN, stem + ".json")) as f:
        return json.load(f)


def tolerance(model_file):
    n = model_file.lower()
    if "q4_" in n:
        return 3e-2
    if "q8_0" in n:
        return 2e-2
    return 1e-2  # f32 / f16


def read_f32(path):
    a = array.array("f")
    with open(path, "rb") as f:
        a.frombytes(f.read())
    if array.array("i", [1]).tobytes()[0] != 1:
        a.byteswap()  # files are little-endian
    return a


def run(args, env_extra=None, timeout=120):
    env = dict(os.environ)
    if env_extra:
        env.update(env_extra)
    return subprocess.run([BIN] + args, capture_output=True, timeout=timeout, env=env)


def compare_logits(ours, ref, n_tok, n_vocab, tol):
    """Returns a list of failure descriptions (empty when within tolerance)."""
    fails = []
    for t in range(n_tok):
        r = ref[t * n_vocab:(t + 1) * n_vocab]
        o = ours[t * n_vocab:(t + 1) * n_vocab]
        assert all(math.isfinite(x) for x in o), f"position {t}: non-finite logits"
        max_ref = max(abs(x) for x in r)
        diff = max(abs(a - b) for a, b in zip(o, r))
        bound = tol * (max_ref + 1)
        if diff > bound:
            fails.append(f"position {t}: max diff {diff:.5f} > {bound:.5f}")
        top = sorted(range(n_vocab), key=lambda i: r[i], reverse=True)[:2]
        margin = r[top[0]] - r[top[1]]
        o_best = max(range(n_vocab), key=lambda i: o[i])
        if margin >= 0.01 * max_ref and o_best != top[0]:
            fails.append(f"position {t}: argmax {o_best} != reference {top[0]} "
                         f"(margin {margin:.4f})")
    return fails


def logits_for(stem, env_extra=None):
    g = load_golden(stem)
    model = os.path.join(MODELS, g["model"])
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "logits.f32")
        p = run(["logits", "-m", model, "-p", g["prompt"], "-o", out, "-t", THREADS],
                env_extra=env_extra)
        assert p.returncode == 0, p.stderr.decode(errors="replace")
        lines = p.stdout.decode().strip().splitlines()
        ids = [int(x) for x in lines[-1].split()]
        ours = read_f32(out)
    return g, ids, ours


@pytest.fixture(scope="module")
def binary():
    if not os.path.exists(BIN):
        pytest.fail(f"binary not found: {BIN}")
    return BIN


@pytest.mark.parametrize("stem", golden_models())
def test_logits(binary, stem):
    g, ids, ours = logits_for(stem)
    assert ids == g["prompt_tokens"]
    n_tok, n_vocab = g["logits_shape"]
    assert n_vocab == g["n_vocab"]
    assert len(ours) == n_tok * n_vocab
    ref = read_f32(os.path.join(GOLDEN, g["logits_file"]))
    assert len(ref) == n_tok * n_vocab
    fails = compare_logits(ours, ref, n_tok, n_vocab, tolerance(g["model"]))
    assert not fails, f"{stem}: " + "; ".join(fails)


@pytest.mark.parametrize("stem", ["stories260K", "tiny-llama-q4_k_m"])
def test_logits_ref_isa(binary, stem):
    """The scalar reference kernels (INFERNEO_ISA=ref) match the golden logits too."""
    if stem not in golden_models():
        pytest.skip(f"no fixture for {stem}")
    g, ids, ours = logits_for(stem, env_extra={"INFERNEO_ISA": "ref"})
    assert ids == g["prompt_tokens"]
    n_tok, n_vocab = g["logits_shape"]
    ref = read_f32(os.path.join(GOLDEN, g["logits_file"]))
    fails = compare_logits(ours, ref, n_tok, n_vocab, tolerance(g["model"]))
    assert not fails, f"{stem} (ref ISA): " + "; ".join(fails)


def generate(args, timeout=120):
    p = run(["generate"] + args + ["-t", THREADS], timeout=timeout)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0, err
    return p.stdout


def comparable_text(b):
    """Generated text as comparable characters: `generate` emits text at UTF-8 boundaries and
    replaces invalid bytes with U+FFFD, while the golden bytes are raw pieces, so both sides are
    decoded with replacement and runs of U+FFFD are collapsed to one."""
    t = b.decode("utf-8", "replace")
    return re.sub("\ufffd+", "\ufffd", t)


@pytest.mark.parametrize("stem", golden_models())
def test_greedy(binary, stem):
    g = load_golden(stem)
    margins = g["greedy_top2_margins"]
    n = len(g["greedy_tokens"])
    # Tokens before the first near-tie must match; a near-tie may flip legitimately.
    k = next((i for i, m in enumerate(margins) if m < 0.05), n)
    cut = sum(g["greedy_piece_bytes"][:k])
    want = comparable_text(bytes.fromhex(g["greedy_bytes_hex"])[:cut])
    # A cut inside a UTF-8 sequence leaves a replacement character at the end: drop it.
    want = want.rstrip("\ufffd")
    model = os.path.join(MODELS, g["model"])
    out = comparable_text(generate(["-m", model, "-p", g["prompt"], "--temp", "0",
                                    "-n", str(n)]))
    assert out.startswith(want), (
        f"{stem}: first {k} greedy tokens differ at char {first_diff(out, want)}:\n"
        f"{out!r}\n{want!r}")


STORIES = os.path.join(MODELS, "stories260K.gguf")


@pytest.mark.skipif(not os.path.exists(STORIES), reason="stories260K fixture missing")
def test_stories_greedy_from_bos(binary):
    with open(os.path.join(GOLDEN, "stories260K.greedy_bos_256.txt"), "rb") as f:
        want = f.read()
    out = generate(["-m", STORIES, "-p", "", "--temp", "0", "-n", "200"])
    assert len(out) > 400, out
    assert want.startswith(out), f"diverges at byte {first_diff(out, want)}:\n{out!r}"


def first_diff(a, b):
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def parse_prompt_file(path):
    """Sections '=== prompt=<shell-escaped> steps=N temp=0' followed by the text (prompt
    included); a section's text ends before the newline that precedes the next header."""
    with open(path, "rb") as f:
        data = f.read().decode()
    sections = []
    for block in data.split("=== prompt=")[1:]:
        header, _, text = block.partition("\n")
        spec, _, rest = header.partition(" steps=")
        prompt = spec.replace("\\ ", " ")
        steps = int(rest.split()[0])
        if text.endswith("\n"):
            text = text[:-1]
        sections.append((prompt, steps, text.encode()))
    return sections


@pytest.mark.skipif(not os.path.exists(STORIES), reason="stories260K fixture missing")
def test_stories_greedy_prompts(binary):
    sections = parse_prompt_file(os.path.join(GOLDEN, "stories260K.greedy_prompts_128.txt"))
    assert len(sections) == 3
    for prompt, steps, want in sections:
        assert want.startswith(prompt.encode())
        out = prompt.encode() + generate(["-m", STORIES, "-p", prompt, "--temp", "0",
                                          "-n", str(steps)])
        assert out.startswith(want), (
            f"prompt {prompt!r} diverges at byte {first_diff(out, want)}:\n{out!r}\n{want!r}")
