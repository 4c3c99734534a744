#!/usr/bin/env python3
"""The reference's own EAGLE-3 training step, timed for speculators-bench --compare reference.

speculators-bench writes a case directory: config.json (the draft's config, as the plugin saves
it), weights.safetensors (every parameter and buffer of the draft, in the reference's names) and
batch.safetensors (the packed row). This script builds the reference model from them
(speculators/models/eagle3/core.py: Eagle3DraftModel), and times its training step as
speculators/train/trainer.py runs it: forward with loss, backward, AdamW
(speculators/train/optimizers.py: build_optimizers), on the CPU in fp32 with the given number of
threads. The attention backend is the reference's default (simple_flex_attention) when it runs
here, else "eager"; the loss implementation is "eager" (the default "fused" one needs Triton).
It prints one JSON object on stdout.
"""

import argparse
import importlib.metadata
import json
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch
from safetensors.torch import load_file

from speculators.losses import resolve_loss_config
from speculators.models.eagle3 import Eagle3SpeculatorConfig
from speculators.models.eagle3.core import Eagle3DraftModel

BATCH_KEYS = ("input_ids", "hidden_states", "verifier_last_hidden_states", "loss_mask", "position_ids",
              "document_ids")


def build(case, attn):
    config = Eagle3SpeculatorConfig.from_pretrained(str(case))
    config.transformer_layer_config._attn_implementation = attn  # noqa: SLF001
    model = Eagle3DraftModel(config)
    state = load_file(str(case / "weights.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected:
        raise SystemExit(f"reference_step: weights the reference model does not have: {unexpected}")
    if missing:
        raise SystemExit(f"reference_step: weights missing for the reference model: {missing}")
    model.embed_tokens.weight.requires_grad_(config.embed_requires_grad)
    for frozen in (model.lm_head, model.verifier_lm_head, model.verifier_norm):
        frozen.weight.requires_grad_(False)
    return model


def time_steps(model, batch, args):
    loss_config = resolve_loss_config(args.loss_fn, "eager")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    rows = []
    for i in range(args.warmup + args.iters):
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        _, loss, _ = model(**batch, ttt_steps=args.ttt_steps, ttt_step_loss_decay=1.0, loss_config=loss_config)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        optimizer.step()
        t3 = time.perf_counter()
        if i >= args.warmup:
            rows.append((t3 - t0, t1 - t0, t2 - t1, t3 - t2, float(loss)))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", type=Path, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--ttt-steps", type=int, required=True)
    parser.add_argument("--loss-fn", default="kl_div")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--attention", default="simple_flex_attention",
                        help="first backend to try; eager is the fallback")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batch = {k: v for k, v in load_file(str(args.case / "batch.safetensors")).items() if k in BATCH_KEYS}
    notes = []
    for attn in dict.fromkeys([args.attention, "eager"]):
        try:
            rows = time_steps(build(args.case, attn), batch, args)
            break
        except Exception as error:  # a backend that does not run here: try the next one
            notes.append(f"{attn}: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
            traceback.print_exc(file=sys.stderr)
    else:
        raise SystemExit("reference_step: no attention backend ran: " + "; ".join(notes))
    steps = [r[0] for r in rows]
    median = sorted(range(len(rows)), key=lambda i: steps[i])[(len(rows) - 1) // 2]
    print(json.dumps({
        "attention": attn,
        "attention_failed": notes,
        "loss_implementation": "eager",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "speculators": importlib.metadata.version("speculators"),
        "step_s": steps[median],
        "forward_s": rows[median][1],
        "backward_s": rows[median][2],
        "optimizer_s": rows[median][3],
        "step_s_samples": steps,
        "loss": rows[median][4],
    }))


if __name__ == "__main__":
    main()
