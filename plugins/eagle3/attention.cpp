// TTT attention for EAGLE-3 (speculators/models/eagle3/attention.py): the dense reference and the
// chunked, log-sum-exp merged version with a recomputing backward. Grouped-query attention is
// computed by viewing the query heads as [nkv, nh/nkv] groups, so keys and values are never
// repeated in memory.
#include "attention.h"

#include <cmath>
#include <limits>

#include "speculators/error.h"
#include "speculators/log.h"
#include "speculators/nn/components.h"
#include "speculators/nn/document_blocks.h"

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

// Grouped view of q [B, nh, C, hd] as [B, nkv, nh/nkv, C, hd] in fp32.
torch::Tensor grouped(const torch::Tensor& q, std::int64_t num_kv_heads) {
  const auto B = q.size(0), nh = q.size(1), C = q.size(2), hd = q.size(3);
  return q.to(torch::kFloat).reshape({B, num_kv_heads, nh / num_kv_heads, C, hd});
}

// Scores of the grouped, pre-scaled queries qs [B, nkv, r, C, hd] against the step-0 keys k0
// [B, nkv, S, hd], -inf where `blocked` [C, S]: [B, nkv, r, C, S]. The r query heads of a KV group
// share its keys, so each group is one [r·C, hd] x [hd, S] product (no broadcast operand: forward
// and backward are plain batched GEMMs).
torch::Tensor block0_scores(const torch::Tensor& qs, const torch::Tensor& k0, const torch::Tensor& blocked) {
  const auto B = qs.size(0), nkv = qs.size(1), r = qs.size(2), C = qs.size(3), hd = qs.size(4);
  auto scores = torch::matmul(qs.reshape({B, nkv, r * C, hd}), k0.to(torch::kFloat).transpose(-1, -2))
                    .reshape({B, nkv, r, C, k0.size(2)});
  return scores.masked_fill_(blocked, kNegInf);
}

// The diagonal scores q_i · k_i^(s) of the later blocks kd [k, B, nkv, C, hd]: [k, B, nkv, r, C].
torch::Tensor diagonal_scores(const torch::Tensor& qs, const torch::Tensor& kd) {
  return (qs.unsqueeze(0) * kd.to(torch::kFloat).unsqueeze(3)).sum(-1);
}

struct ChunkResult {
  torch::Tensor out;  // [B, nkv, r, C, hd], fp32
  torch::Tensor lse;  // [B, nkv, r, C]: log-sum-exp of every score the query sees
};

// One query chunk: step-0 attention over keys k0/v0 [B, nkv, S, hd], except where `blocked`
// [C, S], merged with the diagonal keys/values kd/vd [k, B, nkv, C, hd] (may be empty) through one
// log-sum-exp.
ChunkResult attend_chunk(const torch::Tensor& qs, const torch::Tensor& k0, const torch::Tensor& v0,
                         const torch::Tensor& blocked, const torch::Tensor& kd, const torch::Tensor& vd) {
  const auto B = qs.size(0), nkv = qs.size(1), r = qs.size(2), C = qs.size(3), hd = qs.size(4);
  auto p = block0_scores(qs, k0, blocked);
  const auto max = std::get<0>(p.max(-1, /*keepdim=*/true));  // finite: the own key is always visible
  p.sub_(max).exp_();                                         // exp(s - max), in place
  const auto sum = p.sum(-1, /*keepdim=*/true);
  const auto lse0 = (max + sum.log()).squeeze(-1);  // [B, nkv, r, C]
  auto out = torch::matmul(p.reshape({B, nkv, r * C, k0.size(2)}), v0.to(torch::kFloat))
                 .reshape({B, nkv, r, C, hd})
                 .div_(sum);
  if (kd.size(0) == 0) return {out, lse0};
  const auto diag = diagonal_scores(qs, kd);
  const auto lse = torch::logsumexp(torch::cat({lse0.unsqueeze(0), diag}, 0), 0);
  out.mul_(torch::exp(lse0 - lse).unsqueeze(-1));
  out.add_((torch::exp(diag - lse.unsqueeze(0)).unsqueeze(-1) * vd.to(torch::kFloat).unsqueeze(3)).sum(0));
  return {out, lse};
}

