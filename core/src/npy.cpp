// NumPy .npy reading (format versions 1.0, 2.0, 3.0) and writing (1.0), as numpy.lib.format
// defines it: magic "\x93NUMPY", major and minor version bytes, a little-endian header length
// (2 bytes in 1.0, 4 in 2.0/3.0), then the repr of a dict {'descr', 'fortran_order', 'shape'}
// padded with spaces and a final '\n' so the data starts on a 64-byte boundary, then the raw
// array in C order. Only little-endian plain dtypes that LibTorch has are supported. The
// vocabulary mappings d2t (int64) and t2d (bool) arrive as .npy files.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "atomic_file.h"
#include "speculators/error.h"
#include "speculators/tensor_io.h"

namespace speculators {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicLen = 6;
constexpr std::size_t kAlign = 64;               // numpy's ARRAY_ALIGN
constexpr std::size_t kGrowthAxisMaxDigits = 21;  // numpy's GROWTH_AXIS_MAX_DIGITS
// numpy refuses headers over 10000 bytes by default (max_header_size); allow more, but bounded.
constexpr std::uint64_t kMaxHeaderBytes = 1 << 20;

struct NpyDtype {
  const char* descr;
  torch::ScalarType type;
  std::size_t size;
};

constexpr NpyDtype kDtypes[] = {
    {"|b1", torch::kBool, 1},  {"|i1", torch::kChar, 1},  {"|u1", torch::kByte, 1},
    {"<i2", torch::kShort, 2}, {"<i4", torch::kInt, 4},   {"<i8", torch::kLong, 8},
    {"<f2", torch::kHalf, 2},  {"<f4", torch::kFloat, 4}, {"<f8", torch::kDouble, 8},
};

std::string in_file(const std::string& path) { return "npy file '" + path + "'"; }

// numpy writes one-byte types with '|' but reads '<' just as well.
const NpyDtype& dtype_from_descr(const std::string& path, const std::string& descr) {
  if (!descr.empty() && descr[0] == '>') {
    fail_data(in_file(path) + ": big-endian dtype '" + descr + "' is not supported (save it little-endian)");
  }
  for (const auto& d : kDtypes) {
    if (descr == d.descr || (d.size == 1 && descr.size() == 3 && descr[0] == '<' && descr.substr(1) == d.descr + 1)) {
      return d;
    }
  }
  std::string known;
  for (const auto& d : kDtypes) known += std::string(known.empty() ? "" : ", ") + d.descr;
  fail_data(in_file(path) + ": unsupported dtype '" + descr + "' (supported: " + known + ")");
}

struct NpyHeader {
  const NpyDtype* dtype = nullptr;
  std::vector<std::int64_t> shape;
};

// A parser for the Python literal numpy writes as the header: a dict of exactly 'descr' (a
// string), 'fortran_order' (True/False) and 'shape' (a tuple of ints), in any order, with
// optional whitespace and trailing commas. Python 2 writers put an 'L' after long ints.
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& path) : text_(text), path_(path) {}

  NpyHeader parse() {
    NpyHeader out;
    bool have_descr = false, have_order = false, have_shape = false;
    expect('{');
    while (!at('}')) {
      const std::string key = parse_string();
      expect(':');
      if (key == "descr") {
        if (have_descr) error("'descr' appears twice");
        if (at('[')) error("structured dtypes are not supported");
        const std::string descr = parse_string();
        out.dtype = &dtype_from_descr(path_, descr);
        have_descr = true;
      } else if (key == "fortran_order") {
        if (have_order) error("'fortran_order' appears twice");
        if (parse_bool()) {
          fail_data(in_file(path_) + ": fortran_order True is not supported (save a C-ordered array)");
        }
        have_order = true;
      } else if (key == "shape") {
        if (have_shape) error("'shape' appears twice");
        out.shape = parse_shape();
        have_shape = true;
      } else {
        error("unexpected key '" + key + "'");
      }
      if (!at('}')) expect(',');
    }
    expect('}');
    skip_space();
    if (pos_ != text_.size()) error("unexpected text after the dict");
    if (!have_descr || !have_order || !have_shape) {
      error("the dict must have the keys 'descr', 'fortran_order' and 'shape'");
    }
    return out;
  }

 private:
  [[noreturn]] void error(const std::string& what) const {
    fail_data(in_file(path_) + ": bad header at byte " + std::to_string(pos_) + ": " + what);
  }
  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\n' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\r')) {
      ++pos_;
    }
  }
  // Skips whitespace, then reports whether the next character is c.
  bool at(char c) {
    skip_space();
    return pos_ < text_.size() && text_[pos_] == c;
  }
  void expect(char c) {
    if (!at(c)) error(std::string("expected '") + c + "'");
    ++pos_;
  }
  std::string parse_string() {
    skip_space();
    if (pos_ >= text_.size() || (text_[pos_] != '\'' && text_[pos_] != '"')) error("expected a quoted string");
    const char quote = text_[pos_++];
    const auto close = text_.find(quote, pos_);
    if (close == std::string::npos) error("unterminated string");
    std::string s = text_.substr(pos_, close - pos_);
    if (s.find('\\') != std::string::npos) error("escapes in strings are not supported");
    pos_ = close + 1;
    return s;
  }
  bool parse_bool() {
    skip_space();
    for (const char* word : {"True", "False"}) {
      const std::size_t n = std::strlen(word);
      if (text_.compare(pos_, n, word) == 0) {
        pos_ += n;
        return word[0] == 'T';
      }
    }
    error("expected True or False");
  }
  std::int64_t parse_dim() {
    skip_space();
    if (pos_ >= text_.size() || text_[pos_] < '0' || text_[pos_] > '9') error("shape entries must be non-negative integers");
    std::int64_t v = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, text_[pos_] - '0', &v)) {
        error("shape entry too large");
      }
      ++pos_;
    }
    if (pos_ < text_.size() && text_[pos_] == 'L') ++pos_;
    return v;
  }
  std::vector<std::int64_t> parse_shape() {
    expect('(');
    std::vector<std::int64_t> shape;
    while (!at(')')) {
      shape.push_back(parse_dim());
      // Python needs the comma in a 1-tuple: "(5)" is the int 5, not a shape.
      if (at(',')) {
        ++pos_;
      } else if (shape.size() == 1 || !at(')')) {
        error("shape must be a tuple such as (), (5,) or (2, 3)");
      }
    }
    expect(')');
    return shape;
  }

  const std::string& text_;
  const std::string& path_;
  std::size_t pos_ = 0;
};

