// The C++ half of the reference parity test (ref_parity.py): runs the eagle3 plugin's model on a
// case directory the Python half wrote (the reference's config.json, every tensor of the model,
// one packed batch and the call arguments) and writes what the reference is compared on: each TTT
// step's logits, the loss, every metric and the gradient of every trainable tensor after one
// backward. It also writes a checkpoint with the project's save_draft and loads one through the
// host's --from-pretrained path (load_saved_draft).
//
//   ref_parity_driver run  CASE OUT.safetensors
//   ref_parity_driver save CASE CHECKPOINT_DIR
//   ref_parity_driver load CHECKPOINT_DIR CASE OUT.safetensors
//
// CASE holds config.json, weights.safetensors (the model's state dict, verifier tensors included),
// batch.safetensors (input_ids, hidden_states, verifier_last_hidden_states, loss_mask,
// position_ids, document_ids; each [1, L, ...]) and args.json (ttt_steps, ttt_step_loss_decay,
// loss_fn; optional attention_chunk, loss_chunk; verifier_dir for `load`).
#include <torch/torch.h>

#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "config.h"
#include "tools/draft_loading.h"
#include "eagle3_algorithm.h"
#include "model.h"
#include "speculators/checkpoint.h"
#include "speculators/error.h"
#include "speculators/log.h"
#include "speculators/tensor_io.h"
#include "speculators/verifier.h"

namespace speculators {
namespace eagle3 {
namespace {

namespace fs = std::filesystem;

std::string case_file(const std::string& dir, const char* name) {
  const auto path = (fs::path(dir) / name).string();
  if (!fs::exists(path)) fail_usage(cat("ref_parity_driver: ", path, " does not exist"));
  return path;
}

// Copies every tensor of `path` into the parameter or buffer of the same name; a name on one side
// only is an error, so a renamed tensor cannot slip through.
void load_all_tensors(Eagle3DraftModel& model, const std::string& path) {
  auto tensors = load_safetensors(path);
  std::set<std::string> unused;
  for (const auto& entry : tensors) unused.insert(entry.first);
  torch::NoGradGuard no_grad;
  auto assign = [&](const std::string& name, torch::Tensor& target) {
    const auto it = tensors.find(name);
    if (it == tensors.end()) fail_data(cat(path, ": no tensor '", name, "'"));
    if (it->second.sizes() != target.sizes()) {
      fail_data(cat(path, ": '", name, "' has shape ", it->second.sizes(), "; the model has ", target.sizes()));
    }
    target.copy_(it->second.to(target.scalar_type()));
    unused.erase(name);
  };
  for (auto& p : model.named_parameters(true)) assign(p.key(), p.value());
  for (auto& b : model.named_buffers(true)) assign(b.key(), b.value());
  if (!unused.empty()) fail_data(cat(path, ": tensor '", *unused.begin(), "' is not part of the model"));
}

std::shared_ptr<Eagle3DraftModel> model_from_case(const std::string& dir) {
  const auto config = Eagle3Config::from_json(Json::read_file(case_file(dir, "config.json")),
                                              case_file(dir, "config.json"));
  auto model = std::make_shared<Eagle3DraftModel>(config);
  load_all_tensors(*model, case_file(dir, "weights.safetensors"));
  model->check_loaded();
  return model;
}

// One forward with the case's call arguments, one backward of the loss; everything compared.
void run_and_write(Eagle3DraftModel& model, const std::string& case_dir, const std::string& out_path) {
  const Json args = Json::read_file(case_file(case_dir, "args.json"));
  if (args.contains("attention_chunk")) model.set_attention_chunk(args.at("attention_chunk").as_int());
  if (args.contains("loss_chunk")) model.set_loss_chunk(args.at("loss_chunk").as_int());
  const Batch batch = load_safetensors(case_file(case_dir, "batch.safetensors"));
  std::vector<torch::Tensor> step_logits;
  model.set_step_logits_sink(&step_logits);
  model.zero_grad();
  ForwardResult result = model.forward(batch, args);
  model.set_step_logits_sink(nullptr);
  if (!result.loss.defined()) fail("ref_parity_driver: forward returned no loss");
  result.loss.backward();

  std::map<std::string, torch::Tensor> out;
  for (std::size_t k = 0; k < step_logits.size(); ++k) out[cat("logits.", k)] = step_logits[k][0].contiguous();
  for (std::size_t k = 0; k < result.output.size(); ++k) out[cat("draft_tokens.", k)] = result.output[k][0].contiguous();
  out["loss"] = result.loss.detach().to(torch::kFloat);
  for (const auto& [name, value] : result.metrics) out["metric." + name] = value.detach().to(torch::kFloat);
  for (const auto& p : model.named_parameters(true)) {
    if (p.value().requires_grad() && p.value().grad().defined()) out["grad." + p.key()] = p.value().grad();
  }
  save_safetensors(out_path, out);
}

// The host's --from-pretrained path: from_config, load_draft_weights, after_load.
std::shared_ptr<Eagle3DraftModel> model_from_checkpoint(const std::string& checkpoint, const std::string& case_dir) {
  const Json args = Json::read_file(case_file(case_dir, "args.json"));
  if (!args.contains("verifier_dir")) fail_usage(cat(case_dir, "/args.json: no verifier_dir"));
  const std::string verifier_dir = args.at("verifier_dir").as_string();
  BuildContext ctx;
  ctx.verifier_json = read_verifier_config_json(verifier_dir);
  ctx.verifier = TransformerConfig::from_hf_json(ctx.verifier_json, verifier_dir + "/config.json");
  ctx.verifier_path = verifier_dir;
  ctx.verifier_name = verifier_dir;
  const Json saved = Json::read_file(case_file(checkpoint, "config.json"));
  auto model = load_saved_draft(Eagle3Algorithm(), saved, checkpoint, ctx, /*weights_required=*/true);
  auto eagle3 = std::dynamic_pointer_cast<Eagle3DraftModel>(model);
  if (!eagle3) fail("ref_parity_driver: the eagle3 factory returned another model type");
  return eagle3;
}

int run_command(const std::vector<std::string>& a) {
  if (a.size() == 3 && a[0] == "run") {
    run_and_write(*model_from_case(a[1]), a[1], a[2]);
  } else if (a.size() == 3 && a[0] == "save") {
    save_draft(*model_from_case(a[1]), a[2]);
  } else if (a.size() == 4 && a[0] == "load") {
    run_and_write(*model_from_checkpoint(a[1], a[2]), a[2], a[3]);
  } else {
    std::cerr << "usage: ref_parity_driver run CASE OUT | save CASE CHECKPOINT | load CHECKPOINT CASE OUT\n";
    return 2;
  }
  return 0;
}

}  // namespace
}  // namespace eagle3
}  // namespace speculators

int main(int argc, char** argv) {
  try {
    torch::manual_seed(0);
    return speculators::eagle3::run_command(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const speculators::Error& e) {
    std::cerr << "ref_parity_driver: " << e.what() << "\n";
    return static_cast<int>(e.code());
  } catch (const std::exception& e) {
    std::cerr << "ref_parity_driver: " << e.what() << "\n";
    return 1;
  }
}
