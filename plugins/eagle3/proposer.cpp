// See proposer.h.
#include "proposer.h"

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {
namespace eagle3 {

Eagle3Proposer::Eagle3Proposer(Eagle3DraftModel& model)
    : model_(model), caches_(model.layer_impls_.size()) {}

std::int64_t Eagle3Proposer::to_target(std::int64_t draft_token) const {
  // d2t holds offsets, target id = draft id + d2t[draft id].
  if (!model_.d2t_.defined() || model_.d2t_.numel() == 0) return draft_token;
  return draft_token + model_.d2t_[draft_token].item<std::int64_t>();
}

std::pair<torch::Tensor, torch::Tensor> Eagle3Proposer::run_layers(const torch::Tensor& x_in,
                                                                  const torch::Tensor& positions,
                                                                  std::vector<nn::LayerKvCache>& caches) {
  const auto rope = model_.rotary_.tables(positions.unsqueeze(0), x_in.scalar_type());
  torch::Tensor x = x_in;
  for (std::size_t i = 0; i < model_.layer_impls_.size(); ++i) {
    const auto window = model_.windows_[i];
    nn::AttentionKernel kernel = [&caches, i, window](const torch::Tensor& q, const torch::Tensor& k,
                                                      const torch::Tensor& v) {
      return nn::attend_with_cache(caches[i], q, k, v, window);
    };
    x = model_.layer_impls_[i]->forward(x, rope, kernel);
  }
  torch::Tensor h, logits;
  if (model_.config_.norm_output) {  // the normalised state is carried forward
    h = model_.norm_(x);
    logits = model_.lm_head_(h);
  } else {
    logits = model_.lm_head_(model_.norm_(x));
    h = x;
  }
  return {h, logits};
}

void Eagle3Proposer::extend(const torch::Tensor& features, const torch::Tensor& /*last_hidden*/,
                            const torch::Tensor& next_tokens) {
  const std::int64_t n = next_tokens.numel();
  if (n == 0) return;
  const std::int64_t width = model_.config_.num_aux() * model_.config_.hidden_size();
  if (features.dim() != 2 || features.size(0) != n || features.size(1) != width) {
    fail_data(cat("eagle3 proposer: features must be [", n, ", ", width, "], got ", features.sizes()));
  }
  torch::NoGradGuard no_grad;
  const auto dtype = model_.fc_->weight.scalar_type();
  const auto g = model_.project_aux(features.unsqueeze(0).to(dtype));           // [1, n, H]
  const auto e = model_.embed_tokens_(next_tokens.reshape({1, n}).to(torch::kLong)).to(dtype);
  const auto positions = torch::arange(length_ + 1, length_ + n + 1, torch::kLong);
  auto [h, logits] = run_layers(torch::cat({e, g}, -1), positions, caches_);
  last_h_ = h.narrow(1, n - 1, 1);
  first_proposal_ = logits[0][n - 1].argmax().item<std::int64_t>();
  length_ += n;
}

std::vector<std::int64_t> Eagle3Proposer::propose(std::int64_t k) {
  if (length_ == 0) fail("eagle3 proposer: propose() before any extend()");
  std::vector<std::int64_t> out;
  if (k <= 0) return out;
  torch::NoGradGuard no_grad;
  out.push_back(to_target(first_proposal_));
  // Speculative keys go into copies of the accepted caches (cat makes new tensors), so the
  // accepted state is untouched.
  std::vector<nn::LayerKvCache> caches = caches_;
  torch::Tensor h = last_h_;
  for (std::int64_t j = 1; j < k; ++j) {
    const auto dtype = h.scalar_type();
    const auto e = model_.embed_tokens_(torch::full({1, 1}, out.back(), torch::kLong)).to(dtype);
    const auto positions = torch::full({1}, length_ + j, torch::kLong);
    auto [next_h, logits] = run_layers(torch::cat({e, h}, -1), positions, caches);
    h = next_h;
    out.push_back(to_target(logits[0][0].argmax().item<std::int64_t>()));
  }
  return out;
}

// Declared with the model (algorithm.h's DraftModel contract), defined here next to the proposer.
std::unique_ptr<Proposer> Eagle3DraftModel::make_proposer() { return std::make_unique<Eagle3Proposer>(*this); }

}  // namespace eagle3
}  // namespace speculators
