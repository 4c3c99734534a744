// Job resolution: host options, YAML reading (yaml-cpp, private), flags, precedence, run.yaml.
#include "tools/job.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {

const std::vector<std::string>& job_groups() {
  static const std::vector<std::string> groups = {"root",    "verifier",  "draft",   "data",
                                                  "loss",    "optimizer", "scheduler", "trainer",
                                                  "logging", "distributed"};
  return groups;
}

Schema host_schema() {
  // Names and defaults follow the reference's CLI (speculators/train/config/schema.py) where it has
  // the option.
  return {
      opt_string("speculator_type", "eagle3", "Algorithm to train (a registered plugin name)", "root"),
      opt_int("seed", 42, "Random seed", "root").at_least(0),
      opt_bool("dry_run", false, "Write the initialised checkpoint to --save-path and exit", "root"),
      opt_string("verifier_name_or_path", Json(), "Verifier directory (Hugging Face layout). Required",
                 "verifier"),
      opt_string("from_pretrained", "", "Start from a saved draft checkpoint directory", "draft"),
      opt_int("num_layers", Json(), "Number of draft decoder layers (algorithm default when unset)", "draft")
          .at_least(1).at_most(256),
      opt_int_list("target_layer_ids", Json(), "Verifier layers whose hidden states feed the draft "
                   "(default chosen by the algorithm)", "draft").at_least(0),
      opt_int("draft_vocab_size", Json(), "Draft vocabulary size (full verifier vocabulary when unset)",
              "draft").at_least(1),
      opt_string("d2t_path", Json(), "d2t.npy (default <data-path>/d2t.npy when present)", "draft"),
      opt_string("t2d_path", Json(), "t2d.npy (default <data-path>/t2d.npy when present)", "draft"),
      opt_string("token_freq_path", Json(), "Token frequencies (the reference's token_freq.pt, or a "
                 "token_freq.npy of counts) that --draft-vocab-size builds the vocabulary from (default "
                 "<data-path>/token_freq.pt, else <data-path>/token_freq.npy)", "draft"),
      opt_string("data_path", "./output", "Directory with data.jsonl (and hidden_states/ for offline features)",
                 "data"),
      opt_string("data_source", "auto", "Feature source: online (run the verifier in-process), files, or "
                 "auto (files when <data-path>/hidden_states exists)", "data", {"auto", "online", "files"}),
      opt_int("total_seq_len", 8192, "Tokens per packed row (one row per rank per step)", "data").at_least(2)
          .at_most(1 << 20),
      opt_float("train_data_ratio", 0.9, "Fraction of rows used for training (the rest validates)", "data").above(0)
          .at_most(1),
      opt_float("noise_std", 0.05, "Half-width of uniform noise on the aux hidden states (train split)",
                "data").at_least(0),
      opt_int("feature_cache_mb", 2048, "Online source: keep verifier features of up to this many MiB in "
              "memory across epochs (0 disables)", "data").at_least(0).at_most(1 << 22),
      opt_string("hidden_states_dtype", Json(), "dtype the online verifier runs in and its hidden states "
                 "have (default bfloat16 with --precision bf16, else float32); float16 is not supported", "data",
                 {"bfloat16", "float32"}),
      opt_string("on_bad_sample", "skip", "A sample that cannot be used (corrupt or missing hs file, wrong "
                 "shape, NaN/Inf, token mismatch, no supervised token): skip it with a warning and count it per "
                 "epoch, or raise (exit code 4)", "data", {"skip", "raise"}),
      opt_int("num_workers", 2, "Background threads that read, add noise and pack the next batches while a "
              "step runs (0 = build each batch in the training thread)", "data").at_least(0).at_most(256),
      opt_int("prefetch_factor", 2, "Batches each worker may build ahead (memory: num_workers x "
              "prefetch_factor packed rows)", "data").at_least(1).at_most(64),
      opt_string("optimizer", "muon", "Optimizer: muon (Muon for 2-D hidden weights, AdamW for the rest) or "
                 "adamw (AdamW for everything)", "optimizer", {"adamw", "muon"}),
      opt_float("lr", 1e-4, "Learning rate (AdamW)", "optimizer").above(0),
      opt_float("weight_decay", 0.01, "AdamW weight decay", "optimizer").at_least(0),
      opt_float("muon_lr", Json(), "Muon learning rate (default 10 x --lr)", "optimizer").above(0),
      opt_float("muon_momentum", 0.95, "Muon momentum (Nesterov)", "optimizer").at_least(0).at_most(1),
      opt_float("muon_weight_decay", 0.1, "Muon weight decay", "optimizer").at_least(0),
      opt_int("muon_ns_steps", 5, "Muon Newton-Schulz iterations", "optimizer").at_least(1).at_most(100),
      opt_string("muon_adjust_lr_fn", "match_rms_adamw", "Muon LR scaling: match_rms_adamw (0.2 x sqrt(max(rows, "
                 "cols))) or original (sqrt(max(1, rows/cols)))", "optimizer", {"original", "match_rms_adamw"}),
      opt_float("max_grad_norm", 1.0, "Gradient-norm clip", "optimizer").above(0),
      opt_int("grad_accum_steps", 1, "Packed rows whose gradients are averaged into one optimizer step",
              "optimizer").at_least(1).at_most(1 << 20),
      opt_string("scheduler_type", "linear", "Learning-rate schedule", "scheduler", {"linear", "cosine", "none"}),
      opt_int("scheduler_warmup_steps", Json(), "Warmup steps (default 1% of total)", "scheduler").at_least(0),
      opt_float("scheduler_warmup_ratio", Json(), "Warmup as a fraction of total steps", "scheduler").at_least(0)
          .at_most(1),
      opt_int("scheduler_total_steps", Json(), "Total steps (default epochs x steps per epoch)", "scheduler")
          .at_least(1),
      opt_float("scheduler_num_cosine_cycles", 0.5, "Cosine cycles", "scheduler").above(0),
      opt_int("epochs", 20, "Epochs", "trainer").at_least(1).at_most(1000000),
      opt_int("max_steps", Json(), "Stop after this many optimizer steps (the run ends there, with a checkpoint)",
              "trainer").at_least(1),
      opt_string("save_path", "./output/checkpoints", "Checkpoint directory", "trainer"),
      opt_float("checkpoint_freq", 1.0, "f >= 1: save epoch 0, every f-th epoch and the last; f < 1: every epoch "
                "end plus every round(f x steps per epoch) steps within it", "trainer").above(0),
      opt_int("save_steps", 0, "Also save within an epoch every N optimizer steps (0: only as --checkpoint-freq "
              "says)", "trainer").at_least(0),
      opt_bool("save_best", false, "Save an epoch only when its validation loss is the best so far, and keep only "
               "that checkpoint", "trainer"),
      opt_int("keep_last", 0, "Keep only the N newest epoch checkpoints, plus the best (0 keeps all)", "trainer")
          .at_least(0),
      opt_bool("resume_from_checkpoint", true, "Continue from the newest complete checkpoint in --save-path "
               "(--no-resume-from-checkpoint starts over)", "trainer"),
      opt_int("max_bad_steps", 10, "Stop (saving the last good state) after this many consecutive steps with a "
              "non-finite loss or gradient; each one is skipped", "trainer").at_least(1),
      opt_int("log_freq", 1, "Write a metrics line every N steps", "trainer").at_least(1),
      opt_string("device", "auto", "Where the draft, the frozen verifier pieces, batches and optimizer state live: "
                 "auto (cuda:<LOCAL_RANK> when LibTorch sees a GPU, else cpu), cpu, cuda (= cuda:<LOCAL_RANK>) or "
                 "cuda:N", "trainer"),
      opt_string("precision", Json(), "bf16: forward and loss under bf16 autocast, fp32 master weights, optimizer "
                 "state and gradient all-reduce; fp32: everything fp32 (default bf16 on CUDA, fp32 on CPU)",
                 "trainer", {"bf16", "fp32"}),
      opt_int("num_threads", 0, "CPU threads (N: LibTorch and OpenBLAS both N; 0 = with OpenBLAS, its matrix "
              "products on every CPU the process may use and LibTorch's other operators on one thread, else "
              "LibTorch on every CPU; docs/performance.md; OMP_NUM_THREADS overrides)", "trainer")
          .at_least(0).at_most(4096),
      opt_int("nproc_per_node", 1, "Start this many ranks on this machine (each gets RANK, WORLD_SIZE, LOCAL_RANK, "
              "MASTER_ADDR, MASTER_PORT, as torchrun sets them). Ignored inside a launched rank", "distributed")
          .at_least(1).at_most(4096),
      opt_string("shard", "none", "Data-parallel sharding: none (replicated), optimizer (optimizer state and "
                 "gradients split by layer unit), full (parameters too, gathered per step)", "distributed",
                 {"none", "optimizer", "full"}),
      opt_string("dist_backend", "auto", "Collective backend: gloo (CPU), nccl (GPU), or auto (nccl when "
                 "training on a GPU with an NCCL build, else gloo; one process alone uses none). A backend given "
                 "by name is joined even by one process", "distributed", {"auto", "gloo", "nccl"}),
      opt_float("dist_timeout", 1800, "Seconds a collective (and the rendezvous) may wait before the job "
                "stops with an error naming the rank that did not answer", "distributed").above(0).at_most(604800),
      opt_string("log_dir", Json(), "Where metrics.jsonl, report.html and the TensorBoard run go (default: "
                 "--save-path)", "logging"),
      opt_string("logger", "tensorboard", "Comma list of extra loggers: tensorboard (event files in "
                 "<log-dir>/<run-name>), or empty for none", "logging"),
      opt_string("run_name", Json(), "TensorBoard run directory name (default \"tensorboard\"; placeholders "
                 "{time}, {utc_time}, {rank}, {local_rank})", "logging"),
  };
}

