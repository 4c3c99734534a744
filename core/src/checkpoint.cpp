// Draft checkpoints in the reference layout (speculators/train/checkpointer.py): config.json +
// model.safetensors.
#include "speculators/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "speculators/error.h"
#include "speculators/log.h"
#include "speculators/tensor_io.h"

namespace fs = std::filesystem;

namespace speculators {

namespace {

std::map<std::string, torch::Tensor> named_state(DraftModel& model) {
  std::map<std::string, torch::Tensor> state;
  for (const auto& item : model.named_parameters(/*recurse=*/true)) state[item.key()] = item.value();
  for (const auto& item : model.named_buffers(/*recurse=*/true)) state[item.key()] = item.value();
  return state;
}

}  // namespace

TensorMap draft_state_for_save(DraftModel& model, torch::ScalarType float_dtype) {
  auto ignored_list = model.keys_to_ignore_on_save();
  std::set<std::string> ignored(ignored_list.begin(), ignored_list.end());
  TensorMap out;
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : named_state(model)) {
    if (ignored.count(name)) continue;
    torch::Tensor t = tensor.detach().to(torch::kCPU);
    if (t.is_floating_point()) t = t.to(float_dtype);
    out[name] = t.contiguous();
  }
  return out;
}

void save_draft(DraftModel& model, const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(cat(dir, ": cannot create checkpoint directory: ", ec.message()));
  write_file_atomic((fs::path(dir) / "config.json").string(), model.config_json().dump_python());
  save_safetensors((fs::path(dir) / "model.safetensors").string(), draft_state_for_save(model));
}

std::vector<std::string> load_draft_weights(DraftModel& model, const std::string& dir) {
  const std::string path = (fs::path(dir) / "model.safetensors").string();
  if (!fs::exists(path)) fail(cat(path, ": no such file (expected a draft checkpoint directory)"));
  SafetensorsFile file(path);
  auto allowed_list = model.keys_allowed_missing_on_load();
  std::set<std::string> allowed(allowed_list.begin(), allowed_list.end());
  auto ignored_list = model.keys_to_ignore_on_save();
  std::set<std::string> ignored(ignored_list.begin(), ignored_list.end());

  auto state = named_state(model);
  std::vector<std::string> missing;
  torch::NoGradGuard no_grad;
  for (auto& [name, target] : state) {
    if (!file.contains(name)) {
      if (allowed.count(name) || ignored.count(name)) {
        missing.push_back(name);
        continue;
      }
      fail_data(cat(path, ": tensor \"", name, "\" is missing (the model expects shape ", target.sizes(), ")"));
    }
    torch::Tensor source = file.get(name);
    if (source.sizes() != target.sizes()) {
      fail_data(cat(path, ": tensor \"", name, "\" has shape ", source.sizes(), " but the model expects ",
                    target.sizes()));
    }
    target.copy_(source.to(target.dtype()));
  }
  for (const auto& name : file.names()) {
    if (!state.count(name)) {
      fail_data(cat(path, ": unexpected tensor \"", name, "\" (not a parameter or buffer of this model; "
                    "is it a checkpoint of another algorithm or shape?)"));
    }
  }
  return missing;
}

}  // namespace speculators
