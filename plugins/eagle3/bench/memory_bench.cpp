// Peak extra memory of one EAGLE-3 forward + backward, chunked TTT attention vs the dense mask
// (docs/performance.md). Linux only: the peak resident set is reset through
// /proc/self/clear_refs before the step and read from /proc/self/status (VmHWM) after it.
//
//   eagle3_memory_bench chunked|dense [L=8192] [K=3] [heads=2] [vocab=2048]
//
// The draft: one llama layer, head_dim 64 (H = 64 x heads), MLP 2H, full vocabulary, window 2048;
// the row holds four documents of L/4 tokens.
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "model.h"

using namespace speculators;
using namespace speculators::eagle3;

namespace {

long status_kib(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}

void reset_peak() { std::ofstream("/proc/self/clear_refs") << "5"; }

Eagle3Config bench_config(std::int64_t heads, std::int64_t vocab) {
  Eagle3Config c;
  auto& l = c.layer;
  l.model_type = "llama";
  l.vocab_size = vocab;
  l.hidden_size = 64 * heads;
  l.intermediate_size = 2 * l.hidden_size;
  l.num_hidden_layers = 1;
  l.num_attention_heads = heads;
  l.num_key_value_heads = heads;
  l.head_dim = 64;
  l.max_position_embeddings = 16384;
  l.rms_norm_eps = 1e-5;
  l.sliding_window = 2048;
  l.layer_types = {"sliding_attention"};
  c.draft_vocab_size = l.vocab_size;
  c.aux_layer_ids = {2, 4, 6};
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "chunked";
  const std::int64_t L = argc > 2 ? std::stoll(argv[2]) : 8192;
  const std::int64_t K = argc > 3 ? std::stoll(argv[3]) : 3;
  const std::int64_t heads = argc > 4 ? std::stoll(argv[4]) : 2;
  const std::int64_t vocab = argc > 5 ? std::stoll(argv[5]) : 2048;
  torch::manual_seed(0);
  Eagle3DraftModel model(bench_config(heads, vocab));
  {
    torch::NoGradGuard no_grad;
    for (auto* w : {&model.embed_tokens_->weight, &model.lm_head_->weight, &model.verifier_lm_head_->weight}) {
      w->normal_(0, 0.02);
    }
    model.verifier_norm_->weight.fill_(1);
  }
  model.set_attention_mode(mode == "dense" ? AttentionMode::kDense : AttentionMode::kChunked);
  const std::int64_t H = model.config().hidden_size();
  Batch batch;
  batch["input_ids"] = torch::randint(0, model.config().target_vocab_size(), {1, L}, torch::kLong);
  batch["hidden_states"] = torch::randn({1, L, 3 * H});
  batch["verifier_last_hidden_states"] = torch::randn({1, L, H});
  batch["loss_mask"] = torch::ones({1, L}, torch::kLong);
  batch["document_ids"] = (torch::arange(L, torch::kLong) / (L / 4)).unsqueeze(0);  // four documents
  batch["position_ids"] = (torch::arange(L, torch::kLong) % (L / 4) + 1).unsqueeze(0);
  StepOptions options;
  options.ttt_steps = K;

  reset_peak();
  const long before = status_kib("VmRSS");
  const auto start = std::chrono::steady_clock::now();
  auto result = model.run(batch, options);
  const long after_forward = status_kib("VmHWM");
  const long held_after_forward = status_kib("VmRSS");
  result.loss.backward();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const long peak = status_kib("VmHWM");
  std::printf("forward: peak_extra_MiB=%.1f held_MiB=%.1f\n", (after_forward - before) / 1024.0,
              (held_after_forward - before) / 1024.0);
  std::printf("mode=%s L=%lld K=%lld heads=%lld H=%lld V=%lld window=2048 loss=%.6f peak_extra_MiB=%.1f seconds=%.1f\n",
              mode.c_str(), static_cast<long long>(L), static_cast<long long>(K), static_cast<long long>(heads),
              static_cast<long long>(H), static_cast<long long>(vocab), result.loss.item<double>(), (peak - before) / 1024.0, seconds);
  return 0;
}