struct ChunkGrads {
  torch::Tensor q, k0, v0, kd, vd;  // fp32; kd/vd undefined when there are no later blocks
};

// The gradients of one chunk, from the saved log-sum-exp and output (the flash-attention
// backward): with P the probabilities of every visible key and D_i = dO_i · O_i,
// dS = P ⊙ (dO·Vᵀ − D), dQ = dS·K·scale, dK = dSᵀ·Q·scale, dV = Pᵀ·dO.
ChunkGrads chunk_grads(const torch::Tensor& qs, double scale, const torch::Tensor& k0, const torch::Tensor& v0,
                       const torch::Tensor& blocked, const torch::Tensor& kd, const torch::Tensor& vd,
                       const torch::Tensor& out, const torch::Tensor& lse, const torch::Tensor& grad_out) {
  const auto B = qs.size(0), nkv = qs.size(1), r = qs.size(2), C = qs.size(3), hd = qs.size(4), S = k0.size(2);
  const auto delta = (grad_out * out).sum(-1);  // [B, nkv, r, C]
  const auto go = grad_out.reshape({B, nkv, r * C, hd});
  auto p = block0_scores(qs, k0, blocked);
  p.sub_(lse.unsqueeze(-1)).exp_();
  const auto v0f = v0.to(torch::kFloat);
  auto ds = torch::matmul(go, v0f.transpose(-1, -2)).reshape({B, nkv, r, C, S});
  ds.sub_(delta.unsqueeze(-1)).mul_(p);
  const auto ds2 = ds.reshape({B, nkv, r * C, S});
  ChunkGrads g;
  g.v0 = torch::matmul(p.reshape({B, nkv, r * C, S}).transpose(-1, -2), go);
  g.k0 = torch::matmul(ds2.transpose(-1, -2), qs.reshape({B, nkv, r * C, hd}));  // qs carries the scale
  g.q = torch::matmul(ds2, k0.to(torch::kFloat)).reshape({B, nkv, r, C, hd});
  if (kd.size(0) > 0) {
    const auto kdf = kd.to(torch::kFloat).unsqueeze(3), vdf = vd.to(torch::kFloat).unsqueeze(3);
    const auto pd = torch::exp(diagonal_scores(qs, kd) - lse.unsqueeze(0));           // [k, B, nkv, r, C]
    const auto dsd = pd * ((grad_out.unsqueeze(0) * vdf).sum(-1) - delta.unsqueeze(0));
    g.q.add_((dsd.unsqueeze(-1) * kdf).sum(0));
    g.kd = (dsd.unsqueeze(-1) * qs.unsqueeze(0)).sum(3);  // the r heads of a group share the key
    g.vd = (pd.unsqueeze(-1) * grad_out.unsqueeze(0)).sum(3);
  }
  g.q.mul_(scale);
  return g;
}

std::optional<std::int64_t> window_from(std::int64_t w) {
  return w > 0 ? std::optional<std::int64_t>(w) : std::nullopt;
}

double scale_of(const torch::Tensor& q) { return 1.0 / std::sqrt(static_cast<double>(q.size(3))); }

