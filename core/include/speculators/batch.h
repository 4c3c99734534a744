// Reading a packed Batch (speculators/algorithm.h) inside DraftModel::forward: the key and shape
// checks every draft needs, with errors that name the draft, the key, and what the batch holds
// instead. A missing key or a wrong shape is bad data (exit code 4).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "speculators/algorithm.h"

namespace speculators {

// batch[key], or an Error(kData) "<who>: the batch has no "<key>" (it has: a, b, c)".
const torch::Tensor& require_tensor(const Batch& batch, const std::string& key, const std::string& who);

// batch[key], or an undefined tensor when the batch has no such key.
torch::Tensor optional_tensor(const Batch& batch, const std::string& key);

// Throws Error(kData) unless `t` is one packed row: [1, L] when width == 0, [1, L, width] when
// width > 0. length < 0 accepts any L. The message names `who`, `key`, the shape found and the
// one expected.
void check_packed(const torch::Tensor& t, const std::string& key, const std::string& who, std::int64_t length,
                  std::int64_t width = 0);

// require_tensor + check_packed.
const torch::Tensor& require_packed(const Batch& batch, const std::string& key, const std::string& who,
                                    std::int64_t length = -1, std::int64_t width = 0);

}  // namespace speculators
