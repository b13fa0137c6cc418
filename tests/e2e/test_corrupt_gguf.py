"""Hostile GGUF files against the real binary.

From two fixture models this builds ~300 corrupted files (truncation at every section boundary,
hostile values in counts / lengths / dims / types / offsets / alignment, duplicate keys and
tensor names, seeded random byte flips) and runs `inferneo info F` and
`inferneo generate -m F -p hi -n 4` on each. Every run must finish within the timeout, never die
from a signal, and when it fails it must print exactly one non-empty line on stderr. Corruptions
that break the file's structure must make both commands fail; the rest (a flipped byte in weight
data) may succeed.
"""

import concurrent.futures as cf
import os
import random
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(os.environ.get("INFERNEO_ROOT", Path(__file__).resolve().parents[2]))
BIN = os.environ.get("INFERNEO_BIN", str(ROOT / "build" / "inferneo"))
FIXTURES = Path(os.environ.get("INFERNEO_FIXTURES", ROOT.parent / "shared" / "fixtures"))
MODELS = ["stories260K.gguf", "tiny-qwen2-q8_0.gguf"]
TIMEOUT = 5  # seconds per command (generous: the binary should answer in well under 2 s)
WORKERS = 2

U64_MAX = 2**64 - 1
I64_MAX = 2**63 - 1
SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
STRING, ARRAY = 8, 9


# ---- a minimal GGUF layout parser (test-side, trusted input: the pristine fixtures) ----------


class Layout:
    def __init__(self, data: bytes):
        self.data = data
        assert data[:4] == b"GGUF"
        self.version, self.n_tensors, self.n_kv = struct.unpack_from("<IQQ", data, 4)
        pos = 24
        self.kvs = []  # dicts with offsets of each field
        for _ in range(self.n_kv):
            kv = {"start": pos}
            (klen,) = struct.unpack_from("<Q", data, pos)
            kv["key"] = data[pos + 8 : pos + 8 + klen].decode()
            pos += 8 + klen
            kv["type_off"] = pos
            (vtype,) = struct.unpack_from("<I", data, pos)
            kv["type"] = vtype
            pos += 4
            kv["value_off"] = pos
            if vtype == ARRAY:
                et, n = struct.unpack_from("<IQ", data, pos)
                kv["elem_type"], kv["n"] = et, n
                pos += 12
                kv["first_elem"] = pos
                pos = self._skip_elems(pos, et, n)
            else:
                pos = self._skip_elems(pos, vtype, 1)
            kv["end"] = pos
            self.kvs.append(kv)
        self.tensors = []
        for _ in range(self.n_tensors):
            t = {"start": pos}
            (nlen,) = struct.unpack_from("<Q", data, pos)
            t["name"] = data[pos + 8 : pos + 8 + nlen].decode()
            pos += 8 + nlen
            t["ndims_off"] = pos
            (nd,) = struct.unpack_from("<I", data, pos)
            pos += 4
            t["ne_off"] = pos
            t["ne"] = list(struct.unpack_from("<%dQ" % nd, data, pos))
            pos += 8 * nd
            t["type_off"] = pos
            (t["type"],) = struct.unpack_from("<I", data, pos)
            pos += 4
            t["offset_off"] = pos
            (t["offset"],) = struct.unpack_from("<Q", data, pos)
            pos += 8
            t["end"] = pos
            self.tensors.append(t)
        self.infos_end = pos
        align = 32
        for kv in self.kvs:
            if kv["key"] == "general.alignment":
                (align,) = struct.unpack_from("<I", data, kv["value_off"])
        self.alignment = align
        self.data_start = (pos + align - 1) // align * align
        # Bytes per tensor are not needed precisely: the last tensor's data ends at the end of
        # the file in llama.cpp's layout, so any truncation before that must fail.
        self.data_end = len(data)

    def _skip_elems(self, pos, t, n):
        if t == STRING:
            for _ in range(n):
                (slen,) = struct.unpack_from("<Q", self.data, pos)
                pos += 8 + slen
            return pos
        if t == ARRAY:
            for _ in range(n):
                et, m = struct.unpack_from("<IQ", self.data, pos)
                pos = self._skip_elems(pos + 12, et, m)
            return pos
        return pos + SCALAR[t] * n

    def kv(self, key):
        for kv in self.kvs:
            if kv["key"] == key:
                return kv
        return None


