// AdamW, Muon, the LR schedule and the optimizer set of a job (see optim.h).
#include "train/optim.h"

#include <cmath>

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {

namespace {

const torch::Tensor& require(const NamedTensors& in, const std::string& key, const torch::Tensor& like,
                             const std::string& origin) {
  auto it = in.find(key);
  if (it == in.end()) fail_data(cat(origin, ": optimizer state \"", key, "\" is missing"));
  if (like.defined() && it->second.sizes() != like.sizes()) {
    fail_data(cat(origin, ": optimizer state \"", key, "\" has shape ", it->second.sizes(), ", the parameter has ",
                  like.sizes()));
  }
  return it->second;
}

torch::Tensor step_tensor(std::int64_t step) { return torch::tensor({step}, torch::kInt64); }

}  // namespace

AdamW::AdamW(std::vector<NamedParam> params, double lr, AdamWOptions options)
    : ParamOptimizer(std::move(params), lr), options_(options) {
  lr_ = lr;
}

void AdamW::step() {
  torch::NoGradGuard no_grad;
  const double lr = lr_, b1 = options_.beta1, b2 = options_.beta2;
  for (auto& [name, p] : params_) {
    if (!p.grad().defined()) continue;
    const torch::Tensor grad = p.grad();
    Slot& s = state_[name];
    if (s.step == 0) {
      s.exp_avg = torch::zeros_like(p, torch::MemoryFormat::Preserve);
      s.exp_avg_sq = torch::zeros_like(p, torch::MemoryFormat::Preserve);
    }
    ++s.step;
    // The order of torch's AdamW: decay, moments, bias corrections, update.
    p.mul_(1 - lr * options_.weight_decay);
    s.exp_avg.mul_(b1).add_(grad, 1 - b1);
    s.exp_avg_sq.mul_(b2).addcmul_(grad, grad, 1 - b2);
    const double bias1 = 1 - std::pow(b1, static_cast<double>(s.step));
    const double bias2 = 1 - std::pow(b2, static_cast<double>(s.step));
    torch::Tensor denom = (s.exp_avg_sq.sqrt() / std::sqrt(bias2)).add_(options_.eps);
    p.addcdiv_(s.exp_avg, denom, -lr / bias1);
  }
}

void AdamW::save_state(const std::string& prefix, NamedTensors& out) const {
  for (const auto& [name, s] : state_) {
    out[prefix + name + "/exp_avg"] = s.exp_avg.detach().to(torch::kFloat32);
    out[prefix + name + "/exp_avg_sq"] = s.exp_avg_sq.detach().to(torch::kFloat32);
    out[prefix + name + "/step"] = step_tensor(s.step);
  }
}

void AdamW::load_state(const std::string& prefix, const NamedTensors& in, const std::string& origin) {
  state_.clear();
  for (const auto& [name, p] : params_) {
    if (!in.count(prefix + name + "/step")) continue;  // never stepped (no gradient yet)
    Slot s;
    s.step = require(in, prefix + name + "/step", {}, origin).item<std::int64_t>();
    s.exp_avg = require(in, prefix + name + "/exp_avg", p, origin).to(p.device(), p.dtype()).clone();
    s.exp_avg_sq = require(in, prefix + name + "/exp_avg_sq", p, origin).to(p.device(), p.dtype()).clone();
    state_[name] = s;
  }
}

torch::Tensor newton_schulz(const torch::Tensor& update, int steps, double eps) {
  // The quintic iteration of torch.optim.Muon with its coefficients.
  constexpr double a = 3.4445, b = -4.7750, c = 2.0315;
  torch::Tensor x = update.to(torch::kFloat32);
  const bool tall = x.size(0) > x.size(1);
  if (tall) x = x.t();
  x = x / x.norm().clamp_min(eps);
  for (int i = 0; i < steps; ++i) {
    torch::Tensor gram = x.matmul(x.t());
    torch::Tensor poly = torch::addmm(gram, gram, gram, /*beta=*/b, /*alpha=*/c);
    x = torch::addmm(x, poly, x, /*beta=*/a, /*alpha=*/1.0);
  }
  return tall ? x.t().contiguous() : x;
}

double muon_adjusted_lr(double lr, const std::string& adjust_lr_fn, std::int64_t rows, std::int64_t cols) {
  if (adjust_lr_fn == "original") {
    return lr * std::sqrt(std::max(1.0, static_cast<double>(rows) / static_cast<double>(cols)));
  }
  return lr * 0.2 * std::sqrt(static_cast<double>(std::max(rows, cols)));
}

Muon::Muon(std::vector<NamedParam> params, double lr, MuonOptions options)
    : ParamOptimizer(std::move(params), lr), options_(std::move(options)) {
  lr_ = lr;
}

void Muon::step() {
  torch::NoGradGuard no_grad;
  for (auto& [name, p] : params_) {
    if (!p.grad().defined()) continue;
    const torch::Tensor grad = p.grad();
    torch::Tensor& buf = momentum_[name];
    if (!buf.defined()) buf = torch::zeros_like(p, torch::MemoryFormat::Preserve);
    // torch.optim.Muon: B <- mu*B + g; Nesterov uses g + mu*B.
    buf.mul_(options_.momentum).add_(grad);
    torch::Tensor update = options_.nesterov ? grad + options_.momentum * buf : buf;
    torch::Tensor ortho = newton_schulz(update, options_.ns_steps, options_.eps).to(p.dtype());
    p.mul_(1 - lr_ * options_.weight_decay);
    p.add_(ortho, -muon_adjusted_lr(lr_, options_.adjust_lr_fn, p.size(0), p.size(1)));
  }
}

void Muon::save_state(const std::string& prefix, NamedTensors& out) const {
  for (const auto& [name, p] : params_) {
    auto it = momentum_.find(name);
    out[prefix + name + "/momentum_buffer"] = it != momentum_.end() && it->second.defined()
                                                  ? it->second.detach().to(torch::kFloat32)
                                                  : torch::zeros(p.sizes(), p.options().dtype(torch::kFloat32));
  }
}

void Muon::load_state(const std::string& prefix, const NamedTensors& in, const std::string& origin) {
  momentum_.clear();
  for (const auto& [name, p] : params_) {
    momentum_[name] = require(in, prefix + name + "/momentum_buffer", p, origin).to(p.device(), p.dtype()).clone();
  }
}

double lr_factor(const std::string& type, std::int64_t step, std::int64_t total, std::int64_t warmup,
                 double cosine_cycles) {
  if (type == "none") return 1.0;
  if (step < warmup) return static_cast<double>(step) / static_cast<double>(std::max<std::int64_t>(1, warmup));
  const double span = static_cast<double>(std::max<std::int64_t>(1, total - warmup));
  const double progress = static_cast<double>(step - warmup) / span;
  if (type == "cosine") {
    return std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * 2.0 * cosine_cycles * progress)));
  }
  return std::max(0.0, static_cast<double>(total - step) / span);
}

