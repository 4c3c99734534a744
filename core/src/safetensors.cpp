// safetensors reading and writing (tensor_io.h). The format: an 8-byte little-endian header
// length N, N bytes of JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, optional
// "__metadata__": {str: str}}, then the data section; offsets are relative to its start.
// Reading maps the file read-only and trusts nothing in the header until it is checked here.
// Writing follows the Rust safetensors writer: compact JSON, header padded with spaces to a
// multiple of 8 bytes, tensors laid out back to back (here in name order).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "atomic_file.h"
#include "speculators/error.h"
#include "speculators/tensor_io.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors and npy data are little-endian and copied byte for byte");

namespace speculators {
namespace {

// The Rust reader's MAX_HEADER_SIZE: anything larger is a corrupt length, not a real header.
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;
constexpr const char* kMetadataKey = "__metadata__";

struct DtypeSpec {
  const char* name;
  torch::ScalarType type;
  std::size_t size;
};

constexpr DtypeSpec kDtypes[] = {
    {"BOOL", torch::kBool, 1},     {"U8", torch::kByte, 1},   {"I8", torch::kChar, 1},
    {"I16", torch::kShort, 2},     {"I32", torch::kInt, 4},   {"I64", torch::kLong, 8},
    {"F16", torch::kHalf, 2},      {"BF16", torch::kBFloat16, 2},
    {"F32", torch::kFloat, 4},     {"F64", torch::kDouble, 8},
};

const DtypeSpec* find_dtype(const std::string& name) {
  for (const auto& d : kDtypes) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

const DtypeSpec* find_dtype(torch::ScalarType type) {
  for (const auto& d : kDtypes) {
    if (type == d.type) return &d;
  }
  return nullptr;
}

std::string known_dtypes() {
  std::string out;
  for (const auto& d : kDtypes) out += std::string(out.empty() ? "" : ", ") + d.name;
  return out;
}

std::string in_file(const std::string& path) { return "safetensors file '" + path + "'"; }
std::string in_tensor(const std::string& path, const std::string& name) {
  return in_file(path) + ": tensor '" + name + "'";
}

std::string shape_str(const std::vector<std::int64_t>& shape) {
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

// A header value for an error message. Containers are only named unless they are a short flat
// list: a hostile header must not make the message huge or its rendering recurse deeply.
std::string show(const nlohmann::json& j) {
  const bool flat_list = j.is_array() && j.size() <= 16 &&
                         std::all_of(j.begin(), j.end(), [](const auto& e) { return e.is_primitive(); });
  if (!j.is_primitive() && !flat_list) return std::string("a JSON ") + j.type_name();
  std::string text = j.dump();
  if (text.size() > 120) text = text.substr(0, 120) + "...";
  return text;
}

std::uint64_t read_le64(const unsigned char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// The stored header length, checked against the file size and against the Rust reader's limit.
std::uint64_t checked_header_length(const std::string& path, const unsigned char* prefix,
                                    std::uint64_t file_size) {
  const std::uint64_t n = read_le64(prefix);
  if (n > kMaxHeaderBytes) {
    fail_data(in_file(path) + ": header length " + std::to_string(n) +
              " is too large (limit " + std::to_string(kMaxHeaderBytes) + " bytes); not a safetensors file?");
  }
  if (n > file_size - 8) {
    fail_data(in_file(path) + ": header length " + std::to_string(n) + " runs past the end of the file (" +
              std::to_string(file_size) + " bytes)");
  }
  return n;
}

// Reads "shape": a list of non-negative integers whose element count, and every stride, fits
// in int64 (so torch can index it) and whose byte size fits in uint64.
std::vector<std::int64_t> parse_shape(const std::string& where, const nlohmann::json& j) {
  if (!j.is_array()) fail_data(where + ": \"shape\" must be a list of non-negative integers, got " + show(j));
  std::vector<std::int64_t> shape;
  std::uint64_t span = 1;  // product of max(dim, 1): bounds every stride
  for (const auto& d : j) {
    if (!d.is_number_unsigned() || d.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)) {
      fail_data(where + ": \"shape\" must be a list of non-negative integers, got " + show(j));
    }
    const std::uint64_t dim = d.get<std::uint64_t>();
    if (__builtin_mul_overflow(span, std::max<std::uint64_t>(dim, 1), &span) ||
        span > static_cast<std::uint64_t>(INT64_MAX)) {
      fail_data(where + ": shape " + j.dump() + " is too large");
    }
    shape.push_back(static_cast<std::int64_t>(dim));
  }
  return shape;
}

TensorInfo parse_tensor(const std::string& path, const std::string& name, const nlohmann::json& j) {
  const std::string where = in_tensor(path, name);
  if (!j.is_object()) fail_data(where + ": entry must be an object with dtype, shape, data_offsets");
  TensorInfo info;
  const auto dtype = j.find("dtype");
  if (dtype == j.end() || !dtype->is_string()) fail_data(where + ": \"dtype\" missing or not a string");
  info.dtype = dtype->get<std::string>();
  const DtypeSpec* spec = find_dtype(info.dtype);
  if (!spec) fail_data(where + ": unknown dtype '" + info.dtype + "' (known: " + known_dtypes() + ")");

  const auto shape = j.find("shape");
  if (shape == j.end()) fail_data(where + ": \"shape\" missing");
  info.shape = parse_shape(where, *shape);

  const auto offsets = j.find("data_offsets");
  if (offsets == j.end() || !offsets->is_array() || offsets->size() != 2 ||
      !(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned()) {
    fail_data(where + ": \"data_offsets\" must be [begin, end] with non-negative integers, got " +
              (offsets == j.end() ? std::string("nothing") : show(*offsets)));
  }
  info.begin = (*offsets)[0].get<std::uint64_t>();
  info.end = (*offsets)[1].get<std::uint64_t>();
  if (info.begin > info.end) {
    fail_data(where + ": data_offsets " + offsets->dump() + " has begin > end");
  }
  std::uint64_t bytes = spec->size;
  for (const auto d : info.shape) {
    if (__builtin_mul_overflow(bytes, static_cast<std::uint64_t>(d), &bytes)) {
      fail_data(where + ": shape " + shape_str(info.shape) + " is too large");
    }
  }
  if (info.end - info.begin != bytes) {
    fail_data(where + ": data_offsets " + offsets->dump() + " span " + std::to_string(info.end - info.begin) +
              " bytes but " + info.dtype + " x " + shape_str(info.shape) + " needs " + std::to_string(bytes));
  }
  return info;
}

// Non-empty tensors may not share bytes. Gaps between tensors are tolerated.
void check_no_overlap(const std::string& path, const std::map<std::string, TensorInfo>& infos) {
  std::vector<std::pair<const std::string*, const TensorInfo*>> ranges;
  for (const auto& [name, info] : infos) {
    if (info.end > info.begin) ranges.emplace_back(&name, &info);
  }
  std::sort(ranges.begin(), ranges.end(), [](const auto& a, const auto& b) {
    return a.second->begin < b.second->begin;
  });
  for (std::size_t i = 1; i < ranges.size(); ++i) {
    const auto& [prev_name, prev] = ranges[i - 1];
    const auto& [name, info] = ranges[i];
    if (info->begin < prev->end) {
      fail_data(in_file(path) + ": tensors '" + *prev_name + "' and '" + *name + "' overlap (bytes [" +
                std::to_string(prev->begin) + ", " + std::to_string(prev->end) + ") and [" +
                std::to_string(info->begin) + ", " + std::to_string(info->end) + "))");
    }
  }
}

struct ParsedHeader {
  std::map<std::string, TensorInfo> tensors;
  Json metadata = Json::object();
};

// Parses and checks the JSON header. `data_size` bounds the offsets when the caller knows it
// (read_header does not look at the data section, so it passes nothing).
ParsedHeader parse_header(const std::string& path, const char* text, std::size_t size,
                          const std::uint64_t* data_size) {
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(text, text + size);
  } catch (const nlohmann::json::exception& e) {
    fail_data(in_file(path) + ": header is not valid JSON: " + e.what());
  }
  if (!root.is_object()) fail_data(in_file(path) + ": header must be a JSON object, got " + root.type_name());
  ParsedHeader out;
  for (const auto& [name, value] : root.items()) {
    if (name == kMetadataKey) {
      // The Rust reader types metadata as HashMap<String, String>.
      if (!value.is_object()) fail_data(in_file(path) + ": \"__metadata__\" must be an object of strings");
      Json::Object fields;
      for (const auto& [key, v] : value.items()) {
        if (!v.is_string()) {
          fail_data(in_file(path) + ": \"__metadata__\" value for '" + key + "' must be a string, got " + show(v));
        }
        fields.emplace(key, Json(v.get<std::string>()));
      }
      out.metadata = Json(std::move(fields));
      continue;
    }
    TensorInfo info = parse_tensor(path, name, value);
    if (data_size && info.end > *data_size) {
      fail_data(in_tensor(path, name) + ": data_offsets [" + std::to_string(info.begin) + ", " +
                std::to_string(info.end) + "] run past the end of the data section (" +
                std::to_string(*data_size) + " bytes); file truncated?");
    }
    out.tensors.emplace(name, std::move(info));
  }
  check_no_overlap(path, out.tensors);
  return out;
}

// Reads exactly `size` bytes at `offset`, or fails naming the file.
void pread_all(int fd, const std::string& path, void* buf, std::size_t size, std::uint64_t offset) {
  char* p = static_cast<char*>(buf);
  while (size > 0) {
    const ssize_t n = ::pread(fd, p, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      fail(in_file(path) + ": read failed: " + (n < 0 ? std::strerror(errno) : "unexpected end of file"));
    }
    p += n;
    size -= static_cast<std::size_t>(n);
    offset += static_cast<std::uint64_t>(n);
  }
}

// An open file descriptor that closes itself.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

std::uint64_t open_and_size(Fd& file, const std::string& path) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer before the S_ISREG check refuses it.
  file.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (file.fd < 0) fail(in_file(path) + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(file.fd, &st) != 0) fail(in_file(path) + ": cannot stat: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail_data(in_file(path) + ": not a regular file");
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size < 8) {
    fail_data(in_file(path) + ": file is " + std::to_string(size) +
              " bytes, shorter than the 8-byte header length");
  }
  return size;
}

}  // namespace

// A read-only private mapping of the whole file. Views handed out by get() hold a shared_ptr to
// it, so it outlives the SafetensorsFile when they do.
struct SafetensorsFile::Mapping {
  void* addr = MAP_FAILED;
  std::size_t size = 0;
  const unsigned char* data = nullptr;  // start of the data section
  ~Mapping() {
    if (addr != MAP_FAILED) ::munmap(addr, size);
  }
};

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  Fd file{-1};
  const std::uint64_t file_size = open_and_size(file, path);
  auto mapping = std::make_shared<Mapping>();
  mapping->addr = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, file.fd, 0);
  if (mapping->addr == MAP_FAILED) fail(in_file(path) + ": cannot mmap: " + std::strerror(errno));
  mapping->size = file_size;
  const auto* bytes = static_cast<const unsigned char*>(mapping->addr);
  const std::uint64_t n = checked_header_length(path, bytes, file_size);
  const std::uint64_t data_size = file_size - 8 - n;
  ParsedHeader header = parse_header(path, reinterpret_cast<const char*>(bytes + 8), n, &data_size);
  mapping->data = bytes + 8 + n;
  infos_ = std::move(header.tensors);
  metadata_ = std::move(header.metadata);
  mapping_ = std::move(mapping);
}

