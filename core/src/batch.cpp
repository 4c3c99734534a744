// Batch key and shape checks (speculators/batch.h).
#include "speculators/batch.h"

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {

const torch::Tensor& require_tensor(const Batch& batch, const std::string& key, const std::string& who) {
  const auto it = batch.find(key);
  if (it == batch.end() || !it->second.defined()) {
    std::string keys;
    for (const auto& kv : batch) keys += (keys.empty() ? "" : ", ") + kv.first;
    fail_data(cat(who, ": the batch has no \"", key, "\" (it has: ", keys.empty() ? "nothing" : keys, ")"));
  }
  return it->second;
}

torch::Tensor optional_tensor(const Batch& batch, const std::string& key) {
  const auto it = batch.find(key);
  return it == batch.end() ? torch::Tensor() : it->second;
}

void check_packed(const torch::Tensor& t, const std::string& key, const std::string& who, std::int64_t length,
                  std::int64_t width) {
  const std::int64_t dims = width > 0 ? 3 : 2;
  bool ok = t.defined() && t.dim() == dims && t.size(0) == 1 && (length < 0 || t.size(1) == length);
  if (ok && width > 0) ok = t.size(2) == width;
  if (ok) return;
  const std::string l = length < 0 ? "L" : std::to_string(length);
  const std::string expected = width > 0 ? cat("[1, ", l, ", ", width, "]") : cat("[1, ", l, "]");
  const std::string found = t.defined() ? cat(t.sizes()) : std::string("undefined");
  fail_data(cat(who, ": batch \"", key, "\" has shape ", found, ", expected ", expected));
}

const torch::Tensor& require_packed(const Batch& batch, const std::string& key, const std::string& who,
                                    std::int64_t length, std::int64_t width) {
  const torch::Tensor& t = require_tensor(batch, key, who);
  check_packed(t, key, who, length, width);
  return t;
}

}  // namespace speculators
