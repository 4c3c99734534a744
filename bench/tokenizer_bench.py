"""Encode throughput of the C++ tokenizer against the `tokenizers` library, single-threaded, on the
same documents and tokenizer.json files, in one run (the numbers in docs/data.md).

The corpus: Vim's tutor in its ~30 translations, Vim's English help files and Python standard
library sources, cut into documents of about 4 KB. Each family of tests/core/text/tokenizer_oracle.py
is trained on that corpus (32k vocabulary); both libraries then encode every document, once with a
fresh tokenizer (cold word cache) and once more (warm). The C++ run also checks its ids equal the
library's. Rates are bytes per second of the encoding thread's CPU time, so that other load on a
shared machine does not skew the comparison.

Usage: tokenizer_bench.py BENCH_EXE [WORK_DIR] [MEGABYTES]
"""
import glob
import json
import os
import subprocess
import sys
import time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "core", "text"))
import tokenizer_oracle  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402


def corpus(megabytes):
    files = sorted(glob.glob("/usr/share/vim/vim*/tutor/tutor*.utf-8"))
    files += sorted(glob.glob("/usr/share/vim/vim*/doc/*.txt"))[:60]
    files += sorted(glob.glob("/usr/lib/python3*/*.py"))
    docs, total = [], 0
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        for start in range(0, len(text), 4096):
            docs.append(text[start:start + 4096])
        total += len(text.encode("utf-8"))
        if total >= megabytes * 1e6:
            break
    return docs


def python_encode(path, docs):
    tok = Tokenizer.from_file(path)
    rates, ids = [], []
    nbytes = sum(len(d.encode("utf-8")) for d in docs)
    for _ in range(2):
        ids = []
        t0 = time.thread_time()
        for d in docs:
            ids.extend(tok.encode(d, add_special_tokens=False).ids)
        rates.append(nbytes / (time.thread_time() - t0) / 1e6)
    return rates, ids


def main():
    exe = sys.argv[1]
    work = sys.argv[2] if len(sys.argv) > 2 else "/tmp/tokenizer_bench"
    megabytes = float(sys.argv[3]) if len(sys.argv) > 3 else 6
    os.makedirs(work, exist_ok=True)
    docs = corpus(megabytes)
    docs_path = os.path.join(work, "docs.json")
    with open(docs_path, "w", encoding="utf-8") as f:
        json.dump(docs, f)
    nbytes = sum(len(d.encode("utf-8")) for d in docs)
    print(f"corpus: {len(docs)} documents, {nbytes / 1e6:.2f} MB")
    print("| family | tokens | tokenizers cold MB/s | tokenizers warm MB/s | C++ cold MB/s | C++ warm MB/s | ids equal |")
    print("|---|---|---|---|---|---|---|")
    for family in ("llama3", "qwen2", "llama2"):
        path = os.path.join(work, f"{family}.tokenizer.json")
        tokenizer_oracle.build(family, docs, vocab_size=32000).save(path)
        (py_cold, py_warm), ids = python_encode(path, docs)
        ids_path = os.path.join(work, f"{family}.ids")
        with open(ids_path, "wb") as f:
            f.write(b"".join(i.to_bytes(4, "little") for i in ids))
        out = subprocess.run([exe, path, docs_path, ids_path], capture_output=True, text=True)
        if out.returncode not in (0, 1) or not out.stdout:
            sys.exit(f"{exe} failed: {out.stderr}")
        r = json.loads(out.stdout)
        print(f"| {family} | {len(ids)} | {py_cold:.2f} | {py_warm:.2f} | {r['cold_mb_s']:.2f} | {r['warm_mb_s']:.2f} "
              f"| {'yes' if r['ids_match'] else 'NO'} |")


if __name__ == "__main__":
    main()
