#!/usr/bin/env python3
"""Parity of the eagle3 plugin with the reference's own Eagle3DraftModel.

For each configuration below this script builds the reference model
(speculators/models/eagle3/core.py: Eagle3DraftModel, from the test venv) with random weights,
packs a batch of several documents with the reference's collate function and shift_batch
(speculators/train/data.py: CollateFn, speculators/models/eagle3/data.py: shift_batch), runs the
reference forward and one backward in fp32, writes the same weights, batch and call arguments
to a case directory, runs ref_parity_driver (the plugin's model) on it and compares per TTT step
logits, the loss, every metric (loss_k, full_acc_k, cond_acc_k, per-term losses) and the gradient
of every trainable tensor: max |plugin - reference| / max |reference| must stay within 1e-5.

It then swaps checkpoints: one written by the plugin (save_draft) is loaded with the reference's
from_pretrained, and one written by the reference's save_pretrained is loaded through the host's
--from-pretrained path (load_saved_draft); both must give the reference's logits.

The reference runs its "eager" attention backend (a dense float mask built by create_float_mask
and extended per step by extend_dense_mask_for_draft_tokens), which runs on CPU, and its "eager"
loss implementation (the fused one needs Triton).
"""

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import LlamaConfig, Qwen3Config

from speculators.config import SpeculatorsConfig, VerifierConfig
from speculators.losses import resolve_loss_config
from speculators.models.eagle3 import Eagle3SpeculatorConfig
from speculators.models.eagle3.core import Eagle3DraftModel
from speculators.models.eagle3.data import shift_batch
from speculators.proposals.greedy import GreedyTokenProposalConfig
from speculators.train.data import CollateFn

TOLERANCE = 1e-5
ATTN_IMPL = "eager"
BATCH_KEYS = (
    "input_ids",
    "hidden_states",
    "verifier_last_hidden_states",
    "loss_mask",
    "position_ids",
    "document_ids",
)

LLAMA3_ROPE = {
    "rope_type": "llama3",
    "rope_theta": 10000.0,
    "factor": 4.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64,
}

# Each configuration: the draft's decoder, the EAGLE-3 flags, the packed documents (raw lengths
# before shift_batch) in a row of max_len tokens, and the call arguments.
CONFIGS = [
    dict(
        name="gqa_llama3_rope_docs_padding_kl",
        arch="llama", heads=4, kv_heads=2, layers=1, rope=LLAMA3_ROPE,
        vocab=64, draft_vocab=64, norm_before_fc=True, fc_norm=False,
        norm_before_residual=True, norm_output=True,
        docs=[12, 9, 15], max_len=40, ttt_steps=3, decay=1.0, loss_fn="kl_div",
        attention_chunk=6, loss_chunk=10,
    ),
    dict(
        name="sliding_window_two_layers_fc_norm_reduced_vocab_ce_decay",
        arch="llama", heads=4, kv_heads=1, layers=2,
        layer_types=["sliding_attention", "full_attention"], sliding_window=4,
        vocab=64, draft_vocab=24, norm_before_fc=False, fc_norm=True,
        norm_before_residual=True, norm_output=True,
        docs=[20, 16], max_len=40, ttt_steps=4, decay=0.8, loss_fn="ce",
        attention_chunk=7, loss_chunk=9,
    ),
    dict(
        name="mha_no_norms_one_document_tv_decay",
        arch="llama", heads=4, kv_heads=4, layers=1,
        vocab=48, draft_vocab=40, norm_before_fc=False, fc_norm=False,
        norm_before_residual=False, norm_output=False,
        docs=[41], max_len=40, ttt_steps=2, decay=0.5, loss_fn="tv",
    ),
    dict(
        name="qwen3_sliding_everywhere_compound_ce_tv",
        arch="qwen3", heads=4, kv_heads=2, layers=2,
        layer_types=["sliding_attention", "sliding_attention"], sliding_window=6,
        vocab=64, draft_vocab=32, norm_before_fc=True, fc_norm=False,
        norm_before_residual=False, norm_output=True,
        docs=[5, 30, 4], max_len=44, ttt_steps=3, decay=0.9, loss_fn='{"ce": 0.1, "tv": 0.9}',
        attention_chunk=5,
    ),
    dict(
        name="llama3_rope_other_divergences",
        arch="llama", heads=2, kv_heads=1, layers=1, rope=LLAMA3_ROPE,
        vocab=40, draft_vocab=40, norm_before_fc=True, fc_norm=False,
        norm_before_residual=True, norm_output=False,
        docs=[17, 14], max_len=36, ttt_steps=3, decay=0.7,
        loss_fn='{"rkl": 0.3, "jsd": 0.3, "nla": 0.2, "lk_hybrid": 0.2}',
    ),
    dict(
        name="embed_requires_grad",
        arch="llama", heads=4, kv_heads=2, layers=1,
        vocab=64, draft_vocab=64, norm_before_fc=True, fc_norm=False,
        norm_before_residual=True, norm_output=True, embed_requires_grad=True,
        docs=[18, 16], max_len=36, ttt_steps=2, decay=1.0, loss_fn="kl_div",
    ),
]
HIDDEN, HEAD_DIM, INTERMEDIATE, NUM_AUX = 32, 8, 48, 3


