// The named benchmark shapes: a verifier-like decoder config, the packed row length, the draft
// vocabulary and the number of training-time-test steps.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace speculators::bench {

struct Shape {
  std::string name;
  std::int64_t hidden = 0, heads = 0, kv_heads = 0, intermediate = 0;
  std::int64_t vocab = 0, draft_vocab = 0;  // draft_vocab == vocab: no mapping
  std::int64_t verifier_layers = 0;
  std::int64_t seq_len = 0;                 // tokens in the packed row of one step
  std::int64_t doc_len = 0;                 // documents packed into that row
  std::int64_t ttt_steps = 0;
  std::string note;
};

inline const std::vector<Shape>& shapes() {
  static const std::vector<Shape> all = {
      {"tiny", 64, 2, 1, 192, 256, 256, 4, 512, 64, 3, "the quickstart's shapes"},
      {"small", 512, 8, 4, 1536, 32000, 8192, 8, 2048, 512, 3, "H=512, Vd=8192, L=2048, K=3"},
      {"8b-slice", 4096, 32, 8, 14336, 128256, 32000, 32, 1024, 1024, 3,
       "Llama-3.1-8B widths, one draft layer, Vd=32000, L=1024"},
  };
  return all;
}

}  // namespace speculators::bench
