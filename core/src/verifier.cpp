// The verifier causal LM: construction from a TransformerConfig, the forward pass that exposes
// the residual stream at requested layer ids (vLLM's semantics), loading from a single or sharded
// safetensors checkpoint in Hugging Face layout, saving in that layout, and the reference's
// name resolution for single verifier tensors
// (speculators/utils/loading.py: _resolve_key).
#include "speculators/verifier.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <optional>

#include "speculators/error.h"
#include "speculators/log.h"
#include "speculators/tensor_io.h"
#include "verifier_gpt_oss.h"
#include "verifier_llama4.h"

namespace speculators {
namespace fs = std::filesystem;

namespace {

// Refuses a config whose float32 weights alone would not fit in this machine's memory (the model
// is built in float32 on the CPU first), before anything is allocated: a config.json claiming
// 1,000,000 layers must not make the trainer allocate until the kernel kills it.
void check_fits_in_memory(const TransformerConfig& c, const std::string& origin) {
  const long double h = static_cast<long double>(c.hidden_size);
  const long double q = static_cast<long double>(c.num_attention_heads) * static_cast<long double>(c.head_dim);
  const long double kv = static_cast<long double>(c.num_key_value_heads) * static_cast<long double>(c.head_dim);
  const long double mlp = c.num_experts > 0
                              ? static_cast<long double>(c.num_experts) * 3 * h * static_cast<long double>(c.moe_intermediate_size)
                              : 3 * h * static_cast<long double>(c.intermediate_size);
  const long double per_layer = h * q + 2 * h * kv + q * h + mlp + 2 * h;
  const long double params = static_cast<long double>(c.num_hidden_layers) * per_layer +
                             (c.tie_word_embeddings ? 1 : 2) * static_cast<long double>(c.vocab_size) * h + h;
  const long double bytes = 4 * params;
  const long double memory = static_cast<long double>(::sysconf(_SC_PHYS_PAGES)) * static_cast<long double>(::sysconf(_SC_PAGESIZE));
  if (memory > 0 && bytes > memory) {
    const auto gib = [](long double b) { return static_cast<unsigned long long>(b / (1024.0L * 1024 * 1024) + 0.5L); };
    fail_usage(cat(origin, ": num_hidden_layers ", c.num_hidden_layers, ", hidden_size ", c.hidden_size,
                   ", intermediate_size ", c.intermediate_size, ", vocab_size ", c.vocab_size, " need about ", gib(bytes),
                   " GiB of float32 weights, more than this machine's ", gib(memory), " GiB of memory"));
  }
}

TransformerConfig validated(const TransformerConfig& config, const std::string& origin = "verifier config") {
  if (config.widths_only) {
    fail_usage(cat("verifier model_type '", config.model_type, "' cannot be run here (valid: llama, mistral, qwen2, "
                   "qwen3, qwen3_moe, llama4_text, gpt_oss); use pre-computed features (--data-source files)"));
  }
  config.validate(origin);
  check_fits_in_memory(config, origin);
  return config;
}

// Tensor name -> file for a checkpoint directory: DIR/model.safetensors.index.json (shards) or
// DIR/model.safetensors. Shards are opened on first use and kept open.
class CheckpointFiles {
 public:
  explicit CheckpointFiles(const std::string& dir) {
    const fs::path index = fs::path(dir) / "model.safetensors.index.json";
    const fs::path single = fs::path(dir) / "model.safetensors";
    if (fs::exists(index)) {
      source_ = index.string();
      read_index(dir, index.string());
    } else if (fs::exists(single)) {
      source_ = single.string();
      for (const auto& entry : SafetensorsFile::read_header(single.string())) where_[entry.first] = source_;
    } else {
      fail_data(cat("verifier checkpoint ", dir, ": neither model.safetensors nor model.safetensors.index.json exists"));
    }
  }

  const std::map<std::string, std::string>& where() const { return where_; }
  const std::string& source() const { return source_; }

