// Test helpers for algorithm plugins (the library Speculators::testing, linked by the tests that
// speculators_add_plugin_test() makes). They run a plugin's Algorithm and DraftModel through the
// host's own code, not a copy of it: a random verifier made and saved as `speculators-datagen
// make-verifier` does, token rows sampled from it as `speculators-datagen sample` does, features
// computed and packed by the host's online feature source and loader (with the algorithm's
// preprocess), the job resolved from flags by the host's job resolution, training steps run by the
// host's Trainer (optimizers, metric-key checks, checkpoint), and proposals checked by the
// speculative decoding loop of `speculators-eval`. Every plugin call goes through the host's
// error attribution, so a failure reads as it would in speculators-train.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "speculators/algorithm.h"
#include "speculators/verifier.h"

namespace speculators {
namespace testing {

// A fresh empty directory under the system temp directory, removed with everything in it.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "speculators-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

struct TinyVerifierOptions {
  std::string arch = "llama";  // llama | qwen3
  std::int64_t hidden_size = 32;
  std::int64_t num_layers = 2;
  std::int64_t vocab_size = 64;
  std::int64_t num_heads = 4;
  std::int64_t num_kv_heads = 2;
  std::uint64_t seed = 3;
};

// A verifier in memory and on disk (Hugging Face layout: config.json + model.safetensors), whose
// next-token distributions are peaked so that a draft has something to learn.
struct TinyVerifier {
  std::string dir;
  TransformerConfig config;
  Json config_json;
  VerifierModel model{nullptr};
};
TinyVerifier make_tiny_verifier(const std::string& dir, const TinyVerifierOptions& options = {});

// The job the host resolves for `algorithm` from command-line flags ({"--block-size", "3", ...}):
// host and algorithm defaults < flags. A bad flag throws the host's usage Error.
Args resolve_test_job(const Algorithm& algorithm, const std::vector<std::string>& flags = {});

// What the algorithm's factories get for a job on `verifier` (full vocabulary).
BuildContext make_build_context(const TinyVerifier& verifier, const Args& args);

// from_training_args, then the host's checks of a draft (non-empty layers(), embed_tokens(),
// lm_head()).
std::shared_ptr<DraftModel> build_draft(const Algorithm& algorithm, const BuildContext& ctx);

struct BatchOptions {
  std::int64_t num_rows = 4;     // token rows sampled from the verifier
  std::int64_t row_length = 12;  // tokens per row (the first quarter is a prompt: loss_mask 0)
  std::int64_t total_len = 64;   // the packed row's length
  std::uint64_t seed = 5;
};

// One packed batch as forward receives it in training: rows sampled from the verifier, the
// features of `layer_ids` computed by the verifier, each sample through algorithm.preprocess,
// packed into one row of total_len with document_ids (-1 on padding).
Batch make_batch(const Algorithm& algorithm, const TinyVerifier& verifier, const std::vector<std::int64_t>& layer_ids,
                 const BatchOptions& options = {});

struct TrainResult {
  std::int64_t global_step = 0;
  std::map<std::string, double> train_metrics;  // the last logged training step (loss, the draft's ratios)
  std::map<std::string, double> val_metrics;    // the validation pass at the end
  std::string save_path;                        // metrics.jsonl, checkpoints
  std::string last_checkpoint;                  // a checkpoint directory with config.json and model.safetensors
};

// `steps` optimizer steps of a job on `verifier` (flags as for resolve_test_job; the helper sets
// the verifier, the save path, --max-steps, as many epochs (each has at least one batch) and the
// packed length of `data` unless given),
// through the host's Trainer on the CPU: the same forward, backward, metric-key contract,
// optimizers and checkpoint writing as speculators-train.
TrainResult train_steps(const Algorithm& algorithm, const TinyVerifier& verifier, const std::string& save_path,
                        std::int64_t steps = 1, const std::vector<std::string>& flags = {},
                        const BatchOptions& data = {});

// The draft saved in `checkpoint_dir`, loaded as --from-pretrained and speculators-eval load it.
std::shared_ptr<DraftModel> load_checkpoint(const Algorithm& algorithm, const TinyVerifier& verifier,
                                            const std::string& checkpoint_dir);

struct ProposalResult {
  std::vector<std::int64_t> greedy;       // the verifier's own greedy continuation
  std::vector<std::int64_t> speculative;  // the same continuation, decoded with the draft's proposals
  std::int64_t steps = 0;                 // verifier calls after the prefill
  double acceptance_length = 0;           // tokens emitted per verifier call (accepted + bonus)
};

// Decodes max_new tokens after `prompt` with the draft's Proposer (k tokens proposed per step)
// through the host's speculative decoding loop, and without it. A correct proposer leaves the
// output unchanged: speculative == greedy. Throws when make_proposer() returns null.
ProposalResult propose(DraftModel& draft, const TinyVerifier& verifier, const std::vector<std::int64_t>& prompt,
                       std::int64_t max_new, std::int64_t k);

// `speculators-train ARGS...` in this process (plugins found through --plugin-dir); the exit code.
int run_speculators_train(const std::vector<std::string>& args);

}  // namespace testing
}  // namespace speculators
