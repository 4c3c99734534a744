// A tiny trainable draft for the fixtures whose algorithm name starts with "draft_" (see
// fixture_algorithm.h): one linear layer over the verifier's last hidden state, trained to small
// logits. The rest of the name says where it misbehaves, so that a test can drive every path
// from the host into plugin code:
//   draft_ok               trains, saves, loads and proposes (always token 0)
//   draft_no_layers        as draft_ok with an empty target_layer_ids() (features [T, 0])
//   draft_varying_metrics  a metric key that changes from one batch to the next
//   draft_detached_loss    forward returns a loss without grad (backward fails in LibTorch)
//   draft_throw_<phase>    throws in <phase>: build (the factory), forward (std::exception),
//                          forward_torch (a c10::Error with LibTorch's backtrace), save
//                          (config_json), load (from_config), proposer (propose)
#include "fixture_draft.h"

#include <torch/torch.h>

#include <stdexcept>

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {
namespace fixture {

namespace {

bool is(const std::string& name, const char* what) { return name == std::string("draft_") + what; }

class ZeroProposer : public Proposer {
 public:
  explicit ZeroProposer(bool throws) : throws_(throws) {}
  void extend(const torch::Tensor&, const torch::Tensor&, const torch::Tensor& next) override {
    length_ += next.numel();
  }
  std::vector<std::int64_t> propose(std::int64_t k) override {
    if (throws_) throw std::runtime_error("fixture throws in propose");
    return std::vector<std::int64_t>(static_cast<std::size_t>(k), 0);
  }
  std::int64_t length() const override { return length_; }

 private:
  bool throws_;
  std::int64_t length_ = 0;
};

class FixtureDraft : public DraftModel {
 public:
  FixtureDraft(std::string name, std::int64_t hidden, std::int64_t vocab) : name_(std::move(name)) {
    layers_ = register_module("layers", torch::nn::ModuleList(torch::nn::Linear(hidden, hidden)));
    embed_ = register_module("embed_tokens", torch::nn::Embedding(vocab, hidden));
    head_ = register_module("lm_head", torch::nn::Linear(hidden, vocab));
    embed_->weight.requires_grad_(false);
  }
  torch::nn::ModuleList layers() override { return layers_; }
  std::shared_ptr<torch::nn::Module> embed_tokens() override { return embed_.ptr(); }
  std::shared_ptr<torch::nn::Module> lm_head() override { return head_.ptr(); }
  std::vector<std::int64_t> target_layer_ids() const override {
    return is(name_, "no_layers") ? std::vector<std::int64_t>{} : std::vector<std::int64_t>{1};
  }
  ForwardResult forward(const Batch& batch, const Json&) override {
    if (is(name_, "throw_forward")) throw std::runtime_error("fixture throws in forward");
    const torch::Tensor h = batch.at("verifier_last_hidden_states").to(torch::kFloat32);
    if (is(name_, "throw_forward_torch")) (void)torch::cat(std::vector<torch::Tensor>{}, -1);
    const torch::Tensor x = layers_[0]->as<torch::nn::Linear>()->forward(h);
    torch::Tensor loss = head_->forward(x).pow(2).mean();
    if (is(name_, "detached_loss")) loss = loss.detach();
    ForwardResult out;
    out.loss = loss;
    out.metrics["loss"] = loss.detach();
    // Batch 0 returns {loss, even}, batch 1 {loss, odd}, ...
    if (is(name_, "varying_metrics")) out.metrics[calls_++ % 2 == 0 ? "even" : "odd"] = torch::ones({});
    return out;
  }
  Json config_json() const override {
    if (is(name_, "throw_save")) throw std::runtime_error("fixture throws in config_json");
    return Json::object({{"speculators_model_type", name_}, {"speculative_tokens", 2}});
  }
  std::unique_ptr<Proposer> make_proposer() override {
    return std::make_unique<ZeroProposer>(is(name_, "throw_proposer"));
  }

 private:
  std::string name_;
  torch::nn::ModuleList layers_{nullptr};
  torch::nn::Embedding embed_{nullptr};
  torch::nn::Linear head_{nullptr};
  std::int64_t calls_ = 0;
};

}  // namespace

bool is_draft_fixture(const std::string& name) { return name.rfind("draft_", 0) == 0; }

std::shared_ptr<DraftModel> build_fixture_draft(const std::string& name, const BuildContext& ctx, bool from_config) {
  if (is(name, "throw_build") && !from_config) throw std::runtime_error("fixture throws in its factory");
  if (is(name, "throw_load") && from_config) throw std::runtime_error("fixture throws in from_config");
  return std::make_shared<FixtureDraft>(name, ctx.verifier.hidden_size, ctx.verifier.vocab_size);
}

}  // namespace fixture
}  // namespace speculators