def layer_config(c):
    cls = Qwen3Config if c["arch"] == "qwen3" else LlamaConfig
    kwargs = dict(
        vocab_size=c["vocab"], hidden_size=HIDDEN, intermediate_size=INTERMEDIATE,
        num_hidden_layers=c["layers"], num_attention_heads=c["heads"],
        num_key_value_heads=c["kv_heads"], head_dim=HEAD_DIM, max_position_embeddings=256,
        rms_norm_eps=1e-6, hidden_act="silu", tie_word_embeddings=False,
        rope_parameters=c.get("rope", {"rope_type": "default", "rope_theta": 10000.0}),
    )
    if "layer_types" in c:
        kwargs.update(layer_types=c["layer_types"], sliding_window=c["sliding_window"])
        if c["arch"] == "qwen3":
            kwargs.update(use_sliding_window=True, max_window_layers=0)
    config = cls(**kwargs)
    config._attn_implementation = ATTN_IMPL  # noqa: SLF001
    return config


def write_verifier(c, tensors, directory):
    """A verifier directory both sides read: config.json and the three tensors they take."""
    directory.mkdir(parents=True, exist_ok=True)
    LlamaConfig(
        vocab_size=c["vocab"], hidden_size=HIDDEN, intermediate_size=INTERMEDIATE,
        num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4, head_dim=HEAD_DIM,
        rms_norm_eps=1e-6, tie_word_embeddings=False, architectures=["LlamaForCausalLM"],
    ).save_pretrained(directory)
    save_file(
        {
            "model.embed_tokens.weight": tensors["embed"],
            "lm_head.weight": tensors["head"],
            "model.norm.weight": tensors["norm"],
        },
        str(directory / "model.safetensors"),
    )


def build_reference(c, verifier_dir, generator):
    config = Eagle3SpeculatorConfig(
        transformer_layer_config=layer_config(c),
        draft_vocab_size=c["draft_vocab"],
        norm_before_residual=c["norm_before_residual"],
        norm_before_fc=c["norm_before_fc"],
        fc_norm=c["fc_norm"],
        norm_output=c["norm_output"],
        embed_requires_grad=c.get("embed_requires_grad", False),
        eagle_aux_hidden_state_layer_ids=[1, 2, 3],
        speculators_config=SpeculatorsConfig(
            algorithm="eagle3",
            proposal_methods=[GreedyTokenProposalConfig(speculative_tokens=c["ttt_steps"])],
            default_proposal_method="greedy",
            verifier=VerifierConfig(
                name_or_path=str(verifier_dir), architectures=["LlamaForCausalLM"]
            ),
        ),
    )
    model = Eagle3DraftModel(config)
    vocab, draft_vocab = c["vocab"], c["draft_vocab"]
    verifier = {
        "embed": torch.randn(vocab, HIDDEN, generator=generator),
        "head": torch.randn(vocab, HIDDEN, generator=generator) / HIDDEN**0.5 * 4,
        "norm": 1 + 0.2 * torch.randn(HIDDEN, generator=generator),
    }
    write_verifier(c, verifier, verifier_dir)
    t2d = torch.zeros(vocab, dtype=torch.bool)
    if draft_vocab != vocab:
        t2d[torch.randperm(vocab, generator=generator)[:draft_vocab]] = True
        d2t = t2d.nonzero().squeeze(1) - torch.arange(draft_vocab)
        model.load_vocab_mappings(t2d, d2t)
    else:
        t2d[:] = True
    with torch.no_grad():
        # Weights large enough that every part of the model matters to the logits.
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or ".fc_norm." in name or "layernorm" in name:
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=generator))
            elif p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=generator) / p.shape[1] ** 0.5)
        model.embed_tokens.weight.copy_(verifier["embed"])
        model.lm_head.weight.copy_(verifier["head"][t2d])
        model.verifier_lm_head.weight.copy_(verifier["head"][t2d])
        model.verifier_norm.weight.copy_(verifier["norm"])
    return model