// Element count and byte size of a shape, or an error when either overflows.
std::uint64_t byte_size(const std::string& path, const std::vector<std::int64_t>& shape, std::size_t item) {
  std::uint64_t bytes = item;
  std::uint64_t span = 1;  // product of max(dim, 1): bounds every stride
  for (const auto d : shape) {
    const auto dim = static_cast<std::uint64_t>(d);
    if (__builtin_mul_overflow(bytes, dim, &bytes) ||
        __builtin_mul_overflow(span, std::max<std::uint64_t>(dim, 1), &span) ||
        span > static_cast<std::uint64_t>(INT64_MAX)) {
      fail_data(in_file(path) + ": shape is too large");
    }
  }
  return bytes;
}

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// Reads up to `size` bytes at `offset`; returns how many were there.
std::size_t pread_some(const Fd& file, const std::string& path, void* buf, std::size_t size, std::uint64_t offset) {
  char* p = static_cast<char*>(buf);
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pread(file.fd, p + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(in_file(path) + ": read failed: " + std::strerror(errno));
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  return done;
}

std::string shape_repr(const std::vector<std::int64_t>& shape) {
  std::string out = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + (shape.size() == 1 ? ",)" : ")");
}

}  // namespace

torch::Tensor load_npy(const std::string& path) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer before the S_ISREG check refuses it.
  Fd file{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)};
  if (file.fd < 0) fail(in_file(path) + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(file.fd, &st) != 0) fail(in_file(path) + ": cannot stat: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail_data(in_file(path) + ": not a regular file");
  const auto file_size = static_cast<std::uint64_t>(st.st_size);

  unsigned char prefix[12] = {};
  const std::size_t got = pread_some(file, path, prefix, sizeof(prefix), 0);
  if (got < kMagicLen || std::memcmp(prefix, kMagic, kMagicLen) != 0) {
    fail_data(in_file(path) + ": not a .npy file (missing the \\x93NUMPY magic)");
  }
  if (got < 8) fail_data(in_file(path) + ": truncated header (file is " + std::to_string(file_size) + " bytes)");
  const int major = prefix[6];
  const int minor = prefix[7];
  if ((major != 1 && major != 2 && major != 3) || minor != 0) {
    fail_data(in_file(path) + ": unsupported format version " + std::to_string(major) + "." +
              std::to_string(minor) + " (supported: 1.0, 2.0, 3.0)");
  }
  const std::size_t len_bytes = major == 1 ? 2 : 4;
  if (got < 8 + len_bytes) fail_data(in_file(path) + ": truncated header (file is " + std::to_string(file_size) + " bytes)");
  std::uint64_t header_len = 0;
  for (std::size_t i = len_bytes; i-- > 0;) header_len = (header_len << 8) | prefix[8 + i];
  const std::uint64_t data_offset = 8 + len_bytes + header_len;
  if (header_len > kMaxHeaderBytes) {
    fail_data(in_file(path) + ": header length " + std::to_string(header_len) + " is too large");
  }
  if (data_offset > file_size) {
    fail_data(in_file(path) + ": truncated header (" + std::to_string(header_len) + " bytes declared, file is " +
              std::to_string(file_size) + " bytes)");
  }
  std::string text(header_len, '\0');
  pread_some(file, path, text.data(), header_len, 8 + len_bytes);
  const NpyHeader header = HeaderParser(text, path).parse();

  const std::uint64_t bytes = byte_size(path, header.shape, header.dtype->size);
  if (file_size - data_offset < bytes) {
    fail_data(in_file(path) + ": data is " + std::to_string(file_size - data_offset) + " bytes but shape " +
              shape_repr(header.shape) + " of '" + header.dtype->descr + "' needs " + std::to_string(bytes));
  }
  const bool is_bool = header.dtype->type == torch::kBool;
  torch::Tensor out =
      torch::empty(header.shape, torch::TensorOptions().dtype(is_bool ? torch::kByte : header.dtype->type));
  if (pread_some(file, path, out.data_ptr(), bytes, data_offset) != bytes) {
    fail_data(in_file(path) + ": file shrank while being read");
  }
  // numpy writes bools as 0/1; any other byte is read as true rather than kept as an odd bool.
  return is_bool ? out.ne(0) : out;
}

