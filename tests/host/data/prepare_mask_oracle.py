"""`speculators-datagen prepare` against the reference's own masking and transformers' chat templates.

For several chat templates of real model families (tests/core/text/chat_templates: Llama-3.1, Qwen2.5,
Qwen3 with its reasoning blocks that are dropped from earlier turns, Mistral, and gpt-oss's harmony
format, whose analysis channel is kept only after the last user turn and whose last assistant turn
ends with <|return|>, not <|end|>) this script saves a
byte-level BPE tokenizer trained with the `tokenizers` library together with the template
(save_pretrained), writes a ShareGPT-format dataset with a malformed line and a malformed turn, and
computes the expected rows with the reference's own speculators/data_generation/preprocessing.py:
_normalize_conversation and _render_boundary_rows, its vLLM render replaced by transformers'
apply_chat_template (render, then encode without special tokens, cut to the sequence length).
It then runs the C++ `prepare` and compares the rows (as a multiset: both shuffle), the counts of
skipped turns and malformed lines, and --mask-mode all-assistant; a template that is not
prefix-stable must be reported per conversation.

usage: prepare_mask_oracle.py BIN_DIR TEMPLATES_DIR WORK_DIR
"""
import json
import os
import re
import shutil
import subprocess
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

import speculators.data_generation.preprocessing as prep

SPECIALS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|im_start|>",
            "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "<s>", "</s>", "[INST]", "[/INST]",
            "<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|return|>"]
FAMILIES = {  # template file -> (bos, eos)
    "llama3": ("<|begin_of_text|>", "<|eot_id|>"),
    "qwen25": (None, "<|im_end|>"),
    "qwen3": (None, "<|im_end|>"),
    "mistral": ("<s>", "</s>"),
    "gpt_oss": (None, "<|return|>"),
}
# Not prefix-stable: the last message is rendered differently from earlier ones.
UNSTABLE = "{% for m in messages %}{% if loop.last %}<|im_start|>LAST {{ m.content }}<|im_end|>{% else %}" \
           "<|im_start|>{{ m.content }}<|im_end|>{% endif %}{% endfor %}" \
           "{% if add_generation_prompt %}<|im_start|>{% endif %}"

CONVERSATIONS = [
    [{"from": "human", "value": "Hi there, what is the capital of France?"},
     {"from": "gpt", "value": "The capital of France is Paris."},
     {"from": "human", "value": "And of Italy?"},
     {"from": "gpt", "value": "Rome is the capital of Italy."}],
    [{"from": "system", "value": "You are a concise assistant."},
     {"from": "human", "value": "List three colours."},
     {"from": "gpt", "value": "Red, green and blue."},
     {"from": "human", "value": "Two more, please."},
     {"from": "gpt", "value": "Yellow and purple."},
     {"from": "human", "value": "Thanks!"}],
    [{"from": "human", "value": "What is 12 * 7?"},
     {"from": "gpt", "value": "<think>\n12 times 7: 10*7 = 70, 2*7 = 14, total 84.\n</think>\n\n12 * 7 = 84."},
     {"from": "human", "value": "And 84 / 4?"},
     {"from": "gpt", "value": "<think>\nHalf of 84 is 42, half again is 21.\n</think>\n\n84 / 4 = 21."},
     {"from": "human", "value": "Square it."},
     {"from": "gpt", "value": "21 squared is 441.", "reasoning_content": "21 * 21 = 441."}],
    [{"from": "gpt", "value": "An opening assistant turn has no context and gives no row."},
     {"from": "human", "value": "Write a long sentence about the sea and the wind and the boats in the harbour."},
     {"from": "chatbot-7b", "value": "The sea rolled grey under a low sky while the wind pushed the small boats "
                                     "against their moorings, and the harbour smelled of salt and tar."}],
]
MALFORMED = ['{"conversations": [{"from": "human", "value": "unterminated', '{"conversations": ["not a turn"]}']


