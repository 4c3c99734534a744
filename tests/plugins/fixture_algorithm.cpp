// The tiny algorithm the test fixtures register (see fixture_algorithm.h). Its schema has one
// option of each kind the --describe output treats differently (bool, int, string with choices),
// built as plain aggregates so that the fixture needs nothing from core but the registry. The
// "draft_*" fixtures also build a small trainable model (fixture_draft.h).
#include "fixture_algorithm.h"

#include "fixture_draft.h"

#include "speculators/error.h"
#include "speculators/log.h"
#include "speculators/registry.h"

namespace speculators {
namespace fixture {

namespace {

class FixtureAlgorithm : public Algorithm {
 public:
  explicit FixtureAlgorithm(std::string name) : name_(std::move(name)) {}

  std::string name() const override { return name_; }
  std::string description() const override { return "test fixture algorithm " + name_; }
  Schema schema() const override {
    return {
        opt_int("fixture_width", 4, "width of nothing in particular", "draft"),
        opt_bool("fixture_flag", true, "a boolean with a --no- form", "draft"),
        opt_string("fixture_mode", "fast", "one of two modes", "trainer", {"fast", "slow"}),
    };
  }
  std::vector<std::int64_t> target_layer_ids(const BuildContext&) const override { return {}; }
  std::shared_ptr<DraftModel> from_training_args(const BuildContext& ctx) const override {
    if (is_draft_fixture(name_)) return build_fixture_draft(name_, ctx, false);
    fail(cat("fixture algorithm ", name_, " cannot build a model"), ExitCode::kPlugin);
  }
  std::shared_ptr<DraftModel> from_config(const Json&, const BuildContext& ctx) const override {
    if (is_draft_fixture(name_)) return build_fixture_draft(name_, ctx, true);
    fail(cat("fixture algorithm ", name_, " cannot build a model"), ExitCode::kPlugin);
  }

 private:
  std::string name_;
};

}  // namespace

void register_algorithm(void* registrar, const char* algorithm_name) {
  static_cast<Registrar*>(registrar)->add<FixtureAlgorithm>(algorithm_name);
}

}  // namespace fixture
}  // namespace speculators
