"""File-level mutations: external data (an escape from the model's folder is an attack and
must be refused; bad offsets, lengths and files must be refused before any read) and
corrupted bytes."""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, numpy_helper

from tests.fuzz.case import MODEL_FILE, SECRET, Case, NotApplicable, chance, mutation, pick

CASE_DIR_TOKEN = "@CASE@"   # the harness writes the case folder's absolute path here


def _externalize(t: TensorProto, location: str, offset: int | str | None = None,
                 length: int | str | None = None) -> bytes:
    """Move `t`'s data out of the file (returns the bytes that belong at `location`)."""
    data = numpy_helper.to_array(t).tobytes()
    for f in ("raw_data", "float_data", "int32_data", "int64_data", "double_data"):
        t.ClearField(f)
    t.data_location = TensorProto.EXTERNAL
    del t.external_data[:]
    for key, value in (("location", location), ("offset", offset), ("length", length)):
        if value is not None:
            e = t.external_data.add()
            e.key, e.value = key, str(value)
    return data


def _weight(c: Case, rng) -> TensorProto:
    cands = [t for t in c.model.graph.initializer
             if t.data_type in (TensorProto.FLOAT, TensorProto.INT64) and int(np.prod(t.dims)) > 0]
    return pick(rng, cands)


ESCAPES = ["../" + SECRET, "sub/../../" + SECRET, "./../" + SECRET, CASE_DIR_TOKEN + "/" + SECRET,
           "link.bin", "up/" + SECRET, "/etc/passwd", "/dev/zero", "/dev/stdin", "/proc/self/environ",
           "../../../../../../etc/passwd", "..\\" + SECRET, "weights.bin\x00../" + SECRET]


@mutation("external_escape")
def external_escape(c: Case, rng) -> None:
    """A weight's data at a path outside the model's folder. The secret file there holds
    exactly the right bytes, so only the path rule can refuse it."""
    t = _weight(c, rng)
    where = pick(rng, ESCAPES)
    length = (1 << 40) if where.startswith("/dev/") and chance(rng, 0.5) else None
    c.outside[SECRET] = _externalize(t, where, length=length)
    if where == "link.bin":
        c.symlinks["link.bin"] = "../" + SECRET
    elif where.startswith("up/"):
        c.symlinks["up"] = ".."
    c.expect = "reject"
    c.note(f"initializer '{t.name}': external data at {where!r}")


@mutation("external_bad")
def external_bad(c: Case, rng) -> None:
    """External data inside the folder: correct (must build), or a missing file, an offset or
    length past the end or that does not match the tensor, non-numeric or negative numbers,
    a folder or the model itself as the data file, no location, data both inline and external."""
    what = int(rng.integers(14))
    if what == 0:  # every initializer in one file, as onnx.save(save_as_external_data=True) writes
        blob = b""
        for t in c.model.graph.initializer:
            if int(np.prod(t.dims)) == 0:
                continue
            pad = bytes((-len(blob)) % 16)
            data = _externalize(t, "weights.bin", offset=len(blob) + len(pad), length=None)
            blob += pad + data
            t.external_data.add().key = "length"
            t.external_data[-1].value = str(len(data))
        c.files["weights.bin"] = blob
        c.expect = "valid"
        c.note("all initializers in weights.bin")
        return
    t = _weight(c, rng)
    size = len(numpy_helper.to_array(t).tobytes())
    variants = {
        1: ("missing.bin", None, None), 2: ("weights.bin", size * 4 + 1, None), 3: ("weights.bin", 0, size * 4),
        4: ("weights.bin", 0, max(size - 1, 0)), 5: ("weights.bin", 0, 1 << 40), 6: ("weights.bin", -5, None),
        7: ("weights.bin", "abc", None), 8: ("", None, None), 9: (".", None, None), 10: (MODEL_FILE, 0, size),
        11: ("sub", None, None), 12: ("weights.bin", None, None), 13: ("weights.bin", 0, None),
    }
    location, offset, length = variants[what]
    data = _externalize(t, location, offset, length)
    c.files["weights.bin"] = data + bytes(8)
    if what == 11:
        c.files["sub/keep"] = b""
    if what == 12:  # EXTERNAL with no location entry at all
        del t.external_data[:]
    if what == 13:  # data both inline and external
        t.raw_data = data
    c.note(f"initializer '{t.name}': external data variant {what} ({location!r}, {offset}, {length})")


@mutation("bytes")
def corrupt_bytes(c: Case, rng) -> None:
    """Serialized bytes flipped, truncated, duplicated or zeroed."""
    raw = bytearray(c.model.SerializeToString())
    if not raw:
        raise NotApplicable("empty")
    what = int(rng.integers(4))
    if what == 0:
        for _ in range(int(rng.integers(1, 9))):
            raw[int(rng.integers(len(raw)))] = int(rng.integers(256))
    elif what == 1:
        raw = raw[:int(rng.integers(len(raw)))]
    elif what == 2:
        a = int(rng.integers(len(raw)))
        raw[a:a] = raw[a:a + int(rng.integers(1, 64))]
    else:
        a, n = int(rng.integers(len(raw))), int(rng.integers(1, 64))
        raw[a:a + n] = bytes(len(raw[a:a + n]))
    c.raw = bytes(raw)
    c.note(f"bytes variant {what}")