SafetensorsFile::~SafetensorsFile() = default;

std::map<std::string, TensorInfo> SafetensorsFile::read_header(const std::string& path, Json* metadata) {
  Fd file{-1};
  const std::uint64_t file_size = open_and_size(file, path);
  unsigned char prefix[8];
  pread_all(file.fd, path, prefix, 8, 0);
  const std::uint64_t n = checked_header_length(path, prefix, file_size);
  std::string text(n, '\0');
  pread_all(file.fd, path, text.data(), n, 8);
  ParsedHeader header = parse_header(path, text.data(), text.size(), nullptr);
  if (metadata) *metadata = std::move(header.metadata);
  return std::move(header.tensors);
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(infos_.size());
  for (const auto& [name, info] : infos_) out.push_back(name);
  return out;
}

// Views point into the read-only mapping: writing through one is a segmentation fault, and a
// BOOL view shows the stored bytes as they are. Copies turn every non-zero BOOL byte into true.
torch::Tensor SafetensorsFile::get(const std::string& name, bool view) const {
  const auto it = infos_.find(name);
  if (it == infos_.end()) {
    std::string known;
    for (const auto& [n, info] : infos_) {
      if (known.size() > 200) {
        known += ", ...";
        break;
      }
      known += (known.empty() ? "" : ", ") + n;
    }
    fail_data(in_file(path_) + ": no tensor '" + name + "' (has: " + known + ")");
  }
  const TensorInfo& info = it->second;
  const DtypeSpec& spec = *find_dtype(info.dtype);
  const unsigned char* data = mapping_->data + info.begin;
  const std::size_t bytes = info.end - info.begin;
  // from_blob needs element-aligned memory; a hand-made header can leave data misaligned.
  if (view && reinterpret_cast<std::uintptr_t>(data) % spec.size == 0) {
    auto keep_alive = mapping_;
    return torch::from_blob(const_cast<unsigned char*>(data), info.shape,
                            [keep_alive](void*) {}, torch::TensorOptions().dtype(spec.type));
  }
  const bool is_bool = spec.type == torch::kBool;
  torch::Tensor out = torch::empty(info.shape, torch::TensorOptions().dtype(is_bool ? torch::kByte : spec.type));
  if (bytes > 0) std::memcpy(out.data_ptr(), data, bytes);
  return is_bool ? out.ne(0) : out;
}

