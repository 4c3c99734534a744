// The C++ side of the transformers parity tests (tests/core/transformers_parity.py):
//   parity_driver compare ROOT   loads every ROOT/<case>/ written by transformers with
//                                load_verifier, runs it on the case's input ids and compares the
//                                logits and the residual stream after k layers (k = 0..n) with
//                                transformers' values; fails above 1e-5 * max(1, max |expected|).
//                                The rows are also run packed into one row as documents.
//                                Cases with expected_heads.safetensors (families that cannot
//                                run here) check the widths-only config load, the refusal to
//                                build a verifier, and the embedding, norm and head tensors.
//   parity_driver dump DIR OUT   runs the verifier in DIR on fixed input ids and writes the ids and
//                                logits to OUT, for transformers to recompute.
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "speculators/error.h"
#include "speculators/log.h"
#include "speculators/tensor_io.h"
#include "speculators/verifier.h"

namespace fs = std::filesystem;
using speculators::cat;

namespace {

constexpr double kTolerance = 1e-5;

struct Deviation {
  double abs = 0;    // max |ours - expected|
  double scale = 0;  // max |expected|
  bool ok() const { return abs <= kTolerance * std::max(1.0, scale); }
};

Deviation compare(const torch::Tensor& ours, const torch::Tensor& expected, const std::string& what) {
  if (ours.sizes() != expected.sizes()) {
    speculators::fail(cat(what, ": shape ", ours.sizes(), " but transformers has ", expected.sizes()));
  }
  const torch::Tensor e = expected.to(torch::kDouble);
  return Deviation{(ours.to(torch::kDouble) - e).abs().max().item<double>(), e.abs().max().item<double>()};
}

struct CaseDeviation {
  Deviation logits, hidden;  // hidden: the stream with the largest deviation
  bool ok = true;
};

// A forward's logits and streams, reshaped to transformers' [B, L, ...], against its values.
CaseDeviation deviations(const speculators::VerifierModelImpl::Output& out,
                         const std::map<std::string, torch::Tensor>& expected, std::int64_t n, const std::string& what) {
  CaseDeviation d;
  const torch::Tensor& logits = expected.at("logits");
  d.logits = compare(out.logits.reshape(logits.sizes()), logits, what + " logits");
  d.ok = d.logits.ok();
  for (std::int64_t k = 0; k <= n; ++k) {
    const torch::Tensor& want = expected.at(cat("hidden_", k));
    const Deviation e = compare(out.hidden_states[static_cast<std::size_t>(k)].reshape(want.sizes()), want,
                                cat(what, " hidden_", k));
    d.ok = d.ok && e.ok();
    if (e.abs >= d.hidden.abs) d.hidden = e;
  }
  return d;
}

// One case: true when every tensor is within tolerance, run as transformers ran it (one sequence
// per row) and with the rows packed into one row as separate documents (positions restart at 0,
// document ids 0, 1, ...), where each document must give what transformers computed for it alone.
bool compare_case(const fs::path& dir) {
  auto model = speculators::load_verifier(dir.string());
  model->eval();
  const auto expected = speculators::load_safetensors((dir / "expected.safetensors").string());
  const std::int64_t n = model->config().num_hidden_layers;
  std::vector<std::int64_t> ids;
  for (std::int64_t k = 0; k <= n; ++k) ids.push_back(k);
  torch::NoGradGuard no_grad;
  const torch::Tensor input_ids = expected.at("input_ids");
  const CaseDeviation rows =
      deviations(model->forward(input_ids, torch::Tensor(), torch::Tensor(), ids, true), expected, n, dir.string());
  const std::int64_t b = input_ids.size(0), l = input_ids.size(1);
  const torch::Tensor positions = torch::arange(l, torch::kLong).repeat({b}).view({1, b * l});
  const torch::Tensor documents = torch::arange(b, torch::kLong).repeat_interleave(l);
  const CaseDeviation packed = deviations(model->forward(input_ids.reshape({1, b * l}), positions, documents, ids, true),
                                          expected, n, dir.string() + " packed");
  const bool ok = rows.ok && packed.ok;
  std::cout << std::left << std::setw(26) << dir.filename().string() << " " << std::setw(11)
            << model->config().model_type << " logits max|d| " << std::scientific << std::setprecision(2)
            << rows.logits.abs << " (max|x| " << std::defaultfloat << std::setprecision(3) << rows.logits.scale
            << ")  hidden 0.." << n << " max|d| " << std::scientific << std::setprecision(2) << rows.hidden.abs
            << "  packed max|d| " << std::max(packed.logits.abs, packed.hidden.abs) << std::defaultfloat
            << (ok ? "  ok" : "  FAIL") << "\n";
  return ok;
}

// A family read for its widths only: true when the three tensors match exactly.
bool compare_widths_case(const fs::path& dir) {
  const auto json = speculators::read_verifier_config_json(dir.string());
  const auto config = speculators::TransformerConfig::from_hf_json(json, (dir / "config.json").string(), true);
  bool ok = config.widths_only;
  try {
    speculators::load_verifier(dir.string());
    std::cout << dir.filename().string() << ": load_verifier did not refuse it\n";
    ok = false;
  } catch (const speculators::Error& e) {
    if (std::string(e.what()).find("--data-source files") == std::string::npos) {
      std::cout << dir.filename().string() << ": the refusal does not name --data-source files: " << e.what() << "\n";
      ok = false;
    }
  }
  const auto expected = speculators::load_safetensors((dir / "expected_heads.safetensors").string());
  const std::map<std::string, std::string> names = {
      {"embed_tokens", "embed_tokens.weight"}, {"norm", "model.norm.weight"}, {"lm_head", "lm_head.weight"}};
  for (const auto& entry : names) {
    const torch::Tensor t = speculators::read_verifier_tensor(dir.string(), entry.second);
    ok = ok && t.defined() && t.sizes() == expected.at(entry.first).sizes() && t.equal(expected.at(entry.first));
  }
  ok = ok && config.hidden_size == expected.at("norm").size(0) && config.vocab_size == expected.at("lm_head").size(0);
  std::cout << std::left << std::setw(26) << dir.filename().string() << " " << std::setw(10) << config.model_type
            << " widths only; embedding, norm, head " << (ok ? "equal  ok" : "FAIL") << "\n";
  return ok;
}

int run_compare(const fs::path& root) {
  std::vector<fs::path> cases;
  for (const auto& entry : fs::directory_iterator(root)) {
    if (fs::exists(entry.path() / "expected.safetensors") || fs::exists(entry.path() / "expected_heads.safetensors")) {
      cases.push_back(entry.path());
    }
  }
  std::sort(cases.begin(), cases.end());
  if (cases.empty()) speculators::fail(cat(root.string(), ": no case directory with expected.safetensors"));
  int failed = 0;
  for (const auto& dir : cases) {
    const bool widths = fs::exists(dir / "expected_heads.safetensors");
    failed += (widths ? compare_widths_case(dir) : compare_case(dir)) ? 0 : 1;
  }
  std::cout << cases.size() - static_cast<std::size_t>(failed) << " of " << cases.size()
            << " cases within " << kTolerance << " * max(1, max|x|)\n";
  return failed == 0 ? 0 : 1;
}

int run_dump(const std::string& dir, const std::string& out_path) {
  auto model = speculators::load_verifier(dir);
  model->eval();
  const std::int64_t vocab = model->config().vocab_size;
  const torch::Tensor input_ids = (torch::arange(2 * 16, torch::kLong) * 7 + 3).remainder(vocab).view({2, 16});
  torch::NoGradGuard no_grad;
  const auto out = model->forward(input_ids, torch::Tensor(), torch::Tensor(), {}, true);
  speculators::save_safetensors(out_path, {{"input_ids", input_ids}, {"logits", out.logits.contiguous()}});
  std::cout << "wrote logits " << out.logits.sizes() << " of " << dir << " to " << out_path << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::vector<std::string> args(argv + 1, argv + argc);
    if (args.size() == 2 && args[0] == "compare") return run_compare(args[1]);
    if (args.size() == 3 && args[0] == "dump") return run_dump(args[1], args[2]);
    std::cerr << "usage: parity_driver compare ROOT | parity_driver dump VERIFIER_DIR OUT.safetensors\n";
    return 2;
  } catch (const speculators::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return static_cast<int>(e.code());
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
