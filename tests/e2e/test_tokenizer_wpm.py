"""WordPiece ("bert") tokenizer through `inferneo tokenize`, on small hand-made vocabularies.

There is no bert vocabulary among the fixtures, so each test writes a vocab-only GGUF
(general.architecture "bert", tokenizer.ggml.model "bert") the way llama.cpp's converter stores
a WordPiece vocabulary: word-initial pieces carry the "▁" prefix, continuation pieces are stored
without "##"; [PAD]=0, [UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103.

The hand-written cases pin the behaviour llama.cpp's llm_tokenizer_wpm_session has (lowercase,
first-code-point NFD, punctuation/CJK split, greedy longest match, [UNK] for a word that cannot
be cut, [CLS] ... [SEP] with add_special). test_random_against_reference compares many random
strings with a small Python model of the same algorithm built on Python's unicodedata (the
tables in src/tokenizer/unicode_tables.c are generated from the same module).
"""

import os
import random
import struct
import subprocess
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(os.environ.get("INFERNEO_ROOT") or Path(__file__).resolve().parents[2])
BIN = os.environ.get("INFERNEO_BIN") or str(ROOT / "build" / "inferneo")
SEP = "\n__sep__\n"

U32, I32, BOOL, STR, ARR = 4, 5, 7, 8, 9
P = "\u2581"


def gguf_bytes(kv):
    """A tensor-free GGUF v3 file from {key: (type, value)}; arrays: (ARR, (elem_type, list))."""

    def s(x):
        x = x.encode() if isinstance(x, str) else x
        return struct.pack("<Q", len(x)) + x

    def val(t, v):
        if t == STR:
            return s(v)
        if t == ARR:
            et, vals = v
            head = struct.pack("<IQ", et, len(vals))
            if et == STR:
                return head + b"".join(s(x) for x in vals)
            return head + struct.pack("<%d%s" % (len(vals), {I32: "i", U32: "I"}[et]), *vals)
        return struct.pack("<" + {U32: "I", I32: "i", BOOL: "?"}[t], v)

    out = [b"GGUF", struct.pack("<IQQ", 3, 0, len(kv))]
    for k, (t, v) in kv.items():
        out += [s(k), struct.pack("<I", t), val(t, v)]
    data = b"".join(out)
    return data + b"\0" * ((-len(data)) % 32)


def base_tokens():
    toks = ["[PAD]"] + ["[unused%d]" % i for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]",
                                                                      "[MASK]"]
    types = [3] + [1] * 99 + [2, 3, 3, 3]
    return toks, types


WORDS = [
    P + "hello", P + "world", P + "un", P + "unaff", "aff", "able", "ab", P + ",", P + "!",
    P + ".", P + "fuhrer", P + "e", P + "cafe", P + "中", P + "文", P + "$", P + "the", P + "a",
    P + "hel", P + "'", P + "s", P + "x", "\u20ac", P + "привет", P + "α", P + "[", P + "]",
]


def write_vocab(path, words=WORDS, extra_kv=None):
    toks, types = base_tokens()
    toks += words
    types += [1] * len(words)
    kv = {
        "general.architecture": (STR, "bert"),
        "general.name": (STR, "wpm-test"),
        "tokenizer.ggml.model": (STR, "bert"),
        "tokenizer.ggml.tokens": (ARR, (STR, toks)),
        "tokenizer.ggml.token_type": (ARR, (I32, types)),
    }
    kv.update(extra_kv or {})
    path.write_bytes(gguf_bytes(kv))
    return {t: i for i, t in reversed(list(enumerate(toks)))}


def run(*args, check=True):
    r = subprocess.run([BIN, "tokenize", *map(str, args)], capture_output=True, timeout=60)
    if check:
        assert r.returncode == 0, r.stderr.decode(errors="replace")
    return r


def encode_many(vocab, texts, tmp_path, *flags):
    f = tmp_path / "inp.txt"
    f.write_bytes(SEP.encode().join(t if isinstance(t, bytes) else t.encode() for t in texts))
    r = run("-m", vocab, "-f", f, "--separator", SEP, *flags)
    lines = r.stdout.decode().split("\n")
    assert lines[-1] == ""
    assert len(lines) - 1 == len(texts)
    return [[int(x) for x in line.split()] for line in lines[:-1]]


@pytest.fixture
def vocab(tmp_path):
    p = tmp_path / "bert.gguf"
    ids = write_vocab(p)
    return p, ids


