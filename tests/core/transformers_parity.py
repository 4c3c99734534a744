"""Hugging Face transformers as the oracle for the verifier families.

`make OUT` builds one tiny random model per case with transformers (fixed seed, fp32 compute,
GQA, sharded safetensors through `save_pretrained`), runs it on fixed input ids and writes
`expected.safetensors` next to it: the input ids, the logits and the residual stream after k
decoder layers for every k (k = 0 is the embedding output, k = n the last layer's output before
the final norm), captured with forward hooks on the decoder layers. Some cases rewrite the saved
config.json into the transformers 4 spelling (`rope_theta` / `rope_scaling`) to check that both
spellings load; transformers 5 reads either. `parity_driver compare OUT` checks this project's
verifier against these files.

Families this project cannot run (gemma2 here) get `expected_heads.safetensors`
instead: the embedding, final norm and head a trainer on pre-computed features reads from them.

`check-logits DIR LOGITS` loads a verifier directory written by `speculators-datagen
make-verifier` in transformers and compares its logits with the ones this project computed
(`parity_driver dump`).
"""
import json
import os
import shutil
import sys

import torch
from safetensors.torch import load_file, save_file

import transformers

BATCH, LENGTH = 2, 12
TOL = 1e-5

BASE = dict(vocab_size=96, hidden_size=64, intermediate_size=80, num_hidden_layers=3,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
            rms_norm_eps=1e-6, hidden_act="silu", initializer_range=0.1)


