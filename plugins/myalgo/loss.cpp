// myalgo's loss and metrics (see loss.h for the indexing rule). The divergence itself is the
// SDK's nn::masked_divergence (speculators/nn/losses.h): it works through the rows in chunks, so
// no [L, Vd] fp32 softmax outlives one chunk, in the forward or the backward pass — what a draft
// over a 128k vocabulary at L = 8192 needs. What stays here is the part that is
// myalgo's own: which rows pair with which targets, the per-head decay, and the metrics.
#include "loss.h"

#include <algorithm>
#include <string>

#include "speculators/error.h"
#include "speculators/log.h"
#include "speculators/metric_pairs.h"
#include "speculators/nn/losses.h"
#include "speculators/nn/target_mask.h"

namespace speculators {
namespace myalgo {

namespace {

void check_inputs(const std::vector<torch::Tensor>& head_logits, const torch::Tensor& target_logits,
                  const torch::Tensor& loss_mask, const torch::Tensor& document_ids) {
  if (head_logits.empty()) fail("myalgo: the loss needs at least one head (block_size >= 1)");
  if (target_logits.dim() != 2) fail(cat("myalgo: target logits must be [L, Vd], got ", target_logits.sizes()));
  const auto length = target_logits.size(0);
  for (std::size_t k = 0; k < head_logits.size(); ++k) {
    if (!head_logits[k].sizes().equals(target_logits.sizes()))
      fail(cat("myalgo: head ", k + 1, " logits have shape ", head_logits[k].sizes(), ", expected ",
               target_logits.sizes()));
  }
  if (loss_mask.dim() != 1 || loss_mask.size(0) != length || document_ids.dim() != 1 ||
      document_ids.size(0) != length)
    fail(cat("myalgo: loss_mask ", loss_mask.sizes(), " and document_ids ", document_ids.sizes(),
             " must both be [", length, "]"));
}

}  // namespace

HeadLoss multi_head_kl_loss(const std::vector<torch::Tensor>& head_logits, const torch::Tensor& target_logits,
                            const torch::Tensor& loss_mask, const torch::Tensor& document_ids, double gamma) {
  check_inputs(head_logits, target_logits, loss_mask, document_ids);
  const std::int64_t length = target_logits.size(0);
  auto options = target_logits.options().dtype(torch::kFloat32);

  // Forward KL(verifier ‖ head), the reference's default loss_fn; the targets get no gradient.
  static const nn::LossSpec kKlDiv = nn::parse_loss_fn("kl_div");
  const torch::Tensor targets = target_logits.detach();
  const torch::Tensor target_top1 = targets.argmax(-1);

  HeadLoss result;
  MetricPairs metrics;
  result.loss = torch::zeros({}, options);
  // chain[i] = heads 1..j-1 were all right at position i; shrinks with j like the rows do.
  auto chain = torch::ones({length}, options.dtype(torch::kBool));
  double weight = 1.0;  // gamma^(j-1)
  for (std::size_t k = 0; k < head_logits.size(); ++k, weight *= gamma) {
    const auto j = static_cast<std::int64_t>(k) + 1;
    const std::int64_t n = std::max<std::int64_t>(length - j, 0);
    auto logits = head_logits[k].slice(0, 0, n);  // head j at positions i = 0 .. n-1
    auto target_rows = targets.slice(0, j - 1, j - 1 + n);  // the verifier at i + j - 1
    auto valid = nn::shifted_target_mask(document_ids, loss_mask, j);
    // Σ_i valid_i · KL_i · gamma^(j-1) / (Σ_i valid_i + 1e-5)
    if (n > 0) result.loss = result.loss + nn::masked_divergence(logits, target_rows, valid, kKlDiv, weight).loss;

    auto correct = logits.detach().argmax(-1).eq(target_top1.slice(0, j - 1, j - 1 + n));
    chain = chain.slice(0, 0, n) & correct;
    const std::string suffix = "_" + std::to_string(j);
    metrics.add_count("acc" + suffix, correct, valid);
    metrics.add_count("full_acc" + suffix, chain, valid);
  }
  // The host reports loss = Σ loss_sum / Σ loss_total over batches (and ranks), i.e. the mean
  // batch loss, which is what the reference logs
  // (speculators/train/trainer.py: Trainer.val_epoch).
  metrics.add_mean("loss", result.loss);
  result.metrics = metrics.take();
  return result;
}

}  // namespace myalgo
}  // namespace speculators
