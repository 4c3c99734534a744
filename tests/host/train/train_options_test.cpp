// TrainOptions::from_args: each host option of a resolved job lands in its typed field; a job of
// only the declared defaults reads as host_schema() declares them; unset options stay unset.
#include <catch2/catch.hpp>

#include <string>

#include "speculators/error.h"
#include "tools/job.h"
#include "train/train_options.h"

using namespace speculators;

namespace {
Json declared_default(const std::string& key) {
  for (const auto& option : host_schema()) {
    if (option.key == key) return option.default_value;
  }
  FAIL("host_schema() declares no " << key);
  return Json();
}
}  // namespace

TEST_CASE("train options: a job of the declared defaults", "[train_options]") {
  const TrainOptions o = TrainOptions::from_args(Args().with_defaults(host_schema()));
  CHECK(o.speculator_type == declared_default("speculator_type").as_string());
  CHECK(o.seed == declared_default("seed").as_int());
  CHECK_FALSE(o.verifier_name_or_path.has_value());  // declared unset (required by the command)
  CHECK(o.optimizer.optimizer == declared_default("optimizer").as_string());
  CHECK(o.optimizer.lr == declared_default("lr").as_double());
  CHECK_FALSE(o.optimizer.muon_lr.has_value());
  CHECK(o.optimizer.muon_ns_steps == declared_default("muon_ns_steps").as_int());
  CHECK(o.optimizer.grad_accum_steps == declared_default("grad_accum_steps").as_int());
  CHECK(o.scheduler.type == declared_default("scheduler_type").as_string());
  CHECK_FALSE(o.scheduler.warmup_steps.has_value());
  CHECK(o.loop.epochs == declared_default("epochs").as_int());
  CHECK_FALSE(o.loop.max_steps.has_value());
  CHECK(o.checkpoint.save_path == declared_default("save_path").as_string());
  CHECK(o.checkpoint.resume_from_checkpoint == declared_default("resume_from_checkpoint").as_bool());
  CHECK(o.data.total_seq_len == declared_default("total_seq_len").as_int());
  CHECK(o.data.num_workers == declared_default("num_workers").as_int());
  CHECK(o.device.device == declared_default("device").as_string());
  CHECK_FALSE(o.device.precision.has_value());
  CHECK(o.distributed.dist_timeout == declared_default("dist_timeout").as_double());
  CHECK_FALSE(o.vocab.draft_vocab_size.has_value());
  // --log-dir unset: the logs go to --save-path; --run-name unset: "tensorboard".
  CHECK(o.log.dir == o.checkpoint.save_path);
  CHECK(o.log.run_name == "tensorboard");
  CHECK(o.job.json() == Args().with_defaults(host_schema()).json());
}

TEST_CASE("train options: stated values and unset ones", "[train_options]") {
  Args job = Args(Json::object({{"lr", 0.5},
                                {"muon_lr", 2.0},
                                {"max_steps", 7},
                                {"log_dir", "/tmp/logs"},
                                {"run_name", "run-{rank}"},
                                {"draft_vocab_size", 64},
                                {"precision", "bf16"},
                                {"scheduler_warmup_ratio", 0.25}}))
                 .with_defaults(host_schema());
  const TrainOptions o = TrainOptions::from_args(job);
  CHECK(o.optimizer.lr == 0.5);
  CHECK(o.optimizer.muon_lr == std::optional<double>(2.0));
  CHECK(o.loop.max_steps == std::optional<std::int64_t>(7));
  CHECK(o.log.dir == "/tmp/logs");
  CHECK(o.log.run_name == "run-{rank}");
  CHECK(o.vocab.draft_vocab_size == std::optional<std::int64_t>(64));
  CHECK(o.device.precision == std::optional<std::string>("bf16"));
  CHECK(o.scheduler.warmup_ratio == std::optional<double>(0.25));
  CHECK_FALSE(o.scheduler.warmup_steps.has_value());
}

TEST_CASE("train options: a job without a host key names it", "[train_options]") {
  Json::Object values = Args().with_defaults(host_schema()).json().as_object();
  values.erase("keep_last");
  CHECK_THROWS_WITH(TrainOptions::from_args(Args(Json(values))), Catch::Contains("\"keep_last\""));
}
