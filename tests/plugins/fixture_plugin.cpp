// One fixture plugin source compiled into many variants (the Vulkan-Loader pattern).
// The descriptor is written out by hand, not with SPECULATORS_PLUGIN, so that each -D flag can
// falsify exactly one field the host checks:
//
//   FIXTURE_NAME="stem"          file stem; also the declared name unless FIXTURE_DECLARED_NAME
//   FIXTURE_DECLARED_NAME="x"    the descriptor's name (a name that does not match the stem)
//   FIXTURE_VERSION="1.0.0"      the plugin version
//   FIXTURE_STRUCT_SIZE=n        struct_size (default: sizeof the descriptor)
//   FIXTURE_ABI_MAJOR / FIXTURE_ABI_MINOR / FIXTURE_TORCH_MAJOR / FIXTURE_TORCH_MINOR /
//   FIXTURE_CXX11_ABI / FIXTURE_CUDA      fingerprint fields (default: this build's values)
//   FIXTURE_NO_ENTRY             the entry point is compiled but not exported
//   FIXTURE_NULL_DESCRIPTOR      the entry point returns a null pointer
//   FIXTURE_REGISTER_FAILS       registers its algorithm, then returns 1 with an error text
//   FIXTURE_REGISTER_THROWS      registers its algorithm, then throws through the C boundary
//   FIXTURE_REGISTER_SILENT_FAIL returns 1 without an error text
//   FIXTURE_REGISTER_SEGFAULT    dereferences a null pointer in register (signal 11)
//   FIXTURE_REGISTER_ABORT       calls std::abort() in register (signal 6)
//   FIXTURE_REGISTER_HANG        never returns from register
//   FIXTURE_EXTRA_ALGORITHM="x"  also registers an algorithm named x (a duplicate when x exists)
//   FIXTURE_ALGORITHM_NAME="x"   registers its algorithm as x instead of FIXTURE_NAME (the plugin
//                                then has no algorithm of its own name)
//
// Every other fixture that registers, registers an algorithm named FIXTURE_NAME (fixture_algorithm.h).
#include <torch/version.h>

#include <cstddef>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <thread>
#include <stdexcept>

#include "fixture_algorithm.h"
#include "speculators/plugin/abi.h"

#ifndef FIXTURE_NAME
#error "FIXTURE_NAME must be defined"
#endif
#ifndef FIXTURE_DECLARED_NAME
#define FIXTURE_DECLARED_NAME FIXTURE_NAME
#endif
#ifndef FIXTURE_ALGORITHM_NAME
#define FIXTURE_ALGORITHM_NAME FIXTURE_NAME
#endif
#ifndef FIXTURE_VERSION
#define FIXTURE_VERSION "1.0.0"
#endif
#ifndef FIXTURE_STRUCT_SIZE
#define FIXTURE_STRUCT_SIZE sizeof(speculators_plugin_descriptor)
#endif
#ifndef FIXTURE_ABI_MAJOR
#define FIXTURE_ABI_MAJOR SPECULATORS_PLUGIN_ABI_MAJOR
#endif
#ifndef FIXTURE_ABI_MINOR
#define FIXTURE_ABI_MINOR SPECULATORS_PLUGIN_ABI_MINOR
#endif
#ifndef FIXTURE_TORCH_MAJOR
#define FIXTURE_TORCH_MAJOR TORCH_VERSION_MAJOR
#endif
#ifndef FIXTURE_TORCH_MINOR
#define FIXTURE_TORCH_MINOR TORCH_VERSION_MINOR
#endif
#ifndef FIXTURE_CXX11_ABI
#define FIXTURE_CXX11_ABI _GLIBCXX_USE_CXX11_ABI
#endif
#ifndef FIXTURE_CUDA
#define FIXTURE_CUDA 0
#endif

namespace {

#if defined(FIXTURE_REGISTER_SEGFAULT) || defined(FIXTURE_REGISTER_ABORT) || defined(FIXTURE_REGISTER_HANG)
// Ends the process (or never returns) in the middle of registration, as a buggy plugin can.
int fixture_register(void* registrar, char*, size_t) {
  speculators::fixture::register_algorithm(registrar, FIXTURE_NAME);
#if defined(FIXTURE_REGISTER_SEGFAULT)
  volatile int* volatile null_pointer = nullptr;
  *null_pointer = 1;
#elif defined(FIXTURE_REGISTER_ABORT)
  std::abort();
#else
  for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
#endif
  return 0;
}
#elif defined(FIXTURE_REGISTER_THROWS)
// Deliberately breaks the "must not throw" rule of plugin/abi.h after registering something.
int fixture_register(void* registrar, char*, size_t) {
  speculators::fixture::register_algorithm(registrar, FIXTURE_NAME);
  throw std::runtime_error("fixture " FIXTURE_NAME " throws in register");
}
#else
void write_error(char* error, size_t error_size, const char* message) {
  if (error != nullptr && error_size > 0) std::snprintf(error, error_size, "%s", message);
}

int fixture_register(void* registrar, char* error, size_t error_size) noexcept {
  try {
#if defined(FIXTURE_REGISTER_SILENT_FAIL)
    (void)registrar;
    return 1;
#else
    speculators::fixture::register_algorithm(registrar, FIXTURE_ALGORITHM_NAME);
#if defined(FIXTURE_EXTRA_ALGORITHM)
    speculators::fixture::register_algorithm(registrar, FIXTURE_EXTRA_ALGORITHM);
#endif
#if defined(FIXTURE_REGISTER_FAILS)
    write_error(error, error_size, "fixture " FIXTURE_NAME " refuses to register");
    return 1;
#endif
    return 0;
#endif
  } catch (const std::exception& e) {
    write_error(error, error_size, e.what());
  } catch (...) {
    write_error(error, error_size, "unknown exception");
  }
  return 1;
}
#endif

const speculators_plugin_descriptor kDescriptor = {
    static_cast<uint32_t>(FIXTURE_STRUCT_SIZE),
    FIXTURE_ABI_MAJOR,
    FIXTURE_ABI_MINOR,
    FIXTURE_TORCH_MAJOR,
    FIXTURE_TORCH_MINOR,
    FIXTURE_CXX11_ABI,
    FIXTURE_CUDA,
    FIXTURE_DECLARED_NAME,
    FIXTURE_VERSION,
    "fixture build",
    &fixture_register,
};

}  // namespace

#if defined(FIXTURE_NO_ENTRY)
// Same function, hidden: dlsym must not find it.
extern "C" __attribute__((visibility("hidden"))) const speculators_plugin_descriptor*
speculators_plugin_descriptor_v1(void) {
  return &kDescriptor;
}
#elif defined(FIXTURE_NULL_DESCRIPTOR)
extern "C" SPECULATORS_PLUGIN_EXPORT const speculators_plugin_descriptor* speculators_plugin_descriptor_v1(void) {
  return nullptr;
}
#else
extern "C" SPECULATORS_PLUGIN_EXPORT const speculators_plugin_descriptor* speculators_plugin_descriptor_v1(void) {
  return &kDescriptor;
}
#endif
