// MetricAccumulator and the forward-result checks (see metrics.h).
#include "observe/metrics.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <set>

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {

namespace {
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

void MetricAccumulator::add(const TensorMap& metrics) {
  std::set<std::string> now;
  for (const auto& [k, v] : metrics) now.insert(k);
  if (batches_ > 0 && now != keys_) {
    fail("the model returned a different set of metric keys than for earlier batches", ExitCode::kPlugin);
  }
  keys_ = now;
  for (const auto& [k, v] : metrics) {
    const auto value = v.detach().to(torch::kFloat64);
    auto it = pending_.find(k);
    if (it == pending_.end()) {
      pending_.emplace(k, value);
    } else {
      it->second = it->second + value;  // in order, as a host double would add them
    }
  }
  ++batches_;
}

void MetricAccumulator::settle() const {
  for (const auto& k : keys_) {
    auto it = pending_.find(k);
    sums_[k] += it == pending_.end() ? 0.0 : it->second.item<double>();
  }
  pending_.clear();
}

const char* MetricKeyContract::rule() {
  return "every batch must return the same metric keys, on every rank (keys must not depend on the data)";
}

void MetricKeyContract::check(const TensorMap& metrics, const std::string& algorithm) {
  std::vector<std::string> now;
  for (const auto& [k, v] : metrics) now.push_back(k);  // a std::map: sorted
  if (!fixed_) {
    keys_ = std::move(now);
    fixed_ = true;
    return;
  }
  if (now == keys_) return;
  auto join = [](const std::vector<std::string>& keys) {
    std::string out;
    for (const auto& k : keys) out += (out.empty() ? "" : ", ") + k;
    return "{" + out + "}";
  };
  fail(cat("algorithm ", algorithm, " (metrics): ", phase_, " returned metric keys ", join(now),
           " after ", join(keys_), " for its first batch; ", rule()),
       ExitCode::kPlugin);
}

double MetricKeyContract::fingerprint() const {
  if (!fixed_) return 0.0;
  // FNV-1a over the sorted keys, cut to 52 bits so that a double (what collectives carry) holds it exactly.
  std::uint64_t h = 1469598103934665603ULL;
  for (const auto& k : keys_) {
    for (unsigned char c : k + '\n') h = (h ^ c) * 1099511628211ULL;
  }
  return static_cast<double>((h & ((1ULL << 52) - 1)) + 1);
}

std::map<std::string, double> MetricAccumulator::values() const {
  settle();
  std::map<std::string, double> out;
  for (const auto& [k, v] : sums_) {
    if (ends_with(k, "_sum")) {
      std::string name = k.substr(0, k.size() - 4);
      auto total = sums_.find(name + "_total");
      if (total != sums_.end()) {
        out[name] = total->second != 0 ? v / total->second : 0.0;
        continue;
      }
    }
    if (ends_with(k, "_total") && sums_.count(k.substr(0, k.size() - 6) + "_sum")) continue;
    out[k] = v / static_cast<double>(batches_);
  }
  return out;
}

std::vector<double> MetricAccumulator::raw() const {
  settle();
  std::vector<double> out;
  for (const auto& [k, v] : sums_) out.push_back(v);
  out.push_back(static_cast<double>(batches_));
  return out;
}

void MetricAccumulator::load_raw(const std::vector<double>& raw) {
  settle();
  if (raw.size() != sums_.size() + 1) fail(cat("metrics: ", raw.size(), " values for ", sums_.size(), " keys"));
  std::size_t i = 0;
  for (auto& [k, v] : sums_) v = raw[i++];
  batches_ = static_cast<long>(std::llround(raw.back()));
}

void MetricAccumulator::clear() {
  keys_.clear();
  pending_.clear();
  sums_.clear();
  batches_ = 0;
}

void check_forward_result(const ForwardResult& result, const std::string& algorithm) {
  if (!result.loss.defined()) fail(cat("algorithm ", algorithm, ": forward returned no loss"), ExitCode::kPlugin);
  if (result.loss.numel() != 1) {
    fail(cat("algorithm ", algorithm, ": loss must be a scalar, got shape ", result.loss.sizes()), ExitCode::kPlugin);
  }
  for (const auto& [k, v] : result.metrics) {
    if (!v.defined() || v.dim() != 0) {
      fail(cat("algorithm ", algorithm, ": metric \"", k, "\" must be a 0-d tensor"), ExitCode::kPlugin);
    }
  }
  bool pair = result.metrics.count("loss_sum") && result.metrics.count("loss_total");
  if (!pair && !result.metrics.count("loss")) {
    fail(cat("algorithm ", algorithm, ": metrics must include the loss as loss_sum/loss_total (or a plain "
             "\"loss\" scalar)"),
         ExitCode::kPlugin);
  }
}

double estimated_acceptance_length(const std::map<std::string, double>& values) {
  double total = 0.0;
  bool any = false;
  for (const auto& [k, v] : values) {
    if (k.rfind("full_acc_", 0) != 0) continue;
    std::string rest = k.substr(9);
    if (rest.empty() || !std::all_of(rest.begin(), rest.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) continue;
    total += v;
    any = true;
  }
  return any ? 1.0 + total : 0.0;
}

}  // namespace speculators
