// Helpers shared by the data tests: scratch directories, data.jsonl and hidden-state files written
// with the exact keys, dtypes and shapes of speculators/data_generation/offline.py, and a
// pass-through algorithm.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "data/feature_source.h"
#include "data/token_rows.h"
#include "speculators/algorithm.h"
#include "speculators/tensor_io.h"

namespace speculators::test {

// A fresh empty directory under the temp dir.
inline std::string scratch_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("speculators_" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

inline void write_jsonl(const std::string& dir, const std::vector<TokenRow>& rows) {
  std::ofstream out(std::filesystem::path(dir) / "data.jsonl");
  for (const auto& r : rows) {
    out << "{\"input_ids\": [";
    for (std::size_t i = 0; i < r.input_ids.size(); ++i) out << (i ? ", " : "") << r.input_ids[i];
    out << "], \"loss_mask\": [";
    for (std::size_t i = 0; i < r.loss_mask.size(); ++i) out << (i ? ", " : "") << r.loss_mask[i];
    out << "]}\n";
  }
}

// hidden_states/hs_{row}.safetensors: hidden_states [T, A+1, H] in `dtype`, token_ids [T] int64.
inline void write_hs(const std::string& dir, std::size_t row, const torch::Tensor& hidden,
                     const std::vector<std::int64_t>& token_ids) {
  std::filesystem::create_directories(std::filesystem::path(dir) / "hidden_states");
  save_safetensors((std::filesystem::path(dir) / "hidden_states" / ("hs_" + std::to_string(row) + ".safetensors")).string(),
                   {{"hidden_states", hidden}, {"token_ids", torch::tensor(token_ids, torch::kInt64)}});
}

// A feature source over in-memory samples (copies handed out, like a real source).
class VectorSource : public FeatureSource {
 public:
  explicit VectorSource(std::vector<Sample> samples) : samples_(std::move(samples)) {}
  std::size_t size() const override { return samples_.size(); }
  std::int64_t length(std::size_t i) const override { return samples_[i].length(); }
  std::vector<Sample> get(const std::vector<std::size_t>& indices) override {
    std::vector<Sample> out;
    for (auto i : indices) {
      Sample copy;
      for (const auto& [k, t] : samples_[i].tensors) copy.tensors[k] = t.clone();
      out.push_back(std::move(copy));
    }
    return out;
  }

 private:
  std::vector<Sample> samples_;
};

inline Sample make_sample(std::int64_t t, std::int64_t base) {
  Sample s;
  s.tensors["input_ids"] = torch::arange(base, base + t, torch::kInt64);
  s.tensors["loss_mask"] = torch::ones({t}, torch::kInt64);
  s.tensors["position_ids"] = torch::arange(t, torch::kInt64);
  s.tensors["hidden_states"] = torch::full({t, 3}, static_cast<double>(base));
  return s;
}

class IdentityAlgorithm : public Algorithm {
 public:
  std::string name() const override { return "identity"; }
  std::string description() const override { return ""; }
  Schema schema() const override { return {}; }
  std::vector<std::int64_t> target_layer_ids(const BuildContext&) const override { return {}; }
  std::shared_ptr<DraftModel> from_training_args(const BuildContext&) const override { return nullptr; }
};

}  // namespace speculators::test
