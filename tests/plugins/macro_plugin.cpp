// A fixture written the way a plugin author writes one: with the SPECULATORS_PLUGIN macro of
// plugin/plugin.h; MACRO_PLUGIN_NAME is the algorithm it registers. With MACRO_PLUGIN_THROWS its
// body throws, which the macro must turn into the register function's error text.
#include <stdexcept>

#include "fixture_algorithm.h"
#include "speculators/plugin/plugin.h"

#ifndef MACRO_PLUGIN_NAME
#error "MACRO_PLUGIN_NAME must be defined"
#endif

// The name and version come from the build (SPECULATORS_PLUGIN_NAME / SPECULATORS_PLUGIN_VERSION,
// set by speculators_add_plugin or by tests/plugins/CMakeLists.txt for the fixtures).
SPECULATORS_PLUGIN(registrar) {
  speculators::fixture::register_algorithm(&registrar, SPECULATORS_STRINGIFY(MACRO_PLUGIN_NAME));
#if defined(MACRO_PLUGIN_THROWS)
  throw std::runtime_error("macro fixture body throws");
#endif
}
