#!/usr/bin/env python3
"""transformers' own forward of a verifier, timed for speculators-bench --compare reference.

speculators-bench writes a verifier directory (config.json and model.safetensors in Hugging Face
layout) and tokens.safetensors (input_ids, one row per document, and the logits it computed).
This script loads the verifier with transformers (AutoModelForCausalLM, float32, its default
attention implementation) and times model(input_ids, output_hidden_states=True) under
torch.inference_mode(): logits and every hidden state, as hidden-state generation with
transformers runs it, and reports how far its logits are from speculators-bench's. It prints one
JSON object on stdout.
"""

import argparse
import importlib.metadata
import json
import time

import torch
import transformers
from safetensors.torch import load_file


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verifier", required=True)
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--threads", type=int, required=True, help="torch threads; 0 = torch's default")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--iters", type=int, default=3)
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    model = transformers.AutoModelForCausalLM.from_pretrained(args.verifier, dtype=torch.float32)
    model.eval()
    tokens = load_file(args.tokens)
    input_ids = tokens["input_ids"]
    times = []
    with torch.inference_mode():
        for i in range(args.warmup + args.iters):
            t0 = time.perf_counter()
            out = model(input_ids=input_ids, output_hidden_states=True, use_cache=False)
            float(out.logits.sum())
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
    # The same verifier, the same tokens: the logits speculators-bench computed must agree.
    max_abs_logit_diff = float((out.logits.float() - tokens["logits"].float()).abs().max())
    print(json.dumps({
        "forward_s": sorted(times)[(len(times) - 1) // 2],
        "max_abs_logit_diff": max_abs_logit_diff,
        "forward_s_samples": times,
        "threads": torch.get_num_threads(),
        "attention": model.config._attn_implementation,  # noqa: SLF001
        "torch": torch.__version__,
        "transformers": importlib.metadata.version("transformers"),
    }))


if __name__ == "__main__":
    main()
