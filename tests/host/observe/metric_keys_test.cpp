// The metric-key rule (observe/metrics.h: MetricKeyContract): the first batch of a phase fixes the
// key set for the whole run, not only for one optimizer step, and the message states the rule.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "observe/metrics.h"
#include "speculators/error.h"

using namespace speculators;

namespace {
TensorMap metrics(std::initializer_list<const char*> keys) {
  TensorMap out;
  for (const char* k : keys) out[k] = torch::ones({});
  return out;
}
}  // namespace

TEST_CASE("metric keys that change between batches are refused with the rule", "[metrics]") {
  MetricKeyContract keys("training");
  keys.check(metrics({"loss", "even"}), "algo");
  keys.check(metrics({"loss", "even"}), "algo");
  try {
    keys.check(metrics({"loss", "odd"}), "algo");
    FAIL("a changed key set was accepted");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kPlugin);
    CHECK(std::string(e.what()) ==
          "algorithm algo (metrics): training returned metric keys {loss, odd} after {even, loss} for its first "
          "batch; every batch must return the same metric keys, on every rank (keys must not depend on the data)");
  }
}

TEST_CASE("ranks compare key sets by fingerprint: equal sets agree, different sets of one size do not", "[metrics]") {
  MetricKeyContract a("training"), b("training"), c("training");
  CHECK(a.fingerprint() == 0.0);  // nothing seen yet
  a.check(metrics({"loss", "acc"}), "algo");
  b.check(metrics({"acc", "loss"}), "algo");
  c.check(metrics({"loss", "top1"}), "algo");
  CHECK(a.fingerprint() == b.fingerprint());
  CHECK(a.fingerprint() != c.fingerprint());
  CHECK(a.fingerprint() > 0.0);
  CHECK(a.fingerprint() < 4503599627370497.0);  // 2^52 + 1: exact in a double
}
