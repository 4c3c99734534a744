// myalgo at inference: the draft's state at the last accepted position, through its heads, is
// a block of proposals. Head j at position i predicts token i + j (loss.h); the token i + 1 is
// the verifier's own next token, already known, so the proposals are heads 2..k+1.
#pragma once

#include "model.h"
#include "speculators/nn/kv_cache.h"
#include "speculators/proposal.h"

namespace speculators {
namespace myalgo {

class MyAlgoProposer : public Proposer {
 public:
  explicit MyAlgoProposer(MyAlgoModel& model);
  void extend(const torch::Tensor& features, const torch::Tensor& last_hidden,
              const torch::Tensor& next_tokens) override;
  // At most block_size - 1 tokens.
  std::vector<std::int64_t> propose(std::int64_t k) override;
  std::int64_t length() const override { return length_; }

 private:
  MyAlgoModel& model_;
  std::vector<nn::LayerKvCache> caches_;      // per layer
  torch::Tensor last_state_;                  // the draft's state at the last accepted position [H]
  std::int64_t length_ = 0;
};

}  // namespace myalgo
}  // namespace speculators
