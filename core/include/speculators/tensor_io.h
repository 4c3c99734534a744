// Tensor files: safetensors (read memory-mapped, write atomically) and NumPy .npy.
// Readers check every byte they trust: header length within the file, valid JSON, known dtype,
// offsets in range and non-overlapping, byte length equal to dtype size x shape.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "speculators/json.h"

namespace speculators {

struct TensorInfo {
  std::string dtype;                 // safetensors name: "BF16", "F32", "I64", "BOOL", ...
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0;           // byte offsets into the data section
  std::uint64_t end = 0;
};

// A memory-mapped safetensors file. Tensors returned by get() are copies by default, or
// zero-copy views that keep the mapping alive when `view` is true. The mapping is read-only:
// never write through a view (it faults); clone() it first. A view of data not aligned to its
// element size is returned as a copy instead. The file must not be truncated while mapped.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  // Reads only the header (8-byte length + JSON); never maps or reads the data section.
  static std::map<std::string, TensorInfo> read_header(const std::string& path,
                                                       Json* metadata = nullptr);

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorInfo>& tensors() const { return infos_; }
  const Json& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return infos_.count(name) != 0; }
  std::vector<std::string> names() const;
  torch::Tensor get(const std::string& name, bool view = false) const;

 private:
  struct Mapping;
  std::string path_;
  std::map<std::string, TensorInfo> infos_;
  Json metadata_;
  std::shared_ptr<Mapping> mapping_;
};

// Writes tensors (contiguous CPU copies are made as needed) in safetensors format, names sorted,
// metadata {"format": "pt"} unless given. Atomic: temporary file, fsync, rename.
void save_safetensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {{"format", "pt"}});
// Reads every tensor of a file (copies).
std::map<std::string, torch::Tensor> load_safetensors(const std::string& path);

// safetensors dtype name <-> torch dtype; unknown names throw Error.
torch::ScalarType dtype_from_safetensors(const std::string& name);
std::string dtype_to_safetensors(torch::ScalarType type);

// NumPy .npy v1/v2/v3, C order, little-endian: bool, int8..int64, uint8, float16/32/64.
torch::Tensor load_npy(const std::string& path);
void save_npy(const std::string& path, const torch::Tensor& tensor);

}  // namespace speculators
