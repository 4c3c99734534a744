#!/usr/bin/env python3
"""compare_weights.py A B TOL [PREFIX]: the largest absolute difference between the float32
tensors named PREFIX* (default "model/") of two safetensors files, read with the standard
library only. Exits 1 when a name or shape differs or the difference exceeds TOL."""
import json
import struct
import sys
from array import array


def read(path, prefix):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or not name.startswith(prefix):
            continue
        if info["dtype"] != "F32":
            continue
        a, b = info["data_offsets"]
        values = array("f")
        values.frombytes(data[a:b])
        if sys.byteorder != "little":
            values.byteswap()
        out[name] = (tuple(info["shape"]), values)
    return out


def main():
    a_path, b_path, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
    prefix = sys.argv[4] if len(sys.argv) > 4 else "model/"
    a, b = read(a_path, prefix), read(b_path, prefix)
    if not a:
        sys.exit(f"{a_path}: no float32 tensor named {prefix}*")
    if sorted(a) != sorted(b):
        sys.exit(f"tensor names differ: {sorted(set(a) ^ set(b))}")
    worst, where = 0.0, ""
    for name in sorted(a):
        (sa, va), (sb, vb) = a[name], b[name]
        if sa != sb:
            sys.exit(f"{name}: shape {sa} vs {sb}")
        d = max((abs(x - y) for x, y in zip(va, vb)), default=0.0)
        if d > worst or d != d:
            worst, where = d, name
    print(f"{len(a)} tensors, max |a - b| = {worst:.3g} ({where})")
    if not worst <= tol:
        sys.exit(f"max |a - b| = {worst:.3g} in {where} exceeds {tol:g}")


main()
