// A fixture written the way a plugin author writes one: with the SPECULATORS_PLUGIN macro of
// plugin/plugin.h. With MACRO_PLUGIN_THROWS its body throws, which the macro must turn into the
// register function's error text.
#include <stdexcept>

#include "fixture_algorithm.h"
#include "speculators/plugin/plugin.h"

#ifndef MACRO_PLUGIN_NAME
#error "MACRO_PLUGIN_NAME must be defined"
#endif

// The indirection expands MACRO_PLUGIN_NAME before SPECULATORS_PLUGIN stringifies it.
#define MACRO_FIXTURE_PLUGIN(NAME) SPECULATORS_PLUGIN(NAME, "2.3.4", registrar)

MACRO_FIXTURE_PLUGIN(MACRO_PLUGIN_NAME) {
  speculators::fixture::register_algorithm(&registrar, SPECULATORS_STRINGIFY(MACRO_PLUGIN_NAME));
#if defined(MACRO_PLUGIN_THROWS)
  throw std::runtime_error("macro fixture body throws");
#endif
}