def sample_tensors(lay: Layout):
    """First, middle and last tensor infos."""
    n = len(lay.tensors)
    return [lay.tensors[i] for i in sorted({0, n // 2, n - 1})]


def patch(data: bytes, off: int, fmt: str, value) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, off, value)
    return bytes(b)


def insert_kv(lay: Layout, raw_kv: bytes) -> bytes:
    """Adds a key/value after the existing ones and re-lays the data section (alignment 32)."""
    d = lay.data
    head = bytearray(d[: lay.infos_end])
    struct.pack_into("<Q", head, 16, lay.n_kv + 1)
    last_kv_end = lay.kvs[-1]["end"]
    head = bytes(head[:last_kv_end]) + raw_kv + bytes(head[last_kv_end:])
    pad = (-len(head)) % lay.alignment
    return head + b"\0" * pad + d[lay.data_start :]


def kv_bytes(key: str, vtype: int, payload: bytes) -> bytes:
    k = key.encode()
    return struct.pack("<Q", len(k)) + k + struct.pack("<I", vtype) + payload


# ---- the cases ----------------------------------------------------------------------------------


def build_cases(model: str):
    """Returns [(label, bytes-producing callable, must_fail)]."""
    data = (FIXTURES / "models" / model).read_bytes()
    lay = Layout(data)
    cases = []

    def add(label, fn, must_fail=True):
        cases.append((f"{model}:{label}", fn, must_fail))

    # truncation at section boundaries
    cuts = {0, 3, 4, 7, 8, 16, 23, 24}
    for i, kv in enumerate(lay.kvs):
        if i % 2 == 0:
            cuts.add(kv["start"])
        if i % 3 == 1:
            cuts.add(kv["type_off"])
        if i % 4 == 2:
            cuts.add(kv["value_off"] + 1)
            cuts.add((kv["value_off"] + kv["end"]) // 2)
    for t in sample_tensors(lay):
        cuts.update({t["start"], t["ne_off"] + 3, t["offset_off"]})
    cuts.update({lay.infos_end, lay.data_start - 1, lay.data_start, lay.data_start + 1,
                 (lay.data_start + len(data)) // 2, len(data) - 1})
    for c in sorted(x for x in cuts if 0 <= x < lay.data_end):
        add(f"truncate@{c}", lambda c=c: data[:c])

    # header
    add("magic", lambda: b"GGML" + data[4:])
    for v in (0, 1, 4, 0x03000000, 0xFFFFFFFF):
        add(f"version={v:#x}", lambda v=v: patch(data, 4, "<I", v))
    for n in (I64_MAX, U64_MAX, 2**60, 2**32, lay.n_tensors + 1):
        add(f"n_tensors={n}", lambda n=n: patch(data, 8, "<Q", n))
    for n in (I64_MAX, U64_MAX, 2**60, 2**32, lay.n_kv + 1):
        add(f"n_kv={n}", lambda n=n: patch(data, 16, "<Q", n))

    # metadata: key lengths, value types, string lengths, array lengths and element types
    for i, kv in enumerate(lay.kvs):
        if i % 4 == 0:
            for n in (I64_MAX, 0):
                add(f"kv{i}.keylen={n}", lambda kv=kv, n=n: patch(data, kv["start"], "<Q", n))
        if i % 3 == 0:
            add(f"kv{i}.type=13", lambda kv=kv: patch(data, kv["type_off"], "<I", 13))
        if kv["type"] == STRING:
            for n in (I64_MAX, len(data)):
                add(f"kv{i}.strlen={n}", lambda kv=kv, n=n: patch(data, kv["value_off"], "<Q", n))
        if kv["type"] == ARRAY:
            off = kv["value_off"]
            for n in (I64_MAX, 2**62, kv["n"] + 1):
                add(f"kv{i}.arrlen={n}", lambda off=off, n=n: patch(data, off + 4, "<Q", n))
            for et in (13, ARRAY):
                # ARRAY as element type reinterprets the elements: may parse, must not crash
                add(f"kv{i}.elemtype={et}", lambda off=off, et=et: patch(data, off, "<I", et),
                    must_fail=et != ARRAY)
            if kv["elem_type"] == STRING and kv["n"] > 0:
                for n in (I64_MAX, len(data)):
                    add(f"kv{i}.elem0len={n}",
                        lambda kv=kv, n=n: patch(data, kv["first_elem"], "<Q", n))

    # alignment, duplicate key (inserted key/values)
    for a in (0, 3, 48, 2**31):
        add(f"alignment={a}",
            lambda a=a: insert_kv(lay, kv_bytes("general.alignment", 4, struct.pack("<I", a))))
    add("alignment=string",
        lambda: insert_kv(lay, kv_bytes("general.alignment", STRING,
                                        struct.pack("<Q", 2) + b"32")))
    first = lay.kvs[0]
    add("duplicate-key", lambda: insert_kv(lay, data[first["start"] : first["end"]]))
    add("nested-array-depth",
        lambda: insert_kv(lay, kv_bytes("x.nested", ARRAY,
                                        struct.pack("<IQ", ARRAY, 1) * 40
                                        + struct.pack("<IQ", 0, 0))))

    # tensor infos
    for t in sample_tensors(lay):
        i = lay.tensors.index(t)
        for nd in (0, 5):
            add(f"t{i}.n_dims={nd}", lambda t=t, nd=nd: patch(data, t["ndims_off"], "<I", nd))
        for ne in (0, U64_MAX, 2**40):
            add(f"t{i}.ne0={ne}", lambda t=t, ne=ne: patch(data, t["ne_off"], "<Q", ne))
        if len(t["ne"]) > 1:
            add(f"t{i}.ne1=2^62", lambda t=t: patch(data, t["ne_off"] + 8, "<Q", 2**62))
        for ty in (4, 0xFFFFFFFF):
            add(f"t{i}.type={ty}", lambda t=t, ty=ty: patch(data, t["type_off"], "<I", ty))
        for off in (t["offset"] + 1, len(data), U64_MAX - 31):
            add(f"t{i}.offset={off}",
                lambda t=t, off=off: patch(data, t["offset_off"], "<Q", off))
    # a tensor renamed to another's name
    by_len = {}
    for t in lay.tensors:
        by_len.setdefault(len(t["name"]), []).append(t)
    pair = next(v for v in by_len.values() if len(v) >= 2)
    add("duplicate-tensor",
        lambda: patch(data, pair[1]["start"] + 8, "%ds" % len(pair[0]["name"]),
                      pair[0]["name"].encode()))

    # seeded random byte flips: mostly in the header/metadata/tensor-info region
    rng = random.Random(0x6775 + len(data))
    for k in range(30):
        region = lay.infos_end if k % 4 else len(data)
        flips = [(rng.randrange(region), rng.randrange(256)) for _ in range(rng.randint(1, 4))]

        def flipped(flips=flips):
            b = bytearray(data)
            for pos, val in flips:
                b[pos] = val
            return bytes(b)

        add(f"flip{k}", flipped, must_fail=False)
    return cases


# ---- running --------------------------------------------------------------------------------


def run(args):
    try:
        p = subprocess.run([BIN] + args, capture_output=True, timeout=TIMEOUT,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None
    return p


def check_one(case, tmpdir):
    label, make, must_fail = case
    path = os.path.join(tmpdir, label.replace(":", "_").replace("/", "_") + ".gguf")
    with open(path, "wb") as f:
        f.write(make())
    problems = []
    try:
        for args in (["info", path], ["generate", "-m", path, "-p", "hi", "-n", "4"]):
            p = run(args)
            what = f"{label}: inferneo {args[0]}"
            if p is None:
                problems.append(f"{what}: no answer within {TIMEOUT} s")
                continue
            if p.returncode < 0:
                problems.append(f"{what}: killed by signal {-p.returncode}")
                continue
            err = p.stderr.decode("utf-8", "replace")
            if p.returncode != 0:
                lines = err.rstrip("\n").split("\n")
                if not err.strip():
                    problems.append(f"{what}: exit {p.returncode} with empty stderr")
                elif len(lines) != 1:
                    problems.append(f"{what}: exit {p.returncode} with {len(lines)} stderr "
                                    f"lines: {err[:300]!r}")
            elif must_fail:
                problems.append(f"{what}: exit 0 on a structurally broken file")
    finally:
        os.unlink(path)
    return problems


def binary_or_skip():
    if not os.access(BIN, os.X_OK):
        pytest.skip(f"binary not built: {BIN}")


@pytest.mark.parametrize("model", MODELS)
def test_corrupt_files(model):
    binary_or_skip()
    if not (FIXTURES / "models" / model).exists():
        pytest.skip(f"fixture missing: {model}")
    cases = build_cases(model)
    assert 100 <= len(cases) <= 200, len(cases)
    with tempfile.TemporaryDirectory(prefix="inferneo-corrupt-") as tmpdir:
        with cf.ThreadPoolExecutor(WORKERS) as pool:
            results = list(pool.map(lambda c: check_one(c, tmpdir), cases))
    problems = [p for r in results for p in r]
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:40])


def test_pristine_and_explicit_alignment_load():
    """Controls: the unmodified file and one with an explicit general.alignment = 32 load, so the
    corruption test is not passing only because everything fails."""
    binary_or_skip()
    data = (FIXTURES / "models" / MODELS[0]).read_bytes()
    lay = Layout(data)
    with tempfile.TemporaryDirectory(prefix="inferneo-corrupt-") as tmpdir:
        ok = os.path.join(tmpdir, "aligned.gguf")
        with open(ok, "wb") as f:
            f.write(insert_kv(lay, kv_bytes("general.alignment", 4, struct.pack("<I", 32))))
        for path in (str(FIXTURES / "models" / MODELS[0]), ok):
            p = run(["info", path])
            assert p is not None and p.returncode >= 0
            err = p.stderr.decode("utf-8", "replace")
            assert p.returncode == 0, err
            out = p.stdout.decode()
            assert "llama" in out and "chat template" in out
