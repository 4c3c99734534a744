// keep_large_allocations_on_heap against glibc's own accounting (mallinfo2: hblks counts the
// blocks served by mmap). Each case runs in a child: the allocator settings must not reach this
// process or the other cases.
#include "observe/allocator.h"

#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

namespace {

// Runs `body` in a child and returns its exit status (0 = every check held there).
int in_child(const std::function<int()>& body) {
  const pid_t child = ::fork();
  if (child < 0) return -1;
  if (child == 0) ::_exit(body());
  int status = 0;
  if (::waitpid(child, &status, 0) != child || !WIFEXITED(status)) return -2;
  return WEXITSTATUS(status);
}

// 1 when a 64 MiB block (above glibc's largest mmap threshold, 32 MiB) came from mmap.
int large_block_is_mapped() {
  const std::size_t before = mallinfo2().hblks;
  void* block = std::malloc(std::size_t{64} << 20);
  if (block == nullptr) return 9;
  std::memset(block, 1, 4096);
  const std::size_t after = mallinfo2().hblks;
  std::free(block);
  return after > before ? 1 : 0;
}

void clear_malloc_environment() {
  for (const char* name : {"MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES", "SPECULATORS_MALLOC"}) {
    ::unsetenv(name);
  }
}

}  // namespace

TEST_CASE("by default glibc maps a 64 MiB block; after the setting it comes from the heap", "[observe][allocator]") {
  REQUIRE(in_child([] { return large_block_is_mapped() == 1 ? 0 : 1; }) == 0);
  REQUIRE(in_child([] {
            clear_malloc_environment();
            if (speculators::keep_large_allocations_on_heap() != "heap reuse for large tensors") return 2;
            return large_block_is_mapped() == 0 ? 0 : 1;
          }) == 0);
}

TEST_CASE("the environment's allocator settings win", "[observe][allocator]") {
  for (const char* name : {"GLIBC_TUNABLES", "MALLOC_MMAP_MAX_", "SPECULATORS_MALLOC"}) {
    INFO(name);
    REQUIRE(in_child([name] {
              clear_malloc_environment();
              ::setenv(name, std::strcmp(name, "SPECULATORS_MALLOC") == 0 ? "system" : "glibc.malloc.check=0", 1);
              const std::string said = speculators::keep_large_allocations_on_heap();
              if (said.find("heap reuse") != std::string::npos) return 2;
              return large_block_is_mapped() == 1 ? 0 : 1;
            }) == 0);
  }
}
