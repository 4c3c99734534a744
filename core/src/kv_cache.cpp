// See speculators/nn/kv_cache.h.
#include "speculators/nn/kv_cache.h"

#include "speculators/error.h"
#include "speculators/log.h"
#include "speculators/nn/components.h"

namespace speculators {
namespace nn {

void LayerKvCache::truncate(std::int64_t new_length) {
  if (new_length < 0 || new_length > length()) {
    fail(cat("key/value cache: cannot truncate ", length(), " positions to ", new_length));
  }
  if (!keys.defined()) return;
  keys = keys.narrow(2, 0, new_length);
  values = values.narrow(2, 0, new_length);
}

torch::Tensor attend_with_cache(LayerKvCache& cache, const torch::Tensor& q, const torch::Tensor& k,
                                const torch::Tensor& v, std::optional<std::int64_t> window) {
  cache.keys = cache.keys.defined() ? torch::cat({cache.keys, k}, 2) : k;
  cache.values = cache.values.defined() ? torch::cat({cache.values, v}, 2) : v;
  const std::int64_t total = cache.length(), s = q.size(2);
  const auto longs = torch::TensorOptions().dtype(torch::kLong).device(q.device());
  const auto query_pos = torch::arange(total - s, total, longs).unsqueeze(1);
  const auto key_pos = torch::arange(total, longs).unsqueeze(0);
  auto allowed = key_pos <= query_pos;
  if (window) allowed = allowed.logical_and(key_pos > query_pos - *window);
  return dense_attention(q, cache.keys, cache.values, allowed);
}

}  // namespace nn
}  // namespace speculators
