// The algorithm every test fixture plugin registers: just enough of the Algorithm contract for
// the host to list, describe and look it up. It never builds a model. Declared with plain C++
// types only, so that fixture_plugin.cpp (compiled many times) stays free of LibTorch headers.
#pragma once

namespace speculators {
namespace fixture {

// Registers a FixtureAlgorithm named `algorithm_name` into `registrar` (a speculators::Registrar*).
// Throws whatever Registrar::add throws (a duplicate name, an empty name).
void register_algorithm(void* registrar, const char* algorithm_name);

}  // namespace fixture
}  // namespace speculators