LrSchedule make_schedule(const SchedulerOptions& options, const LoopOptions& loop, std::int64_t steps_per_epoch) {
  LrSchedule s;
  s.type = options.type;
  s.cosine_cycles = options.num_cosine_cycles;
  if (options.total_steps) {
    s.total_steps = *options.total_steps;
  } else {
    // trainer.py: _resolve_scheduler_steps: epochs x steps; a --max-steps run decays over the steps it will take.
    s.total_steps = loop.epochs * steps_per_epoch;
    if (loop.max_steps) s.total_steps = std::min(s.total_steps, *loop.max_steps);
  }
  if (options.warmup_steps) {
    if (options.warmup_ratio) {
      log::warn("--scheduler-warmup-ratio is ignored because --scheduler-warmup-steps is set");
    }
    s.warmup_steps = *options.warmup_steps;
  } else if (options.warmup_ratio) {
    s.warmup_steps = static_cast<std::int64_t>(std::floor(s.total_steps * *options.warmup_ratio));
  } else {
    s.warmup_steps = s.total_steps / 100;  // 1% (_resolve_scheduler_steps)
  }
  return s;
}

OptimizerSet::OptimizerSet(const OptimizerOptions& options, const std::vector<NamedParam>& trainable,
                           const OptimizerGroupFn& group_of) {
  const double lr = options.lr;
  AdamWOptions adamw;
  adamw.weight_decay = options.weight_decay;
  std::vector<NamedParam> muon_params, adamw_params;
  const bool use_muon = options.optimizer == "muon";
  for (const auto& np : trainable) {
    const OptimizerGroup group = group_of ? group_of(np) : reference_optimizer_group(np.name, np.param);
    (use_muon && group == OptimizerGroup::kMuon ? muon_params : adamw_params).push_back(np);
  }
  if (!muon_params.empty()) {
    MuonOptions m;
    m.momentum = options.muon_momentum;
    m.weight_decay = options.muon_weight_decay;
    m.ns_steps = options.muon_ns_steps;
    m.adjust_lr_fn = options.muon_adjust_lr_fn;
    // --muon-lr unset: 10 x --lr.
    const double muon_lr = options.muon_lr.value_or(10.0 * lr);
    parts_.push_back(std::make_unique<Muon>(std::move(muon_params), muon_lr, m));
  }
  if (!adamw_params.empty()) parts_.push_back(std::make_unique<AdamW>(std::move(adamw_params), lr, adamw));
}

void OptimizerSet::set_lr_factor(double factor) {
  for (auto& part : parts_) part->set_lr(part->base_lr() * factor);
}

void OptimizerSet::step() {
  for (auto& part : parts_) part->step();
}

std::map<std::string, double> OptimizerSet::lrs() const {
  std::map<std::string, double> out;
  for (const auto& part : parts_) out[part->kind()] = part->lr();
  return out;
}

NamedTensors OptimizerSet::state() const {
  NamedTensors out;
  for (const auto& part : parts_) part->save_state(part->kind() + "/", out);
  return out;
}

void OptimizerSet::load_state(const NamedTensors& state, const std::string& origin) {
  for (auto& part : parts_) part->load_state(part->kind() + "/", state, origin);
}

}  // namespace speculators