CASES = [
    # (text, expected pieces; "[UNK]" for the unknown token)
    ("hello world", [P + "hello", P + "world"]),
    ("HELLO World", [P + "hello", P + "world"]),  # lowercase
    ("café", [P + "cafe"]),  # NFD: e + acute -> e
    ("Führer", [P + "fuhrer"]),
    ("É", [P + "e"]),
    ("ΆΑ", ["[UNK]"]),  # NFD(Ά) = Α, lowercased: "αα" is not a token and "▁α" + "α" neither
    ("Ά", [P + "α"]),
    ("ПРИВЕТ", [P + "привет"]),
    ("hello, world!", [P + "hello", P + ",", P + "world", P + "!"]),  # punctuation split
    ("hello,world", [P + "hello", P + ",", P + "world"]),
    ("the's", [P + "the", P + "'", P + "s"]),
    ("a$", [P + "a", P + "$"]),  # ASCII symbol: a word of its own
    ("a\u20ac", [P + "a", "\u20ac"]),  # non-ASCII symbol extends the word
    ("中文", [P + "中", P + "文"]),  # CJK split
    ("hello中文world", [P + "hello", P + "中", P + "文", P + "world"]),
    ("xyz", ["[UNK]"]),  # "▁x" matches, "yz" does not: the whole word is unknown
    ("help", ["[UNK]"]),  # "▁hel" then "p" fails
    ("unaffable", [P + "unaff", "able"]),  # longest match from the left
    ("unable", [P + "un", "able"]),
    ("unab", [P + "un", "ab"]),
    ("hello   \t\n world", [P + "hello", P + "world"]),
    ("hello\u00a0world\u3000the", [P + "hello", P + "world", P + "the"]),  # Unicode spaces
    ("hel\x07lo", [P + "hello"]),  # control characters are dropped
    ("hel\u200blo", [P + "hello"]),  # Cf (zero-width space) too
    (b"hel\xfflo", [P + "hello"]),  # invalid UTF-8 -> U+FFFD -> dropped
    ("hel\x00lo", [P + "hello"]),
    ("hel\ufffdlo", [P + "hello"]),
    ("cafe\u0301", ["[UNK]"]),  # a lone combining mark stays in the word (llama.cpp c392e5094)
    ("", []),
    (" \t\n ", []),
    ("[CLS] hello", [P + "[", "[UNK]", P + "]", P + "hello"]),  # no parse_special: plain text
]


def test_encode_cases(vocab, tmp_path):
    path, ids = vocab
    texts = [t for t, _ in CASES]
    got = encode_many(path, texts, tmp_path, "--no-add-special")
    bad = []
    for (t, want), g in zip(CASES, got):
        w = [ids[x] for x in want]
        if g != w:
            bad.append("%r: got %s want %s" % (t, g, w))
    assert not bad, "\n".join(bad)


def test_add_special(vocab, tmp_path):
    path, ids = vocab
    got = encode_many(path, ["hello world", "", "xyz"], tmp_path)
    assert got == [[101, ids[P + "hello"], ids[P + "world"], 102], [101, 102], [101, 100, 102]]
    # add_bos_token / add_sep_token = false: llama.cpp still adds both with add_special
    p2 = tmp_path / "nobos.gguf"
    write_vocab(p2, extra_kv={"tokenizer.ggml.add_bos_token": (BOOL, False),
                              "tokenizer.ggml.add_sep_token": (BOOL, False)})
    assert encode_many(p2, ["hello"], tmp_path) == [[101, ids[P + "hello"], 102]]


def test_parse_special(vocab, tmp_path):
    path, ids = vocab
    texts = ["[CLS] hello [SEP]", "hello [MASK] world", "HELLO[SEP]the"]
    got = encode_many(path, texts, tmp_path, "--no-add-special", "--parse-special")
    h, w, the = ids[P + "hello"], ids[P + "world"], ids[P + "the"]
    assert got == [[101, h, 102], [h, 103, w], [h, 102, the]]
    got = encode_many(path, ["[MASK]"], tmp_path, "--parse-special")
    assert got == [[101, 103, 102]]


def test_special_ids_from_metadata(tmp_path):
    """bos/sep/unk ids come from the metadata when given (here: swapped around)."""
    p = tmp_path / "ids.gguf"
    ids = write_vocab(p, extra_kv={
        "tokenizer.ggml.bos_token_id": (U32, 102),
        "tokenizer.ggml.seperator_token_id": (U32, 101),
        "tokenizer.ggml.unknown_token_id": (U32, 0),
    })
    assert encode_many(p, ["hello xyz"], tmp_path) == [[102, ids[P + "hello"], 0, 101]]


