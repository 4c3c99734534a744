// See verifier_compare.h.
#include "verifier_compare.h"

#include <torch/torch.h>

#include <chrono>
#include <map>
#include <vector>

#include "speculators/error.h"
#include "speculators/log.h"
#include "speculators/tensor_io.h"
#include "speculators/verifier.h"
#include "timing.h"
#include "verifier_stub.h"

namespace speculators::bench {

namespace fs = std::filesystem;

Json run_verifier_compare(const Shape& shape, const std::vector<std::int64_t>& layer_ids, const ReferenceOptions& options,
                          const fs::path& dir) {
  const std::string python = reference_python(options);
  const fs::path script = fs::path(options.script).parent_path() / "verifier_forward.py";
  if (!fs::exists(script)) fail_usage(cat("--compare reference: ", script.string(), " does not exist"));
  fs::create_directories(dir);
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  VerifierModel verifier(TransformerConfig::from_hf_json(verifier_config_json(shape), "the bench's verifier config"));
  for (auto& p : verifier->parameters()) {
    if (p.dim() >= 2) p.normal_(0.0, 0.02);  // as transformers' initializer_range
  }
  save_verifier(*verifier, (dir / "verifier").string());
  verifier->eval();

  // The packed row's tokens as one batch of documents, each a causal sequence from position 0.
  const std::int64_t rows = std::max<std::int64_t>(1, shape.seq_len / shape.doc_len);
  const torch::Tensor input_ids = torch::randint(shape.vocab, {rows, shape.doc_len}, torch::kLong);
  const torch::Tensor position_ids = torch::arange(shape.doc_len, torch::kLong).unsqueeze(0).expand({rows, shape.doc_len});

  Spread times;
  torch::Tensor logits;
  for (int i = 0; i < options.warmup + options.iters; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto out = verifier->forward(input_ids, position_ids, torch::Tensor(), layer_ids, /*want_logits=*/true);
    (void)out.logits.sum().item<float>();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (i >= options.warmup) times.samples.push_back(s);
    logits = out.logits;
  }
  // The script checks that both sides computed the same thing: its logits against these.
  save_safetensors((dir / "tokens.safetensors").string(), {{"input_ids", input_ids}, {"logits", logits.contiguous()}});
  Json result = Json::object();
  result["this_s"] = times.samples[times.median_index()];
  result["this_s_samples"] = times.to_json();
  result["tokens"] = rows * shape.doc_len;
  result["transformers"] =
      run_python_json(python, script.string(),
                      cat(" --verifier ", quoted((dir / "verifier").string()), " --tokens ",
                          quoted((dir / "tokens.safetensors").string()), " --threads ", options.threads, " --warmup ",
                          options.warmup, " --iters ", options.iters),
                      dir / "stderr.txt");
  result["speedup"] = result.at("transformers").at("forward_s").as_double() / result.at("this_s").as_double();
  return result;
}

}  // namespace speculators::bench