  // The tensor `name`, which must be floating point and finite: a verifier file that fails
  // either is bad data (ExitCode::kData), found before any training step.
  torch::Tensor get(const std::string& name) {
    auto it = where_.find(name);
    if (it == where_.end()) fail_data(cat(source_, ": tensor '", name, "' is not in the checkpoint"));
    auto& file = open_[it->second];
    if (!file) {
      if (!fs::exists(it->second)) {
        fail_data(cat(source_, ": shard '", it->second, "' listed for tensor '", name, "' does not exist"));
      }
      file = std::make_unique<SafetensorsFile>(it->second);
    }
    if (!file->contains(name)) {
      fail_data(cat(source_, ": tensor '", name, "' is listed in shard '", it->second, "' but that file lacks it"));
    }
    torch::Tensor tensor = file->get(name);
    if (!tensor.is_floating_point()) {
      fail_data(cat(it->second, ": tensor '", name, "' has dtype ", c10::toString(tensor.scalar_type()),
                    "; verifier weights must be floating point (float32, bfloat16 or float16)"));
    }
    if (!torch::isfinite(tensor).all().item<bool>()) {
      const std::int64_t bad = (~torch::isfinite(tensor)).flatten().nonzero()[0][0].item<std::int64_t>();
      fail_data(cat(it->second, ": tensor '", name, "' has a non-finite value (NaN or Inf) at flat index ", bad));
    }
    return tensor;
  }

 private:
  void read_index(const std::string& dir, const std::string& index_path) {
    Json index;
    try {
      index = Json::read_file(index_path);
    } catch (const Error& e) {
      if (e.code() != ExitCode::kFailure) throw;
      fail_data(e.what());  // not JSON, too deep, a number out of range: like a bad weight_map
    }
    if (!index.is_object() || !index.contains("weight_map") || !index.at("weight_map").is_object()) {
      fail_data(cat(index_path, ": expected an object with a 'weight_map' object"));
    }
    for (const auto& entry : index.at("weight_map").as_object()) {
      if (!entry.second.is_string()) {
        fail_data(cat(index_path, ": weight_map entry '", entry.first, "' must name a file, got ", entry.second.dump()));
      }
      // Shards live in the verifier directory itself: a name with a path in it ("../../etc/passwd",
      // an absolute path) could point anywhere.
      const std::string& shard = entry.second.as_string();
      if (shard.empty() || shard == "." || shard == ".." || shard.find('/') != std::string::npos) {
        fail_data(cat(index_path, ": weight_map entry '", entry.first, "' names \"", shard,
                      "\": a shard must be a file name inside ", dir));
      }
      where_[entry.first] = (fs::path(dir) / shard).string();
    }
  }

  std::string source_;
  std::map<std::string, std::string> where_;
  std::map<std::string, std::unique_ptr<SafetensorsFile>> open_;
};

// HF checkpoints name decoder tensors "model.<name>" and the head "lm_head.weight".
std::string strip_model_prefix(const std::string& name) {
  const std::string prefix = "model.";
  return name.compare(0, prefix.size(), prefix) == 0 ? name.substr(prefix.size()) : name;
}

std::string hf_name(const std::string& local) { return local == "lm_head.weight" ? local : "model." + local; }

std::string dtype_name(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat32: return "float32";
    case torch::kBFloat16: return "bfloat16";
    case torch::kFloat16: return "float16";
    default: fail(cat("save_verifier: unsupported dtype ", c10::toString(dtype), "; valid: float32, bfloat16, float16"));
  }
}

// As _resolve_key: exact name, then a suffix match on a '.' boundary (the least nested name wins).
std::optional<std::string> resolve_name(const std::map<std::string, std::string>& names, const std::string& want) {
  if (names.count(want)) return want;
  std::optional<std::string> best;
  for (const auto& entry : names) {
    const std::string& name = entry.first;
    if (name.size() <= want.size() || name.compare(name.size() - want.size(), want.size(), want) != 0) continue;
    if (name[name.size() - want.size() - 1] != '.') continue;
    if (!best || name.size() < best->size()) best = name;
  }
  return best;
}

}  // namespace

