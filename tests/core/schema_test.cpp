// Option ranges: every numeric option checks its declared range and rejects NaN and infinities,
// from YAML values and from flag text alike, with a message naming option, value and range.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <limits>

#include "../error_of.h"
#include "speculators/error.h"
#include "speculators/schema.h"

using namespace speculators;

namespace {
std::string usage_error(const std::function<void()>& f) { return test::error_of(f, ExitCode::kUsage); }
}  // namespace

TEST_CASE("numeric options check their range from YAML and from flags", "[schema]") {
  const Option lr = opt_float("lr", 1e-4, "Learning rate", "optimizer").above(0);
  const Option epochs = opt_int("epochs", 20, "Epochs", "trainer").at_least(1).at_most(1000000);
  CHECK(lr.coerce(Json(0.5), "job.yaml").as_double() == 0.5);
  CHECK(lr.parse_flag_value("3e-4", "flag").as_double() == 3e-4);
  CHECK(epochs.parse_flag_value("1", "flag").as_int() == 1);
  CHECK(epochs.coerce(Json(std::int64_t{1000000}), "job.yaml").as_int() == 1000000);

  CHECK(usage_error([&] { lr.parse_flag_value("-1", "command line"); }) ==
        "command line: --lr must be > 0, got -1.0");
  CHECK(usage_error([&] { lr.coerce(Json(0.0), "job.yaml: train.optimizer.lr"); }) ==
        "job.yaml: train.optimizer.lr: --lr must be > 0, got 0.0");
  CHECK(usage_error([&] { epochs.parse_flag_value("0", "command line"); }) ==
        "command line: --epochs must be >= 1 and <= 1000000, got 0");
  CHECK(usage_error([&] { epochs.parse_flag_value("99999999999", "command line"); }) ==
        "command line: --epochs must be >= 1 and <= 1000000, got 99999999999");
  for (const char* text : {"nan", "inf", "-inf", "NaN"}) {
    CHECK_THAT(usage_error([&] { lr.parse_flag_value(text, "command line"); }),
               Catch::Contains("--lr must be a finite number"));
  }
  // Unbounded float options still refuse NaN and infinities.
  const Option any = opt_float("noise_std", 0.05, "Noise", "data");
  CHECK_THAT(usage_error([&] { any.coerce(Json(std::numeric_limits<double>::quiet_NaN()), "job.yaml"); }),
             Catch::Contains("--noise-std must be a finite number"));
  CHECK(any.range_text().empty());
}

TEST_CASE("each element of a number list is checked", "[schema]") {
  const Option ids = opt_int_list("target_layer_ids", Json(), "Layers", "draft").at_least(0);
  CHECK(ids.parse_flag_value("1,2,3", "flag").as_int_list() == std::vector<std::int64_t>{1, 2, 3});
  CHECK(usage_error([&] { ids.parse_flag_value("1 -2", "command line"); }) ==
        "command line: --target-layer-ids must be >= 0, got -2");
}