void save_npy(const std::string& path, const torch::Tensor& tensor) {
  if (!tensor.defined()) fail(in_file(path) + ": tensor is undefined");
  const NpyDtype* dtype = nullptr;
  for (const auto& d : kDtypes) {
    if (d.type == tensor.scalar_type()) dtype = &d;
  }
  if (tensor.scalar_type() == torch::kBFloat16) {
    fail(in_file(path) + ": bfloat16 has no numpy dtype; convert to float32 before saving");
  }
  if (!dtype) {
    fail(in_file(path) + ": dtype " + std::string(c10::toString(tensor.scalar_type())) +
         " cannot be stored in .npy here (supported: bool, int8, uint8, int16, int32, int64, float16, float32, float64)");
  }
  const torch::Tensor data = tensor.detach().to(torch::kCPU).contiguous();
  const std::vector<std::int64_t> shape = data.sizes().vec();

  // numpy's _write_array_header: sorted keys, repr values, a trailing ", ", then room for the
  // first axis to grow to 21 digits, then _wrap_header's padding to a multiple of 64 bytes.
  std::string dict = std::string("{'descr': '") + dtype->descr + "', 'fortran_order': False, 'shape': " +
                     shape_repr(shape) + ", }";
  if (!shape.empty()) dict.append(kGrowthAxisMaxDigits - std::to_string(shape[0]).size(), ' ');
  const std::size_t hlen = dict.size() + 1;  // + '\n'
  const std::size_t pad = kAlign - (kMagicLen + 2 + 2 + hlen) % kAlign;
  const std::size_t header_len = hlen + pad;
  if (header_len > 0xFFFF) fail(in_file(path) + ": too many dimensions for an npy 1.0 header");

  std::string prefix(kMagic, kMagicLen);
  prefix += '\x01';
  prefix += '\x00';
  prefix += static_cast<char>(header_len & 0xFF);
  prefix += static_cast<char>(header_len >> 8);
  prefix += dict;
  prefix.append(pad, ' ');
  prefix += '\n';

  AtomicFileWriter out(path);
  out.write(prefix);
  out.write(data.data_ptr(), static_cast<std::size_t>(data.numel()) * dtype->size);
  out.commit();
}

}  // namespace speculators
