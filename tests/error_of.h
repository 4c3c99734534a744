// The shape of most error tests in this tree: run `f`, expect a speculators::Error with the given
// exit code (README.md, "Exit codes"), and return its one-line message for the test to compare.
// A call that throws nothing fails the check and returns "".
#pragma once

#include <catch2/catch.hpp>

#include <functional>
#include <string>

#include "speculators/error.h"

namespace speculators::test {

inline std::string error_of(const std::function<void()>& f, ExitCode code) {
  try {
    f();
  } catch (const Error& e) {
    CHECK(e.code() == code);
    return e.what();
  }
  FAIL_CHECK("no error was thrown");
  return "";
}

}  // namespace speculators::test
