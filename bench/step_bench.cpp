// See step_bench.h.
#include "step_bench.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "data/packing.h"
#include "device_support.h"
#include "observe/threads.h"
#include "speculators/autocast.h"
#include "speculators/error.h"
#include "speculators/log.h"
#include "speculators/registry.h"
#include "speculators/tensor_io.h"
#include "speculators/verifier.h"
#include "speculators/vocab.h"
#include "tools/job.h"
#include "verifier_compare.h"
#include "verifier_stub.h"

namespace speculators::bench {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

Batch make_batch(const Algorithm& algorithm, const Shape& shape, std::int64_t aux_layers) {
  std::vector<Sample> samples;
  torch::manual_seed(0);
  for (std::int64_t start = 0; start < shape.seq_len; start += shape.doc_len) {
    const auto t = std::min(shape.doc_len, shape.seq_len - start);
    Sample s;
    s.tensors["input_ids"] = torch::randint(shape.vocab, {t}, torch::kInt64);
    s.tensors["loss_mask"] = torch::ones({t}, torch::kInt64);
    s.tensors["position_ids"] = torch::arange(t, torch::kInt64);
    s.tensors["hidden_states"] = torch::randn({t, aux_layers * shape.hidden});
    s.tensors["verifier_last_hidden_states"] = torch::randn({t, shape.hidden});
    if (auto p = algorithm.preprocess(std::move(s))) samples.push_back(std::move(*p));
  }
  return collate(samples, shape.seq_len);
}

std::shared_ptr<DraftModel> build_model(const Algorithm& algorithm, const std::string& name, const Shape& shape,
                                        const fs::path& verifier, Json* call_args) {
  std::vector<std::string> argv = {"--speculator-type", name, "--verifier-name-or-path", verifier.string(),
                                   "--data-path", verifier.string(), "--total-seq-len",
                                   std::to_string(shape.seq_len)};
  if (shape.draft_vocab < shape.vocab) {
    argv.insert(argv.end(), {"--draft-vocab-size", std::to_string(shape.draft_vocab)});
  }
  if (name == "eagle3") argv.insert(argv.end(), {"--ttt-steps", std::to_string(shape.ttt_steps)});
  const Schema schema = merge_schemas(host_schema(), algorithm.schema(), name);
  BuildContext ctx;
  ctx.args = resolve_job(parse_command_line(argv), schema);
  algorithm.validate(ctx.args);
  ctx.verifier_json = read_verifier_config_json(verifier.string());
  ctx.verifier = TransformerConfig::from_hf_json(ctx.verifier_json, verifier.string() + "/config.json");
  ctx.verifier_path = ctx.verifier_name = verifier.string();
  if (shape.draft_vocab < shape.vocab) ctx.vocab = build_vocab_mapping({}, shape.vocab, shape.draft_vocab);
  auto model = algorithm.from_training_args(ctx);
  if (!model) fail(cat(name, ": the factory returned no model"), ExitCode::kPlugin);
  *call_args = algorithm.trainer_kwargs(ctx.args).first;
  return model;
}

struct Phases {
  double forward = 0, backward = 0, optimizer = 0;
  double total() const { return forward + backward + optimizer; }
};

void fill_profile(const OpProfile& prof, Result& r) {
  r.matmul_gflop = static_cast<double>(prof.matmul_flops) / 1e9;
  r.matmul_time_share = prof.total_self_us > 0 ? prof.matmul_us / prof.total_self_us : 0;
  std::vector<std::pair<std::string, double>> others;
  for (const auto& [op, s] : prof.ops) {
    if (OpProfile::is_matmul(op)) {
      r.matmul_ops[op] = s;
    } else if (prof.total_self_us > 0) {
      others.emplace_back(op, s.self_us / prof.total_self_us);
    }
  }
  std::sort(others.begin(), others.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  others.resize(std::min<std::size_t>(others.size(), 6));
  r.top_other_ops = others;
}

}  // namespace

Result run_step_bench(const Algorithm& algorithm, const std::string& name, const Shape& shape,
                      const StepBenchOptions& options, const fs::path& work) {
  const fs::path verifier = work / ("verifier_" + shape.name);
  write_verifier_stub(verifier, shape);
  Json call_args;
  auto model = build_model(algorithm, name, shape, verifier, &call_args);
  randomize_frozen_tensors(*model);
  const TrainingDevice& dev = options.device;
  model->to(dev.device);  // fp32 master weights; bf16 only inside autocast, as in training
  Batch batch = make_batch(algorithm, shape, static_cast<std::int64_t>(model->target_layer_ids().size()));
  batch_to_device(batch, dev.device);
  std::vector<torch::Tensor> trainable;
  Result r;
  for (const auto& p : model->parameters()) {
    if (p.requires_grad()) trainable.push_back(p), r.trainable_params += p.numel();
  }
  torch::optim::AdamW optimizer(trainable, torch::optim::AdamWOptions(1e-4));
  model->train();

  auto step = [&](Phases* timing) {
    auto t0 = Clock::now();
    optimizer.zero_grad();
    ForwardResult out;
    {
      // As Trainer::forward: forward and loss under autocast, backward outside it.
      AutocastGuard autocast(dev.device, torch::kBFloat16, dev.bf16);
      out = model->forward(batch, call_args);
    }
    synchronize(dev.device);
    auto t1 = Clock::now();
    out.loss.backward();
    synchronize(dev.device);
    auto t2 = Clock::now();
    optimizer.step();
    synchronize(dev.device);
    auto t3 = Clock::now();
    if (timing) {
      timing->forward = std::chrono::duration<double>(t1 - t0).count();
      timing->backward = std::chrono::duration<double>(t2 - t1).count();
      timing->optimizer = std::chrono::duration<double>(t3 - t2).count();
    }
  };
  const auto rate_dtype = dev.bf16 ? torch::kBFloat16 : torch::kFloat32;
  for (int i = 0; i < options.warmup; ++i) step(nullptr);
  r.rate_before = matmul_rate(dev.device, rate_dtype, 2048, options.rate_reps);
  reset_peak_device_memory(dev.device);
  std::vector<Phases> phases(static_cast<std::size_t>(options.iters));
  for (auto& p : phases) {
    step(&p);
    r.step.samples.push_back(p.total());
  }
  r.peak_device_mib = peak_device_memory_mib(dev.device);
  const Phases& median = phases[r.step.median_index()];
  r.step_s = median.total();
  r.forward_s = median.forward;
  r.backward_s = median.backward;
  r.optimizer_s = median.optimizer;
  r.tokens_per_s = static_cast<double>(shape.seq_len) / r.step_s;

  fill_profile(profile_ops([&] { step(nullptr); }), r);
  r.achieved_gflops = r.matmul_gflop / r.step_s;
  r.rate_after = matmul_rate(dev.device, rate_dtype, 2048, options.rate_reps);
  r.reference_gflops = std::max(r.rate_before.max(), r.rate_after.max());
  r.fraction = r.achieved_gflops / r.reference_gflops;
  r.algorithm = name;
  r.shape = shape.name;
  r.seq_len = shape.seq_len;
  r.ttt_steps = shape.ttt_steps;
  r.device = dev.device.str();
  r.precision = dev.bf16 ? "bf16" : "fp32";
  r.allocator = options.allocator;
  if (options.reference) {
    if (name != "eagle3") {
      log::warn(cat("--compare reference: the reference has no step for ", name, "; only eagle3 is compared"));
    } else {
      ReferenceOptions ref = *options.reference;
      ref.threads = torch::get_num_threads();
      r.reference = run_reference_step(*model, batch, shape.ttt_steps, ref, work / ("reference_" + shape.name));
      r.reference["speedup"] = r.reference.at("step_s").as_double() / r.step_s;
      // The verifier forward against transformers', which runs at torch's own default threads.
      ReferenceOptions verifier_ref = *options.reference;
      verifier_ref.threads = 0;
      r.reference["verifier_forward"] = run_verifier_compare(shape, model->target_layer_ids(), verifier_ref,
                                                             work / ("verifier_compare_" + shape.name));
    }
  }
  r.threads = torch::get_num_threads();
  r.blas_threads = blas_threads();
  r.peak_rss_mib = peak_rss_mib();
  fs::remove_all(verifier);
  return r;
}

Json to_json(const Result& r) {
  Json top = Json::array();
  for (const auto& [op, share] : r.top_other_ops) top.push_back(Json::object({{"op", op}, {"share", share}}));
  Json mm = Json::object();
  for (const auto& [op, s] : r.matmul_ops) {
    mm[op] = Json::object({{"calls", s.calls}, {"gflop", static_cast<double>(s.flops) / 1e9}, {"self_ms", s.self_us / 1e3}});
  }
  Spread all_rates;
  all_rates.samples = r.rate_before.samples;
  all_rates.samples.insert(all_rates.samples.end(), r.rate_after.samples.begin(), r.rate_after.samples.end());
  return Json::object({{"algorithm", r.algorithm},
                       {"matmul_ops", mm},
                       {"shape", r.shape},
                       {"seq_len", r.seq_len},
                       {"ttt_steps", r.ttt_steps},
                       {"device", r.device},
                       {"precision", r.precision},
                       {"threads", r.threads},
                       {"blas_threads", r.blas_threads},
                       {"allocator", r.allocator},
                       {"trainable_params", r.trainable_params},
                       {"step_s", r.step_s},
                       {"step_s_spread", r.step.to_json()},
                       {"forward_s", r.forward_s},
                       {"backward_s", r.backward_s},
                       {"optimizer_s", r.optimizer_s},
                       {"tokens_per_s", r.tokens_per_s},
                       {"matmul_gflop_per_step", r.matmul_gflop},
                       {"achieved_gflops", r.achieved_gflops},
                       {"reference_matmul_gflops", r.reference_gflops},
                       {"reference_matmul_gflops_spread", all_rates.to_json()},
                       {"reference_matmul_gflops_before", r.rate_before.max()},
                       {"reference_matmul_gflops_after", r.rate_after.max()},
                       {"fraction_of_matmul_rate", r.fraction},
                       {"matmul_time_share", r.matmul_time_share},
                       {"top_other_ops", top},
                       {"peak_rss_mib", r.peak_rss_mib},
                       {"peak_device_memory_mib", r.peak_device_mib >= 0 ? Json(r.peak_device_mib) : Json()},
                       {"reference", r.reference}});
}

void print_header(const StepBenchOptions& options, int threads, int blas) {
  std::printf("device %s, %s, threads %d, BLAS threads %s, %s; step = median of %d, mm = best of %d before + %d after\n",
              options.device.device.str().c_str(), options.device.bf16 ? "bf16 autocast" : "fp32", threads,
              blas > 0 ? std::to_string(blas).c_str() : "n/a", options.allocator.c_str(), options.iters,
              options.rate_reps, options.rate_reps);
  std::printf("%-8s %-9s %10s %9s %7s %7s %7s %9s %9s %9s %7s %9s\n", "algo", "shape", "tokens/s", "step s", "fwd s",
              "bwd s", "opt s", "GFLOP", "GFLOP/s", "mm GF/s", "of mm", "RSS MiB");
}

void print_row(const Result& r) {
  std::printf("%-8s %-9s %10.0f %9.3f %7.3f %7.3f %7.3f %9.1f %9.1f %9.1f %6.1f%% %9.0f\n", r.algorithm.c_str(),
              r.shape.c_str(), r.tokens_per_s, r.step_s, r.forward_s, r.backward_s, r.optimizer_s, r.matmul_gflop,
              r.achieved_gflops, r.reference_gflops, 100 * r.fraction, r.peak_rss_mib);
  std::printf("         spread: step %.3f..%.3f s, mm %.1f..%.1f GFLOP/s (best before %.1f, after %.1f)",
              r.step.min(), r.step.max(), std::min(r.rate_before.min(), r.rate_after.min()),
              r.reference_gflops, r.rate_before.max(), r.rate_after.max());
  if (r.peak_device_mib >= 0) std::printf(", peak device memory %.0f MiB", r.peak_device_mib);
  if (!r.reference.is_null()) {
    const Json& ref = r.reference;
    const double step = ref.at("step_s").as_double();
    std::printf("\n%-8s %-9s %10.0f %9.3f %7.3f %7.3f %7.3f   <- the reference's step (torch %s, speculators %s, "
                "attention %s, loss %s): this step is %.2fx faster",
                "ref", r.shape.c_str(), static_cast<double>(r.tokens_per_s * r.step_s) / step, step,
                ref.at("forward_s").as_double(), ref.at("backward_s").as_double(), ref.at("optimizer_s").as_double(),
                ref.at("torch").as_string().c_str(), ref.at("speculators").as_string().c_str(),
                ref.at("attention").as_string().c_str(), ref.at("loss_implementation").as_string().c_str(),
                ref.at("speedup").as_double());
    for (const auto& note : ref.at("attention_failed").as_array()) {
      std::printf("\n         the reference's default attention did not run here: %s", note.as_string().c_str());
    }
    const Json& vf = ref.at("verifier_forward");
    const Json& tf = vf.at("transformers");
    std::printf("\n         verifier forward (%lld tokens, logits and hidden states, no gradient): %.3f s here, %.3f s in "
                "transformers %s (torch %s, %lld threads, attention %s): %.2fx; logits agree to %.1e",
                static_cast<long long>(vf.at("tokens").as_int()), vf.at("this_s").as_double(),
                tf.at("forward_s").as_double(), tf.at("transformers").as_string().c_str(),
                tf.at("torch").as_string().c_str(), static_cast<long long>(tf.at("threads").as_int()),
                tf.at("attention").as_string().c_str(), vf.at("speedup").as_double(),
                tf.at("max_abs_logit_diff").as_double());
  }
  std::printf("\n         non-matmul ops (share of op time, matrix products %.0f%%):", 100 * r.matmul_time_share);
  for (const auto& [op, share] : r.top_other_ops) std::printf(" %s %.1f%%", op.c_str(), 100 * share);
  std::printf("\n");
}

}  // namespace speculators::bench