def train_tokenizer(texts):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return tok


def save_model(path, backend, source, bos, eos):
    kw = {"eos_token": eos}
    if bos is not None:
        kw["bos_token"] = bos
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, **kw)
    tok.chat_template = source
    tok.save_pretrained(path)
    return tok


def expected_rows(tok, convs, max_length, all_assistant=False):
    """The reference's rows, with apply_chat_template standing in for vLLM's render endpoint."""
    skipped = [0]

    def encode_render(conv_prefix, endpoint, *, add_generation_prompt, max_length, tools=None):
        text = tok.apply_chat_template(prep._adapt_conv_for_vllm(conv_prefix), tokenize=False,
                                       add_generation_prompt=add_generation_prompt, tools=tools)
        ids = tok(text, add_special_tokens=False)["input_ids"][:max_length]
        if add_generation_prompt and len(ids) >= max_length:
            skipped[0] += 1
        return ids

    prep._encode_render = encode_render
    rows, unstable, failed = [], 0, 0
    for conv in convs:
        norm = prep._normalize_conversation(conv)
        before = skipped[0]  # a conversation that fails counts no skipped turn
        try:
            got = prep._render_boundary_rows(norm, "local", max_length)
        except prep.BoundaryUnstableError:
            unstable += 1
            skipped[0] = before
            continue
        except Exception:  # the template rejects the conversation (raise_exception): skipped, as the reference
            failed += 1
            skipped[0] = before
            continue
        if all_assistant:
            got = all_assistant_row(norm, encode_render, max_length)
        for r in got:
            ids, mask = r["input_ids"][:max_length], r["loss_mask"][:max_length]
            if sum(mask):
                rows.append(json.dumps({"input_ids": ids, "loss_mask": mask}))
    return sorted(rows), skipped[0], unstable, failed


def all_assistant_row(norm, encode_render, max_length):
    """One row through the last assistant turn, each assistant turn j >= 1 supervised between its
    generation-prompt render and its own full render (prefix-stable templates)."""
    last = max((j for j, t in enumerate(norm) if t["role"] == "assistant" and j > 0), default=0)
    if last == 0:
        return []
    full = encode_render(norm[:last + 1], "", add_generation_prompt=False, max_length=max_length)
    mask = [0] * len(full)
    for j in range(1, last + 1):
        if norm[j]["role"] != "assistant":
            continue
        start = len(encode_render(norm[:j], "", add_generation_prompt=True, max_length=max_length))
        if start >= max_length:
            continue
        end = len(encode_render(norm[:j + 1], "", add_generation_prompt=False, max_length=max_length))
        mask[start:end] = [1] * (end - start)
    return [{"input_ids": full, "loss_mask": mask}]


def short_length(tok):
    """A sequence length at which some turns are skipped (their context fills it) and some are kept."""
    for length in range(24, 400, 8):
        rows, skipped, _, _ = expected_rows(tok, CONVERSATIONS, length)
        if rows and skipped:
            return length
    raise SystemExit("no sequence length both skips and keeps turns")


def run_prepare(bin_dir, model, dataset, out, *extra):
    cmd = [os.path.join(bin_dir, "speculators-datagen"), "prepare", "--verifier", model, "--dataset", dataset,
           "--out", out, "--preset", "sharegpt", "--seed", "3", "--num-workers", "2", *extra]
    return subprocess.run(cmd, capture_output=True, text=True)


def check(cond, message):
    if not cond:
        raise SystemExit("FAIL: " + message)


