"""Tokenizer conformance through the CLI (`inferneo tokenize`), against llama.cpp's vectors.

- fixtures/vocab/*.gguf: every string of NAME.gguf.inp (strings separated by the line
  __ggml_vocab_test__) tokenized with --no-add-special must give line k of NAME.gguf.out, and
  decoding those expected ids must give the string back;
- golden/tok512.encode_fixtures.json: the `ids_gguf` of each text on models/stories260K.gguf;
- golden/*.json: `prompt_tokens` of each model (special tokens added per metadata);
- special-token parsing, -f byte exactness, and exit codes.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(os.environ.get("INFERNEO_ROOT") or Path(__file__).resolve().parents[2])
BIN = os.environ.get("INFERNEO_BIN") or str(ROOT / "build" / "inferneo")
FIX = Path(os.environ.get("INFERNEO_FIXTURES") or ROOT.parent / "shared" / "fixtures")
SEP = "\n__ggml_vocab_test__\n"

VOCABS = sorted((FIX / "vocab").glob("ggml-vocab-*.gguf"))


def tokenize(*args, check=True):
    r = subprocess.run([BIN, "tokenize", *map(str, args)], capture_output=True, timeout=120)
    if check:
        assert r.returncode == 0, r.stderr.decode(errors="replace")
    return r


def load_cases(gguf):
    """(texts, expected id lists) of a vocab fixture."""
    inp = gguf.with_name(gguf.name + ".inp").read_bytes().decode("utf-8")
    out = gguf.with_name(gguf.name + ".out").read_text(encoding="utf-8")
    texts = inp.split(SEP)
    assert texts[-1] == "", "the .inp file ends with a separator"
    texts = texts[:-1]
    lines = out.split("\n")
    assert lines[-1] == ""
    lines = lines[:-1]
    assert len(texts) == len(lines) > 0
    return texts, [[int(x) for x in line.split()] for line in lines]


def ids_of(line):
    return [int(x) for x in line.split()]


def test_fixtures_present():
    assert Path(BIN).exists(), BIN
    names = {p.name for p in VOCABS}
    for n in ("llama-spm", "phi-3", "gpt-2", "falcon", "deepseek-coder"):
        assert f"ggml-vocab-{n}.gguf" in names


@pytest.mark.parametrize("gguf", VOCABS, ids=lambda p: p.name)
def test_vocab_encode(gguf, tmp_path):
    texts, expected = load_cases(gguf)
    f = tmp_path / "inp.txt"
    f.write_bytes(SEP.join(texts).encode("utf-8"))
    r = tokenize("-m", gguf, "--no-add-special", "-f", f, "--separator", SEP)
    got = r.stdout.decode().split("\n")
    assert got[-1] == ""
    got = got[:-1]
    assert len(got) == len(texts)
    bad = [(t, g, e) for t, g, e in zip(texts, got, expected) if ids_of(g) != e]
    assert not bad, "\n".join(f"{t!r}: got {g} want {e}" for t, g, e in bad[:5])


@pytest.mark.parametrize("gguf", VOCABS, ids=lambda p: p.name)
def test_vocab_roundtrip(gguf, tmp_path):
    texts, expected = load_cases(gguf)
    f = tmp_path / "ids.txt"
    f.write_text(SEP.join(" ".join(map(str, e)) for e in expected))
    r = tokenize("-m", gguf, "--decode", "-f", f, "--separator", SEP)
    got = r.stdout.decode("utf-8").split(SEP)
    assert len(got) == len(texts)
    bad = [(t, g) for t, g in zip(texts, got) if t != g]
    assert not bad, "\n".join(f"{t!r} decoded as {g!r}" for t, g in bad[:5])


@pytest.mark.parametrize("gguf", VOCABS, ids=lambda p: p.name)
def test_vocab_single_files(gguf, tmp_path):
    """-f takes the file's bytes exactly: whitespace-edged strings, one process each."""
    texts, expected = load_cases(gguf)
    picked = [(t, e) for t, e in zip(texts, expected) if t != t.strip() or t == ""][:6]
    assert picked
    for i, (t, e) in enumerate(picked):
        f = tmp_path / f"t{i}.txt"
        f.write_bytes(t.encode("utf-8"))
        r = tokenize("-m", gguf, "--no-add-special", "-f", f)
        assert ids_of(r.stdout.decode()) == e, repr(t)


