// make-verifier: a random Llama / Qwen3 verifier with learnable structure. Every token gets a
// random direction; its embedding points along it, and the head row of a token y points along
// the directions of the tokens whose main (or runner-up) successor is y. The decoder layers keep
// their ordinary random init but are scaled to add only part of the residual stream, so the next
// token depends mostly on the last one and a little on the context. The head is then scaled so
// that the model's own samples reach the requested mean top-1 probability.
#include "tools/make_verifier.h"

#include <algorithm>
#include <cmath>

#include "eval/sampling.h"
#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {

namespace {

constexpr double kRunnerUpWeight = 0.6;  // the second successor's share of a head row
constexpr double kContextShare = 0.25;   // what the layers add, relative to the embedding

double mean_top1(const torch::Tensor& logits, double scale) {
  return std::get<0>(torch::softmax(logits * scale, -1).max(-1)).mean().item<double>();
}

// The head scale at which mean_top1 reaches `target` (it grows monotonically with the scale).
double calibrate_scale(const torch::Tensor& logits, double target) {
  double lo = 1e-4, hi = 1e4;
  for (int i = 0; i < 60; ++i) {
    const double mid = std::sqrt(lo * hi);
    (mean_top1(logits, mid) < target ? lo : hi) = mid;
  }
  return std::sqrt(lo * hi);
}

// RMS of what the decoder layers add to the residual stream, relative to the embeddings.
double context_share(VerifierModelImpl& model, std::uint64_t seed) {
  torch::Generator gen = at::detail::createCPUGenerator(seed);
  const torch::Tensor ids = torch::randint(0, model.config().vocab_size, {8, 32}, gen, torch::kLong);
  const auto out = model.forward(ids, torch::Tensor(), torch::Tensor(), {0, model.config().num_hidden_layers}, false);
  const torch::Tensor& first = out.hidden_states[0];
  const torch::Tensor& last = out.hidden_states[1];
  return (last - first).pow(2).mean().sqrt().item<double>() / first.pow(2).mean().sqrt().item<double>();
}

// Next-token logits at the sampled positions of the model's own samples.
torch::Tensor on_policy_logits(VerifierModelImpl& model, std::uint64_t seed) {
  SampleOptions o;
  o.num_samples = 16;
  o.seq_len = 48;
  o.prompt_len = 4;
  o.seed = seed;
  const SampledSequences s = sample_sequences(model, o);
  const torch::Tensor logits = model.forward(s.input_ids, torch::Tensor(), torch::Tensor(), {}).logits;
  return logits.slice(1, o.prompt_len - 1, o.seq_len - 1).reshape({-1, model.config().vocab_size});
}

}  // namespace

TransformerConfig make_verifier_config(const MakeVerifierOptions& o) {
  if (o.arch != "llama" && o.arch != "qwen3") fail_usage(cat("--arch must be llama or qwen3, got '", o.arch, "'"));
  if (o.hidden_size < 2) fail_usage(cat("--hidden-size must be at least 2, got ", o.hidden_size));
  if (o.num_layers < 1) fail_usage(cat("--num-layers must be at least 1, got ", o.num_layers));
  if (o.vocab_size < 2) fail_usage(cat("--vocab-size must be at least 2, got ", o.vocab_size));
  if (o.intermediate_size < 0) fail_usage(cat("--intermediate-size must be positive, got ", o.intermediate_size));
  if (!(o.target_top1 > 0 && o.target_top1 < 1)) fail_usage(cat("target top-1 must be in (0, 1), got ", o.target_top1));

  const std::int64_t h = o.hidden_size;
  std::int64_t heads = o.num_heads;
  if (heads <= 0) {
    // Head dim 32 where possible; fewer heads until the head dim is a whole even number.
    heads = std::max<std::int64_t>(1, h / 32);
    while (heads > 1 && (h % heads != 0 || (h / heads) % 2 != 0)) --heads;
  }
  if (h % heads != 0) fail_usage(cat("--hidden-size ", h, " must be divisible by --num-heads ", heads));
  if ((h / heads) % 2 != 0) {
    fail_usage(cat("head dim = --hidden-size / --num-heads = ", h / heads, " must be even (rotary embedding)"));
  }
  const std::int64_t kv = o.num_kv_heads > 0 ? o.num_kv_heads : (heads % 2 == 0 ? heads / 2 : heads);
  if (heads % kv != 0) fail_usage(cat("--num-heads ", heads, " must be a multiple of --num-kv-heads ", kv));

  TransformerConfig c;
  c.model_type = o.arch;
  c.architectures = {o.arch == "qwen3" ? "Qwen3ForCausalLM" : "LlamaForCausalLM"};
  c.vocab_size = o.vocab_size;
  c.hidden_size = h;
  c.intermediate_size = o.intermediate_size > 0 ? o.intermediate_size : 3 * h;
  c.num_hidden_layers = o.num_layers;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv;
  c.head_dim = h / heads;
  c.max_position_embeddings = 4096;
  c.rms_norm_eps = o.arch == "qwen3" ? 1e-6 : 1e-5;
  c.rope_theta = 10000.0;
  c.layer_types.assign(static_cast<std::size_t>(o.num_layers), "full_attention");
  c.max_window_layers = o.num_layers;
  c.validate("make-verifier options");
  return c;
}

MadeVerifier make_structured_verifier(const MakeVerifierOptions& o) {
  const TransformerConfig config = make_verifier_config(o);
  const std::int64_t v = config.vocab_size, h = config.hidden_size;
  torch::manual_seed(o.seed);
  VerifierModel model(config);
  torch::NoGradGuard no_grad;
  nn::init_weights(*model, config.initializer_range);

  const torch::Tensor directions = torch::randn({v, h});
  const torch::Tensor unit = directions / directions.norm(2, -1, /*keepdim=*/true);
  model->embed_tokens->weight.copy_(unit * std::sqrt(static_cast<double>(h)));
  const torch::Tensor main_successor = torch::randperm(v, torch::kLong);
  const torch::Tensor runner_up = torch::randperm(v, torch::kLong);
  torch::Tensor head = torch::zeros({v, h});
  head.index_add_(0, main_successor, unit);
  head.index_add_(0, runner_up, unit * kRunnerUpWeight);
  model->lm_head->weight.copy_(head);

  // Pre-norm layers see normalised inputs, so their contribution hardly depends on the
  // embedding's scale: scaling the embedding sets the share of context in the residual stream.
  for (int round = 0; round < 2; ++round) {
    model->embed_tokens->weight.mul_(context_share(*model, o.seed + round) / kContextShare);
  }
  // The head scale sets how peaked the distributions are; the samples move with it, so refit.
  for (int round = 0; round < 3; ++round) {
    model->lm_head->weight.mul_(calibrate_scale(on_policy_logits(*model, o.seed + 10 + round), o.target_top1));
  }

  SampleOptions check;
  check.num_samples = 32;
  check.seq_len = 64;
  check.prompt_len = 8;
  check.seed = o.seed + 100;
  MadeVerifier made;
  made.mean_top1 = sample_sequences(*model, check).mean_top1;
  made.model = model;
  return made;
}

}  // namespace speculators
