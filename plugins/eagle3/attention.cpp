// TTT attention for EAGLE-3 (speculators/models/eagle3/attention.py): the dense reference and the
// chunked, log-sum-exp merged version with a recomputing backward. Grouped-query attention is
// computed by viewing the query heads as [nkv, nh/nkv] groups, so keys and values are never
// repeated in memory.
#include "attention.h"

#include <cmath>
#include <limits>
#include <unordered_map>

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {
namespace eagle3 {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

void check_inputs(const torch::Tensor& q, const std::vector<torch::Tensor>& keys,
                  const std::vector<torch::Tensor>& values, const torch::Tensor& document_ids) {
  if (q.dim() != 4) fail(cat("ttt attention: q must be [B, nh, L, hd], got ", q.sizes()));
  if (keys.empty() || keys.size() != values.size()) {
    fail(cat("ttt attention: need one key and one value block per step, got ", keys.size(), " and ",
             values.size()));
  }
  const auto L = q.size(2);
  for (std::size_t s = 0; s < keys.size(); ++s) {
    const auto& k = keys[s];
    if (k.dim() != 4 || k.size(0) != q.size(0) || k.size(2) != L || k.size(3) != q.size(3) ||
        q.size(1) % k.size(1) != 0 || values[s].sizes() != k.sizes()) {
      fail(cat("ttt attention: block ", s, " keys ", k.sizes(), " / values ", values[s].sizes(),
               " do not fit q ", q.sizes(), " (need [B, nkv, L, hd] with nh % nkv == 0)"));
    }
  }
  if (document_ids.dim() != 1 || document_ids.size(0) != L) {
    fail(cat("ttt attention: document_ids must be [L] with L = ", L, ", got ", document_ids.sizes()));
  }
}

// Step-0 predicate for query rows [q0, q1) and key columns [k0, k1): [q1-q0, k1-k0] bool.
torch::Tensor block0_mask(const torch::Tensor& doc, std::int64_t q0, std::int64_t q1, std::int64_t k0,
                          std::int64_t k1, std::optional<std::int64_t> window) {
  const auto opts = torch::TensorOptions().dtype(torch::kLong).device(doc.device());
  const auto qi = torch::arange(q0, q1, opts).unsqueeze(1);
  const auto ki = torch::arange(k0, k1, opts).unsqueeze(0);
  const auto dq = doc.slice(0, q0, q1).unsqueeze(1);
  const auto dk = doc.slice(0, k0, k1).unsqueeze(0);
  auto allowed = (qi >= ki).logical_and(dq.ne(-1)).logical_and(dq.eq(dk));
  if (window) allowed = allowed.logical_and(ki > qi - *window);
  return allowed.logical_or(qi.eq(ki));  // the own key is always visible
}

// Grouped view of q [B, nh, C, hd] as [B, nkv, nh/nkv, C, hd] in fp32.
torch::Tensor grouped(const torch::Tensor& q, std::int64_t num_kv_heads) {
  const auto B = q.size(0), nh = q.size(1), C = q.size(2), hd = q.size(3);
  return q.to(torch::kFloat).reshape({B, num_kv_heads, nh / num_kv_heads, C, hd});
}

// One query chunk: step-0 attention over keys k0/v0 [B, nkv, S, hd] under `allowed` [C, S] with
// its log-sum-exp, merged with the diagonal keys/values kd/vd [k, B, nkv, C, hd] (may be empty).
// Returns [B, nh, C, hd] in fp32.
torch::Tensor attend_chunk(const torch::Tensor& q, const torch::Tensor& k0, const torch::Tensor& v0,
                           const torch::Tensor& allowed, const torch::Tensor& kd, const torch::Tensor& vd) {
  const auto nkv = k0.size(1);
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  const auto qg = grouped(q, nkv);                                          // [B, nkv, r, C, hd]
  const auto B = qg.size(0), r = qg.size(2), C = qg.size(3), S = k0.size(2);
  // The r query heads of a KV group share its keys: one [r·C, hd] x [hd, S] product per group
  // (no broadcast operand, so forward and backward are plain batched GEMMs).
  auto scores = torch::matmul(qg.reshape({B, nkv, r * C, q.size(3)}), k0.to(torch::kFloat).transpose(-1, -2))
                    .reshape({B, nkv, r, C, S}) * scale;
  scores = scores.masked_fill(allowed.logical_not(), kNegInf);              // [B, nkv, r, C, S]
  const auto lse0 = torch::logsumexp(scores, -1);                           // [B, nkv, r, C]
  auto out = torch::matmul(torch::exp(scores - lse0.unsqueeze(-1)).reshape({B, nkv, r * C, S}), v0.to(torch::kFloat))
                 .reshape({B, nkv, r, C, q.size(3)});
  if (kd.size(0) > 0) {
    // Later blocks contribute only the diagonal score
    // q_i · k_i^(s); merge everything through one log-sum-exp.
    const auto kdf = kd.to(torch::kFloat).unsqueeze(3);                     // [k, B, nkv, 1, C, hd]
    const auto diag = (qg.unsqueeze(0) * kdf).sum(-1) * scale;              // [k, B, nkv, r, C]
    const auto lse = torch::logsumexp(torch::cat({lse0.unsqueeze(0), diag}, 0), 0);
    out = out * torch::exp(lse0 - lse).unsqueeze(-1) +
          (torch::exp(diag - lse.unsqueeze(0)).unsqueeze(-1) * vd.to(torch::kFloat).unsqueeze(3)).sum(0);
  }
  return out.reshape({q.size(0), q.size(1), q.size(2), q.size(3)});
}

struct ChunkPlan {
  std::int64_t q0, q1, k0;  // query rows [q0, q1) read step-0 keys [k0, q1)
};

std::vector<ChunkPlan> plan_chunks(const torch::Tensor& document_ids, std::optional<std::int64_t> window,
                                   std::int64_t chunk) {
  const auto starts = first_visible_keys(document_ids, window);
  const auto L = static_cast<std::int64_t>(starts.size());
  std::vector<ChunkPlan> plan;
  for (std::int64_t q0 = 0; q0 < L; q0 += chunk) {
    const std::int64_t q1 = std::min(L, q0 + chunk);
    std::int64_t k0 = q0;
    for (std::int64_t q = q0; q < q1; ++q) k0 = std::min(k0, starts[q]);
    plan.push_back({q0, q1, k0});
  }
  return plan;
}

std::optional<std::int64_t> window_from(std::int64_t w) {
  return w > 0 ? std::optional<std::int64_t>(w) : std::nullopt;
}

class TttAttentionFunction : public torch::autograd::Function<TttAttentionFunction> {
 public:
  // kd/vd: the blocks of steps 1..k stacked as [k, B, nkv, L, hd] (k may be 0).
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& q,
                               const torch::Tensor& k0, const torch::Tensor& v0, const torch::Tensor& kd,
                               const torch::Tensor& vd, const torch::Tensor& document_ids, std::int64_t window,
                               std::int64_t chunk) {
    ctx->save_for_backward({q, k0, v0, kd, vd, document_ids});
    ctx->saved_data["window"] = window;
    ctx->saved_data["chunk"] = chunk;
    auto out = torch::empty_like(q);
    for (const auto& c : plan_chunks(document_ids, window_from(window), chunk)) {
      const auto allowed = block0_mask(document_ids, c.q0, c.q1, c.k0, c.q1, window_from(window));
      out.slice(2, c.q0, c.q1)
          .copy_(attend_chunk(q.slice(2, c.q0, c.q1), k0.slice(2, c.k0, c.q1), v0.slice(2, c.k0, c.q1), allowed,
                              kd.slice(3, c.q0, c.q1), vd.slice(3, c.q0, c.q1)));
    }
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k0 = saved[1], &v0 = saved[2], &kd = saved[3], &vd = saved[4];
    const auto& document_ids = saved[5];
    const auto window = window_from(ctx->saved_data["window"].toInt());
    const auto chunk = ctx->saved_data["chunk"].toInt();
    const auto& grad_out = grad_outputs[0];
    auto gq = torch::zeros_like(q), gk0 = torch::zeros_like(k0), gv0 = torch::zeros_like(v0);
    auto gkd = torch::zeros_like(kd), gvd = torch::zeros_like(vd);
    for (const auto& c : plan_chunks(document_ids, window, chunk)) {
      // Recompute this chunk under autograd: its graph is the only one alive at a time.
      torch::AutoGradMode enable_grad(true);
      auto lq = q.slice(2, c.q0, c.q1).detach().requires_grad_(true);
      auto lk0 = k0.slice(2, c.k0, c.q1).detach().requires_grad_(true);
      auto lv0 = v0.slice(2, c.k0, c.q1).detach().requires_grad_(true);
      auto lkd = kd.slice(3, c.q0, c.q1).detach().requires_grad_(true);
      auto lvd = vd.slice(3, c.q0, c.q1).detach().requires_grad_(true);
      const auto allowed = block0_mask(document_ids, c.q0, c.q1, c.k0, c.q1, window);
      const auto out = attend_chunk(lq, lk0, lv0, allowed, lkd, lvd);
      const auto g = grad_out.slice(2, c.q0, c.q1).to(torch::kFloat);
      const auto grads = torch::autograd::grad({out}, {lq, lk0, lv0, lkd, lvd}, {g}, /*retain_graph=*/false,
                                               /*create_graph=*/false, /*allow_unused=*/true);
      gq.slice(2, c.q0, c.q1).copy_(grads[0]);
      gk0.slice(2, c.k0, c.q1).add_(grads[1]);
      gv0.slice(2, c.k0, c.q1).add_(grads[2]);
      if (grads[3].defined()) gkd.slice(3, c.q0, c.q1).copy_(grads[3]);
      if (grads[4].defined()) gvd.slice(3, c.q0, c.q1).copy_(grads[4]);
    }
    return {gq, gk0, gv0, gkd, gvd, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

std::vector<std::int64_t> first_visible_keys(const torch::Tensor& document_ids,
                                             std::optional<std::int64_t> window) {
  const auto doc = document_ids.to(torch::kCPU, torch::kLong).contiguous();
  const auto* d = doc.data_ptr<std::int64_t>();
  const auto L = doc.numel();
  std::unordered_map<std::int64_t, std::int64_t> first_index;
  std::vector<std::int64_t> starts(static_cast<std::size_t>(L));
  for (std::int64_t q = 0; q < L; ++q) {
    if (d[q] == -1) {
      starts[q] = q;  // padding sees only its own key
      continue;
    }
    const auto it = first_index.emplace(d[q], q).first;
    std::int64_t start = it->second;
    if (window) start = std::max(start, q - *window + 1);
    starts[q] = start;
  }
  return starts;
}

torch::Tensor ttt_mask(const torch::Tensor& document_ids, std::int64_t step, std::optional<std::int64_t> window) {
  const auto L = document_ids.size(0);
  auto mask = torch::zeros({L, (step + 1) * L}, torch::TensorOptions().dtype(torch::kBool).device(document_ids.device()));
  mask.slice(1, 0, L).copy_(block0_mask(document_ids.to(torch::kLong), 0, L, 0, L, window));
  const auto eye = torch::eye(L, mask.options());
  for (std::int64_t s = 1; s <= step; ++s) mask.slice(1, s * L, (s + 1) * L).copy_(eye);  // kv mod L == q
  return mask;
}

torch::Tensor dense_ttt_attention(const torch::Tensor& q, const std::vector<torch::Tensor>& keys,
                                  const std::vector<torch::Tensor>& values, const torch::Tensor& document_ids,
                                  std::optional<std::int64_t> window) {
  check_inputs(q, keys, values, document_ids);
  const auto step = static_cast<std::int64_t>(keys.size()) - 1;
  const auto mask = ttt_mask(document_ids, step, window);
  const auto k = torch::cat(keys, 2).to(torch::kFloat).unsqueeze(2);    // [B, nkv, 1, S, hd]
  const auto v = torch::cat(values, 2).to(torch::kFloat).unsqueeze(2);
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  auto scores = torch::matmul(grouped(q, keys[0].size(1)), k.transpose(-1, -2)) * scale;
  scores = scores.masked_fill(mask.logical_not(), kNegInf);
  const auto out = torch::matmul(torch::softmax(scores, -1), v);
  return out.reshape(q.sizes()).to(q.scalar_type());
}

torch::Tensor ttt_attention(const torch::Tensor& q, const std::vector<torch::Tensor>& keys,
                            const std::vector<torch::Tensor>& values, const torch::Tensor& document_ids,
                            std::optional<std::int64_t> window, std::int64_t chunk) {
  check_inputs(q, keys, values, document_ids);
  if (chunk < 1) fail(cat("ttt attention: chunk must be >= 1, got ", chunk));
  if (window && *window < 1) fail(cat("ttt attention: sliding window must be >= 1, got ", *window));
  torch::Tensor kd, vd;
  if (keys.size() > 1) {
    kd = torch::stack(std::vector<torch::Tensor>(keys.begin() + 1, keys.end()), 0);
    vd = torch::stack(std::vector<torch::Tensor>(values.begin() + 1, values.end()), 0);
  } else {
    std::vector<std::int64_t> shape{0};
    for (auto s : keys[0].sizes()) shape.push_back(s);
    kd = torch::zeros(shape, keys[0].options());
    vd = torch::zeros(shape, values[0].options());
  }
  return TttAttentionFunction::apply(q, keys[0], values[0], kd, vd, document_ids.to(torch::kLong),
                                     window ? *window : std::int64_t{-1}, chunk);
}

}  // namespace eagle3
}  // namespace speculators