Schema merge_schemas(const Schema& host, const Schema& algorithm, const std::string& algorithm_name) {
  Schema merged = host;
  for (const auto& opt : algorithm) {
    auto it = std::find_if(merged.begin(), merged.end(), [&](const Option& o) { return o.key == opt.key; });
    if (it == merged.end()) {
      merged.push_back(opt);
      continue;
    }
    if (it->type != opt.type) {
      fail(cat("plugin ", algorithm_name, " declares option ", opt.key, " as ", option_type_name(opt.type),
               " but the host declares it as ", option_type_name(it->type)),
           ExitCode::kPlugin);
    }
    it->default_value = opt.default_value;
    if (!opt.help.empty()) it->help = opt.help;
    if (!opt.choices.empty()) it->choices = opt.choices;
  }
  return merged;
}

CommandLine parse_command_line(const std::vector<std::string>& argv) {
  CommandLine cmd;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    auto next_value = [&](const std::string& flag) -> std::string {
      if (i + 1 >= argv.size()) fail_usage(cat(flag, " needs a value"));
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      cmd.help = true;
    } else if (a == "--version") {
      cmd.version = true;
    } else if (a == "--list-plugins") {
      cmd.list_plugins = true;
    } else if (a == "--dump-config") {
      cmd.dump_config = true;
    } else if (a == "--describe") {
      cmd.describe = next_value(a);
    } else if (a == "--plugin-dir") {
      cmd.plugin_dirs.push_back(next_value(a));
    } else if (a == "--config") {
      cmd.config_path = next_value(a);
    } else if (a.rfind("--", 0) == 0) {
      auto eq = a.find('=');
      if (eq != std::string::npos) {
        cmd.flags.emplace_back(a.substr(0, eq), a.substr(eq + 1));
        continue;
      }
      // Gather every following word that is not a flag: one for scalars, several for lists.
      std::string value;
      bool has_value = false;
      while (i + 1 < argv.size() && !(argv[i + 1].rfind("--", 0) == 0 && argv[i + 1].size() > 2 &&
                                      !std::isdigit(static_cast<unsigned char>(argv[i + 1][2])))) {
        value += (has_value ? " " : "") + argv[++i];
        has_value = true;
      }
      cmd.flags.emplace_back(a, has_value ? value : std::string("\x01"));
    } else if (cmd.config_path.empty()) {
      cmd.config_path = a;
    } else {
      fail_usage(cat("unexpected argument \"", a, "\" (a job file was already given: ", cmd.config_path, ")"));
    }
  }
  return cmd;
}