def packed_batch(c, generator):
    """Raw documents through shift_batch and the reference's CollateFn (padding, document_ids)."""
    samples = []
    for length in c["docs"]:
        samples.append(
            {
                "input_ids": torch.randint(0, c["vocab"], (length,), generator=generator),
                "hidden_states": torch.randn(length, NUM_AUX * HIDDEN, generator=generator) * 2,
                "verifier_last_hidden_states": torch.randn(length, HIDDEN, generator=generator),
                "loss_mask": (torch.rand(length, generator=generator) < 0.8).long(),
                "lengths": torch.tensor([length]),
                "position_ids": torch.arange(length),
            }
        )
    collate = CollateFn(c["max_len"], HIDDEN, NUM_AUX, dtype=torch.float32, preprocess=shift_batch)
    batch = collate(samples)
    return {key: batch[key].contiguous() for key in BATCH_KEYS}


def plant_chains(model, batch, c, generator):
    """Makes the verifier agree with the draft on chains of consecutive TTT steps.

    The draft's logits never depend on verifier_last_hidden_states, so one forward without it
    gives each step's final hidden state x_k (the input of model.norm). Setting the verifier state
    at position i + s to x_s[i] * norm.weight / verifier_norm.weight makes the target there a
    positive multiple of step s's logits at i, so its argmax agrees: chains of random length
    starting at random positions give every full_acc_k / cond_acc_k non-trivial counts.
    """
    captured = []
    hook = model.norm.register_forward_hook(lambda _m, inputs, _o: captured.append(inputs[0].detach()[0]))
    with torch.no_grad():
        inputs = {k: v for k, v in batch.items() if k != "verifier_last_hidden_states"}
        model(**inputs, ttt_steps=c["ttt_steps"])
    hook.remove()
    ratio = model.norm.weight.detach() / model.verifier_norm.weight.detach()
    verifier = batch["verifier_last_hidden_states"].clone()
    length, i = verifier.shape[1], 0
    while i < length:
        chain = int(torch.randint(1, c["ttt_steps"] + 1, (1,), generator=generator))
        for s in range(min(chain, length - i)):
            verifier[0, i + s] = captured[s][i] * ratio
        i += chain + int(torch.randint(0, 3, (1,), generator=generator))
    batch["verifier_last_hidden_states"] = verifier.contiguous()


def reference_run(model, batch, c):
    """Forward + one backward of the reference; the per-step logits come from a hook on lm_head."""
    step_logits = []
    hook = model.lm_head.register_forward_hook(lambda _m, _i, out: step_logits.append(out.detach()))
    model.zero_grad(set_to_none=True)
    draft_tokens, loss, metrics = model(
        **batch,
        ttt_steps=c["ttt_steps"],
        ttt_step_loss_decay=c["decay"],
        loss_config=resolve_loss_config(c["loss_fn"], "eager"),
    )
    hook.remove()
    loss.backward()
    out = {f"logits.{k}": t[0] for k, t in enumerate(step_logits)}
    out.update({f"draft_tokens.{k}": t[0] for k, t in enumerate(draft_tokens)})
    out["loss"] = loss.detach()
    out.update({f"metric.{k}": torch.as_tensor(v).detach().float() for k, v in metrics.items()})
    for name, p in model.named_parameters():
        if p.requires_grad and p.grad is not None:
            out[f"grad.{name}"] = p.grad.detach().clone()
    return out


def relative_error(actual, expected):
    actual, expected = actual.double(), expected.double()
    scale = expected.abs().max().item()
    diff = (actual - expected).abs().max().item()
    return diff / scale if scale > 0 else diff


def compare(label, actual, expected, worst):
    """Returns a list of failures; updates worst[quantity] with the largest relative error."""
    failures = []
    if set(actual) != set(expected):
        only_plugin = sorted(set(actual) - set(expected))
        only_reference = sorted(set(expected) - set(actual))
        failures.append(f"{label}: keys differ: plugin only {only_plugin}, reference only {only_reference}")
    for key in sorted(set(actual) & set(expected)):
        a, e = actual[key], expected[key]
        if a.shape != e.shape:
            failures.append(f"{label}: {key} has shape {tuple(a.shape)}; reference {tuple(e.shape)}")
            continue
        if key.startswith("draft_tokens."):
            mismatched = int((a != e).sum())
            if mismatched:
                failures.append(f"{label}: {key}: {mismatched} argmax tokens differ")
            continue
        err = relative_error(a, e)
        quantity = key.split(".")[0] if not key.startswith("metric.") else "metric." + key.split(".")[1].split("_")[0]
        if key.startswith("metric.") and ("acc" in key):
            quantity = "metric.accuracy_counts"
        worst[quantity] = max(worst.get(quantity, 0.0), err)
        if not err <= TOLERANCE:
            failures.append(f"{label}: {key}: relative error {err:.3e} > {TOLERANCE:g}")
    return failures


