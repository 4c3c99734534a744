// Writes the verifier stub of verifier_stub.h. The safetensors file is a header followed by a
// hole: the data reads back as zeros and costs no disk.
#include "verifier_stub.h"

#include <torch/torch.h>

#include <fstream>
#include <string>
#include <vector>

#include "speculators/json.h"

namespace speculators::bench {

namespace fs = std::filesystem;

Json verifier_config_json(const Shape& shape) {
  return Json::object({
      {"architectures", Json(std::vector<std::string>{"LlamaForCausalLM"})},
      {"model_type", "llama"},
      {"hidden_size", shape.hidden},
      {"intermediate_size", shape.intermediate},
      {"num_attention_heads", shape.heads},
      {"num_key_value_heads", shape.kv_heads},
      {"num_hidden_layers", shape.verifier_layers},
      {"vocab_size", shape.vocab},
      {"max_position_embeddings", 131072},
      {"rms_norm_eps", 1e-5},
      {"rope_theta", 500000.0},
      {"hidden_act", "silu"},
      {"tie_word_embeddings", false},
      {"torch_dtype", "bfloat16"},
  });
}

void write_verifier_stub(const fs::path& dir, const Shape& shape) {
  fs::create_directories(dir);
  write_file_atomic((dir / "config.json").string(), verifier_config_json(shape).dump() + "\n");

  const std::vector<std::pair<std::string, std::vector<std::int64_t>>> tensors = {
      {"lm_head.weight", {shape.vocab, shape.hidden}},
      {"model.embed_tokens.weight", {shape.vocab, shape.hidden}},
      {"model.norm.weight", {shape.hidden}}};
  Json header = Json::object();
  std::int64_t offset = 0;
  for (const auto& [name, dims] : tensors) {
    std::int64_t bytes = 2;
    for (auto d : dims) bytes *= d;
    header[name] = Json::object({{"dtype", "BF16"},
                                 {"shape", Json(dims)},
                                 {"data_offsets", Json(std::vector<std::int64_t>{offset, offset + bytes})}});
    offset += bytes;
  }
  std::string text = header.dump();
  while (text.size() % 8) text += ' ';
  const fs::path file = dir / "model.safetensors";
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    const std::uint64_t n = text.size();
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
    out << text;
  }
  fs::resize_file(file, 8 + text.size() + static_cast<std::uintmax_t>(offset));
}

void randomize_frozen_tensors(DraftModel& model) {
  torch::NoGradGuard no_grad;
  for (auto& p : model.parameters()) {
    if (!p.requires_grad() && p.is_floating_point()) p.normal_(0, 0.02);
  }
}

}  // namespace speculators::bench