namespace {

constexpr const char* kNoValue = "\x01";

std::string where_of(const std::string& path, const YAML::Node& node, const std::string& key_path) {
  return cat(path, ":", node.Mark().line + 1, ": ", key_path);
}

Json yaml_scalar_guess(const YAML::Node& node) {
  if (node.IsNull()) return Json();
  if (node.IsSequence()) {
    Json out = Json::array();
    for (const auto& item : node) out.push_back(yaml_scalar_guess(item));
    return out;
  }
  if (node.IsMap()) {
    Json out = Json::object();
    for (const auto& kv : node) out[kv.first.as<std::string>()] = yaml_scalar_guess(kv.second);
    return out;
  }
  const std::string text = node.Scalar();
  if (node.Tag() == "!") return Json(text);  // quoted: always a string
  bool b;
  if (YAML::convert<bool>::decode(node, b) && text != "y" && text != "n") return Json(b);
  long long i;
  if (YAML::convert<long long>::decode(node, i)) return Json(i);
  double d;
  if (YAML::convert<double>::decode(node, d)) return Json(d);
  return Json(text);
}

const Option* find_option(const Schema& schema, const std::string& key) {
  for (const auto& o : schema) {
    if (o.key == key) return &o;
  }
  return nullptr;
}

std::vector<std::string> keys_of(const Schema& schema) {
  std::vector<std::string> keys;
  for (const auto& o : schema) keys.push_back(o.key);
  return keys;
}

void read_entry(const std::string& path, const std::string& key, const YAML::Node& value,
                const std::string& group, const Schema& schema, Json& out) {
  std::string key_path = group.empty() ? "train." + key : "train." + group + "." + key;
  const Option* opt = find_option(schema, key);
  if (opt == nullptr && !group.empty()) opt = find_option(schema, group + "_" + key);  // data.source
  if (opt == nullptr) {
    std::string hint = closest_match(key, keys_of(schema));
    fail_usage(cat(where_of(path, value, key_path), ": unknown key \"", key, "\"",
                   hint.empty() ? "" : cat("; did you mean \"", hint, "\"?")));
  }
  if (!group.empty() && opt->group != group && !(group == "root")) {
    fail_usage(cat(where_of(path, value, key_path), ": key \"", key, "\" belongs to group \"", opt->group,
                   "\", not \"", group, "\""));
  }
  out[opt->key] = opt->coerce(yaml_scalar_guess(value), where_of(path, value, key_path));
}

Json read_job_yaml_nodes(const std::string& path, const Schema& schema) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    fail_usage(cat(path, ": cannot read the job file"));
  } catch (const YAML::Exception& e) {
    fail_usage(cat(path, ":", e.mark.line + 1, ":", e.mark.column + 1, ": invalid YAML: ", e.msg));
  }
  Json out = Json::object();
  if (root.IsNull()) return out;
  if (!root.IsMap()) fail_usage(cat(path, ": a job file must be a mapping (optionally under \"train:\")"));
  YAML::Node body = root;
  if (root["train"]) {
    if (root.size() != 1) {
      for (const auto& kv : root) {
        if (kv.first.as<std::string>() != "train") {
          fail_usage(cat(where_of(path, kv.first, kv.first.as<std::string>()),
                         ": unexpected top-level key next to \"train:\""));
        }
      }
    }
    body = root["train"];
    if (!body.IsMap()) fail_usage(cat(path, ": \"train:\" must be a mapping"));
  }
  const auto& groups = job_groups();
  for (const auto& kv : body) {
    const std::string key = kv.first.as<std::string>();
    bool is_group = std::find(groups.begin(), groups.end(), key) != groups.end() ||
                    (kv.second.IsMap() && find_option(schema, key) == nullptr &&
                     std::any_of(schema.begin(), schema.end(), [&](const Option& o) { return o.group == key; }));
    if (is_group && kv.second.IsMap()) {
      for (const auto& inner : kv.second) {
        read_entry(path, inner.first.as<std::string>(), inner.second, key, schema, out);
      }
    } else if (is_group && !kv.second.IsNull()) {
      fail_usage(cat(where_of(path, kv.second, "train." + key), ": group \"", key, "\" must be a mapping"));
    } else if (!is_group) {
      read_entry(path, key, kv.second, "", schema, out);
    }
  }
  return out;
}

}  // namespace