void save_safetensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  struct Item {
    const std::string* name;
    const DtypeSpec* spec;
    torch::Tensor data;  // contiguous CPU
    std::uint64_t begin, end;
  };
  std::vector<Item> items;
  std::uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {  // std::map: name order
    if (name == kMetadataKey) fail(in_file(path) + ": '__metadata__' cannot be a tensor name");
    if (!tensor.defined()) fail(in_tensor(path, name) + ": tensor is undefined");
    const DtypeSpec* spec = find_dtype(tensor.scalar_type());
    if (!spec) {
      fail(in_tensor(path, name) + ": dtype " + std::string(c10::toString(tensor.scalar_type())) +
           " cannot be stored (supported: " + known_dtypes() + ")");
    }
    torch::Tensor data = tensor.detach().to(torch::kCPU).contiguous();
    const auto bytes = static_cast<std::uint64_t>(data.numel()) * spec->size;
    items.push_back({&name, spec, std::move(data), offset, offset + bytes});
    offset += bytes;
  }

  // ordered_json keeps the Rust writer's field order: __metadata__ first, then each tensor's
  // dtype, shape, data_offsets.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  for (const auto& item : items) {
    auto& entry = header[*item.name];
    entry["dtype"] = item.spec->name;
    entry["shape"] = item.data.sizes().vec();
    entry["data_offsets"] = {item.begin, item.end};
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {  // a name or value that is not UTF-8
    fail(in_file(path) + ": cannot encode header: " + e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');

  unsigned char prefix[8];
  for (int i = 0; i < 8; ++i) prefix[i] = static_cast<unsigned char>(text.size() >> (8 * i));
  AtomicFileWriter out(path);
  out.write(prefix, 8);
  out.write(text);
  for (const auto& item : items) out.write(item.data.data_ptr(), item.end - item.begin);
  out.commit();
}

std::map<std::string, torch::Tensor> load_safetensors(const std::string& path) {
  SafetensorsFile file(path);
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, info] : file.tensors()) out.emplace(name, file.get(name));
  return out;
}

torch::ScalarType dtype_from_safetensors(const std::string& name) {
  const DtypeSpec* spec = find_dtype(name);
  if (!spec) fail("unknown safetensors dtype '" + name + "' (known: " + known_dtypes() + ")");
  return spec->type;
}

std::string dtype_to_safetensors(torch::ScalarType type) {
  const DtypeSpec* spec = find_dtype(type);
  if (!spec) {
    fail("torch dtype " + std::string(c10::toString(type)) + " has no safetensors name here (supported: " +
         known_dtypes() + ")");
  }
  return spec->name;
}

}  // namespace speculators