VerifierModelImpl::VerifierModelImpl(const TransformerConfig& config)
    : config_(validated(config)), rotary_(config_) {
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(config_.vocab_size, config_.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  if (config_.model_type == "llama4_text") {
    const Llama4Settings settings = read_llama4_settings(config_.family_config, config_, "llama4_text config");
    for (std::int64_t i = 0; i < config_.num_hidden_layers; ++i) layers->push_back(Llama4DecoderLayer(config_, settings, i));
  } else if (config_.model_type == "gpt_oss") {
    const GptOssSettings settings = read_gpt_oss_settings(config_.family_config, "gpt_oss config");
    for (std::int64_t i = 0; i < config_.num_hidden_layers; ++i) layers->push_back(GptOssDecoderLayer(config_, settings, i));
  } else {
    const nn::ModelClasses classes = nn::model_classes(config_.model_type);
    for (std::int64_t i = 0; i < config_.num_hidden_layers; ++i) layers->push_back(nn::make_layer(classes, config_, i));
  }
  norm = register_module("norm", nn::RMSNorm(config_.hidden_size, config_.rms_norm_eps));
  lm_head = register_module("lm_head",
                            torch::nn::Linear(torch::nn::LinearOptions(config_.hidden_size, config_.vocab_size).bias(false)));
  if (config_.tie_word_embeddings) {
    // The head shares the embedding's storage; save_verifier then writes only the embedding.
    torch::NoGradGuard no_grad;
    lm_head->weight.set_(embed_tokens->weight);
  }
}

VerifierModelImpl::Output VerifierModelImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& position_ids,
                                                     const torch::Tensor& document_ids,
                                                     const std::vector<std::int64_t>& layer_ids, bool want_logits) {
  const std::int64_t n = config_.num_hidden_layers;
  for (std::int64_t id : layer_ids) {
    if (id < 0 || id > n) {
      fail_usage(cat("verifier layer id ", id, " is out of range; valid ids are 0..", n,
                     " (k = residual stream after k decoder layers)"));
    }
  }
  if (input_ids.dim() != 2) fail(cat("verifier forward: input_ids must be [B, L], got ", input_ids.sizes()));
  const std::int64_t length = input_ids.size(1);
  torch::Tensor positions = position_ids;
  if (!positions.defined()) {
    positions = torch::arange(length, torch::TensorOptions().dtype(torch::kLong).device(input_ids.device()))
                    .unsqueeze(0)
                    .expand({input_ids.size(0), length});
  }
  // Without document ids every row is one causal sequence; a packed row's [1, L] ids are accepted too.
  torch::Tensor docs = document_ids.defined()
                           ? document_ids
                           : torch::zeros({length}, torch::TensorOptions().dtype(torch::kLong).device(input_ids.device()));
  if (docs.dim() == 2 && docs.size(0) == 1) docs = docs[0];
  if (docs.dim() != 1 || docs.size(0) != length) {
    fail(cat("verifier forward: document_ids must be [L] = [", length, "], got ", docs.sizes()));
  }

  torch::Tensor h = embed_tokens(input_ids);
  const bool llama4 = config_.model_type == "llama4_text";
  // Llama4TextRotaryEmbedding keeps its complex tables in fp32.
  const nn::RotaryTables rope = rotary_.tables(positions, llama4 ? torch::kFloat : h.scalar_type());
  std::map<std::int64_t, torch::Tensor> captured;
  auto capture = [&](std::int64_t id) {
    if (std::find(layer_ids.begin(), layer_ids.end(), id) != layer_ids.end()) captured[id] = h;
  };
  for (std::int64_t i = 0; i < n; ++i) {
    capture(i);  // id i = input of layer i
    if (llama4) {
      h = layers->ptr<Llama4DecoderLayerImpl>(static_cast<std::size_t>(i))->forward(h, Llama4Inputs{rope, positions, docs});
      continue;
    }
    const std::optional<std::int64_t> window = config_.window_of_layer(i);
    if (config_.model_type == "gpt_oss") {
      h = layers->ptr<GptOssDecoderLayerImpl>(static_cast<std::size_t>(i))->forward(h, rope, docs, window);
      continue;
    }
    const nn::AttentionKernel kernel = [&docs, window](const torch::Tensor& q, const torch::Tensor& k,
                                                        const torch::Tensor& v) {
      return nn::document_causal_attention(q, k, v, docs, window);
    };
    h = layers->ptr<nn::DecoderLayerImpl>(static_cast<std::size_t>(i))->forward(h, rope, kernel);
  }
  capture(n);  // the final decoder output, before the final norm

  Output out;
  for (std::int64_t id : layer_ids) out.hidden_states.push_back(captured.at(id));
  if (want_logits) out.logits = lm_head(norm(h));
  return out;
}

