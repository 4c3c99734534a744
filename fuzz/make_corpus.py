#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz targets into corpus/<name>/ (standard library only).

The seeds are small valid files that cover each dtype, 0-d and empty tensors, misaligned data,
metadata and every npy header version; the fuzzer mutates them into the malformed cases.
Run from anywhere: python3 fuzz/make_corpus.py
"""
import io
import json
import os
import struct
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))

SAFETENSORS_SIZES = {"BOOL": 1, "U8": 1, "I8": 1, "I16": 2, "I32": 4, "I64": 8,
                     "F16": 2, "BF16": 2, "F32": 4, "F64": 8}


def safetensors(tensors, metadata=None, pad_to=8, extra_pad=0):
    """tensors: list of (name, dtype, shape); data bytes are a counting pattern."""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape in tensors:
        n = SAFETENSORS_SIZES[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + n]}
        data += bytes((len(data) + i) % 2 if dtype == "BOOL" else (len(data) + i) % 251 for i in range(n))
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((pad_to - len(text) % pad_to) % pad_to + extra_pad)
    return struct.pack("<Q", len(text)) + text + data


def npy(descr, shape, data, version=(1, 0)):
    shape_repr = "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
    text = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape_repr)
    if shape:
        text += " " * (21 - len(str(shape[0])))
    length_format = "<H" if version == (1, 0) else "<I"
    prefix = 8 + struct.calcsize(length_format)
    pad = 64 - (prefix + len(text) + 1) % 64
    header = text.encode() + b" " * pad + b"\n"
    return b"\x93NUMPY" + bytes(version) + struct.pack(length_format, len(header)) + header + data


def write(kind, name, content):
    directory = os.path.join(HERE, "corpus", kind)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(content)


def byte_alphabet():
    """GPT-2's bytes_to_unicode characters, in byte order."""
    printable = list(range(33, 127)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars, n = [], 0
    for b in range(256):
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + n))
            n += 1
    return chars