def test_tok512(tmp_path):
    cases = json.loads((FIX / "golden" / "tok512.encode_fixtures.json").read_text())["cases"]
    model = FIX / "models" / "stories260K.gguf"
    f = tmp_path / "inp.txt"
    f.write_bytes(SEP.join(c["text"] for c in cases).encode("utf-8"))
    plain = tokenize("-m", model, "--no-add-special", "-f", f, "--separator", SEP)
    with_bos = tokenize("-m", model, "-f", f, "--separator", SEP)
    plain = plain.stdout.decode().split("\n")[:-1]
    with_bos = with_bos.stdout.decode().split("\n")[:-1]
    assert len(plain) == len(with_bos) == len(cases)
    for c, p, b in zip(cases, plain, with_bos):
        assert ids_of(p) == c["ids_gguf"], c["text"]
        assert ids_of(b) == [1] + c["ids_gguf"], c["text"]
    # decoding with BOS (skipped) gives each text back
    ids = tmp_path / "ids.txt"
    ids.write_text(SEP.join(b for b in with_bos))
    r = tokenize("-m", model, "--decode", "--skip-special", "-f", ids, "--separator", SEP)
    assert r.stdout.decode("utf-8").split(SEP) == [c["text"] for c in cases]


@pytest.mark.parametrize("name", ["stories260K", "tiny-llama-f16", "tiny-qwen2-f16"])
def test_golden_prompt_tokens(name):
    gold = json.loads((FIX / "golden" / f"{name}.json").read_text())
    r = tokenize("-m", FIX / "models" / f"{name}.gguf", "-p", gold["prompt"])
    assert ids_of(r.stdout.decode()) == gold["prompt_tokens"]


def test_special_tokens():
    gpt2 = FIX / "vocab" / "ggml-vocab-gpt-2.gguf"
    r = tokenize("-m", gpt2, "--parse-special", "-p", "Hi<|endoftext|>")
    parsed = ids_of(r.stdout.decode())
    assert parsed[-1] == 50256 and len(parsed) == 2
    r = tokenize("-m", gpt2, "-p", "Hi<|endoftext|>")
    plain = ids_of(r.stdout.decode())
    assert 50256 not in plain and len(plain) > 2
    # rendered by default when decoding, left out with --skip-special
    r = tokenize("-m", gpt2, "--decode", "-p", " ".join(map(str, parsed)))
    assert r.stdout == b"Hi<|endoftext|>"
    r = tokenize("-m", gpt2, "--decode", "--skip-special", "-p", " ".join(map(str, parsed)))
    assert r.stdout == b"Hi"
    # SPM: BOS added per metadata unless --no-add-special
    spm = FIX / "vocab" / "ggml-vocab-llama-spm.gguf"
    assert ids_of(tokenize("-m", spm, "-p", "Hello").stdout.decode())[0] == 1
    assert 1 not in ids_of(tokenize("-m", spm, "--no-add-special", "-p", "Hello").stdout.decode())
    # user-defined tokens are split out even without --parse-special (deepseek-coder: 'õ')
    ds = FIX / "vocab" / "ggml-vocab-deepseek-coder.gguf"
    assert ids_of(tokenize("-m", ds, "--no-add-special", "-p", "\u00f5").stdout.decode()) == [32000]


def test_errors(tmp_path):
    spm = FIX / "vocab" / "ggml-vocab-llama-spm.gguf"
    assert tokenize("-p", "x", check=False).returncode == 2
    assert tokenize("-m", spm, check=False).returncode == 2
    assert tokenize("-m", spm, "-p", "x", "-f", "y", check=False).returncode == 2
    assert tokenize("-m", spm, "--bogus", "-p", "x", check=False).returncode == 2
    r = tokenize("-m", tmp_path / "missing.gguf", "-p", "x", check=False)
    assert r.returncode == 1 and r.stderr
    r = tokenize("-m", spm, "-f", tmp_path / "missing.txt", check=False)
    assert r.returncode == 1 and r.stderr
    r = tokenize("-m", spm, "--decode", "-p", "1 99999999", check=False)
    assert r.returncode == 1 and r.stderr
    r = tokenize("-m", spm, "--decode", "-p", "1 abc", check=False)
    assert r.returncode == 2
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 40)
    r = tokenize("-m", bad, "-p", "x", check=False)
    assert r.returncode == 1 and r.stderr
