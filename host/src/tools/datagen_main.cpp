// speculators-datagen: makes the inputs of a training run without an external model server.
//   make-verifier  a random Llama / Qwen3 verifier in Hugging Face layout, with learnable structure
//   sample         on-policy token data (data.jsonl) sampled from a verifier
//   hidden-states  the verifier's features of data.jsonl as hidden_states/hs_{i}.safetensors
#include <CLI/CLI.hpp>

#include <filesystem>
#include <iomanip>
#include <iostream>

#include "data/hidden_state_gen.h"
#include "eval/sampling.h"
#include "speculators/error.h"
#include "speculators/json.h"
#include "speculators/log.h"
#include "speculators/verifier.h"
#include "tools/guard.h"
#include "tools/make_verifier.h"

namespace {

using namespace speculators;
namespace fs = std::filesystem;

void run_make_verifier(const MakeVerifierOptions& options, const std::string& out) {
  MadeVerifier made = make_structured_verifier(options);
  save_verifier(*made.model, out);
  const TransformerConfig& c = made.model->config();
  std::cout << "wrote " << c.model_type << " verifier to " << out << ": hidden " << c.hidden_size << ", "
            << c.num_hidden_layers << " layers, " << c.num_attention_heads << " heads (" << c.num_key_value_heads
            << " kv, head dim " << c.head_dim << "), intermediate " << c.intermediate_size << ", vocab "
            << c.vocab_size << "\n"
            << "mean top-1 probability on its own samples (temperature 1): " << std::fixed << std::setprecision(3)
            << made.mean_top1 << "\n";
}

void run_sample(const std::string& verifier_dir, SampleOptions options, const std::string& out) {
  validate_sample_options(options);
  VerifierModel verifier = load_verifier(verifier_dir);
  verifier->eval();
  options.progress = true;
  const SampledSequences samples = sample_sequences(*verifier, options);
  fs::create_directories(out);
  const std::string path = (fs::path(out) / "data.jsonl").string();
  write_file_atomic(path, to_jsonl(samples));
  const std::int64_t prompt = samples.loss_mask.size(1) - samples.loss_mask[0].sum().item<std::int64_t>();
  std::cout << "wrote " << options.num_samples << " sequences of " << options.seq_len << " tokens (" << prompt
            << " prompt, " << options.seq_len - prompt << " sampled) to " << path << "\n"
            << "mean top-1 probability of the sampled positions: " << std::fixed << std::setprecision(3)
            << samples.mean_top1 << "\n";
}

void run_hidden_states(const HiddenStateGenOptions& options) {
  const HiddenStateGenReport r = generate_hidden_states(options);
  std::string ids;
  for (auto id : r.layer_ids) ids += (ids.empty() ? "" : ",") + std::to_string(id);
  std::cout << "hidden states of " << r.rows << " rows in " << options.data_dir << "/hidden_states (layers " << ids
            << ", " << options.dtype << "): wrote " << r.written << ", kept " << r.kept << " existing, regenerated "
            << r.regenerated << "\n";
}

}  // namespace

namespace {

int run_main(int argc, char** argv) {
  CLI::App app{"speculators-datagen: tiny verifiers, on-policy token data and offline hidden states"};
  app.require_subcommand(1);

  MakeVerifierOptions make;
  std::string make_out;
  CLI::App* make_cmd = app.add_subcommand("make-verifier", "write a random verifier in Hugging Face layout");
  make_cmd->add_option("--arch", make.arch, "llama or qwen3")->check(CLI::IsMember({"llama", "qwen3"}));
  make_cmd->add_option("--hidden-size", make.hidden_size, "hidden size H")->required();
  make_cmd->add_option("--num-layers", make.num_layers, "decoder layers")->required();
  make_cmd->add_option("--vocab-size", make.vocab_size, "vocabulary size V")->required();
  make_cmd->add_option("--out", make_out, "output directory")->required();
  make_cmd->add_option("--seed", make.seed, "random seed");
  make_cmd->add_option("--intermediate-size", make.intermediate_size, "MLP width (default 3H)");
  make_cmd->add_option("--num-heads", make.num_heads, "attention heads (default max(1, H/32))");
  make_cmd->add_option("--num-kv-heads", make.num_kv_heads, "key/value heads (default heads/2 when even)");
  make_cmd->add_option("--target-top1", make.target_top1, "mean top-1 probability to aim for (default 0.7)");

  SampleOptions sample;
  std::string sample_verifier, sample_out;
  CLI::App* sample_cmd = app.add_subcommand("sample", "write DIR/data.jsonl of sequences sampled from a verifier");
  sample_cmd->add_option("--verifier", sample_verifier, "verifier directory")->required();
  sample_cmd->add_option("--num-samples", sample.num_samples, "number of sequences")->required();
  sample_cmd->add_option("--seq-len", sample.seq_len, "tokens per sequence (prompt + response)")->required();
  sample_cmd->add_option("--out", sample_out, "output directory")->required();
  sample_cmd->add_option("--temperature", sample.temperature, "sampling temperature (0 = greedy; default 1)");
  sample_cmd->add_option("--seed", sample.seed, "random seed");
  sample_cmd->add_option("--prompt-len", sample.prompt_len, "random prompt tokens, loss_mask 0 (default seq-len/4)");

  HiddenStateGenOptions hs;
  std::int64_t hs_vocab = 0;
  CLI::App* hs_cmd = app.add_subcommand(
      "hidden-states", "write DIR/hidden_states/hs_{i}.safetensors (verifier features of DIR/data.jsonl), "
                       "DIR/token_freq.npy and, with --draft-vocab-size, DIR/{d2t,t2d}.npy; resumable");
  hs_cmd->add_option("--verifier", hs.verifier_dir, "verifier directory")->required();
  hs_cmd->add_option("--data", hs.data_dir, "data directory with data.jsonl")->required();
  hs_cmd->add_option("--target-layer-ids", hs.target_layer_ids,
                     "aux layer ids (default [2, n/2, n-3] as eagle3; the final layer is always appended)");
  hs_cmd->add_option("--dtype", hs.dtype, "stored dtype: bf16 (default, as the reference) or fp32")
      ->check(CLI::IsMember({"bf16", "fp32"}));
  hs_cmd->add_option("--batch-tokens", hs.batch_tokens, "tokens per verifier forward (default 8192)");
  hs_cmd->add_flag("--validate", hs.validate, "re-read every file (existing ones too): ids, shapes, finite values");
  hs_cmd->add_option("--draft-vocab-size", hs_vocab, "also write d2t.npy and t2d.npy for this draft vocabulary");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : static_cast<int>(ExitCode::kUsage);
  }
  try {
    if (make_cmd->parsed()) run_make_verifier(make, make_out);
    if (sample_cmd->parsed()) run_sample(sample_verifier, sample, sample_out);
    if (hs_cmd->parsed()) {
      if (hs_cmd->count("--draft-vocab-size") > 0) hs.draft_vocab_size = hs_vocab;
      run_hidden_states(hs);
    }
  } catch (const Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return static_cast<int>(e.code());
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return static_cast<int>(ExitCode::kFailure);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return speculators::run_guarded("speculators-datagen", [&] { return run_main(argc, argv); });
}
