#!/usr/bin/env python3
"""Writes <data>/hidden_states/hs_{i}.safetensors for every row of <data>/data.jsonl, by hand,
in the reference's offline layout (speculators/data_generation/offline.py): hidden_states
[T, SLOTS, H] BF16 and token_ids [T] I64 equal to the row's input_ids. Only the standard library: the bytes are laid out here,
independently of the project's own safetensors writer.

usage: write_hs_files.py DATA_DIR SLOTS HIDDEN_SIZE
"""
import json
import os
import random
import struct
import sys


def bf16_bytes(values):
    out = bytearray()
    for v in values:
        u = struct.unpack("<I", struct.pack("<f", v))[0]
        u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16  # round to nearest even
        out += struct.pack("<H", u)
    return bytes(out)


def write_file(path, ids, slots, hidden, rng):
    t = len(ids)
    hs = bf16_bytes(rng.gauss(0.0, 1.0) for _ in range(t * slots * hidden))
    tok = struct.pack("<%dq" % t, *ids)
    header = {
        "__metadata__": {"format": "pt"},
        "hidden_states": {"dtype": "BF16", "shape": [t, slots, hidden], "data_offsets": [0, len(hs)]},
        "token_ids": {"dtype": "I64", "shape": [t], "data_offsets": [len(hs), len(hs) + len(tok)]},
    }
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + hs + tok)


def main():
    data, slots, hidden = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    os.makedirs(os.path.join(data, "hidden_states"), exist_ok=True)
    rng = random.Random(0)
    with open(os.path.join(data, "data.jsonl")) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    for i, row in enumerate(rows):
        write_file(os.path.join(data, "hidden_states", "hs_%d.safetensors" % i), row["input_ids"], slots, hidden, rng)


if __name__ == "__main__":
    main()