Json read_job_yaml(const std::string& path, const Schema& schema) {
  try {
    return read_job_yaml_nodes(path, schema);
  } catch (const YAML::Exception& e) {
    // A key that is not a scalar, a value yaml-cpp cannot convert: still the job file's fault.
    const std::string where = e.mark.is_null() ? path : cat(path, ":", e.mark.line + 1, ":", e.mark.column + 1);
    fail_usage(cat(where, ": invalid job file: ", e.msg));
  }
}

std::string peek_speculator_type(const CommandLine& cmd) {
  for (const auto& [flag, value] : cmd.flags) {
    if (flag == "--speculator-type") {
      if (value == kNoValue) fail_usage("--speculator-type needs a value");
      return value;
    }
  }
  if (!cmd.config_path.empty()) {
    // Only the one key is read here; the full file is checked once the schema is known.
    Schema just_type = {opt_string("speculator_type", "eagle3", "", "root")};
    try {
      YAML::Node root = YAML::LoadFile(cmd.config_path);
      YAML::Node body = root["train"] ? root["train"] : root;
      if (body.IsMap() && body["speculator_type"]) return body["speculator_type"].as<std::string>();
    } catch (const YAML::Exception&) {
      // Reported with its line by read_job_yaml.
    }
  }
  return "eagle3";
}

