// A tiny Llama verifier directory (config.json + embed, lm_head, norm) for the eagle3 tests, and
// a draft built on it through the algorithm's own factory.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <random>
#include <string>

#include "eagle3_algorithm.h"
#include "model.h"
#include "speculators/json.h"
#include "speculators/tensor_io.h"
#include "speculators/vocab.h"

namespace speculators::eagle3::testing {

namespace fs = std::filesystem;

inline constexpr std::int64_t kV = 50, kH = 32, kVd = 20, kA = 3;

struct TinyVerifier {
  fs::path dir;
  Json json;
  TransformerConfig config;
  torch::Tensor embed, head, norm;

  explicit TinyVerifier(bool tied = false) {
    std::random_device rd;
    dir = fs::temp_directory_path() / ("eagle3_verifier_" + std::to_string(rd()));
    fs::create_directories(dir);
    json = Json::object({{"architectures", Json(std::vector<std::string>{"LlamaForCausalLM"})},
                         {"model_type", "llama"},
                         {"vocab_size", kV},
                         {"hidden_size", kH},
                         {"intermediate_size", 64},
                         {"num_hidden_layers", 6},
                         {"num_attention_heads", 4},
                         {"num_key_value_heads", 2},
                         {"head_dim", 8},
                         {"max_position_embeddings", 256},
                         {"rms_norm_eps", 1e-5},
                         {"rope_theta", 10000.0},
                         {"hidden_act", "silu"},
                         {"tie_word_embeddings", tied}});
    config = TransformerConfig::from_hf_json(json, "tiny config.json");
    write_file_atomic((dir / "config.json").string(), json.dump());
    torch::manual_seed(11);
    embed = torch::randn({kV, kH});
    head = torch::randn({kV, kH});
    norm = 1 + 0.1 * torch::randn({kH});
    std::map<std::string, torch::Tensor> tensors = {{"model.embed_tokens.weight", embed}, {"model.norm.weight", norm}};
    if (!tied) tensors["lm_head.weight"] = head;
    save_safetensors((dir / "model.safetensors").string(), tensors);
  }
  ~TinyVerifier() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }

  BuildContext context(Json args, bool with_mapping = true) const {
    BuildContext ctx;
    ctx.verifier = config;
    ctx.verifier_json = json;
    ctx.verifier_path = dir.string();
    ctx.verifier_name = "tiny-verifier";
    Json::Object merged = {{"draft_vocab_size", with_mapping ? kVd : kV}, {"sliding_window", 4}};
    for (const auto& [k, v] : args.as_object()) merged[k] = v;
    ctx.args = Args(Json(merged));
    if (with_mapping) ctx.vocab = build_vocab_mapping({{3, 9}, {7, 8}, {41, 5}, {12, 1}}, kV, kVd);
    return ctx;
  }
};

inline std::shared_ptr<Eagle3DraftModel> build(const TinyVerifier& v, Json args = Json::object(), bool mapping = true) {
  auto model = Eagle3Algorithm().from_training_args(v.context(std::move(args), mapping));
  return std::dynamic_pointer_cast<Eagle3DraftModel>(model);
}

}  // namespace speculators::eagle3::testing
