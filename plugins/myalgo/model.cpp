// The myalgo draft model (model.h): construction, the verifier's frozen pieces, forward.
#include "model.h"

#include <limits>
#include <utility>

#include "loss.h"
#include "speculators/batch.h"
#include "speculators/error.h"
#include "speculators/log.h"
#include "speculators/verifier_head.h"

namespace speculators {
namespace myalgo {

namespace {

// Frozen tensors start as NaN so that one never loaded is visible (the reference's sentinel in
// speculators/model.py: DraftVocabMixin).
void freeze_as_unloaded(torch::Tensor& weight) {
  torch::NoGradGuard no_grad;
  weight.fill_(std::numeric_limits<float>::quiet_NaN());
  weight.set_requires_grad(false);
}

}  // namespace

ResidualHeadImpl::ResidualHeadImpl(std::int64_t hidden_size) {
  linear = register_module("linear", torch::nn::Linear(hidden_size, hidden_size));
}

torch::Tensor ResidualHeadImpl::forward(const torch::Tensor& x) { return x + torch::silu(linear(x)); }

MyAlgoModel::MyAlgoModel(MyAlgoConfig config)
    : config_((config.validate("myalgo config"), std::move(config))), rotary_(config_.layer_config) {
  const TransformerConfig& c = config_.layer_config;
  const std::int64_t hidden = c.hidden_size;
  const auto num_aux = static_cast<std::int64_t>(config_.aux_layer_ids.size());

  fc_ = register_module("fc", torch::nn::Linear(torch::nn::LinearOptions(num_aux * hidden, hidden).bias(false)));
  // The decoder layers come from the SDK's base components for the draft's architecture: the
  // same Llama / Qwen3 layer every algorithm gets.
  const nn::ModelClasses classes = nn::model_classes(c.model_type);
  layers_ = register_module("layers", torch::nn::ModuleList());
  for (std::int64_t i = 0; i < c.num_hidden_layers; ++i) layers_->push_back(nn::make_layer(classes, c, i));
  norm_ = register_module("norm", nn::RMSNorm(hidden, c.rms_norm_eps));
  heads_ = register_module("heads", torch::nn::ModuleList());
  for (std::int64_t j = 0; j < config_.block_size; ++j) heads_->push_back(ResidualHead(hidden));
  lm_head_ = register_module(
      "lm_head", torch::nn::Linear(torch::nn::LinearOptions(hidden, config_.draft_vocab_size).bias(false)));
  verifier_norm_ = register_module("verifier_norm", nn::RMSNorm(hidden, c.rms_norm_eps));
  embed_tokens_ = register_module("embed_tokens", torch::nn::Embedding(c.vocab_size, hidden));

  // Hugging Face's post_init for the trainable part, then the two special cases.
  nn::init_weights(*this, c.initializer_range);
  {
    torch::NoGradGuard no_grad;
    for (const auto& head : *heads_) {
      auto* h = head->as<ResidualHeadImpl>();
      h->linear->weight.zero_();  // Medusa: each head starts as the identity
      h->linear->bias.zero_();
    }
  }
  freeze_as_unloaded(lm_head_->weight);
  freeze_as_unloaded(verifier_norm_->weight);
  freeze_as_unloaded(embed_tokens_->weight);

  // A reduced vocabulary is part of the checkpoint (d2t int64, t2d bool).
  if (config_.draft_vocab_size != c.vocab_size) {
    d2t_ = register_buffer("d2t", torch::zeros({config_.draft_vocab_size}, torch::kInt64));
    t2d_ = register_buffer("t2d", torch::zeros({c.vocab_size}, torch::kBool));
  }
}

void MyAlgoModel::set_vocab_mapping(const VocabMapping& vocab) {
  const std::int64_t full = config_.layer_config.vocab_size;
  const std::int64_t draft = config_.draft_vocab_size;
  if (vocab.empty()) {
    if (draft != full)
      fail_usage(cat("myalgo: draft_vocab_size ", draft, " is smaller than the verifier vocabulary (", full,
                     ") and needs a vocab mapping (d2t.npy / t2d.npy)"));
    return;
  }
  if (draft == full) return;  // as DraftVocabMixin: a mapping for the full vocabulary is ignored
  auto t2d = vocab.t2d.to(torch::kBool);
  auto d2t = vocab.d2t.to(torch::kInt64);
  if (t2d.dim() != 1 || t2d.size(0) != full)
    fail_data(cat("myalgo: t2d has shape ", t2d.sizes(), ", expected [", full, "] (the verifier vocab_size)"));
  if (t2d.sum().item<std::int64_t>() != draft)
    fail_data(cat("myalgo: t2d selects ", t2d.sum().item<std::int64_t>(), " tokens, expected draft_vocab_size ",
                  draft));
  if (d2t.dim() != 1 || d2t.size(0) != draft)
    fail_data(cat("myalgo: d2t has shape ", d2t.sizes(), ", expected [", draft, "] (draft_vocab_size)"));
  // d2t holds offsets: target id = draft index + d2t[draft index].
  if (!torch::equal(torch::arange(draft, torch::kInt64) + d2t, t2d.nonzero().flatten()))
    fail_data("myalgo: d2t and t2d describe different token sets (target = index + d2t[index])");
  torch::NoGradGuard no_grad;
  d2t_.copy_(d2t);
  t2d_.copy_(t2d);
}

void MyAlgoModel::load_verifier_weights(const std::string& dir) {
  const std::int64_t full = config_.layer_config.vocab_size;
  const VerifierHead verifier = load_verifier_head(dir, config_.layer_config.hidden_size, full);
  copy_frozen(embed_tokens_->weight, verifier.embed_tokens);
  copy_frozen(verifier_norm_->weight, verifier.norm);
  // The draft head is the verifier's, restricted to the draft vocabulary. Without a known
  // mapping (a reduced vocabulary whose t2d comes from the checkpoint) the saved lm_head is
  // loaded later and after_load() checks it.
  if (config_.draft_vocab_size == full) {
    copy_frozen(lm_head_->weight, verifier.lm_head);
  } else if (t2d_.sum().item<std::int64_t>() == config_.draft_vocab_size) {
    copy_frozen(lm_head_->weight, verifier.lm_head_rows(t2d_));
  }
}

std::vector<std::string> MyAlgoModel::keys_to_ignore_on_save() const {
  return {"embed_tokens.weight", "verifier_norm.weight"};
}

std::vector<std::string> MyAlgoModel::keys_allowed_missing_on_load() const {
  return {"embed_tokens.weight", "verifier_norm.weight"};
}

void MyAlgoModel::after_load(const BuildContext&) {
  if (torch::isnan(lm_head_->weight).any().item<bool>())
    fail_data("myalgo: lm_head.weight was never loaded (neither from the verifier nor from the checkpoint)");
  if (t2d_.defined() && t2d_.sum().item<std::int64_t>() != config_.draft_vocab_size)
    fail_data(cat("myalgo: the checkpoint's t2d selects ", t2d_.sum().item<std::int64_t>(),
                  " tokens, expected draft_vocab_size ", config_.draft_vocab_size));
}

torch::Tensor MyAlgoModel::draft_states(const Batch& batch) {
  const TransformerConfig& c = config_.layer_config;
  const auto& hidden_states = require_packed(batch, "hidden_states", "myalgo", -1, fc_->weight.size(1));
  const auto& position_ids = require_tensor(batch, "position_ids", "myalgo");
  const torch::Tensor document_ids = require_tensor(batch, "document_ids", "myalgo")[0];

  // No shift: row i holds the verifier's features after token i (see loss.h).
  auto x = fc_(hidden_states.to(fc_->weight.scalar_type()));
  const nn::RotaryTables rope = rotary_.tables(position_ids, x.scalar_type());
  for (std::int64_t i = 0; i < c.num_hidden_layers; ++i) {
    // Causal attention that never crosses a document boundary of the packed row (the step-0
    // rule of EAGLE-3's mask), with the layer's window if the config gives it one.
    const auto window = c.window_of_layer(i);
    nn::AttentionKernel kernel = [document_ids, window](const torch::Tensor& q, const torch::Tensor& k,
                                                        const torch::Tensor& v) {
      return nn::document_causal_attention(q, k, v, document_ids, window);
    };
    x = layers_[i]->as<nn::DecoderLayerImpl>()->forward(x, rope, kernel);
  }
  return norm_(x);
}

std::vector<torch::Tensor> MyAlgoModel::head_logits(const torch::Tensor& x) {
  std::vector<torch::Tensor> logits;
  for (const auto& head : *heads_) logits.push_back(lm_head_(head->as<ResidualHeadImpl>()->forward(x)));
  return logits;
}

torch::Tensor MyAlgoModel::verifier_logits(const torch::Tensor& last_hidden) {
  torch::NoGradGuard no_grad;  // the targets are fixed (they get no gradient)
  return lm_head_(verifier_norm_(last_hidden.to(lm_head_->weight.scalar_type())));
}

ForwardResult MyAlgoModel::forward(const Batch& batch, const Json& call_args) {
  const auto& last_hidden =
      require_packed(batch, "verifier_last_hidden_states", "myalgo", -1, config_.layer_config.hidden_size);
  const torch::Tensor loss_mask = require_tensor(batch, "loss_mask", "myalgo")[0];
  const torch::Tensor document_ids = require_tensor(batch, "document_ids", "myalgo")[0];
  // What trainer_kwargs() returned for this mode (myalgo.cpp); the default keeps tests short.
  const double gamma =
      call_args.is_object() ? call_args.get("head_loss_decay", Json(kDefaultHeadLossDecay)).as_double()
                            : kDefaultHeadLossDecay;

  std::vector<torch::Tensor> logits = head_logits(draft_states(batch));
  const torch::Tensor targets = verifier_logits(last_hidden);
  std::vector<torch::Tensor> rows;
  for (const auto& l : logits) rows.push_back(l[0]);
  HeadLoss head_loss = multi_head_kl_loss(rows, targets[0], loss_mask, document_ids, gamma);

  ForwardResult result;
  result.loss = head_loss.loss;
  result.metrics = std::move(head_loss.metrics);
  // output: each head's proposed token at every position [1, L], in verifier token ids.
  for (const auto& l : logits) {
    auto draft_ids = l.detach().argmax(-1);
    result.output.push_back(d2t_.defined() ? draft_ids + d2t_.index({draft_ids}) : draft_ids);
  }
  return result;
}

}  // namespace myalgo
}  // namespace speculators
