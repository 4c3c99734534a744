// libFuzzer driver for the .npy reader. Any input must either be refused with
// speculators::Error or load to a tensor that save_npy writes and load_npy reads back with the
// same dtype, shape and bytes. Anything else (a crash, an ASan report, another exception) is a
// finding.
#include <cstring>

#include "fuzz_input.h"
#include "speculators/error.h"
#include "speculators/tensor_io.h"

namespace {

using speculators::fuzz::require;

void check_file(const std::string& path, const std::string& resaved) {
  const torch::Tensor t = speculators::load_npy(path);
  require(t.is_contiguous());
  speculators::save_npy(resaved, t);
  const torch::Tensor again = speculators::load_npy(resaved);
  require(again.scalar_type() == t.scalar_type() && again.sizes() == t.sizes());
  const auto bytes = static_cast<std::size_t>(t.numel() * t.element_size());
  require(bytes == 0 || std::memcmp(t.data_ptr(), again.data_ptr(), bytes) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = speculators::fuzz::scratch_path("in.npy");
  static const std::string resaved = speculators::fuzz::scratch_path("out.npy");
  speculators::fuzz::write_input(path, data, size);
  try {
    check_file(path, resaved);
  } catch (const speculators::Error&) {
    // Refusing malformed input with a clear error is the expected outcome.
  }
  return 0;
}
