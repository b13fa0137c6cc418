"""Command-line behaviour of the runtime subcommands: --help everywhere (exit 0, usage on
stdout), and bad arguments or inputs give a non-zero exit with exactly one line on stderr,
never a crash or a hang."""
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(os.environ.get("INFERNEO_ROOT", Path(__file__).resolve().parents[2]))
BIN = os.environ.get("INFERNEO_BIN", str(ROOT / "build" / "inferneo"))
FIXTURES = Path(os.environ.get("INFERNEO_FIXTURES", ROOT.parent / "shared" / "fixtures"))
STORIES = str(ROOT / "models" / "stories260K.gguf")
QWEN = str(FIXTURES / "models" / "tiny-qwen2-q8_0.gguf")

SUBCOMMANDS = ["serve", "generate", "batch", "info", "tokenize", "logits", "bench", "synth"]


def run(args, timeout=20):
    return subprocess.run([BIN] + args, capture_output=True, timeout=timeout)


def test_top_level_help():
    p = run(["--help"])
    assert p.returncode == 0
    for c in SUBCOMMANDS:
        assert c.encode() in p.stdout
    assert run([]).returncode != 0
    assert run(["no-such-command"]).returncode != 0


@pytest.mark.parametrize("cmd", SUBCOMMANDS)
def test_subcommand_help(cmd):
    for flag in ("--help", "-h"):
        p = run([cmd, flag])
        assert p.returncode == 0, p.stderr
        assert p.stdout.startswith(b"usage: inferneo " + cmd.encode()), p.stdout[:80]


BAD = [
    ["generate", "-m", STORIES, "-p", "hi", "-n", "abc"],
    ["generate", "-m", STORIES, "-p", "hi", "-n", "99999999999999999999"],
    ["generate", "-m", STORIES, "-p", "hi", "--temp", "-1"],
    ["generate", "-m", STORIES, "-p", "hi", "--temp", "nan"],
    ["generate", "-m", STORIES, "-p", "hi", "--top-p", "2"],
    ["generate", "-m", STORIES, "-p", "hi", "-t", "100000"],
    ["generate", "-m", STORIES, "-p", "hi", "--bogus"],
    ["generate", "-m", STORIES, "-p"],
    ["generate", "-p", "hi"],
    ["generate", "-m", "/nonexistent.gguf", "-p", "hi"],
    ["generate", "-m", "/tmp", "-p", "hi"],
    ["generate", "-m", "/dev/null", "-p", "hi"],
    ["generate", "-m", STORIES, "-p", "word " * 3000, "-n", "4"],  # beyond the context
    ["generate", "-m", STORIES, "-p", "hi", "-c", "2", "-n", "4"],
    ["logits", "-m", QWEN, "-p", "", "-o", "/tmp/inferneo-test-logits.f32"],  # no tokens
    ["logits", "-m", STORIES, "-p", "hi", "-o", "/nonexistent/dir/x.f32"],
    ["tokenize", "-m", STORIES, "-f", "/nonexistent.txt"],
    ["tokenize", "-m", "/nonexistent.gguf", "-p", "hi"],
    ["info", "/nonexistent.gguf"],
    ["info", STORIES, STORIES],
    ["batch", "-m", STORIES, "-f", "/nonexistent.jsonl"],
    ["batch", "-m", STORIES, "-f", "/dev/null", "--kv-mem", "-1"],
    ["batch", "-m", STORIES, "-f", "/dev/null", "--page-tokens", "0"],
]


@pytest.mark.parametrize("args", BAD, ids=[" ".join(a)[:60] for a in BAD])
def test_bad_input_one_line_error(args):
    p = run(args)
    assert p.returncode in (1, 2), (p.returncode, p.stderr)
    lines = p.stderr.decode(errors="replace").rstrip("\n").split("\n")
    assert len(lines) == 1 and lines[0].strip(), p.stderr


