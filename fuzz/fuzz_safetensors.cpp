// libFuzzer driver for the safetensors reader. Any input must either be refused with
// speculators::Error or be read consistently: read_header agrees with SafetensorsFile, every
// tensor's copy holds the same bytes as its zero-copy view, and what save_safetensors writes
// reads back to the same tensors. Anything else (a crash, an ASan report, another exception)
// is a finding.
#include <cstring>

#include "fuzz_input.h"
#include "speculators/error.h"
#include "speculators/tensor_io.h"

namespace {

using speculators::fuzz::require;

// The bytes of `copy` equal those of `view` (BOOL copies turn any non-zero byte into 1).
void require_same_bytes(const torch::Tensor& copy, const torch::Tensor& view, std::uint64_t bytes) {
  require(copy.is_contiguous() && view.is_contiguous());
  require(static_cast<std::uint64_t>(copy.numel() * copy.element_size()) == bytes);
  require(static_cast<std::uint64_t>(view.numel() * view.element_size()) == bytes);
  const auto* a = static_cast<const unsigned char*>(copy.data_ptr());
  const auto* b = static_cast<const unsigned char*>(view.data_ptr());
  const bool is_bool = copy.scalar_type() == torch::kBool;
  for (std::uint64_t i = 0; i < bytes; ++i) require(a[i] == (is_bool ? (b[i] != 0) : b[i]));
}

void check_file(const std::string& path, const std::string& resaved) {
  std::map<std::string, speculators::TensorInfo> header;
  bool header_ok = true;
  try {
    header = speculators::SafetensorsFile::read_header(path);
  } catch (const speculators::Error&) {
    header_ok = false;
  }
  speculators::SafetensorsFile file(path);
  require(header_ok && header.size() == file.tensors().size());
  std::map<std::string, torch::Tensor> copies;
  for (const auto& [name, info] : file.tensors()) {
    const auto& h = header.at(name);
    require(h.dtype == info.dtype && h.shape == info.shape && h.begin == info.begin && h.end == info.end);
    const torch::Tensor copy = file.get(name);
    require_same_bytes(copy, file.get(name, /*view=*/true), info.end - info.begin);
    copies.emplace(name, copy);
  }
  speculators::save_safetensors(resaved, copies);
  const auto reloaded = speculators::load_safetensors(resaved);
  require(reloaded.size() == copies.size());
  for (const auto& [name, copy] : copies) {
    const torch::Tensor& again = reloaded.at(name);
    require(again.scalar_type() == copy.scalar_type() && again.sizes() == copy.sizes());
    require_same_bytes(again, copy, static_cast<std::uint64_t>(copy.numel() * copy.element_size()));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = speculators::fuzz::scratch_path("in.safetensors");
  static const std::string resaved = speculators::fuzz::scratch_path("out.safetensors");
  speculators::fuzz::write_input(path, data, size);
  try {
    check_file(path, resaved);
  } catch (const speculators::Error&) {
    // Refusing malformed input with a clear error is the expected outcome.
  }
  return 0;
}