def tokenizer_seed(kind, text):
    """A small tokenizer.json of one family, a NUL byte, then a text to encode."""
    added = [{"id": 0, "content": "<s>", "special": True, "normalized": False, "lstrip": False, "rstrip": False,
              "single_word": False},
             {"id": 1, "content": "<tool>", "special": False, "normalized": True, "lstrip": True, "rstrip": True,
              "single_word": False}]
    if kind == "spm":
        vocab = {"<s>": 0, "<tool>": 1, "<unk>": 2}
        for b in range(256):
            vocab[f"<0x{b:02X}>"] = len(vocab)
        for c in "\u2581abcdehlorw":
            vocab[c] = len(vocab)
        merges = [["\u2581", "h"], ["\u2581h", "e"], ["l", "l"], ["\u2581he", "ll"], ["\u2581hell", "o"]]
        for a, b in merges:
            vocab[a + b] = len(vocab)
        model = {"type": "BPE", "unk_token": "<unk>", "byte_fallback": True, "fuse_unk": True, "vocab": vocab,
                 "merges": merges}
        tok = {"normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                                  {"type": "Replace", "pattern": {"String": " "},
                                                                   "content": "\u2581"}]},
               "pre_tokenizer": None,
               "decoder": {"type": "Sequence", "decoders": [
                   {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"},
                   {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
               "post_processor": {"type": "TemplateProcessing", "single": [
                   {"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                   "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                   "special_tokens": {"<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]}}}}
        tok["model"] = model
    else:
        vocab = {"<s>": 0, "<tool>": 1}
        for c in byte_alphabet():
            vocab[c] = len(vocab)
        merges = [["\u0120", "t"], ["h", "e"], ["\u0120t", "he"], ["i", "n"], ["\u0120", "\u0120"]]
        for a, b in merges:
            vocab[a + b] = len(vocab)
        byte_level_flags = {"add_prefix_space": False, "trim_offsets": True, "use_regex": True}
        pattern = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
        tok = {"normalizer": {"type": "NFC"} if kind == "qwen" else None,
               "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                   {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False},
                   {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
               "decoder": dict(type="ByteLevel", **byte_level_flags),
               "post_processor": dict(type="ByteLevel", **byte_level_flags),
               "model": {"type": "BPE", "ignore_merges": True, "vocab": vocab, "merges": merges}}
    doc = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added}
    doc.update(tok)
    return json.dumps(doc, ensure_ascii=False).encode() + b"\0" + text.encode()


def package_archive(entries, fmt=tarfile.GNU_FORMAT):
    """entries: (name, type, content) with type tarfile.REGTYPE/DIRTYPE/SYMTYPE; an uncompressed tar."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for name, kind, content in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.SYMTYPE:
                info.linkname = content.decode()
                content = b""
            info.size = len(content) if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(content) if kind == tarfile.REGTYPE else None)
    return out.getvalue()


def write_package_corpus():
    """Seeds of the plugin package listing: the two files of a package (tar.gz layout and the
    .deb's data.tar layout, pax and GNU formats), a long name, a link, "..", a deep path and a
    header whose size claims 2^64 - 1 bytes."""
    manifest = b'{"format": "speculators-plugin-manifest", "name": "x", "library": "x.so"}'
    files = [("x.so", tarfile.REGTYPE, b"\x7fELF" + bytes(60)), ("x.manifest.json", tarfile.REGTYPE, manifest)]
    write("package_archive", "tgz_layout.tar", package_archive(files))
    deb = [("./", tarfile.DIRTYPE, b""), ("./usr/", tarfile.DIRTYPE, b""),
           ("./usr/lib/speculators/plugins/x.so", tarfile.REGTYPE, b"\x7fELF"),
           ("./usr/lib/speculators/plugins/x.manifest.json", tarfile.REGTYPE, manifest)]
    write("package_archive", "deb_layout_pax.tar", package_archive(deb, tarfile.PAX_FORMAT))
    write("package_archive", "long_name.tar", package_archive([("d/" * 80 + "x.so", tarfile.REGTYPE, b"1")]))
    write("package_archive", "symlink.tar", package_archive([("x.so", tarfile.SYMTYPE, b"/etc/passwd")]))
    write("package_archive", "dotdot.tar", package_archive([("../../x.so", tarfile.REGTYPE, b"1")]))
    write("package_archive", "deep_path.tar", package_archive([("a/" * 3000 + "x.so", tarfile.REGTYPE, b"1")],
                                                              tarfile.PAX_FORMAT))
    huge = bytearray(package_archive([("x.so", tarfile.REGTYPE, b"")]))
    huge[124:136] = b"\x80" + b"\xff" * 11
    huge[148:156] = b"        "
    huge[148:156] = b"%06o\0 " % sum(huge[:512])
    write("package_archive", "huge_size.tar", bytes(huge))


def main():
    write("safetensors", "empty.safetensors", safetensors([]))
    write("safetensors", "f32.safetensors", safetensors([("w", "F32", [2, 2])], {"format": "pt"}))
    write("safetensors", "all_dtypes.safetensors",
          safetensors([(dtype.lower(), dtype, [3]) for dtype in SAFETENSORS_SIZES], {"format": "pt"}))
    write("safetensors", "scalar_and_empty.safetensors",
          safetensors([("s", "I64", []), ("z", "F16", [0, 3]), ("b", "BOOL", [2, 1])]))
    write("safetensors", "misaligned.safetensors", safetensors([("d", "F64", [2])], pad_to=1, extra_pad=3))
    write("safetensors", "hidden_states.safetensors",
          safetensors([("hidden_states", "BF16", [2, 3, 4]), ("token_ids", "I64", [2])], {"format": "pt"}))

    # Headers that nest far past any sane depth and numbers no double or int64 holds.
    deep_header = ('{"w":{"dtype":"F32","shape":' + "[" * 40000 + "]" * 40000 + ',"data_offsets":[0,0]}}').encode()
    write("safetensors", "deep.safetensors", struct.pack("<Q", len(deep_header)) + deep_header)
    huge_header = (b'{"w":{"dtype":"F32","shape":[1e400,18446744073709551617],"data_offsets":[0,1e400]},'
                   b'"__metadata__":{"n":"1e400"}}')
    write("safetensors", "huge_numbers.safetensors", struct.pack("<Q", len(huge_header)) + huge_header)
    write("safetensors", "huge_length.safetensors", struct.pack("<Q", 2**64 - 1) + b"{}")

    write("npy", "arange_i8.npy", npy("<i8", [3], struct.pack("<3q", 0, 1, 2)))
    write("npy", "bool.npy", npy("|b1", [3], b"\x01\x00\x01"))
    write("npy", "f4_2x3.npy", npy("<f4", [2, 3], struct.pack("<6f", 1, 2, 3, 4, 5, 6)))
    write("npy", "scalar_f8.npy", npy("<f8", [], struct.pack("<d", 0.5)))
    write("npy", "empty_i4.npy", npy("<i4", [0, 4], b""))
    write("npy", "f2.npy", npy("<f2", [2], struct.pack("<2e", 1.0, -2.0)))
    write("npy", "i1_u1_i2.npy", npy("|i1", [2, 2], b"\x01\xff\x02\xfe"))
    write("npy", "v2_u1.npy", npy("|u1", [4], b"\x00\x01\x02\xff", version=(2, 0)))
    write("npy", "v3_i2.npy", npy("<i2", [2], struct.pack("<2h", -1, 7), version=(3, 0)))

    deep_npy = "{'descr': '<f4', 'fortran_order': False, 'shape': " + "(" * 4000 + ")" * 4000 + ", }"
    write("npy", "deep.npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", len(deep_npy) + 1) + deep_npy.encode() + b"\n")
    write("npy", "huge_numbers.npy", npy("<f4", [18446744073709551617, 99999999999999999999], b""))

    write_package_corpus()

    # Text formats: valid seeds plus the two classic attacks, nesting far past any sane depth
    # (40,000 levels) and numbers no double holds (1e400).
    deep_list = "[" * 40000 + "]" * 40000
    deep_object = '{"a":' * 40000 + "1" + "}" * 40000
    write("json", "config.json", json.dumps({"model_type": "llama", "hidden_size": 64, "rope_theta": 500000.0,
                                             "eos_token_id": [1, 2], "tie_word_embeddings": False,
                                             "rope_scaling": None, "name": "x\u00e9\ud83d\ude00"}).encode())
    write("json", "deep_list.json", deep_list.encode())
    write("json", "deep_object.json", deep_object.encode())
    write("json", "huge_numbers.json", b'[1e400, -1e400, 1e-400, 123456789012345678901234567890, -0.0, 9223372036854775808]')

    row = {"input_ids": [1, 2, 3, 4], "loss_mask": [0, 0, 1, 1]}
    write("data_line", "rows.jsonl", (json.dumps(row) + "\n" + json.dumps({"input_ids": [5, 6]}) + "\n\n").encode())
    write("data_line", "deep.jsonl", ('{"input_ids":' + deep_list + "}\n").encode())
    write("data_line", "huge_numbers.jsonl", b'{"input_ids": [1e400, 18446744073709551616], "loss_mask": [1, 1]}\n')

    job = ("train:\n  speculator_type: eagle3\n  epochs: 3\n  lr: 1.0e-4\n  save_path: out\n"
           "  data:\n    data_path: data\n    max_len: 2048\n  verifier:\n    verifier_name_or_path: v\n")
    write("job_yaml", "job.yaml", job.encode())
    write("job_yaml", "flat.yaml", b"epochs: 1\nlr: 1e400\nseed: 99999999999999999999999\n")
    write("job_yaml", "deep_flow.yaml", ("train: " + deep_list + "\n").encode())
    write("job_yaml", "deep_block.yaml", "".join(" " * i + "k%d:\n" % i for i in range(300)).encode())

    manifest = {"format": "speculators-plugin-manifest", "format_version": 1, "name": "x", "version": "0.1.0",
                "library": "x.so", "sha256": "0" * 64, "plugin_abi_major": 2, "plugin_abi_minor": 0,
                "torch_version": "1.13.0", "torch_major": 1, "torch_minor": 13, "cxx11_abi": 1, "cuda": 0}
    write("plugin_manifest", "manifest.json", json.dumps(manifest, indent=2).encode())
    write("plugin_manifest", "deep.json", ('{"format":' + deep_list + "}").encode())
    huge = dict(manifest, plugin_abi_major=1e400, torch_minor=18446744073709551617)
    write("plugin_manifest", "huge_numbers.json", json.dumps(huge).replace("Infinity", "1e400").encode())

    text = "<s>the hello  <tool> in\u00e9 e\u0301 \u4e2d\U0001F600 12345\n\n"
    write("tokenizer", "llama3.bin", tokenizer_seed("llama3", text))
    write("tokenizer", "qwen.bin", tokenizer_seed("qwen", text))
    write("tokenizer", "spm.bin", tokenizer_seed("spm", text))


if __name__ == "__main__":
    main()