VerifierModel load_verifier(const std::string& dir) {
  const fs::path config_path = fs::path(dir) / "config.json";
  if (!fs::exists(config_path)) fail_usage(cat("verifier ", dir, ": config.json does not exist"));
  const TransformerConfig config = validated(TransformerConfig::from_file(config_path.string()), config_path.string());
  VerifierModel model(config);
  CheckpointFiles files(dir);

  std::map<std::string, std::string> by_local;
  for (const auto& entry : files.where()) by_local.emplace(strip_model_prefix(entry.first), entry.first);

  torch::NoGradGuard no_grad;
  bool tie = config.tie_word_embeddings;
  for (auto& param : model->named_parameters()) {
    const std::string& local = param.key();
    if (local == "lm_head.weight" && tie) continue;
    auto it = by_local.find(local);
    if (it == by_local.end()) {
      if (local == "lm_head.weight") {
        // Without a head of its own the verifier would silently predict with its embedding: only
        // a config that says so (tie_word_embeddings) may leave the head out.
        fail_data(cat(files.source(), ": tensor 'lm_head.weight' is missing and ", config_path.string(),
                      " does not set \"tie_word_embeddings\": true (add it if this model shares its embedding "
                      "with the head)"));
      }
      fail_data(cat(files.source(), ": tensor '", hf_name(local), "' is missing (needed by the ", config.model_type,
               " verifier in ", dir, ")"));
    }
    const torch::Tensor t = files.get(it->second);
    if (t.sizes() != param.value().sizes()) {
      fail_data(cat(files.source(), ": tensor '", it->second, "' has shape ", t.sizes(), " but the config needs ",
               param.value().sizes()));
    }
    param.value().copy_(t);
  }
  if (tie && !model->lm_head->weight.is_alias_of(model->embed_tokens->weight)) {
    model->lm_head->weight.copy_(model->embed_tokens->weight);
  }
  return model;
}

void save_verifier(VerifierModelImpl& model, const std::string& dir, torch::ScalarType dtype) {
  if (model.config().model_type == "llama4_text" || model.config().model_type == "gpt_oss") {
    fail_usage(cat("save_verifier: a ", model.config().model_type, " verifier cannot be written (its config.json "
                   "keys are not reproduced); valid: llama, mistral, qwen2, qwen3, qwen3_moe"));
  }
  Json config = model.config().to_hf_json();
  config["torch_dtype"] = dtype_name(dtype);
  fs::create_directories(dir);
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& param : model.named_parameters()) {
    if (param.key() == "lm_head.weight" && model.config().tie_word_embeddings) continue;
    tensors[hf_name(param.key())] = param.value().detach().to(torch::kCPU, dtype).contiguous();
  }
  save_safetensors((fs::path(dir) / "model.safetensors").string(), tensors);
  write_file_atomic((fs::path(dir) / "config.json").string(), config.dump_python());
}

torch::Tensor read_verifier_tensor(const std::string& dir, const std::string& logical) {
  std::vector<std::string> aliases;
  if (logical == "embed_tokens.weight") {
    aliases = {"tok_embeddings.weight", "llm.embed.weight"};
  } else if (logical == "lm_head.weight") {
    aliases = {"output.weight", "llm.unembed.weight"};
  } else if (logical == "model.norm.weight") {
    aliases = {"norm.weight"};
  } else {
    fail(cat("read_verifier_tensor: unknown tensor '", logical,
             "'; valid: embed_tokens.weight, lm_head.weight, model.norm.weight"));
  }
  CheckpointFiles files(dir);
  std::optional<std::string> name = resolve_name(files.where(), logical);
  for (std::size_t i = 0; !name && i < aliases.size(); ++i) name = resolve_name(files.where(), aliases[i]);
  if (name) return files.get(*name);
  // DraftVocabMixin._load_verifier_weights: a checkpoint without a head has tied embeddings.
  if (logical == "lm_head.weight") return read_verifier_tensor(dir, "embed_tokens.weight");
  return torch::Tensor();
}

Json read_verifier_config_json(const std::string& dir) {
  const fs::path path = fs::path(dir) / "config.json";
  if (!fs::exists(path)) fail_usage(cat("verifier ", dir, ": config.json does not exist"));
  Json root;
  try {
    root = Json::read_file(path.string());
  } catch (const Error& e) {
    // Not JSON, too deep, too large, a number out of range: a bad input like a bad key (exit 2),
    // as TransformerConfig::from_file reports it.
    if (e.code() != ExitCode::kFailure) throw;
    fail_usage(e.what());
  }
  if (!root.is_object()) fail_usage(cat(path.string(), ": expected a JSON object"));
  if (!root.contains("text_config") || !root.at("text_config").is_object()) return root;
  // Multimodal: the text config, plus the top-level keys a decoder needs that HF keeps outside it.
  Json text = root.at("text_config");
  for (const char* key : {"architectures", "tie_word_embeddings"}) {
    if (!text.contains(key) && root.contains(key)) text[key] = root.at(key);
  }
  return text;
}

}  // namespace speculators
