// The EAGLE-3 draft model: construction, the K-step training-time-test forward with teacher
// forcing (speculators/models/eagle3/core.py: Eagle3DraftModel.forward), vocab mapping and
// verifier weights (speculators/model.py: DraftVocabMixin).
#include "model.h"

#include <limits>
#include <map>

#include "attention.h"
#include "metrics.h"
#include "speculators/batch.h"
#include "speculators/error.h"
#include "speculators/log.h"
#include "speculators/metric_pairs.h"
#include "speculators/verifier_head.h"
#include "speculators/vocab.h"

namespace speculators {
namespace eagle3 {

Eagle3FirstLayerImpl::Eagle3FirstLayerImpl(const TransformerConfig& config, bool norm_before_residual)
    : nn::DecoderLayerImpl(config, 0, 2 * config.hidden_size), norm_before_residual(norm_before_residual) {
  hidden_norm = register_module("hidden_norm", nn::RMSNorm(config.hidden_size, config.rms_norm_eps));
}

torch::Tensor Eagle3FirstLayerImpl::forward(const torch::Tensor& x, const nn::RotaryTables& rope,
                                            const nn::AttentionKernel& kernel) {
  const std::int64_t H = x.size(-1) / 2;
  auto embeds = input_layernorm(x.narrow(-1, 0, H));
  auto hidden = x.narrow(-1, H, H);
  auto residual = hidden;
  hidden = hidden_norm(hidden);
  if (norm_before_residual) residual = hidden;
  auto out = residual + self_attn->forward(torch::cat({embeds, hidden}, -1), rope, kernel);
  return out + mlp(post_attention_layernorm(out));
}

nn::ModelClasses eagle3_model_classes(const Eagle3Config& config) {
  nn::ComponentOverrides overrides;
  overrides.layer_index = 0;
  const bool norm_before_residual = config.norm_before_residual;
  overrides.decoder_layer = [norm_before_residual](const TransformerConfig& c, std::int64_t) {
    return std::static_pointer_cast<nn::DecoderLayerImpl>(std::make_shared<Eagle3FirstLayerImpl>(c, norm_before_residual));
  };
  return nn::override_components(nn::model_classes(config.layer.model_type), overrides);
}

StepOptions StepOptions::from_json(const Json& call_args) {
  StepOptions options;
  if (call_args.is_null()) return options;
  options.ttt_steps = call_args.get("ttt_steps", Json(3)).as_int();
  options.ttt_step_loss_decay = call_args.get("ttt_step_loss_decay", Json(1.0)).as_double();
  options.loss = nn::parse_loss_fn(call_args.get("loss_fn", Json("kl_div")).as_string(), "loss_fn");
  if (options.ttt_steps < 1) fail_usage(cat("ttt_steps must be >= 1, got ", options.ttt_steps));
  return options;
}

Eagle3DraftModel::Eagle3DraftModel(Eagle3Config config) : config_(std::move(config)), rotary_(config_.layer) {
  config_.validate();
  const auto& l = config_.layer;
  const std::int64_t H = l.hidden_size, A = config_.num_aux(), V = l.vocab_size, Vd = config_.draft_vocab_size;
  const double eps = l.rms_norm_eps;
  embed_tokens_ = register_module("embed_tokens", torch::nn::Embedding(V, H));
  if (config_.norm_before_fc) input_norm_ = register_module("input_norm", nn::RMSNorm(A * H, eps));
  if (config_.fc_norm) {
    fc_norm_ = register_module("fc_norm", torch::nn::ModuleList());
    for (std::int64_t i = 0; i < A; ++i) fc_norm_->push_back(nn::RMSNorm(H, eps));
  }
  fc_ = register_module("fc", torch::nn::Linear(torch::nn::LinearOptions(A * H, H).bias(false)));
  layers_ = register_module("layers", torch::nn::ModuleList());
  const auto classes = eagle3_model_classes(config_);
  for (std::int64_t i = 0; i < l.num_hidden_layers; ++i) {
    auto layer = nn::make_layer(classes, l, i);
    layers_->push_back(layer);
    layer_impls_.push_back(layer);
    windows_.push_back(l.window_of_layer(i));
  }
  norm_ = register_module("norm", nn::RMSNorm(H, eps));
  lm_head_ = register_module("lm_head", torch::nn::Linear(torch::nn::LinearOptions(H, Vd).bias(false)));
  verifier_lm_head_ = register_module("verifier_lm_head", torch::nn::Linear(torch::nn::LinearOptions(H, Vd).bias(false)));
  verifier_norm_ = register_module("verifier_norm", nn::RMSNorm(H, eps));
  if (config_.has_vocab_mapping()) {
    d2t_ = register_buffer("d2t", torch::full({Vd}, -1, torch::kLong));  // -1: no mapping set yet
    t2d_ = register_buffer("t2d", torch::zeros({V}, torch::kBool));
  }
  nn::init_weights(*this, l.initializer_range);
  {
    // Frozen verifier copies start as NaN so that a tensor never loaded is caught.
    torch::NoGradGuard no_grad;
    for (auto* w : {&embed_tokens_->weight, &lm_head_->weight, &verifier_lm_head_->weight, &verifier_norm_->weight}) {
      w->fill_(std::numeric_limits<float>::quiet_NaN());
    }
  }
  embed_tokens_->weight.set_requires_grad(config_.embed_requires_grad);
  lm_head_->weight.set_requires_grad(false);
  verifier_lm_head_->weight.set_requires_grad(false);
  verifier_norm_->weight.set_requires_grad(false);
  check_against_spec();
}

void Eagle3DraftModel::check_against_spec() const {
  std::map<std::string, std::vector<std::int64_t>> actual;
  for (const auto& p : named_parameters(true)) actual[p.key()] = p.value().sizes().vec();
  for (const auto& b : named_buffers(true)) actual[b.key()] = b.value().sizes().vec();
  std::string problems;
  for (const auto& s : state_spec(config_)) {
    const auto it = actual.find(s.name);
    if (it == actual.end()) {
      problems += cat(" missing ", s.name, ";");
      continue;
    }
    if (it->second != s.shape) problems += cat(" ", s.name, " is ", c10::IntArrayRef(it->second), " not ", c10::IntArrayRef(s.shape), ";");
    actual.erase(it);
  }
  for (const auto& extra : actual) problems += cat(" unexpected ", extra.first, ";");
  if (!problems.empty()) fail(cat("eagle3: the model's tensors differ from the checkpoint layout:", problems));
}

std::vector<std::string> Eagle3DraftModel::keys_to_ignore_on_save() const {
  return {"verifier_lm_head.weight", "verifier_norm.weight"};
}

std::vector<std::string> Eagle3DraftModel::keys_allowed_missing_on_load() const {
  // As Eagle3DraftModel._keys_to_ignore_on_load_missing.
  return {"embed_tokens.weight", "verifier_norm.weight", "verifier_lm_head.weight", "d2t", "t2d", "input_norm.weight"};
}

torch::Tensor Eagle3DraftModel::project_aux(const torch::Tensor& hidden_states) {
  const std::int64_t H = config_.hidden_size(), A = config_.num_aux();
  if (hidden_states.size(-1) != A * H) {
    fail_data(cat("eagle3 forward: hidden_states has width ", hidden_states.size(-1), "; expected ", A, " aux layers x ",
                  H, " = ", A * H));
  }
  auto h = hidden_states.to(fc_->weight.scalar_type());
  if (input_norm_) h = input_norm_(h);  // one norm over all A·H
  if (fc_norm_) {
    auto parts = h.split(H, -1);
    for (std::int64_t i = 0; i < A; ++i) parts[i] = fc_norm_->ptr<nn::RMSNormImpl>(i)->forward(parts[i]);
    h = torch::cat(parts, -1);
  }
  return fc_(h);
}

torch::Tensor Eagle3DraftModel::decoder_step(torch::Tensor x, const nn::RotaryTables& rope, std::vector<TttCache>& caches,
                                             const torch::Tensor& document_ids) {
  for (std::size_t i = 0; i < layer_impls_.size(); ++i) {
    auto& cache = caches[i];
    const auto window = windows_[i];
    // Each layer appends this step's keys/values to its own cache.
    nn::AttentionKernel kernel = [this, &cache, &document_ids, window](
                                     const torch::Tensor& q, const torch::Tensor& key, const torch::Tensor& value) {
      cache.keys.push_back(key);
      cache.values.push_back(value);
      if (attention_mode_ == AttentionMode::kDense) {
        return dense_ttt_attention(q, cache.keys, cache.values, document_ids, window);
      }
      return ttt_attention(q, cache.keys, cache.values, document_ids, window, attention_chunk_);
    };
    x = layer_impls_[i]->forward(x, rope, kernel);
  }
  return x;
}

ForwardResult Eagle3DraftModel::forward(const Batch& batch, const Json& call_args) {
  return run(batch, StepOptions::from_json(call_args));
}

ForwardResult Eagle3DraftModel::run(const Batch& batch, const StepOptions& options) {
  const auto input_ids = require_tensor(batch, "input_ids", "eagle3 forward");
  if (input_ids.dim() != 2 || input_ids.size(0) != 1) {
    fail_data(cat("eagle3 forward: input_ids must be one packed row [1, L], got ", input_ids.sizes()));
  }
  const std::int64_t L = input_ids.size(1);
  const auto device = input_ids.device();
  const auto hidden_states = require_tensor(batch, "hidden_states", "eagle3 forward");
  check_packed(hidden_states, "hidden_states", "eagle3 forward", L, config_.num_aux() * config_.hidden_size());
  auto document_ids = optional_tensor(batch, "document_ids");
  const auto doc = document_ids.defined() ? document_ids.reshape({L}).to(torch::kLong)
                                          : torch::zeros({L}, torch::TensorOptions().dtype(torch::kLong).device(device));
  auto positions = optional_tensor(batch, "position_ids");
  if (!positions.defined()) positions = torch::arange(1, L + 1, input_ids.options()).unsqueeze(0);
  const auto loss_mask = optional_tensor(batch, "loss_mask");
  const auto verifier_last = optional_tensor(batch, "verifier_last_hidden_states");

  auto h = project_aux(hidden_states);  // [1, L, H]
  // The target side of every row ([L, Vd] verifier logits, and for KL/CE their softmax), computed
  // once and read by each TTT step (step k reads rows k..L).
  nn::TargetDistribution targets;
  if (verifier_last.defined()) {
    torch::NoGradGuard no_grad;
    targets = nn::target_distribution(verifier_lm_head_(verifier_norm_(verifier_last.to(h.scalar_type())))[0],
                                      options.loss);
  }
  auto prev_correct = loss_mask.defined() ? loss_mask.reshape({L}).ne(0)
                                          : torch::ones({L}, torch::TensorOptions().dtype(torch::kBool).device(device));
  ForwardResult result;
  MetricPairs metrics;
  auto total = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat).device(device));
  const auto mask_row = loss_mask.defined() ? loss_mask.reshape({L}) : torch::Tensor();
  std::vector<TttCache> caches(layer_impls_.size());
  auto ids = input_ids;
  for (std::int64_t k = 0; k < options.ttt_steps; ++k) {
    torch::Tensor embeds;
    {
      // As speculators/models/eagle3/core.py: Eagle3DraftModel.forward, the lookup runs without
      // grad even with embed_requires_grad: the embedding never receives a gradient.
      torch::NoGradGuard no_grad;
      embeds = embed_tokens_(ids);
    }
    auto x = torch::cat({embeds.to(h.scalar_type()), h}, -1);  // [1, L, 2H]
    // Step k uses positions + k; keys are cached with their rotary applied.
    const auto rope = rotary_.tables(positions + k, x.scalar_type());
    x = decoder_step(x, rope, caches, doc);
    torch::Tensor logits;
    if (config_.norm_output) {  // the normalised state is carried forward
      h = norm_(x);
      logits = lm_head_(h);
    } else {
      logits = lm_head_(norm_(x));
      h = x;
    }
    torch::Tensor predicted;
    if (targets.logits.defined()) {
      // squeeze, not logits[0]: the gradient of a select is a zeroed [1, L, Vd] copy.
      auto step = step_loss_and_metrics(logits.squeeze(0), targets, mask_row, prev_correct, k,
                                        options.ttt_step_loss_decay, options.loss, loss_chunk_);
      total = total + step.loss;  // step losses are summed
      metrics.add_all(step.metrics);
      predicted = step.predicted.unsqueeze(0);
    } else {
      predicted = logits.argmax(-1).detach();
    }
    if (step_logits_sink_ != nullptr) step_logits_sink_->push_back(logits.detach());
    result.output.push_back(predicted);
    // Teacher forcing: step k+1 reads the ground-truth token k+1 places ahead.
    const std::int64_t shift = std::min<std::int64_t>(k + 1, L);
    ids = torch::cat({input_ids.slice(1, shift, L), torch::zeros({1, shift}, input_ids.options())}, 1);
  }
  if (targets.logits.defined()) {
    result.loss = total;
    metrics.add_mean("loss", total);
  }
  result.metrics = metrics.take();
  return result;
}

