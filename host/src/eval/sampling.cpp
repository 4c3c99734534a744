// Batched autoregressive sampling from a verifier and the data.jsonl writer.
#include "eval/sampling.h"

#include <algorithm>
#include <optional>

#include "eval/cached_verifier.h"
#include "observe/progress.h"
#include "speculators/error.h"
#include "speculators/json.h"
#include "speculators/log.h"

namespace speculators {

namespace {

std::int64_t resolved_prompt_len(const SampleOptions& o) {
  return o.prompt_len > 0 ? o.prompt_len : std::max<std::int64_t>(1, o.seq_len / 4);
}

}  // namespace

void validate_sample_options(const SampleOptions& o) {
  if (o.num_samples < 1) fail_usage(cat("--num-samples must be at least 1, got ", o.num_samples));
  if (o.seq_len < 2) fail_usage(cat("--seq-len must be at least 2, got ", o.seq_len));
  const std::int64_t prompt = resolved_prompt_len(o);
  if (prompt < 1 || prompt >= o.seq_len) {
    fail_usage(cat("--prompt-len must be in [1, seq-len - 1] = [1, ", o.seq_len - 1, "], got ", prompt));
  }
  if (!(o.temperature >= 0)) fail_usage(cat("--temperature must be >= 0, got ", o.temperature));
  if (o.batch_size < 1) fail_usage(cat("batch size must be at least 1, got ", o.batch_size));
}

SampledSequences sample_sequences(VerifierModelImpl& verifier, const SampleOptions& o) {
  validate_sample_options(o);
  const std::int64_t max_positions = verifier.config().max_position_embeddings;
  if (o.seq_len > max_positions) {
    fail_usage(cat("--seq-len ", o.seq_len, " is beyond the verifier's context: max_position_embeddings is ",
                   max_positions, " (config.json); use at most that"));
  }
  torch::NoGradGuard no_grad;
  const std::int64_t n = o.num_samples, t_len = o.seq_len, prompt = resolved_prompt_len(o);
  const std::int64_t vocab = verifier.config().vocab_size;
  const auto device = verifier.embed_tokens->weight.device();
  torch::Generator gen = at::detail::createCPUGenerator(o.seed);

  torch::Tensor ids = torch::zeros({n, t_len}, torch::kLong);
  ids.slice(1, 0, prompt).copy_(torch::randint(0, vocab, {n, prompt}, gen, torch::kLong));
  double top1_sum = 0.0;
  const std::int64_t total_steps = n * (t_len - prompt);
  std::int64_t done_steps = 0;
  const double temperature = o.temperature > 0 ? o.temperature : 1.0;
  std::optional<ProgressBar> bar;
  if (o.progress) bar.emplace("sampling", total_steps);

  for (std::int64_t b0 = 0; b0 < n; b0 += o.batch_size) {
    const std::int64_t b1 = std::min(n, b0 + o.batch_size);
    torch::Tensor rows = ids.slice(0, b0, b1).to(device);
    CachedVerifier decoder(verifier);
    torch::Tensor logits = decoder.step(rows.slice(1, 0, prompt), /*last_logits_only=*/true).logits;
    for (std::int64_t t = prompt; t < t_len; ++t) {
      const torch::Tensor probs = torch::softmax(logits.to(torch::kCPU, torch::kFloat) / temperature, -1);
      top1_sum += std::get<0>(probs.max(-1)).sum().item<double>();
      const torch::Tensor next =
          o.temperature > 0 ? torch::multinomial(probs, 1, /*replacement=*/false, gen).squeeze(1) : probs.argmax(-1);
      rows.select(1, t).copy_(next.to(device));
      if (t + 1 < t_len) logits = decoder.step(rows.slice(1, t, t + 1), /*last_logits_only=*/true).logits;
      done_steps += b1 - b0;
      if (bar) bar->update(done_steps, "tokens");
    }
    ids.slice(0, b0, b1).copy_(rows.to(torch::kCPU));
  }
  if (bar) bar->finish("tokens");

  SampledSequences out;
  out.input_ids = ids;
  out.loss_mask = torch::zeros({n, t_len}, torch::kLong);
  out.loss_mask.slice(1, prompt, t_len).fill_(1);
  out.mean_top1 = top1_sum / static_cast<double>(total_steps);
  return out;
}

std::string to_jsonl(const SampledSequences& s) {
  std::string text;
  const torch::Tensor ids = s.input_ids.to(torch::kCPU, torch::kLong).contiguous();
  const torch::Tensor mask = s.loss_mask.to(torch::kCPU, torch::kLong).contiguous();
  const std::int64_t t_len = ids.size(1);
  for (std::int64_t i = 0; i < ids.size(0); ++i) {
    const std::int64_t* ip = ids.data_ptr<std::int64_t>() + i * t_len;
    const std::int64_t* mp = mask.data_ptr<std::int64_t>() + i * t_len;
    Json row = Json::object();
    row["input_ids"] = Json(std::vector<std::int64_t>(ip, ip + t_len));
    row["loss_mask"] = Json(std::vector<std::int64_t>(mp, mp + t_len));
    text += row.dump();
    text += '\n';
  }
  return text;
}

}  // namespace speculators