Args resolve_job(const CommandLine& cmd, const Schema& schema) {
  Json values = Json::object();
  for (const auto& o : schema) values[o.key] = o.default_value;
  if (!cmd.config_path.empty()) {
    const Json yaml = read_job_yaml(cmd.config_path, schema);  // keep it alive for the loop
    for (const auto& [key, value] : yaml.as_object()) values[key] = value;
  }
  std::vector<std::string> flags;
  for (const auto& o : schema) flags.push_back(o.flag());
  for (const auto& [flag, text] : cmd.flags) {
    const Option* opt = nullptr;
    bool negated = false;
    for (const auto& o : schema) {
      if (o.flag() == flag) opt = &o;
      if (o.type == OptionType::kBool && "--no-" + o.flag().substr(2) == flag) {
        opt = &o;
        negated = true;
      }
    }
    if (opt == nullptr) {
      std::string hint = closest_match(flag, flags);
      fail_usage(cat("unknown flag ", flag, hint.empty() ? "" : cat("; did you mean ", hint, "?"),
                     " (see --help)"));
    }
    if (opt->type == OptionType::kBool && text == kNoValue) {
      values[opt->key] = Json(!negated);
    } else if (text == kNoValue) {
      fail_usage(cat(flag, " needs a value (", option_type_name(opt->type), ")"));
    } else if (negated) {
      fail_usage(cat(flag, " takes no value"));
    } else {
      values[opt->key] = opt->parse_flag_value(text, cat("flag ", flag));
    }
  }
  return Args(values);
}

namespace {

void emit_json(YAML::Emitter& out, const Json& v) {
  switch (v.type()) {
    case Json::Type::kNull: out << YAML::Null; break;
    case Json::Type::kBool: out << v.as_bool(); break;
    case Json::Type::kInt: out << static_cast<long long>(v.as_int()); break;
    case Json::Type::kFloat: out << python_float_repr(v.as_double()); break;
    case Json::Type::kString: out << YAML::DoubleQuoted << v.as_string(); break;
    case Json::Type::kArray:
      out << YAML::Flow << YAML::BeginSeq;
      for (const auto& item : v.as_array()) emit_json(out, item);
      out << YAML::EndSeq;
      break;
    case Json::Type::kObject:
      out << YAML::BeginMap;
      for (const auto& [k, item] : v.as_object()) out << YAML::Key << k << YAML::Value, emit_json(out, item);
      out << YAML::EndMap;
      break;
  }
}

}  // namespace

