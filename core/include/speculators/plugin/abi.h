/* Tier 0 of the plugin ABI: frozen C (docs/design.md, docs/plugins.md).
 *
 * A plugin exports exactly one symbol, speculators_plugin_descriptor_v1, returning a pointer to
 * a plain descriptor. The host reads and checks the descriptor before it calls anything else:
 * struct size, ABI major/minor, LibTorch major.minor, the C++11 ABI flag, the CUDA flag, and the
 * name against the file stem. Only then does it call `register_fn`, which reports errors as
 * text and never throws. The struct only ever grows at the end; a new field bumps the minor.
 */
#ifndef SPECULATORS_PLUGIN_ABI_H_
#define SPECULATORS_PLUGIN_ABI_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SPECULATORS_PLUGIN_ABI_MAJOR 2  /* 2: Option carries its numeric range */
#define SPECULATORS_PLUGIN_ABI_MINOR 1  /* 2.1: DraftModel::optimizer_group */
#define SPECULATORS_PLUGIN_ENTRY_SYMBOL "speculators_plugin_descriptor_v1"

#if defined(__GNUC__)
#define SPECULATORS_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define SPECULATORS_PLUGIN_EXPORT
#endif

/* Registers the plugin's algorithms into `registrar` (a speculators::Registrar*). Returns 0 on
 * success; otherwise writes a NUL-terminated reason into `error` (at most `error_size` bytes)
 * and returns non-zero. Must not throw. */
typedef int (*speculators_register_fn)(void* registrar, char* error, size_t error_size);

typedef struct speculators_plugin_descriptor {
  uint32_t struct_size;      /* sizeof(speculators_plugin_descriptor) as the plugin saw it */
  uint32_t abi_major;        /* must equal the host's */
  uint32_t abi_minor;        /* must not be newer than the host's */
  uint32_t torch_major;      /* LibTorch the plugin was compiled against */
  uint32_t torch_minor;
  uint32_t cxx11_abi;        /* _GLIBCXX_USE_CXX11_ABI of the plugin */
  uint32_t cuda;             /* 1 if the plugin needs CUDA */
  const char* name;          /* must equal the file stem: <name>.so */
  const char* version;       /* the plugin's own version, free text */
  const char* build_info;    /* compiler and build type, free text */
  speculators_register_fn register_fn;
} speculators_plugin_descriptor;

typedef const speculators_plugin_descriptor* (*speculators_plugin_entry_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* SPECULATORS_PLUGIN_ABI_H_ */
