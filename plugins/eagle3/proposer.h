// EAGLE-3 at inference: greedy chain proposals with a key/value cache per draft layer. Position i
// of the draft reads cat(embed(x_{i+1}), fc(F_i)) at rotary position i + 1 (the alignment of
// shift_batch); a proposal step reads cat(embed(d_j), h) where h is the previous step's carried
// state (Eagle3DraftModel.forward), one position further on — the inference form of the
// training-time test, whose step-k queries see the step-0 keys and their own earlier-step keys.
// With a sliding window W, a proposal at position t sees the keys in (t − W, t], as a serving
// engine's cache does; training's step-k query applies the window of its base position
// (create_combined_mask_mod). The two differ only for proposals after the first when the prefix is
// longer than W.
#pragma once

#include <memory>

#include "model.h"
#include "speculators/nn/kv_cache.h"
#include "speculators/proposal.h"

namespace speculators {
namespace eagle3 {

class Eagle3Proposer : public Proposer {
 public:
  explicit Eagle3Proposer(Eagle3DraftModel& model);
  void extend(const torch::Tensor& features, const torch::Tensor& last_hidden,
              const torch::Tensor& next_tokens) override;
  std::vector<std::int64_t> propose(std::int64_t k) override;
  std::int64_t length() const override { return length_; }

 private:
  // Runs rows x [1, S, 2H] at rotary positions [S] through every layer, appending their keys and
  // values to `caches`; returns the carried state h [1, S, H] and the logits [1, S, Vd].
  std::pair<torch::Tensor, torch::Tensor> run_layers(const torch::Tensor& x, const torch::Tensor& positions,
                                                     std::vector<nn::LayerKvCache>& caches);
  std::int64_t to_target(std::int64_t draft_token) const;

  Eagle3DraftModel& model_;
  std::vector<nn::LayerKvCache> caches_;      // per layer, accepted positions
  torch::Tensor last_h_;                      // carried state at the last accepted position [1, 1, H]
  std::int64_t first_proposal_ = -1;          // argmax of the draft at the last accepted position
  std::int64_t length_ = 0;
};

}  // namespace eagle3
}  // namespace speculators
