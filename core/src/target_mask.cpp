// shifted_target_mask (speculators/nn/target_mask.h). "Same document for the whole span" is
// counted with document starts, so a document id that comes back later in the row (a packer
// never does this, a hand-made batch may) still ends the span at its first boundary.
#include "speculators/nn/target_mask.h"

#include <algorithm>

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {
namespace nn {

torch::Tensor shifted_target_mask(const torch::Tensor& document_ids, const torch::Tensor& loss_mask,
                                  std::int64_t shift) {
  if (shift < 0) fail(cat("shifted_target_mask: shift must be >= 0, got ", shift));
  const torch::Tensor docs = document_ids.dim() == 2 ? document_ids.reshape({-1}) : document_ids;
  if (docs.dim() != 1) fail(cat("shifted_target_mask: document_ids must be [L] or [1, L], got ", document_ids.sizes()));
  const std::int64_t length = docs.size(0);
  const std::int64_t n = std::max<std::int64_t>(length - shift, 0);
  auto bool_opts = torch::TensorOptions().dtype(torch::kBool).device(docs.device());
  if (n == 0) return torch::zeros({0}, bool_opts);
  // starts[t] = number of document boundaries at or before t: equal at i and i + shift iff the span
  // i .. i+shift holds no boundary.
  auto boundary = torch::ones({length}, torch::TensorOptions().dtype(torch::kLong).device(docs.device()));
  if (length > 1) boundary.slice(0, 1, length).copy_(docs.slice(0, 1, length).ne(docs.slice(0, 0, length - 1)));
  const auto starts = boundary.cumsum(0);
  auto valid = docs.slice(0, 0, n).ne(-1) & starts.slice(0, 0, n).eq(starts.slice(0, shift, shift + n));
  if (loss_mask.defined()) {
    const torch::Tensor mask = loss_mask.dim() == 2 ? loss_mask.reshape({-1}) : loss_mask;
    if (mask.dim() != 1 || mask.size(0) != length)
      fail(cat("shifted_target_mask: loss_mask ", loss_mask.sizes(), " does not match document_ids ",
               document_ids.sizes()));
    valid = valid & mask.slice(0, shift, shift + n).ne(0).to(docs.device());
  }
  return valid;
}

}  // namespace nn
}  // namespace speculators