def test_normalizer_flags(tmp_path):
    """tokenizer.ggml.normalizer.lowercase / strip_accents (newer llama.cpp converters write
    them; strip_accents follows lowercase unless given)."""
    words = [P + "Hello", P + "hello", P + "café", P + "cafe", P + "Café"]
    p = tmp_path / "cased.gguf"
    ids = write_vocab(p, words, {"tokenizer.ggml.normalizer.lowercase": (BOOL, False)})
    got = encode_many(p, ["Hello", "hello", "café", "Café"], tmp_path, "--no-add-special")
    assert got == [[ids[P + "Hello"]], [ids[P + "hello"]], [ids[P + "café"]], [ids[P + "Café"]]]
    p = tmp_path / "accents.gguf"
    ids = write_vocab(p, words, {"tokenizer.ggml.normalizer.strip_accents": (BOOL, False)})
    got = encode_many(p, ["Café", "CAFE"], tmp_path, "--no-add-special")
    assert got == [[ids[P + "café"]], [ids[P + "cafe"]]]


def test_decode(vocab, tmp_path):
    path, ids = vocab
    seq = [101, ids[P + "hello"], ids[P + ","], ids[P + "world"], ids[P + "!"], 102]
    r = run("-m", path, "--decode", "--skip-special", "-p", " ".join(map(str, seq)))
    assert r.stdout.decode() == "hello , world !"  # no clean-up of spaces before punctuation
    r = run("-m", path, "--decode", "-p", " ".join(map(str, seq)))
    assert r.stdout.decode() == "[CLS] hello , world ![SEP]"
    r = run("-m", path, "--decode", "-p", "%d %d %d" % (ids[P + "unaff"], ids["able"],
                                                       ids[P + "the"]))
    assert r.stdout.decode() == "unaffable the"
    r = run("-m", path, "--decode", "--skip-special", "-p", "100 %d" % ids[P + "the"])
    assert r.stdout.decode() == "the"  # leading space dropped at the start of the text


def test_decode_roundtrip_of_normalized_text(vocab, tmp_path):
    path, ids = vocab
    text = "hello world the a"
    (enc,) = encode_many(path, [text], tmp_path)
    r = run("-m", path, "--decode", "--skip-special", "-p", " ".join(map(str, enc)))
    assert r.stdout.decode() == text


@pytest.mark.parametrize("kv,why", [
    ({"tokenizer.ggml.token_type": (ARR, (I32, [1] * 50))}, "token types shorter than tokens"),
    ({"tokenizer.ggml.tokens": (ARR, (I32, [1, 2, 3]))}, "tokens not strings"),
    ({"tokenizer.ggml.token_type": (ARR, (I32, [6] * 200))}, "byte tokens"),
    ({"tokenizer.ggml.add_sep_token": (STR, "yes")}, "add_sep not a bool"),
    ({"tokenizer.ggml.normalizer.lowercase": (U32, 1)}, "lowercase not a bool"),
])
def test_bad_vocab_fails_cleanly(tmp_path, kv, why):
    p = tmp_path / "bad.gguf"
    write_vocab(p, extra_kv=kv)
    r = run("-m", p, "-p", "hello", check=False)
    assert r.returncode == 1, why
    assert len(r.stderr.decode().strip().split("\n")) == 1, r.stderr


def test_small_vocab_without_default_ids(tmp_path):
    """A vocabulary smaller than the default ids: they are disabled, and add_bos (default true)
    without a BOS is refused like llama.cpp does; with add_bos/add_sep off it loads and an
    unknown word gives no token (there is no [UNK])."""
    p = tmp_path / "tiny.gguf"
    toks = ["[PAD]", P + "hi"]
    kv = {"general.architecture": (STR, "bert"), "tokenizer.ggml.model": (STR, "bert"),
          "tokenizer.ggml.tokens": (ARR, (STR, toks))}
    p.write_bytes(gguf_bytes(kv))
    r = run("-m", p, "-p", "hi", check=False)
    assert r.returncode == 1 and b"BOS" in r.stderr
    kv["tokenizer.ggml.add_bos_token"] = (BOOL, False)
    kv["tokenizer.ggml.add_sep_token"] = (BOOL, False)
    p.write_bytes(gguf_bytes(kv))
    assert encode_many(p, ["hi zz hi", "HI"], tmp_path) == [[1, 1], [1]]


def test_long_word_is_fast(vocab, tmp_path):
    """A 1 MB word of one letter: the longest-match search stays linear."""
    path, ids = vocab
    got = encode_many(path, ["a" * 1000000, "un" + "ab" * 300000], tmp_path, "--no-add-special")
    assert got == [[100], [ids[P + "un"]] + [ids["ab"]] * 300000]


# ---- differential test against a Python model of llama.cpp's algorithm ----------------------

WS = set(range(9, 14)) | set(range(0x2000, 0x200B)) | {
    0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000}