void Eagle3DraftModel::set_vocab_mapping(const VocabMapping& mapping, const std::string& d2t_origin,
                                         const std::string& t2d_origin) {
  if (!config_.has_vocab_mapping()) {
    if (!mapping.empty()) log::info("eagle3: the draft uses the full vocabulary; the d2t/t2d mapping is not used");
    return;
  }
  validate_vocab_mapping(mapping, config_.target_vocab_size(), config_.draft_vocab_size, d2t_origin, t2d_origin);
  torch::NoGradGuard no_grad;
  d2t_.copy_(mapping.d2t);
  t2d_.copy_(mapping.t2d);
}

VocabMapping Eagle3DraftModel::vocab_mapping() const {
  VocabMapping mapping;
  if (config_.has_vocab_mapping()) {
    mapping.d2t = d2t_;
    mapping.t2d = t2d_;
  }
  return mapping;
}

void Eagle3DraftModel::load_verifier_weights(const std::string& dir, std::int64_t verifier_hidden_size) {
  const std::int64_t H = config_.hidden_size(), V = config_.target_vocab_size();
  if (verifier_hidden_size != H) {
    fail_usage(cat("eagle3: verifier hidden size ", verifier_hidden_size, " does not match the draft hidden size ", H));
  }
  if (config_.has_vocab_mapping() && d2t_.lt(0).any().item<bool>()) {
    fail("eagle3: the vocab mapping (d2t/t2d) must be set before the verifier weights are loaded");
  }
  const VerifierHead verifier = load_verifier_head(dir, H, V);
  // lm_head rows of the draft vocab, in ascending target id (t2d order).
  const auto rows = verifier.lm_head_rows(config_.has_vocab_mapping() ? t2d_ : torch::Tensor());
  if (embed_tokens_->weight.isnan().any().item<bool>()) copy_frozen(embed_tokens_->weight, verifier.embed_tokens);
  if (lm_head_->weight.isnan().any().item<bool>()) copy_frozen(lm_head_->weight, rows);
  copy_frozen(verifier_lm_head_->weight, rows);
  copy_frozen(verifier_norm_->weight, verifier.norm);
  embed_tokens_->weight.set_requires_grad(config_.embed_requires_grad);
  lm_head_->weight.set_requires_grad(false);
}