std::string job_to_yaml(const Args& args, const Schema& schema) {
  YAML::Emitter out;
  out << YAML::BeginMap << YAML::Key << "train" << YAML::Value << YAML::BeginMap;
  for (const auto& group : job_groups()) {
    std::vector<const Option*> changed;
    for (const auto& o : schema) {
      if (o.group == group && args.json().contains(o.key) && args.get(o.key) != o.default_value) {
        changed.push_back(&o);
      }
    }
    if (changed.empty()) continue;
    if (group != "root") out << YAML::Key << group << YAML::Value << YAML::BeginMap;
    for (const Option* o : changed) {
      out << YAML::Key << o->key << YAML::Value;
      emit_json(out, args.get(o->key));
    }
    if (group != "root") out << YAML::EndMap;
  }
  // Groups an algorithm adds (not in job_groups()) go last, alphabetically.
  std::set<std::string> extra;
  for (const auto& o : schema) {
    if (std::find(job_groups().begin(), job_groups().end(), o.group) == job_groups().end()) extra.insert(o.group);
  }
  for (const auto& group : extra) {
    bool opened = false;
    for (const auto& o : schema) {
      if (o.group != group || !args.json().contains(o.key) || args.get(o.key) == o.default_value) continue;
      if (!opened) out << YAML::Key << group << YAML::Value << YAML::BeginMap;
      opened = true;
      out << YAML::Key << o.key << YAML::Value;
      emit_json(out, args.get(o.key));
    }
    if (opened) out << YAML::EndMap;
  }
  out << YAML::EndMap << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

std::string help_text(const Schema& schema) {
  std::ostringstream s;
  s << "Usage: speculators-train [JOB.yaml] [--flag value]...\n"
       "       speculators-train --list-plugins | --describe NAME | --version\n"
       "       speculators-train plugins install PACKAGE | list | remove NAME [--plugin-dir DIR]\n\n"
       "Trains a speculative-decoding draft with an algorithm plugin. Values come from the flags,\n"
       "then the YAML job file (a `train:` block with groups, or a bare mapping), then the defaults.\n\n"
       "General:\n"
       "  --config JOB.yaml       job file (also accepted as the first argument)\n"
       "  --plugin-dir DIR        look for plugins in DIR first (repeatable)\n"
       "  --list-plugins          list the plugins found and whether they load\n"
       "  --describe NAME         show an algorithm's options\n"
       "  --dump-config           print the resolved job as YAML and exit\n"
       "  --version               print the build fingerprint\n";
  for (const auto& group : job_groups()) {
    bool any = false;
    for (const auto& o : schema) {
      if (o.group != group) continue;
      if (!any) s << "\n" << (group == "root" ? std::string("job") : group) << ":\n";
      any = true;
      std::string flag = o.type == OptionType::kBool ? o.flag() + " / --no-" + o.flag().substr(2) : o.flag();
      s << "  " << flag << " (" << option_type_name(o.type) << ", default "
        << (o.default_value.is_null() ? "unset" : o.default_value.dump()) << ")\n      " << o.help;
      if (!o.range_text().empty()) s << " [" << o.range_text() << "]";
      if (!o.choices.empty()) {
        s << " [";
        for (std::size_t i = 0; i < o.choices.size(); ++i) s << (i ? "|" : "") << o.choices[i];
        s << "]";
      }
      s << "\n";
    }
  }
  s << "\nAlgorithm options appear with --speculator-type NAME --help, or --describe NAME.\n"
       "Exit codes: 0 done, 2 bad job or usage, 3 plugin error, 4 data error, 5 a rank died or a collective failed,\n"
       "130 interrupted.\n";
  return s.str();
}

}  // namespace speculators
