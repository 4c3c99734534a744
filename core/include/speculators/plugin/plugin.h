// Tier 1 of the plugin ABI: the one macro a plugin author writes.
//
//   SPECULATORS_PLUGIN(registrar) {
//     registrar.add<MyAlgo>();
//   }
//
// The plugin's name and version are written once, in CMake:
// `speculators_add_plugin(myalgo VERSION 0.1.0 SOURCES ...)` (cmake/SpeculatorsPlugin.cmake) compiles
// the plugin with SPECULATORS_PLUGIN_NAME="myalgo" and SPECULATORS_PLUGIN_VERSION="0.1.0", which
// this macro puts into the descriptor, so the descriptor, the manifest and the package always agree.
// The plugin must register an algorithm of its own name (it may register more); the host refuses
// it otherwise.
//
// It defines the descriptor of plugin/abi.h with this build's fingerprint (ABI version, LibTorch
// major.minor, _GLIBCXX_USE_CXX11_ABI, CUDA flag) and a noexcept register function that turns
// any exception from the body into error text for the host. Nothing runs at load time: the
// host calls the register function only after every check passed.
#pragma once

#include <torch/version.h>

#include <cstdio>
#include <cstring>
#include <exception>

#include "speculators/build_config.h"
#include "speculators/plugin/abi.h"
#include "speculators/registry.h"

#ifndef _GLIBCXX_USE_CXX11_ABI
#define SPECULATORS_CXX11_ABI_VALUE 0
#else
#define SPECULATORS_CXX11_ABI_VALUE _GLIBCXX_USE_CXX11_ABI
#endif

#define SPECULATORS_STRINGIFY_IMPL(x) #x
#define SPECULATORS_STRINGIFY(x) SPECULATORS_STRINGIFY_IMPL(x)

namespace speculators {
namespace plugin_detail {
// Copies a message into the host's buffer, always NUL-terminated.
inline void copy_error(const char* message, char* error, size_t error_size) {
  if (error == nullptr || error_size == 0) return;
  std::snprintf(error, error_size, "%s", message);
}
}  // namespace plugin_detail
}  // namespace speculators

#if !defined(SPECULATORS_PLUGIN_NAME) || !defined(SPECULATORS_PLUGIN_VERSION)
// Without speculators_add_plugin the name and version are unknown: the macro then fails to compile
// with this message (define both as string literals to build a plugin another way).
#define SPECULATORS_PLUGIN(REGISTRAR)                                                            \
  static_assert(sizeof(char) == 0,                                                              \
                "SPECULATORS_PLUGIN needs SPECULATORS_PLUGIN_NAME and SPECULATORS_PLUGIN_VERSION: "  \
                "build the plugin with speculators_add_plugin() (cmake/SpeculatorsPlugin.cmake)");  \
  [[maybe_unused]] static void speculators_plugin_register_body(::speculators::Registrar& REGISTRAR)
#else
#define SPECULATORS_PLUGIN(REGISTRAR)                                                            \
  static void speculators_plugin_register_body(::speculators::Registrar& REGISTRAR);            \
  static int speculators_plugin_register_c(void* registrar, char* error,                        \
                                           size_t error_size) noexcept {                        \
    try {                                                                                       \
      speculators_plugin_register_body(*static_cast<::speculators::Registrar*>(registrar));     \
      return 0;                                                                                 \
    } catch (const std::exception& e) {                                                         \
      ::speculators::plugin_detail::copy_error(e.what(), error, error_size);                    \
    } catch (...) {                                                                             \
      ::speculators::plugin_detail::copy_error("unknown exception in register", error,          \
                                               error_size);                                     \
    }                                                                                           \
    return 1;                                                                                   \
  }                                                                                             \
  extern "C" SPECULATORS_PLUGIN_EXPORT const speculators_plugin_descriptor*                     \
  speculators_plugin_descriptor_v1(void) {                                                      \
    static const speculators_plugin_descriptor descriptor = {                                   \
        sizeof(speculators_plugin_descriptor),                                                  \
        SPECULATORS_PLUGIN_ABI_MAJOR,                                                           \
        SPECULATORS_PLUGIN_ABI_MINOR,                                                           \
        TORCH_VERSION_MAJOR,                                                                    \
        TORCH_VERSION_MINOR,                                                                    \
        SPECULATORS_CXX11_ABI_VALUE,                                                            \
        SPECULATORS_WITH_CUDA,                                                                  \
        SPECULATORS_PLUGIN_NAME,                                                                \
        SPECULATORS_PLUGIN_VERSION,                                                             \
        SPECULATORS_BUILD_INFO,                                                                 \
        &speculators_plugin_register_c};                                                        \
    return &descriptor;                                                                         \
  }                                                                                             \
  static void speculators_plugin_register_body(::speculators::Registrar& REGISTRAR)
#endif