void Eagle3DraftModel::check_loaded() const {
  std::string missing;
  const std::pair<const char*, const torch::Tensor*> frozen[] = {
      {"embed_tokens.weight", &embed_tokens_->weight},
      {"lm_head.weight", &lm_head_->weight},
      {"verifier_lm_head.weight", &verifier_lm_head_->weight},
      {"verifier_norm.weight", &verifier_norm_->weight}};
  for (const auto& [name, tensor] : frozen) {
    if (tensor->isnan().any().item<bool>()) missing += cat(missing.empty() ? "" : ", ", name);
  }
  if (!missing.empty()) fail(cat("eagle3: never loaded from the verifier (still NaN): ", missing));
  if (config_.has_vocab_mapping() && d2t_.lt(0).any().item<bool>()) {
    fail("eagle3: draft_vocab_size differs from the verifier vocab but no d2t/t2d mapping was set");
  }
}

void Eagle3DraftModel::after_load(const BuildContext& ctx) {
  // As SpeculatorModel.from_pretrained: a mapping given for this job overrides the saved one.
  if (!ctx.vocab.empty()) {
    set_vocab_mapping(ctx.vocab);
  } else if (config_.has_vocab_mapping()) {
    if (d2t_.lt(0).any().item<bool>()) {
      fail_usage("eagle3: the checkpoint holds no d2t/t2d and no vocab mapping was given for this job");
    }
    validate_vocab_mapping(vocab_mapping(), config_.target_vocab_size(), config_.draft_vocab_size,
                           "checkpoint d2t", "checkpoint t2d");
  }
  load_verifier_weights(ctx.verifier_path, ctx.verifier.hidden_size);
  check_loaded();
}

}  // namespace eagle3
}  // namespace speculators