def cases():
    """name -> (config class, kwargs, options). options: dtype (saved), noise (std of the Gaussian
    noise added to every parameter, so biases transformers initialises to zero matter), legacy (rewrite the config
    in the rope_theta/rope_scaling spelling), length (input length)."""
    T = transformers
    half = BASE["hidden_size"] // BASE["num_attention_heads"] // 2
    return {
        "llama_default": (T.LlamaConfig, dict(rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
                          dict(legacy=True)),
        "llama_rope_parameters": (T.LlamaConfig, dict(rope_parameters={"rope_type": "default", "rope_theta": 1e6}),
                                  dict()),
        "llama_llama3_tied_bf16": (
            T.LlamaConfig,
            dict(tie_word_embeddings=True, max_position_embeddings=128,
                 rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                  "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                  "original_max_position_embeddings": 16}),
            dict(legacy=True, dtype=torch.bfloat16)),
        "llama_linear_bias": (T.LlamaConfig,
                              dict(attention_bias=True, mlp_bias=True,
                                   rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0}),
                              dict()),
        # max_position_embeddings below the input length: the NTK base grows with the length.
        "llama_dynamic": (T.LlamaConfig,
                          dict(max_position_embeddings=8,
                               rope_parameters={"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0}),
                          dict(legacy=True)),
        "llama_yarn": (T.LlamaConfig,
                       dict(max_position_embeddings=64,
                            rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                             "original_max_position_embeddings": 16, "beta_fast": 16.0,
                                             "beta_slow": 2.0}),
                       dict()),
        # Positions beyond original_max_position_embeddings: the long factors apply.
        "llama_longrope_long": (T.LlamaConfig,
                                dict(max_position_embeddings=64,
                                     rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0,
                                                      "original_max_position_embeddings": 8,
                                                      "short_factor": [1.0 + 0.1 * i for i in range(half)],
                                                      "long_factor": [1.0 + 0.5 * i for i in range(half)]}),
                                dict()),
        "llama_longrope_short": (T.LlamaConfig,
                                 dict(max_position_embeddings=64,
                                      rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0,
                                                       "original_max_position_embeddings": 32,
                                                       "short_factor": [1.0 + 0.1 * i for i in range(half)],
                                                       "long_factor": [1.0 + 0.5 * i for i in range(half)]}),
                                 dict(legacy=True)),
        # Qwen2: q/k/v biases; layers >= max_window_layers slide.
        "qwen2_sliding": (T.Qwen2Config,
                          dict(use_sliding_window=True, sliding_window=4, max_window_layers=1,
                               rope_parameters={"rope_type": "default", "rope_theta": 1e6}),
                          dict(legacy=True)),
        "qwen2_tied_bf16": (T.Qwen2Config, dict(tie_word_embeddings=True), dict(dtype=torch.bfloat16)),
        # Mistral: every layer slides; head_dim is not hidden / heads.
        "mistral_sliding": (T.MistralConfig, dict(sliding_window=5, head_dim=24), dict(legacy=True)),
        "mistral_no_window": (T.MistralConfig, dict(sliding_window=None), dict()),
        "qwen3_yarn": (T.Qwen3Config,
                       dict(max_position_embeddings=64, head_dim=32, attention_bias=True,
                            rope_parameters={"rope_type": "yarn", "rope_theta": 1e6, "factor": 4.0,
                                             "original_max_position_embeddings": 16}),
                       dict(legacy=True)),
        "qwen3_tied_sliding": (T.Qwen3Config,
                               dict(tie_word_embeddings=True, use_sliding_window=True, sliding_window=3,
                                    max_window_layers=2),
                               dict()),
        # Qwen3-MoE: 8 experts, top 2; layer 1 is a dense MLP (mlp_only_layers).
        "qwen3_moe": (T.Qwen3MoeConfig,
                      dict(num_experts=8, num_experts_per_tok=2, moe_intermediate_size=24, norm_topk_prob=True,
                           mlp_only_layers=[1], decoder_sparse_step=1),
                      dict(legacy=True)),
        "qwen3_moe_unnormed": (T.Qwen3MoeConfig,
                               dict(num_experts=6, num_experts_per_tok=3, moe_intermediate_size=16,
                                    norm_topk_prob=False, decoder_sparse_step=2, num_hidden_layers=4),
                               dict()),
        # Llama 4 text: layers 0 and 2 are RoPE layers with chunked attention (chunks of 4 tokens)
        # and the QK L2 norm; 1 and 3 are NoPE layers with full attention and temperature tuning
        # (floor_scale 2 so the scale changes within 12 tokens); 1 and 3 are MoE layers (shared
        # expert + top-2 of 4 sigmoid-routed experts), 0 and 2 dense MLPs of intermediate_size_mlp.
        "llama4_text": (T.Llama4TextConfig,
                        dict(num_hidden_layers=4, head_dim=16, num_local_experts=4, num_experts_per_tok=2,
                             intermediate_size_mlp=48, interleave_moe_layer_step=2, attention_chunk_size=4,
                             no_rope_layers=[1, 0, 1, 0], floor_scale=2, attn_scale=0.5,
                             rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                              "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                              "original_max_position_embeddings": 16}),
                        dict(legacy=True)),
        # No QK norm, attention biases, tied head, explicit moe_layers and layer_types: a chunked
        # NoPE layer (with temperature tuning) and a full RoPE layer; top-1 routing.
        "llama4_text_bias_tied": (T.Llama4TextConfig,
                                  dict(head_dim=16, num_local_experts=3, num_experts_per_tok=1, intermediate_size_mlp=40,
                                       moe_layers=[0, 2], attention_chunk_size=5, no_rope_layers=[0, 1, 1],
                                       layer_types=["chunked_attention", "full_attention", "chunked_attention"],
                                       use_qk_norm=False, attention_bias=True, tie_word_embeddings=True,
                                       floor_scale=3, attn_scale=0.3),
                                  dict(noise=0.1)),
        # gpt-oss: even layers slide (window 4), odd ones attend to everything; learned sinks;
        # top-2 of 4 experts with biases, clamped SwiGLU (swiglu_limit 0.5 so the clamps bite);
        # yarn rope without truncation. noise: every tensor (the biases transformers initialises to
        # zero included) gets N(0, 0.1) added.
        "gpt_oss": (T.GptOssConfig,
                    dict(num_hidden_layers=4, head_dim=16, num_local_experts=4, num_experts_per_tok=2,
                         sliding_window=4, swiglu_limit=0.5,
                         rope_parameters={"rope_type": "yarn", "rope_theta": 150000.0, "factor": 4.0,
                                          "original_max_position_embeddings": 64, "beta_fast": 32.0,
                                          "beta_slow": 1.0, "truncate": False}),
                    dict(legacy=True, noise=0.1)),
        # Explicit layer_types, top-1 routing, another alpha and limit, default rope, tied head.
        "gpt_oss_types_tied": (T.GptOssConfig,
                               dict(head_dim=16, num_local_experts=3, num_experts_per_tok=1, sliding_window=3,
                                    layer_types=["full_attention", "sliding_attention", "sliding_attention"],
                                    swiglu_alpha=1.2, swiglu_limit=1.0, tie_word_embeddings=True,
                                    rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
                               dict(noise=0.1)),
    }


def widths_cases():
    """Families read for their widths only: name -> (config class, kwargs)."""
    T = transformers
    return {
        # Gemma 2 (logit soft-capping, sandwich norms): not run here, read for its widths.
        "gemma2_widths": (T.Gemma2Config, dict(head_dim=16, tie_word_embeddings=False)),
    }


def make_widths_case(out_dir, name, config_cls, kwargs):
    torch.manual_seed(1234)
    params = dict(BASE)
    params.update(kwargs)
    model = transformers.AutoModelForCausalLM.from_config(config_cls(**params), dtype=torch.float32)
    case_dir = os.path.join(out_dir, name)
    shutil.rmtree(case_dir, ignore_errors=True)
    model.save_pretrained(case_dir, max_shard_size="40KB")
    state = model.state_dict()
    save_file({"embed_tokens": state["model.embed_tokens.weight"].contiguous(),
               "norm": state["model.norm.weight"].contiguous(),
               "lm_head": state["lm_head.weight"].contiguous()},
              os.path.join(case_dir, "expected_heads.safetensors"))
    print(f"{name}: {type(model).__name__} (widths only)")


def to_legacy(path):
    """Rewrite config.json from rope_parameters into rope_theta + rope_scaling (transformers 4)."""
    with open(path) as f:
        cfg = json.load(f)
    rope = dict(cfg.pop("rope_parameters"))
    cfg["rope_theta"] = rope.pop("rope_theta")
    cfg["rope_scaling"] = None if rope.get("rope_type", "default") == "default" else rope
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)


def capture(model, input_ids):
    """Logits and the residual stream after k decoder layers, k = 0..n."""
    layers = model.model.layers
    streams = {}
    hooks = [model.model.embed_tokens.register_forward_hook(lambda m, i, o: streams.__setitem__(0, o))]
    for k, layer in enumerate(layers):
        def hook(m, i, o, k=k):
            streams[k + 1] = o[0] if isinstance(o, tuple) else o
        hooks.append(layer.register_forward_hook(hook))
    with torch.no_grad():
        out = model(input_ids=input_ids, output_hidden_states=True, use_cache=False)
    for h in hooks:
        h.remove()
    n = len(layers)
    # The hooks agree with transformers' own hidden_states for every layer input.
    for k in range(n):
        assert torch.equal(streams[k], out.hidden_states[k]), f"hook and hidden_states[{k}] differ"
    return out.logits, [streams[k] for k in range(n + 1)]


def make_case(out_dir, name, config_cls, kwargs, options):
    torch.manual_seed(1234)
    params = dict(BASE)
    params.update(kwargs)
    config = config_cls(**params)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    if options.get("noise"):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * options["noise"])
    dtype = options.get("dtype", torch.float32)
    case_dir = os.path.join(out_dir, name)
    shutil.rmtree(case_dir, ignore_errors=True)
    model.to(dtype).save_pretrained(case_dir, max_shard_size="40KB")
    if options.get("legacy"):
        to_legacy(os.path.join(case_dir, "config.json"))
    # Reload what was written, in fp32: the expected values come from the files on disk.
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(case_dir, dtype=torch.float32).eval()
    assert reloaded.config.rope_parameters == model.config.rope_parameters, (
        f"{name}: config round trip changed rope_parameters")
    length = options.get("length", LENGTH)
    gen = torch.Generator().manual_seed(99)
    input_ids = torch.randint(0, config.vocab_size, (BATCH, length), generator=gen)
    logits, streams = capture(reloaded, input_ids)
    tensors = {"input_ids": input_ids, "logits": logits.contiguous()}
    for k, s in enumerate(streams):
        tensors[f"hidden_{k}"] = s.contiguous()
    save_file(tensors, os.path.join(case_dir, "expected.safetensors"))
    shards = [f for f in os.listdir(case_dir) if f.endswith(".safetensors") and f != "expected.safetensors"]
    assert len(shards) > 1, f"{name}: expected a sharded checkpoint, got {shards}"
    print(f"{name}: {type(reloaded).__name__}, {len(shards)} shards, |logits|max {logits.abs().max():.3g}")