def cpts_llama(b):
    """UTF-8 -> code points like llama.cpp's unicode_cpts_from_utf8."""
    out, i, n = [], 0, len(b)
    while i < n:
        c = b[i]
        need = 1 if c < 0x80 else 0 if c < 0xC0 else 2 if c < 0xE0 else 3 if c < 0xF0 else \
            4 if c < 0xF8 else 0
        if need == 1:
            out.append(c)
            i += 1
            continue
        if need == 0 or i + need > n or any(b[i + k] & 0xC0 != 0x80 for k in range(1, need)):
            out.append(0xFFFD)
            i += 1
            continue
        v = c & (0x1F if need == 2 else 0x0F if need == 3 else 0x07)
        for k in range(1, need):
            v = v << 6 | (b[i + k] & 0x3F)
        out.append(v)
        i += need
    return out


def is_cjk(c):
    return any(a <= c <= b for a, b in [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF),
                                        (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
                                        (0x2B920, 0x2CEAF), (0xF900, 0xFAFF),
                                        (0x2F800, 0x2FA1F)])


def ref_words(b):
    words, cur = [], ""
    for cp in cpts_llama(b):
        if cp <= 0x10FFFF:
            cp = ord(unicodedata.normalize("NFD", chr(cp))[0])
        else:
            continue
        cat = unicodedata.category(chr(cp))
        if cp in WS:
            if cur:
                words.append(cur)
            cur = ""
            continue
        if cp == 0 or cp == 0xFFFD or (cat[0] == "C" and cat != "Cn"):
            continue
        s = chr(cp).lower()[0]
        if cat[0] == "P" or (cp < 0x7F and cat[0] == "S") or is_cjk(cp):
            if cur:
                words.append(cur)
            words.append(s)
            cur = ""
        else:
            cur += s
    if cur:
        words.append(cur)
    return words


def ref_encode(b, ids):
    maxlen = max(len(t) for t in ids)
    out = []
    for w in ref_words(b):
        wb = (P + w).encode("utf-8", "surrogatepass")
        start, i = len(out), 0
        while i < len(wb):
            for j in range(min(len(wb), i + maxlen), i, -1):
                tok = ids.get(wb[i:j])
                if tok is not None:
                    out.append(tok)
                    i = j
                    break
            else:
                del out[start:]
                break
        if len(out) == start:
            out.append(100)
    return out


POOL = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") +
        list(" \t\n,.!?;:'\"()[]{}<>$%&*+-/=@^_`|~#") +
        list("éèêëàáâäåçñöøüßÉÈÀÁÂÄÅÇÑÖØÜİıŁłĐđ") +
        list("αβγΑΒΓάέΆΈΩωЖжЯяЁёДд") +
        list("中文字漢你好日本語ひらがなカタカナ한국어가나") +
        list("\u0301\u0308\u0327\u20ac\u00a3\u00a9\u2122\u2013\u2014\u201c\u201d\u00a0\u3000"
             "\u200b\u200d\ufeff\u2028\x07\x1b\x7f\u00ad\U0001f600\U0001d400\u2160\u00bd"
             "\ufb01\u1e9e\u01c5\u0130\ud7a3\uac00\ufffd\U000e0001\U0010fffd"))


def test_random_against_reference(tmp_path):
    rng = random.Random(1234)
    # vocabulary: word-initial and continuation pieces of 1..3 normalized characters
    norm = sorted({w for c in POOL for w in ref_words(c.encode("utf-8", "surrogatepass"))})
    pieces = set()
    for _ in range(700):
        k = rng.randint(1, 3)
        s = "".join(rng.choice(norm) for _ in range(k))
        pieces.add(P + s if rng.random() < 0.5 else s)
    for s in norm:
        if rng.random() < 0.8:
            pieces.add(P + s)
        if rng.random() < 0.6:
            pieces.add(s)
    words = sorted(pieces)
    p = tmp_path / "rand.gguf"
    ids = write_vocab(p, words)
    bids = {t.encode("utf-8", "surrogatepass"): i for t, i in ids.items()}
    texts = []
    for _ in range(400):
        n = rng.randint(0, 30)
        texts.append("".join(rng.choice(POOL) for _ in range(n)).encode("utf-8"))
    for _ in range(50):  # raw bytes: invalid UTF-8, overlong forms, 4-byte values > U+10FFFF
        texts.append(bytes(rng.choice(b"ab \xc3\xa9\xe4\xb8\xad\xf4\x90\x80\x80\xc0\xff\x80")
                           for _ in range(rng.randint(1, 20))))
    texts = [t for t in texts if SEP.encode() not in t]
    got = encode_many(p, texts, tmp_path, "--no-add-special")
    bad = []
    for t, g in zip(texts, got):
        want = ref_encode(t, bids)
        if g != want:
            bad.append("%r: got %s want %s" % (t, g, want))
    assert not bad, "%d mismatches:\n" % len(bad) + "\n".join(bad[:10])