def compare(name, bin_dir, model, dataset, out, tok, seq_length, mode):
    res = run_prepare(bin_dir, model, dataset, out, "--seq-length", str(seq_length), "--mask-mode", mode)
    check(res.returncode == 0, f"{name} {mode} {seq_length}: exit {res.returncode}\n{res.stderr}")
    with open(os.path.join(out, "data.jsonl"), encoding="utf-8") as f:
        got = sorted(json.dumps(json.loads(line)) for line in f if line.strip())
    want, skipped, unstable, failed = expected_rows(tok, CONVERSATIONS, seq_length, mode == "all-assistant")
    check(got == want, f"{name} {mode} seq-length {seq_length}: {len(got)} rows differ from the reference's "
                       f"{len(want)}\nC++: {got[:2]}\nref: {want[:2]}")
    if mode == "per-turn":
        m = re.search(r"(\d+) turns whose context fills", res.stdout)
        check(m and int(m.group(1)) == skipped, f"{name}: skipped turns {m and m.group(1)} != reference {skipped}")
    for line_no in (len(CONVERSATIONS) + 1, len(CONVERSATIONS) + 2):
        check(f"dataset.jsonl:{line_no}: malformed row" in res.stderr, f"{name}: line {line_no} not named\n{res.stderr}")
    check(f"skipped {len(MALFORMED) + failed + unstable} malformed" in res.stdout, f"{name}: malformed count\n{res.stdout}")
    print(f"{name} {mode} seq-length {seq_length}: {len(got)} rows match the reference ({skipped} turns skipped, "
          f"{failed + unstable} conversations the template rejects or that are unstable)")


def main():
    bin_dir, templates, work = sys.argv[1:4]
    shutil.rmtree(work, ignore_errors=True)  # a finished prepare would otherwise be kept, not rerun
    os.makedirs(work, exist_ok=True)
    dataset = os.path.join(work, "dataset.jsonl")
    with open(dataset, "w", encoding="utf-8") as f:
        for conv in CONVERSATIONS:
            f.write(json.dumps({"conversations": conv}) + "\n")
        f.write("\n".join(MALFORMED) + "\n")
    corpus = [t["value"] for c in CONVERSATIONS for t in c] * 3
    backend = train_tokenizer(corpus)
    for name, (bos, eos) in FAMILIES.items():
        with open(os.path.join(templates, name + ".jinja"), encoding="utf-8") as f:
            source = f.read()
        model = os.path.join(work, "models", name)
        tok = save_model(model, backend, source, bos, eos)
        for seq_length in (4096, short_length(tok)):
            compare(name, bin_dir, model, dataset, os.path.join(work, f"out-{name}-{seq_length}"), tok, seq_length,
                    "per-turn")
        if name in ("llama3", "qwen25"):  # prefix-stable for one row per conversation
            compare(name, bin_dir, model, dataset, os.path.join(work, f"out-{name}-all"), tok, 4096, "all-assistant")
    # A template that is not prefix-stable: every conversation with an assistant turn after the
    # first message is reported with its line; none gives a row, so the run fails with exit 4.
    model = os.path.join(work, "models", "unstable")
    tok = save_model(model, backend, UNSTABLE, None, "<|im_end|>")
    _, _, unstable, _ = expected_rows(tok, CONVERSATIONS, 4096)
    check(unstable == len(CONVERSATIONS), f"the reference finds {unstable} unstable conversations")
    res = run_prepare(bin_dir, model, dataset, os.path.join(work, "out-unstable"))
    check(res.returncode == 4, f"unstable template: exit {res.returncode}\n{res.stderr}")
    for line_no in range(1, len(CONVERSATIONS) + 1):
        check(re.search(rf"dataset\.jsonl:{line_no}: .*not prefix-stable", res.stderr),
              f"unstable template: line {line_no} not reported\n{res.stderr}")
    res = run_prepare(bin_dir, model, dataset, os.path.join(work, "out-raise"), "--on-bad-sample", "raise")
    check(res.returncode == 4 and "dataset.jsonl:5: malformed row" in res.stderr,
          f"--on-bad-sample raise: exit {res.returncode}\n{res.stderr}")
    print("unstable template reported for every conversation; --on-bad-sample raise stops with exit 4")


if __name__ == "__main__":
    main()
