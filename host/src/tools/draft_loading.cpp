// See draft_loading.h.
#include "tools/draft_loading.h"

#include <filesystem>

#include "speculators/checkpoint.h"
#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {

Json read_draft_config_json(const std::string& dir, const std::string& flag) {
  const std::filesystem::path path = std::filesystem::path(dir) / "config.json";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    fail_usage(cat(flag, " ", dir, ": no config.json (expected a checkpoint directory)"));
  }
  Json config;
  try {
    config = Json::read_file(path.string());
  } catch (const Error& e) {
    if (e.code() != ExitCode::kFailure) throw;
    fail_usage(e.what());
  }
  if (!config.is_object()) fail_usage(cat(path.string(), ": expected a JSON object"));
  return config;
}

std::shared_ptr<DraftModel> load_saved_draft(const Algorithm& algorithm, const Json& config, const std::string& dir,
                                             const BuildContext& ctx, bool weights_required) {
  auto model = algorithm.from_config(config, ctx);
  if (!model) fail(cat("algorithm ", algorithm.name(), ": the factory returned no model"), ExitCode::kPlugin);
  if (std::filesystem::exists(std::filesystem::path(dir) / "model.safetensors")) {
    load_draft_weights(*model, dir);
    log::info(cat("loaded draft weights from ", dir));
  } else if (weights_required) {
    fail_usage(cat(dir, ": no model.safetensors"));
  } else {
    log::info(cat(dir, " has a config.json and no weights: fresh initialisation from that config"));
  }
  // vocab mapping and frozen verifier tensors are settled after any load.
  model->after_load(ctx);
  return model;
}

void check_draft_model(DraftModel& model, const std::string& name) {
  if (model.layers().is_empty() || model.layers()->size() == 0) {
    fail(cat("algorithm ", name, ": the model's layers() is empty (the host shards and trains by layer)"),
         ExitCode::kPlugin);
  }
  if (!model.embed_tokens()) fail(cat("algorithm ", name, ": the model has no embed_tokens()"), ExitCode::kPlugin);
  if (!model.lm_head()) fail(cat("algorithm ", name, ": the model has no lm_head()"), ExitCode::kPlugin);
}

}  // namespace speculators