class TttAttentionFunction : public torch::autograd::Function<TttAttentionFunction> {
 public:
  // kd/vd: the blocks of steps 1..k stacked as [k, B, nkv, L, hd] (k may be 0).
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& q,
                               const torch::Tensor& k0, const torch::Tensor& v0, const torch::Tensor& kd,
                               const torch::Tensor& vd, const torch::Tensor& document_ids, std::int64_t window,
                               std::int64_t chunk) {
    const auto nkv = k0.size(1);
    const auto qs = grouped(q, nkv) * scale_of(q);  // [B, nkv, r, L, hd]; grouped may be a view of q
    // The output in q's layout, written through its grouped view; saved for the backward.
    auto result = torch::empty(q.sizes(), qs.options());
    auto out = result.view(qs.sizes());
    auto lse = torch::empty(qs.sizes().slice(0, 4), qs.options());
    const auto ids = nn::document_ids_on_cpu(document_ids);
    for (const auto& c : nn::query_blocks(ids, window_from(window), chunk)) {
      const auto blocked = nn::hidden_keys(ids, c.q0, c.q1, c.k0, c.q1, window_from(window), q.device());
      const auto res = attend_chunk(qs.slice(3, c.q0, c.q1), k0.slice(2, c.k0, c.q1), v0.slice(2, c.k0, c.q1),
                                    blocked, kd.slice(3, c.q0, c.q1), vd.slice(3, c.q0, c.q1));
      out.slice(3, c.q0, c.q1).copy_(res.out);
      lse.slice(3, c.q0, c.q1).copy_(res.lse);
    }
    ctx->save_for_backward({q, k0, v0, kd, vd, document_ids, result, lse});
    ctx->saved_data["window"] = window;
    ctx->saved_data["chunk"] = chunk;
    return result.to(q.scalar_type());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k0 = saved[1], &v0 = saved[2], &kd = saved[3], &vd = saved[4];
    const auto &document_ids = saved[5], &lse = saved[7];
    const auto out = grouped(saved[6], k0.size(1));
    const auto window = window_from(ctx->saved_data["window"].toInt());
    const auto chunk = ctx->saved_data["chunk"].toInt();
    const double scale = scale_of(q);
    const auto qs = grouped(q, k0.size(1)) * scale;
    const auto grad_out = grouped(grad_outputs[0], k0.size(1));
    auto gq = torch::empty(qs.sizes(), qs.options());
    auto gk0 = torch::zeros(k0.sizes(), qs.options()), gv0 = torch::zeros(v0.sizes(), qs.options());
    auto gkd = torch::empty(kd.sizes(), qs.options()), gvd = torch::empty(vd.sizes(), qs.options());
    const auto ids = nn::document_ids_on_cpu(document_ids);
    for (const auto& c : nn::query_blocks(ids, window, chunk)) {
      const auto blocked = nn::hidden_keys(ids, c.q0, c.q1, c.k0, c.q1, window, q.device());
      const auto g = chunk_grads(qs.slice(3, c.q0, c.q1), scale, k0.slice(2, c.k0, c.q1), v0.slice(2, c.k0, c.q1),
                                 blocked, kd.slice(3, c.q0, c.q1), vd.slice(3, c.q0, c.q1), out.slice(3, c.q0, c.q1),
                                 lse.slice(3, c.q0, c.q1), grad_out.slice(3, c.q0, c.q1));
      gq.slice(3, c.q0, c.q1).copy_(g.q);
      gk0.slice(2, c.k0, c.q1).add_(g.k0);
      gv0.slice(2, c.k0, c.q1).add_(g.v0);
      if (g.kd.defined()) {
        gkd.slice(3, c.q0, c.q1).copy_(g.kd);
        gvd.slice(3, c.q0, c.q1).copy_(g.vd);
      }
    }
    return {gq.reshape(q.sizes()).to(q.scalar_type()), gk0.to(k0.scalar_type()), gv0.to(v0.scalar_type()),
            gkd.to(kd.scalar_type()), gvd.to(vd.scalar_type()), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor ttt_mask(const torch::Tensor& document_ids, std::int64_t step, std::optional<std::int64_t> window) {
  const auto L = document_ids.size(0);
  auto mask = torch::zeros({L, (step + 1) * L}, torch::TensorOptions().dtype(torch::kBool).device(document_ids.device()));
  mask.slice(1, 0, L).copy_(nn::document_causal_mask(document_ids, window));
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
