// See proposer.h. The decoder layers run with a key/value cache; positions are not shifted
// (row i holds the verifier's features after token i, rotary position i), as in draft_states().
#include "proposer.h"

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {
namespace myalgo {

MyAlgoProposer::MyAlgoProposer(MyAlgoModel& model)
    : model_(model),
      caches_(static_cast<std::size_t>(model.config().layer_config.num_hidden_layers)) {}

void MyAlgoProposer::extend(const torch::Tensor& features, const torch::Tensor& /*last_hidden*/,
                            const torch::Tensor& next_tokens) {
  const std::int64_t n = next_tokens.numel();
  if (n == 0) return;
  const std::int64_t width = model_.fc_->weight.size(1);
  if (features.dim() != 2 || features.size(0) != n || features.size(1) != width) {
    fail_data(cat("myalgo proposer: features must be [", n, ", ", width, "], got ", features.sizes()));
  }
  torch::NoGradGuard no_grad;
  const auto& c = model_.config().layer_config;
  auto x = model_.fc_(features.unsqueeze(0).to(model_.fc_->weight.scalar_type()));
  const auto positions = torch::arange(length_, length_ + n, torch::kLong).unsqueeze(0);
  const nn::RotaryTables rope = model_.rotary_.tables(positions, x.scalar_type());
  for (std::int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const auto window = c.window_of_layer(i);
    const auto li = static_cast<std::size_t>(i);
    nn::AttentionKernel kernel = [this, li, window](const torch::Tensor& q, const torch::Tensor& k,
                                                    const torch::Tensor& v) {
      return nn::attend_with_cache(caches_[li], q, k, v, window);
    };
    x = model_.layers_[li]->as<nn::DecoderLayerImpl>()->forward(x, rope, kernel);
  }
  last_state_ = model_.norm_(x)[0][n - 1];
  length_ += n;
}

std::vector<std::int64_t> MyAlgoProposer::propose(std::int64_t k) {
  if (length_ == 0) fail("myalgo proposer: propose() before any extend()");
  torch::NoGradGuard no_grad;
  std::vector<std::int64_t> out;
  const auto heads = static_cast<std::int64_t>(model_.heads_->size());
  for (std::int64_t j = 2; j <= std::min(k + 1, heads); ++j) {
    const auto logits = model_.lm_head_(model_.heads_[static_cast<std::size_t>(j - 1)]
                                            ->as<ResidualHeadImpl>()
                                            ->forward(last_state_.unsqueeze(0)))[0];
    std::int64_t id = logits.argmax().item<std::int64_t>();
    if (model_.d2t_.defined()) id += model_.d2t_[id].item<std::int64_t>();  // d2t holds offsets
    out.push_back(id);
  }
  return out;
}

// Declared with the model (algorithm.h's DraftModel contract), defined here next to the proposer.
std::unique_ptr<Proposer> MyAlgoModel::make_proposer() { return std::make_unique<MyAlgoProposer>(*this); }

}  // namespace myalgo
}  // namespace speculators