def run_driver(driver, *args):
    result = subprocess.run([driver, *map(str, args)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{driver} {' '.join(map(str, args))} exited {result.returncode}:\n{result.stderr}")


def write_case(case_dir, model, batch, c, verifier_dir):
    case_dir.mkdir(parents=True, exist_ok=True)
    model.config.to_json_file(str(case_dir / "config.json"))
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(case_dir / "weights.safetensors"))
    save_file(batch, str(case_dir / "batch.safetensors"))
    args = {
        "ttt_steps": c["ttt_steps"],
        "ttt_step_loss_decay": c["decay"],
        "loss_fn": c["loss_fn"],
        "verifier_dir": str(verifier_dir),
    }
    for key in ("attention_chunk", "loss_chunk"):
        if key in c:
            args[key] = c[key]
    (case_dir / "args.json").write_text(json.dumps(args, indent=1))


def reference_from_pretrained(directory):
    config = Eagle3SpeculatorConfig.from_pretrained(str(directory))
    config.transformer_layer_config._attn_implementation = ATTN_IMPL  # noqa: SLF001
    return Eagle3DraftModel.from_pretrained(str(directory), config=config, dtype=torch.float32)


def check_config(c, driver, work, worst, checkpoints):
    generator = torch.Generator().manual_seed(1234 + len(c["name"]))
    case_dir, verifier_dir = work / c["name"] / "case", work / c["name"] / "verifier"
    model = build_reference(c, verifier_dir, generator)
    batch = packed_batch(c, generator)
    plant_chains(model, batch, c, generator)
    expected = reference_run(model, batch, c)
    write_case(case_dir, model, batch, c, verifier_dir)
    run_driver(driver, "run", case_dir, work / c["name"] / "plugin.safetensors")
    failures = compare(c["name"], load_file(str(work / c["name"] / "plugin.safetensors")), expected, worst)
    if not checkpoints:
        return failures

    # A checkpoint the plugin writes, loaded by the reference and by the plugin's --from-pretrained.
    plugin_ckpt = work / c["name"] / "plugin_checkpoint"
    run_driver(driver, "save", case_dir, plugin_ckpt)
    reloaded = reference_from_pretrained(plugin_ckpt)
    expected_reloaded = reference_run(reloaded, batch, c)
    run_driver(driver, "load", plugin_ckpt, case_dir, work / c["name"] / "plugin_reloaded.safetensors")
    failures += compare(
        c["name"] + " [plugin checkpoint]",
        load_file(str(work / c["name"] / "plugin_reloaded.safetensors")),
        expected_reloaded,
        worst,
    )
    # A checkpoint the reference writes (fp32), loaded by the plugin's --from-pretrained path.
    ref_ckpt = work / c["name"] / "reference_checkpoint"
    model.save_pretrained(str(ref_ckpt))
    run_driver(driver, "load", ref_ckpt, case_dir, work / c["name"] / "reference_loaded.safetensors")
    failures += compare(
        c["name"] + " [reference checkpoint]",
        load_file(str(work / c["name"] / "reference_loaded.safetensors")),
        expected,
        worst,
    )
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--driver", required=True, help="path of ref_parity_driver")
    parser.add_argument("--work-dir", required=True, type=Path)
    parser.add_argument("--only", help="run only the configuration of this name")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    shutil.rmtree(args.work_dir, ignore_errors=True)
    args.work_dir.mkdir(parents=True)
    worst, failures = {}, []
    start = time.time()
    for index, c in enumerate(CONFIGS):
        if args.only and c["name"] != args.only:
            continue
        config_worst = {}
        config_failures = check_config(c, args.driver, args.work_dir, config_worst, checkpoints=index in (0, 1, 3))
        for quantity, err in config_worst.items():
            worst[quantity] = max(worst.get(quantity, 0.0), err)
        summary = ", ".join(f"{q} {e:.1e}" for q, e in sorted(config_worst.items()))
        print(f"{c['name']}: max relative error {summary}", flush=True)
        for failure in config_failures[:6]:
            print(f"  FAIL {failure}")
        if len(config_failures) > 6:
            print(f"  ... and {len(config_failures) - 6} more")
        failures += config_failures
    print(f"all configurations ({time.time() - start:.1f} s): max relative error "
          + ", ".join(f"{q} {e:.1e}" for q, e in sorted(worst.items())))
    if failures:
        print(f"FAILED: {len(failures)} comparisons above {TOLERANCE:g} or mismatched")
        return 1
    print(f"OK: plugin matches the reference within {TOLERANCE:g} (relative, fp32)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
