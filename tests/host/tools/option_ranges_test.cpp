// The real options of the host (host_schema()) and of the built plugins (eagle3, myalgo): every
// numeric option declares a range, and values just outside it, NaN and infinities are usage errors
// naming the option, from flags and from YAML alike (README.md, "Exit codes": 2 bad job or usage).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>

#include "../../error_of.h"
#include "fixture_paths.h"
#include "plugin_host/plugin_loader.h"
#include "speculators/error.h"
#include "speculators/log.h"
#include "speculators/registry.h"
#include "tools/job.h"

using namespace speculators;

namespace {

bool is_numeric(OptionType type) {
  return type == OptionType::kInt || type == OptionType::kFloat || type == OptionType::kIntList ||
         type == OptionType::kFloatList;
}

bool is_integer(OptionType type) { return type == OptionType::kInt || type == OptionType::kIntList; }

// The text a user types for `v`: an integer as digits, a float with every digit it needs.
std::string text_of(double v, bool integer) {
  if (integer) return std::to_string(static_cast<long long>(v));
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.17g", v);
  return buffer;
}

// The next value of the option's type from `v` towards `direction`: the next integer, the next
// double, or from 0 the normal double 1e-300 (strtod reports the denormals next to 0 as ERANGE).
double step_from(double v, double direction, bool integer) {
  if (integer) return v + (direction > v ? 1 : -1);
  if (v == 0) return direction > 0 ? 1e-300 : -1e-300;
  return std::nextafter(v, direction);
}

std::string usage_error(const std::function<void()>& f) { return test::error_of(f, ExitCode::kUsage); }

void check_accepted(const Option& opt, double v) {
  const bool integer = is_integer(opt.type);
  const std::string text = text_of(v, integer);
  INFO(opt.flag() << " " << text);
  CHECK_NOTHROW(opt.parse_flag_value(text, "command line"));
  CHECK_NOTHROW(opt.coerce(integer ? Json(static_cast<std::int64_t>(v)) : Json(v), "job.yaml"));
}

void check_refused(const Option& opt, double v) {
  const bool integer = is_integer(opt.type);
  const std::string text = text_of(v, integer);
  INFO(opt.flag() << " " << text);
  const std::string expected = cat(opt.flag(), " must be ", opt.range_text(), ", got ");
  CHECK_THAT(usage_error([&] { opt.parse_flag_value(text, "command line"); }),
             Catch::StartsWith("command line: " + expected));
  CHECK_THAT(usage_error([&] { opt.coerce(integer ? Json(static_cast<std::int64_t>(v)) : Json(v), "job.yaml"); }),
             Catch::StartsWith("job.yaml: " + expected));
  if (integer) CHECK_THAT(usage_error([&] { opt.parse_flag_value(text, "x"); }), Catch::EndsWith("got " + text));
}

// Checks one numeric option: its declared range, the values just outside it, and (for floats)
// NaN and the infinities, from flags and from YAML alike.
void check_declared_range(const Option& opt) {
  const double inf = std::numeric_limits<double>::infinity();
  INFO(opt.flag());
  REQUIRE(opt.minimum.has_value());  // every count, size, rate and factor has a lower bound
  CHECK(!opt.range_text().empty());
  const bool integer = is_integer(opt.type);
  const double lo = *opt.minimum;
  if (opt.exclusive_minimum) {
    check_refused(opt, lo);
    check_accepted(opt, step_from(lo, inf, integer));
  } else {
    check_refused(opt, step_from(lo, -inf, integer));
    check_accepted(opt, lo);
  }
  if (opt.maximum) {
    check_accepted(opt, *opt.maximum);
    check_refused(opt, step_from(*opt.maximum, inf, integer));
  }
  if (integer) {
    for (const char* text : {"nan", "inf", "1e9", "2.5"}) {
      CHECK(usage_error([&] { opt.parse_flag_value(text, "command line"); }) ==
            cat("command line: expected an integer for ", opt.flag(), ", got \"", text, "\""));
    }
  } else {
    for (const char* text : {"nan", "inf", "-inf", "NaN"}) {
      CHECK_THAT(usage_error([&] { opt.parse_flag_value(text, "command line"); }),
                 Catch::StartsWith(cat("command line: ", opt.flag(), " must be a finite number, got ")));
    }
    for (double v : {std::numeric_limits<double>::quiet_NaN(), inf, -inf}) {
      CHECK_THAT(usage_error([&] { opt.coerce(Json(v), "job.yaml"); }),
                 Catch::StartsWith(cat("job.yaml: ", opt.flag(), " must be a finite number")));
    }
  }
}

// The numeric options of `schema`, each checked by check_declared_range; returns how many.
int check_numeric_options(const Schema& schema) {
  int numeric = 0;
  for (const Option& opt : schema) {
    if (!is_numeric(opt.type)) continue;
    ++numeric;
    check_declared_range(opt);
  }
  return numeric;
}

}  // namespace

TEST_CASE("every numeric host option declares a range and refuses values outside it", "[schema][job]") {
  // Every numeric declaration of host/src/tools/job.cpp (a new one is counted here).
  CHECK(check_numeric_options(host_schema()) == 32);
}

TEST_CASE("every numeric option of the built plugins declares a range and refuses values outside it",
          "[schema][plugins]") {
  // The real eagle3.so and myalgo.so of this build, loaded by the real plugin host: their draft
  // options reach the same job resolution as the host's.
  Registry registry;
  PluginHost plugins(registry, HostFingerprint::current());
  for (const std::string name : {"eagle3", "myalgo"}) {
    const PluginRecord record = plugins.load(cat(SPECULATORS_REAL_PLUGIN_DIR, "/", name, ".so"));
    REQUIRE(record.ok);
    INFO(name);
    CHECK(check_numeric_options(registry.get(name).algorithm->schema()) > 0);
  }
}
