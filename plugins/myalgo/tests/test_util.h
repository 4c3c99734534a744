// Shared pieces of myalgo's tests: a tiny draft config, a packed batch with two documents and
// padding, and the loop-by-loop loss that the tensor code is checked against.
#pragma once

#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <unistd.h>

#include "model.h"
#include "speculators/json.h"
#include "speculators/tensor_io.h"

namespace speculators {
namespace myalgo {
namespace test {

// A verifier-shaped decoder config small enough for a unit test.
inline TransformerConfig tiny_transformer(std::int64_t vocab = 32, std::int64_t hidden = 16) {
  TransformerConfig c;
  c.model_type = "llama";
  c.architectures = {"LlamaForCausalLM"};
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = 2 * hidden;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = hidden / 2;
  c.max_position_embeddings = 128;
  c.rms_norm_eps = 1e-6;
  c.layer_types = {"full_attention"};
  return c;
}

inline MyAlgoConfig tiny_config(std::int64_t block_size = 3, std::int64_t draft_vocab = 32) {
  MyAlgoConfig config;
  config.layer_config = tiny_transformer();
  config.block_size = block_size;
  config.aux_layer_ids = {1, 2};
  config.draft_vocab_size = draft_vocab;
  config.verifier_architectures = {"LlamaForCausalLM"};
  config.verifier_name_or_path = "tiny-verifier";
  return config;
}

// Gives the frozen verifier parts values without a verifier checkpoint (random lm_head rows
// scaled so that the verifier's distributions are peaked, unit final norm, random embedding).
inline void fill_frozen(MyAlgoModel& model, std::uint64_t seed = 7) {
  torch::manual_seed(seed);
  torch::NoGradGuard no_grad;
  auto head = std::dynamic_pointer_cast<torch::nn::LinearImpl>(model.lm_head());
  head->weight.copy_(torch::randn(head->weight.sizes()) * 0.5);
  model.verifier_norm()->weight.fill_(1.0);
  auto embed = std::dynamic_pointer_cast<torch::nn::EmbeddingImpl>(model.embed_tokens());
  embed->weight.copy_(torch::randn(embed->weight.sizes()));
}

// Two documents of 5 tokens, then 2 padding positions. loss_mask has prompt zeros in each.
inline Batch tiny_batch(std::int64_t aux_width, std::int64_t hidden, std::uint64_t seed = 3) {
  torch::manual_seed(seed);
  const std::int64_t length = 12;
  Batch batch;
  batch["hidden_states"] = torch::randn({1, length, aux_width});
  batch["verifier_last_hidden_states"] = torch::randn({1, length, hidden}) * 2.0;
  batch["input_ids"] = torch::randint(0, 32, {1, length}, torch::kInt64);
  batch["loss_mask"] = torch::tensor({0, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0}, torch::kInt64).unsqueeze(0);
  batch["position_ids"] = torch::tensor({0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 0}, torch::kInt64).unsqueeze(0);
  batch["document_ids"] = torch::tensor({0, 0, 0, 0, 0, 1, 1, 1, 1, 1, -1, -1}, torch::kInt64).unsqueeze(0);
  return batch;
}

// Σ_j gamma^(j-1) · masked mean over positions of KL(p ‖ q), one scalar at a time in double:
// the definition written out, independent of the tensor code in loss.cpp.
inline double loop_loss(const std::vector<torch::Tensor>& heads, const torch::Tensor& targets,
                        const torch::Tensor& loss_mask, const torch::Tensor& docs, double gamma) {
  const auto length = targets.size(0);
  const auto vocab = targets.size(1);
  auto softmax_row = [&](const torch::Tensor& logits, std::int64_t row) {
    std::vector<double> p(vocab);
    double max = -INFINITY, sum = 0.0;
    for (std::int64_t v = 0; v < vocab; ++v) max = std::max(max, logits[row][v].item<double>());
    for (std::int64_t v = 0; v < vocab; ++v) sum += p[v] = std::exp(logits[row][v].item<double>() - max);
    for (auto& x : p) x /= sum;
    return p;
  };
  double total = 0.0;
  for (std::size_t k = 0; k < heads.size(); ++k) {
    const auto j = static_cast<std::int64_t>(k) + 1;
    double kl_sum = 0.0, count = 0.0;
    for (std::int64_t i = 0; i + j < length; ++i) {
      const auto doc = docs[i].item<std::int64_t>();
      if (doc == -1 || docs[i + j - 1].item<std::int64_t>() != doc || docs[i + j].item<std::int64_t>() != doc ||
          loss_mask[i + j].item<std::int64_t>() == 0)
        continue;
      auto p = softmax_row(targets, i + j - 1);
      auto q = softmax_row(heads[k].detach(), i);
      for (std::int64_t v = 0; v < vocab; ++v) kl_sum += p[v] * (std::log(p[v]) - std::log(q[v]));
      count += 1.0;
    }
    total += std::pow(gamma, static_cast<double>(k)) * kl_sum / (count + 1e-5);
  }
  return total;
}

// Writes what a verifier checkpoint directory holds for the tensors myalgo copies: config.json
// and model.safetensors with Hugging Face names. `tied` leaves lm_head.weight out.
inline std::map<std::string, torch::Tensor> write_verifier_dir(const std::string& dir, const TransformerConfig& config,
                                                               bool tied = false, std::uint64_t seed = 5) {
  torch::manual_seed(seed);
  std::map<std::string, torch::Tensor> tensors = {
      {"model.embed_tokens.weight", torch::randn({config.vocab_size, config.hidden_size})},
      {"model.norm.weight", 1.0 + 0.1 * torch::randn({config.hidden_size})},
  };
  if (!tied) tensors["lm_head.weight"] = torch::randn({config.vocab_size, config.hidden_size});
  write_file_atomic(dir + "/config.json", config.to_hf_json().dump_python());
  save_safetensors(dir + "/model.safetensors", tensors);
  return tensors;
}

// A fresh empty directory under the system temp directory, removed by the destructor.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& name) {
    path = std::filesystem::temp_directory_path() /
           (name + "-" + std::to_string(static_cast<long long>(::getpid())) + "-" +
            std::to_string(reinterpret_cast<std::uintptr_t>(this)));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string str() const { return path.string(); }
};

}  // namespace test
}  // namespace myalgo
}  // namespace speculators
