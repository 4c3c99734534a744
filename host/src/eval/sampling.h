// On-policy token data from a verifier: batched autoregressive sampling (with a key/value cache
// per layer, built on the verifier's own modules) and the data.jsonl format the online feature
// source reads ({"input_ids": [...], "loss_mask": [...]}).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "speculators/verifier.h"

namespace speculators {

struct SampleOptions {
  std::int64_t num_samples = 16;
  std::int64_t seq_len = 64;
  std::int64_t prompt_len = 0;  // 0: seq_len / 4 (at least 1); prompt tokens are uniform random
  double temperature = 1.0;     // 0: greedy
  std::uint64_t seed = 0;
  std::int64_t batch_size = 256; // sequences sampled together
  bool progress = false;        // a progress line on stderr
};

struct SampledSequences {
  torch::Tensor input_ids;  // [N, T] int64
  torch::Tensor loss_mask;  // [N, T] int64: 0 on the prompt, 1 on the sampled response
  // Mean over sampled positions of the largest probability of the distribution sampled from
  // (softmax(logits / temperature); temperature 1 when greedy).
  double mean_top1 = 0.0;
};

// Throws Error (usage) for sizes that cannot work: N < 1, T < 2, prompt not in [1, T-1], t < 0.
void validate_sample_options(const SampleOptions& options);

SampledSequences sample_sequences(VerifierModelImpl& verifier, const SampleOptions& options);

// One JSON object per line, keys input_ids and loss_mask.
std::string to_jsonl(const SampledSequences& samples);

}  // namespace speculators