def test_generate_huge_n_stops_at_context():
    # -n far beyond the context: generation stops when the (small) context is full
    p = run(["generate", "-m", STORIES, "-p", "Once", "-n", "2000000000", "-c", "48",
             "--temp", "0"])
    assert p.returncode == 0, p.stderr
    assert p.stdout


def test_tokenize_hostile_text():
    for text in ["", "\xff\xfe".encode("latin-1").decode("latin-1"), "a" * 100000]:
        p = run(["tokenize", "-m", QWEN, "-p", text, "--no-add-special"])
        assert p.returncode == 0, p.stderr
    # invalid UTF-8 bytes from a file
    path = "/tmp/inferneo-test-bad-utf8.txt"
    with open(path, "wb") as f:
        f.write(b"\xff\xfe\xc0\x80 \xed\xa0\x80 ok")
    try:
        for m in (STORIES, QWEN):
            p = run(["tokenize", "-m", m, "-f", path, "--no-add-special"])
            assert p.returncode == 0, p.stderr
            assert p.stdout.split()
    finally:
        os.unlink(path)


@pytest.mark.parametrize("cmd", [["tokenize", "-m", STORIES, "-f", "/dev/zero"],
                                 ["batch", "-m", STORIES, "-f", "/dev/zero"]])
def test_endless_input_file_is_bounded(cmd):
    p = run(cmd, timeout=30)
    assert p.returncode in (1, 2), p.stderr
    assert p.stderr.count(b"\n") == 1 and b"larger than" in p.stderr, p.stderr


def test_endless_batch_stdin_is_bounded():
    with open("/dev/zero", "rb") as zero:
        p = subprocess.run([BIN, "batch", "-m", STORIES, "-f", "-"], stdin=zero,
                           capture_output=True, timeout=30)
    assert p.returncode == 2 and b"larger than" in p.stderr, p.stderr


ARCH_INFO = {
    "tiny-qwen3moe-q8_0": ["architecture       qwen3moe", "n_expert         8",
                           "n_expert_used    2", "n_ff_expert      64", "head_dim         32"],
    "tiny-gemma2-f16": ["sliding_window   8", "l % 2 < 1", "attn_softcap     4",
                        "final_softcap    30"],
    "tiny-gemma3-f16": ["sliding_window   8", "l % 3 < 2", "rope_base_swa    10000 (scale 1)",
                        "rope_freq_scale  0.125"],
    "tiny-phi3-f16": ["rope_dims        24 of 32", "longrope (original context 32"],
}


@pytest.mark.parametrize("stem", sorted(ARCH_INFO))
def test_info_shows_arch_hyperparameters(stem):
    path = FIXTURES / "models" / (stem + ".gguf")
    if not path.exists():
        pytest.skip("fixture missing")
    p = run(["info", str(path)])
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode()
    for want in ARCH_INFO[stem]:
        assert want in out, (want, out)


def test_synth_moe_loads_and_reports_routed_bytes(tmp_path):
    out = tmp_path / "moe.gguf"
    p = run(["synth", "--shape", "m:64,2,4,2,128,512", "--type", "q8_0", "--experts", "4",
             "--experts-used", "2", "-o", str(out)])
    assert p.returncode == 0, p.stderr
    info = run(["info", str(out)]).stdout.decode()
    assert "n_expert         4" in info and "n_expert_used    2" in info, info
    # per token: everything but the 2 experts of 4 a token is not routed to
    total = int(info.split("weight bytes")[1].split()[0])
    per_tok = int(info.split("weight bytes/token")[1].split()[0])
    expert = 3 * 4 * 2 * (128 * 64 // 32 * 34)  # 3 matrices x 4 experts x 2 layers, q8_0
    assert per_tok == total - expert // 2, (per_tok, total)
    p = run(["generate", "-m", str(out), "-p", "Once", "-n", "4", "--temp", "0", "-t", "2"])
    assert p.returncode == 0, p.stderr
    assert run(["synth", "--shape", "m:64,2,4,2,128,512", "--type", "q8_0", "--experts", "2",
                "--experts-used", "3", "-o", str(out)]).returncode != 0