def check_logits(verifier_dir, logits_path):
    saved = load_file(logits_path)
    model = transformers.AutoModelForCausalLM.from_pretrained(verifier_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        logits = model(input_ids=saved["input_ids"], use_cache=False).logits
    err = (logits - saved["logits"]).abs().max().item()
    scale = saved["logits"].abs().max().item()
    print(f"{verifier_dir}: {type(model).__name__}, max |logits - ours| = {err:.3g} (|logits| max {scale:.3g})")
    if not err <= TOL * max(1.0, scale):
        print(f"FAIL: logits differ by {err} > {TOL * max(1.0, scale)}")
        return 1
    return 0


def main(argv):
    if len(argv) >= 2 and argv[0] == "make":
        out = argv[1]
        wanted = set(argv[2:])
        if not wanted:  # every case: a case left from an earlier run of this script must not be compared
            shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out, exist_ok=True)
        for name, (cls, kwargs, options) in cases().items():
            if not wanted or name in wanted:
                make_case(out, name, cls, kwargs, options)
        for name, (cls, kwargs) in widths_cases().items():
            if not wanted or name in wanted:
                make_widths_case(out, name, cls, kwargs)
        return 0
    if len(argv) == 3 and argv[0] == "check-logits":
        return check_logits(argv[1], argv[2])
    print("usage: transformers_parity.py make OUT [CASE...] | check-logits VERIFIER_DIR LOGITS.safetensors")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
