// See speculators/nn/document_blocks.h.
#include "speculators/nn/document_blocks.h"

#include <algorithm>
#include <limits>
#include <unordered_map>

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {
namespace nn {

torch::Tensor document_ids_on_cpu(const torch::Tensor& document_ids) {
  if (document_ids.dim() != 1) fail(cat("document ids must be [L], got ", document_ids.sizes()));
  return document_ids.to(torch::kCPU, torch::kLong).contiguous();
}

std::vector<std::int64_t> first_visible_keys(const torch::Tensor& document_ids, std::optional<std::int64_t> window) {
  const torch::Tensor ids = document_ids_on_cpu(document_ids);
  const std::int64_t* d = ids.data_ptr<std::int64_t>();
  const std::int64_t l = ids.numel();
  std::unordered_map<std::int64_t, std::int64_t> first_index;
  std::vector<std::int64_t> starts(static_cast<std::size_t>(l));
  for (std::int64_t q = 0; q < l; ++q) {
    if (d[q] == -1) {
      starts[q] = q;  // padding sees only its own key
      continue;
    }
    std::int64_t start = first_index.emplace(d[q], q).first->second;
    if (window) start = std::max(start, q - *window + 1);
    starts[q] = start;
  }
  return starts;
}

std::vector<QueryBlock> query_blocks(const torch::Tensor& document_ids, std::optional<std::int64_t> window,
                                     std::int64_t rows) {
  if (rows < 1) fail(cat("query blocks: rows per block must be positive, got ", rows));
  const std::vector<std::int64_t> starts = first_visible_keys(document_ids, window);
  const auto l = static_cast<std::int64_t>(starts.size());
  std::vector<QueryBlock> blocks;
  for (std::int64_t q0 = 0; q0 < l; q0 += rows) {
    const std::int64_t q1 = std::min(l, q0 + rows);
    blocks.push_back({q0, q1, *std::min_element(starts.begin() + q0, starts.begin() + q1)});
  }
  return blocks;
}

torch::Tensor hidden_keys(const torch::Tensor& ids, std::int64_t q0, std::int64_t q1, std::int64_t k0, std::int64_t k1,
                          std::optional<std::int64_t> window, const torch::Device& device) {
  if (!ids.device().is_cpu() || ids.scalar_type() != torch::kLong || !ids.is_contiguous() || ids.dim() != 1) {
    fail("hidden_keys: ids must come from document_ids_on_cpu");
  }
  const std::int64_t l = ids.numel();
  if (q0 < 0 || q0 > q1 || q1 > l || k0 < 0 || k0 > k1 || k1 > l) {
    fail(cat("hidden_keys: block [", q0, ", ", q1, ") x [", k0, ", ", k1, ") is outside the ", l, " positions"));
  }
  const std::int64_t* d = ids.data_ptr<std::int64_t>();
  torch::Tensor hidden = torch::empty({q1 - q0, k1 - k0}, torch::kBool);
  bool* out = hidden.data_ptr<bool>();
  const std::int64_t w = window ? *window : std::numeric_limits<std::int64_t>::max();
  for (std::int64_t q = q0; q < q1; ++q) {
    const std::int64_t doc = d[q];
    for (std::int64_t k = k0; k < k1; ++k) {
      const bool visible = k == q || (k < q && doc != -1 && d[k] == doc && q - k < w);
      *out++ = !visible;
    }
  }
  return hidden.to(device);
}

}  // namespace nn
}  // namespace speculators
