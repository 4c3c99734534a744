// speculators-datagen: makes the inputs of a training run without an external model server.
//   make-verifier  a random Llama / Qwen3 verifier in Hugging Face layout, with learnable structure
//   sample         on-policy token data (data.jsonl) sampled from a verifier
//   prepare        conversations (ShareGPT, messages, UltraChat) -> per-turn masked data.jsonl
//   regenerate     every assistant turn of a conversation dataset replaced by the verifier's own
//   hidden-states  the verifier's features of data.jsonl as hidden_states/hs_{i}.safetensors
#include <CLI/CLI.hpp>

#include <filesystem>
#include <iomanip>
#include <iostream>

#include "data/hidden_state_gen.h"
#include "data/prepare.h"
#include "data/regenerate.h"
#include "eval/sampling.h"
#include "speculators/error.h"
#include "speculators/json.h"
#include "speculators/log.h"
#include "speculators/verifier.h"
#include "speculators/vocab.h"
#include "tools/cli_parse.h"
#include "tools/guard.h"
#include "tools/make_verifier.h"
#include "tools/tiny_tokenizer.h"

namespace {

using namespace speculators;
namespace fs = std::filesystem;

void run_make_verifier(const MakeVerifierOptions& options, const std::string& out, bool with_tokenizer) {
  if (with_tokenizer && options.vocab_size < kTinyTokenizerMinVocab) {
    write_tiny_tokenizer(out, options.vocab_size);  // throws the usage error before the slow part
  }
  MadeVerifier made = make_structured_verifier(options);
  save_verifier(*made.model, out);
  if (with_tokenizer) write_tiny_tokenizer(out, options.vocab_size);
  const TransformerConfig& c = made.model->config();
  std::cout << "wrote " << c.model_type << " verifier to " << out << ": hidden " << c.hidden_size << ", "
            << c.num_hidden_layers << " layers, " << c.num_attention_heads << " heads (" << c.num_key_value_heads
            << " kv, head dim " << c.head_dim << "), intermediate " << c.intermediate_size << ", vocab "
            << c.vocab_size << "\n"
            << "mean top-1 probability on its own samples (temperature 1): " << std::fixed << std::setprecision(3)
            << made.mean_top1 << "\n";
  if (with_tokenizer) std::cout << "wrote tokenizer.json, chat_template.jinja and tokenizer_config.json\n";
}

void run_prepare(const PrepareOptions& options) {
  const PrepareReport r = prepare_dataset(options);
  const std::string data = (fs::path(options.out) / "data.jsonl").string();
  if (r.kept_existing) {
    std::cout << data << " is complete for these arguments (" << r.rows << " rows); kept\n";
    return;
  }
  std::cout << "wrote " << r.rows << " rows (" << r.supervised_tokens << " supervised tokens) from " << r.records
            << " records to " << data << " and token_freq.npy; skipped " << r.bad << " malformed, dropped "
            << r.unsupervised << " rows without a supervised token, " << r.skipped_turns
            << " turns whose context fills --seq-length " << options.seq_length << ", " << r.empty
            << " conversations without a row\n";
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
  // The token frequencies of the supervised positions, as prepare and hidden-states write them:
  // what --draft-vocab-size builds a reduced vocabulary from.
  TokenFrequencies freq;
  count_token_frequencies(samples.input_ids.reshape(-1), samples.loss_mask.reshape(-1), freq);
  write_token_frequencies((fs::path(out) / "token_freq.npy").string(), freq);
  const std::int64_t prompt = samples.loss_mask.size(1) - samples.loss_mask[0].sum().item<std::int64_t>();
  std::cout << "wrote " << options.num_samples << " sequences of " << options.seq_len << " tokens (" << prompt
            << " prompt, " << options.seq_len - prompt << " sampled) to " << path << " and token_freq.npy\n"
            << "mean top-1 probability of the sampled positions: " << std::fixed << std::setprecision(3)
            << samples.mean_top1 << "\n";
}

void run_regenerate(const RegenerateOptions& options) {
  const RegenerateReport r = regenerate_responses(options);
  std::cout << "regenerated " << r.written << " conversations (" << r.turns << " assistant turns, " << r.tokens
            << " tokens) into " << options.out << "; kept " << r.kept << " from an earlier run, skipped " << r.bad
            << " malformed, of " << r.conversations << "\n";
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
  bool make_tokenizer = false;
  make_cmd->add_flag("--with-tokenizer", make_tokenizer,
                     "also write a tiny character-level tokenizer.json and chat template (vocab >= 103)");

  PrepareOptions prep;
  std::string prep_bad = "skip";
  std::int64_t prep_max = 0;
  CLI::App* prep_cmd = app.add_subcommand(
      "prepare", "write DIR/data.jsonl (one masked row per assistant turn) and DIR/token_freq.npy from conversations");
  prep_cmd->add_option("--verifier", prep.verifier_dir, "verifier directory (tokenizer.json, chat template)")->required();
  prep_cmd->add_option("--dataset", prep.dataset, ".json/.jsonl file or folder of them")->required();
  prep_cmd->add_option("--preset", prep.preset, "auto (default), sharegpt, messages or ultrachat")
      ->check(CLI::IsMember({"auto", "sharegpt", "messages", "ultrachat"}));
  prep_cmd->add_option("--out", prep.out, "output directory")->required();
  prep_cmd->add_option("--seq-length", prep.seq_length, "maximum tokens per row (default 8192)");
  prep_cmd->add_option("--max-samples", prep_max, "keep at most this many rows");
  prep_cmd->add_option("--seed", prep.seed, "shuffle seed (default 0)");
  prep_cmd->add_option("--num-workers", prep.num_workers, "rendering threads (default: one per CPU)");
  prep_cmd->add_option("--mask-mode", prep.mask_mode,
                       "per-turn (default: one row per assistant turn) or all-assistant (one row per conversation, "
                       "prefix-stable templates only)")
      ->check(CLI::IsMember({"per-turn", "all-assistant"}));
  prep_cmd->add_option("--on-bad-sample", prep_bad, "skip (default: warn and count) or raise (exit 4)")
      ->check(CLI::IsMember({"skip", "raise"}));

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

  RegenerateOptions regen;
  std::string regen_bad = "skip";
  CLI::App* regen_cmd = app.add_subcommand(
      "regenerate", "replace every assistant turn of a conversation dataset with the verifier's own response; "
                    "resumable (a restarted run continues after the last complete conversation)");
  regen_cmd->add_option("--verifier", regen.verifier_dir, "verifier directory (weights, tokenizer, chat template)")
      ->required();
  regen_cmd->add_option("--dataset", regen.dataset, ".json/.jsonl conversations")->required();
  regen_cmd->add_option("--out", regen.out, "output .jsonl ({\"index\", \"messages\"} per line)")->required();
  regen_cmd->add_option("--max-new-tokens", regen.max_new_tokens, "most tokens per response (default 512)");
  regen_cmd->add_option("--temperature", regen.temperature, "sampling temperature (default 0: greedy)");
  regen_cmd->add_option("--top-p", regen.top_p, "nucleus sampling mass (default 1)");
  regen_cmd->add_option("--batch-size", regen.batch_size, "conversations generated together (default 8)");
  regen_cmd->add_option("--device", regen.device, "cpu (default), cuda or cuda:N");
  regen_cmd->add_option("--seed", regen.seed, "sampling seed; conversation i uses seed + i");
  regen_cmd->add_option("--on-bad-sample", regen_bad, "skip (default) or raise (exit 4)")
      ->check(CLI::IsMember({"skip", "raise"}));

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

  if (const auto status = parse_cli(app, argc, argv)) return *status;
  if (make_cmd->parsed()) run_make_verifier(make, make_out, make_tokenizer);
  if (prep_cmd->parsed()) {
    if (prep_cmd->count("--max-samples") > 0) prep.max_samples = prep_max;
    prep.on_bad_sample = parse_bad_sample_policy(prep_bad);
    run_prepare(prep);
  }
  if (sample_cmd->parsed()) run_sample(sample_verifier, sample, sample_out);
  if (regen_cmd->parsed()) {
    regen.on_bad_sample = parse_bad_sample_policy(regen_bad);
    run_regenerate(regen);
  }
  if (hs_cmd->parsed()) {
    if (hs_cmd->count("--draft-vocab-size") > 0) hs.draft_vocab_size = hs_vocab;
    run_hidden_states(hs);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return speculators::run_guarded("speculators-datagen", [&] { return run_main(argc, argv); });
}
