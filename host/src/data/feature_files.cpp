// FileFeatureSource and the hidden-state file checks shared with datagen (see feature_files.h).
#include "data/feature_files.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "speculators/error.h"
#include "speculators/log.h"
#include "speculators/tensor_io.h"

namespace fs = std::filesystem;

namespace speculators {

std::string hs_file_path(const std::string& data_dir, std::size_t row) {
  return (fs::path(data_dir) / "hidden_states" / cat("hs_", row, ".safetensors")).string();
}

bool wait_for_hs_lock(const std::string& path, double timeout_s) {
  // The writer (speculators/cli/generate_offline_data.py) flocks hs_{i}.safetensors.lock; a lock
  // file nobody holds is stale.
  const std::string lock_path = path + ".lock";
  const int fd = ::open(lock_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return true;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  bool free = false;
  while (true) {
    if (::flock(fd, LOCK_SH | LOCK_NB) == 0) {
      ::flock(fd, LOCK_UN);
      free = true;
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::close(fd);
  return free;
}

namespace {

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

void check_token_ids(const std::string& where, const torch::Tensor& ids, const TokenRow& row) {
  const auto* stored = ids.data_ptr<std::int64_t>();
  for (std::size_t t = 0; t < row.input_ids.size(); ++t) {
    if (stored[t] != row.input_ids[t]) {
      fail_data(cat(where, ": token_ids differ from data.jsonl input_ids at position ", t, " (file ", stored[t],
                    ", data.jsonl ", row.input_ids[t], "); the file belongs to another row or dataset"));
    }
  }
}

}  // namespace

torch::Tensor read_hs_file(const std::string& path, std::size_t row_index, const TokenRow& row, std::int64_t slots,
                           std::int64_t hidden_size, bool check_finite) {
  const std::string where = cat(path, " (data.jsonl row ", row_index, ")");
  if (!fs::exists(path)) fail_data(cat(where, ": file missing"));
  std::unique_ptr<SafetensorsFile> file;
  try {
    file = std::make_unique<SafetensorsFile>(path);
  } catch (const Error& e) {
    fail_data(cat(where, ": unreadable: ", e.what()));
  }
  for (const char* key : {"hidden_states", "token_ids"}) {
    if (!file->contains(key)) fail_data(cat(where, ": no tensor \"", key, "\" (expected hidden_states and token_ids)"));
  }
  const auto T = static_cast<std::int64_t>(row.input_ids.size());
  const TensorInfo& hs = file->tensors().at("hidden_states");
  if (hs.dtype != "BF16" && hs.dtype != "F16" && hs.dtype != "F32") {
    fail_data(cat(where, ": hidden_states dtype ", hs.dtype, " (expected BF16, F16 or F32)"));
  }
  const bool shape_ok = hs.shape.size() == 3 && hs.shape[0] == T && (slots <= 0 || hs.shape[1] == slots) &&
                        (hidden_size <= 0 || hs.shape[2] == hidden_size) && hs.shape[1] >= 2;
  if (!shape_ok) {
    fail_data(cat(where, ": hidden_states shape ", shape_text(hs.shape), ", expected [", T, ", ",
                  slots > 0 ? std::to_string(slots) : std::string("A+1 >= 2"), ", ",
                  hidden_size > 0 ? std::to_string(hidden_size) : std::string("H"), "] (T = the row's ", T,
                  " tokens)"));
  }
  const TensorInfo& ids_info = file->tensors().at("token_ids");
  if (ids_info.dtype != "I64" && ids_info.dtype != "I32") {
    fail_data(cat(where, ": token_ids dtype ", ids_info.dtype, " (expected I64)"));
  }
  if (ids_info.shape != std::vector<std::int64_t>{T}) {
    fail_data(cat(where, ": token_ids shape ", shape_text(ids_info.shape), ", expected [", T, "]"));
  }
  check_token_ids(where, file->get("token_ids").to(torch::kInt64).contiguous(), row);
  auto hidden = file->get("hidden_states", /*view=*/true);
  if (check_finite && !torch::isfinite(hidden).all().item<bool>()) {
    const auto bad = (~torch::isfinite(hidden)).nonzero()[0];
    fail_data(cat(where, ": hidden_states has a non-finite value (NaN or Inf) at token ", bad[0].item<std::int64_t>(),
                  ", slot ", bad[1].item<std::int64_t>()));
  }
  return hidden;
}

FileFeatureSource::FileFeatureSource(std::string data_dir, std::vector<TokenRow> rows, std::int64_t num_aux_layers,
                                     std::int64_t hidden_size, std::shared_ptr<BadSampleLog> bad, double lock_timeout_s)
    : data_dir_(std::move(data_dir)),
      rows_(std::move(rows)),
      num_aux_layers_(num_aux_layers),
      hidden_size_(hidden_size),
      bad_(bad ? std::move(bad) : std::make_shared<BadSampleLog>()),
      lock_timeout_s_(lock_timeout_s) {
  if (!fs::is_directory(fs::path(data_dir_) / "hidden_states")) {
    fail_data(cat(data_dir_, "/hidden_states: not a directory (the files source reads hs_{i}.safetensors there; "
                  "write them with speculators-datagen hidden-states)"));
  }
  check_first_file();
}

void FileFeatureSource::check_first_file() const {
  for (std::size_t i = 0; i < rows_.size(); ++i) {
    const std::string path = hs_file_path(data_dir_, i);
    if (!fs::exists(path)) continue;
    std::map<std::string, TensorInfo> header;
    try {
      header = SafetensorsFile::read_header(path);
    } catch (const Error&) {
      return;  // a corrupt file is a per-sample defect, reported when it is read
    }
    auto it = header.find("hidden_states");
    if (it == header.end() || it->second.shape.size() != 3) return;
    const auto& shape = it->second.shape;
    if (shape[1] != num_aux_layers_ + 1 || shape[2] != hidden_size_) {
      fail_data(cat(path, ": hidden_states is ", shape_text(shape), " but this draft needs [T, ", num_aux_layers_ + 1,
                    ", ", hidden_size_, "] (", num_aux_layers_, " aux layers + the final layer, verifier hidden size ",
                    hidden_size_, "); regenerate with the draft's --target-layer-ids or train with matching ones"));
    }
    return;
  }
  fail_data(cat(data_dir_, "/hidden_states: no hs_{i}.safetensors for any of the ", rows_.size(), " data.jsonl rows"));
}

std::int64_t FileFeatureSource::length(std::size_t index) const {
  return static_cast<std::int64_t>(rows_.at(index).input_ids.size());
}

Sample FileFeatureSource::read(std::size_t index) const {
  const std::string path = hs_file_path(data_dir_, index);
  if (!wait_for_hs_lock(path, lock_timeout_s_)) {
    fail_data(cat(path, " (data.jsonl row ", index, "): still locked by its writer after ", lock_timeout_s_, " s"));
  }
  auto hidden = read_hs_file(path, index, rows_.at(index), num_aux_layers_ + 1, hidden_size_, /*check_finite=*/true);
  return sample_from_features(rows_[index], hidden);
}

std::vector<Sample> FileFeatureSource::get(const std::vector<std::size_t>& indices) {
  std::vector<Sample> out;
  out.reserve(indices.size());
  for (auto i : indices) {
    try {
      out.push_back(read(i));
    } catch (const Error& e) {
      if (e.code() != ExitCode::kData) throw;
      bad_->report(e.what());  // throws under --on-bad-sample raise
      out.emplace_back();
    }
  }
  return out;
}

}  // namespace speculators
