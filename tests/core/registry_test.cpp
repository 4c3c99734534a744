// The registry and Registrar (core/src/registry.cpp) and the defaults of the Algorithm contract
// (core/src/algorithm.cpp): clashes name both sides, unknown names list what exists.
#include <catch2/catch.hpp>

#include "speculators/error.h"
#include "speculators/registry.h"

using namespace speculators;

namespace {

class NamedAlgorithm : public Algorithm {
 public:
  explicit NamedAlgorithm(std::string name) : name_(std::move(name)) {}
  std::string name() const override { return name_; }
  std::string description() const override { return "test algorithm"; }
  Schema schema() const override { return {}; }
  std::vector<std::int64_t> target_layer_ids(const BuildContext&) const override { return {1}; }
  std::shared_ptr<DraftModel> from_training_args(const BuildContext&) const override { return nullptr; }

 private:
  std::string name_;
};

bool contains_text(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("registry add, get and names", "[registry]") {
  Registry registry;
  CHECK(registry.names().empty());
  registry.add(std::make_shared<NamedAlgorithm>("zeta"), "zplugin", "/p/zplugin.so");
  registry.add(std::make_shared<NamedAlgorithm>("alpha"), "aplugin", "/p/aplugin.so");
  CHECK(registry.contains("alpha"));
  CHECK_FALSE(registry.contains("beta"));
  CHECK(registry.names() == std::vector<std::string>{"alpha", "zeta"});
  const Registry::Entry& entry = registry.get("zeta");
  CHECK(entry.algorithm->name() == "zeta");
  CHECK(entry.plugin == "zplugin");
  CHECK(entry.path == "/p/zplugin.so");
}

TEST_CASE("registry rejects a duplicate name naming both plugins and paths", "[registry]") {
  Registry registry;
  registry.add(std::make_shared<NamedAlgorithm>("eagle3"), "eagle3", "/a/eagle3.so");
  try {
    registry.add(std::make_shared<NamedAlgorithm>("eagle3"), "copycat", "/b/copycat.so");
    FAIL("duplicate accepted");
  } catch (const Error& e) {
    const std::string message = e.what();
    CHECK(message == "algorithm \"eagle3\" from plugin copycat (/b/copycat.so) is already registered by plugin "
                     "eagle3 (/a/eagle3.so)");
    CHECK(e.code() == ExitCode::kPlugin);
  }
  // The first registration is untouched.
  CHECK(registry.get("eagle3").plugin == "eagle3");
  CHECK(registry.names().size() == 1);
}

TEST_CASE("registry get of an unknown name is a usage error listing the registered names", "[registry]") {
  Registry registry;
  try {
    registry.get("myalgo");
    FAIL("unknown name found");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kUsage);
    CHECK(contains_text(e.what(), "unknown algorithm \"myalgo\""));
    CHECK(contains_text(e.what(), "no algorithm is registered"));
  }
  registry.add(std::make_shared<NamedAlgorithm>("eagle3"), "eagle3", "/a/eagle3.so");
  registry.add(std::make_shared<NamedAlgorithm>("dflash"), "dflash", "/a/dflash.so");
  try {
    registry.get("eagle");
    FAIL("unknown name found");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kUsage);
    CHECK(std::string(e.what()) == "unknown algorithm \"eagle\"; registered: dflash, eagle3");
  }
}

TEST_CASE("registrar refuses a null algorithm and an empty name", "[registry]") {
  Registry registry;
  Registrar registrar(registry, "broken", "/x/broken.so");
  CHECK(registrar.plugin_name() == "broken");
  try {
    registrar.add(std::shared_ptr<Algorithm>());
    FAIL("null accepted");
  } catch (const Error& e) {
    CHECK(contains_text(e.what(), "plugin broken"));
    CHECK(contains_text(e.what(), "null algorithm"));
  }
  try {
    registrar.add<NamedAlgorithm>("");
    FAIL("empty name accepted");
  } catch (const Error& e) {
    CHECK(contains_text(e.what(), "plugin broken"));
    CHECK(contains_text(e.what(), "empty name"));
  }
  CHECK(registry.names().empty());
  registrar.add<NamedAlgorithm>("fine");
  CHECK(registry.get("fine").plugin == "broken");
  CHECK(registry.get("fine").path == "/x/broken.so");
}

TEST_CASE("registry remembers which models it built", "[registry]") {
  struct Dummy : DraftModel {
    torch::nn::ModuleList layers() override { return torch::nn::ModuleList(); }
    std::shared_ptr<torch::nn::Module> embed_tokens() override { return nullptr; }
    std::shared_ptr<torch::nn::Module> lm_head() override { return nullptr; }
    std::vector<std::int64_t> target_layer_ids() const override { return {}; }
    ForwardResult forward(const Batch&, const Json&) override { return {}; }
    Json config_json() const override { return Json::object(); }
  };
  Registry registry;
  auto built = std::make_shared<Dummy>();
  auto foreign = std::make_shared<Dummy>();
  registry.note_built(built.get(), "myalgo");
  CHECK(registry.was_built_here(built.get()));
  CHECK_FALSE(registry.was_built_here(foreign.get()));
  CHECK_FALSE(registry.was_built_here(nullptr));
}

TEST_CASE("algorithm defaults: no checkpoint loading, empty trainer kwargs", "[registry]") {
  NamedAlgorithm algorithm("plain");
  try {
    algorithm.from_config(Json::object(), BuildContext{});
    FAIL("from_config succeeded");
  } catch (const Error& e) {
    CHECK(std::string(e.what()) == "algorithm plain does not support loading a saved checkpoint");
  }
  auto [train, val] = algorithm.trainer_kwargs(Args());
  CHECK(train == Json::object());
  CHECK(val == Json::object());
}

TEST_CASE("sample length is the first dimension of input_ids", "[registry]") {
  Sample sample;
  sample.tensors["input_ids"] = torch::arange(7);
  sample.tensors["hidden_states"] = torch::zeros({7, 12});
  CHECK(sample.length() == 7);
  Sample missing;
  missing.tensors["hidden_states"] = torch::zeros({3, 4});
  try {
    missing.length();
    FAIL("length of a sample without input_ids");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kData);
    CHECK(contains_text(e.what(), "input_ids"));
  }
}
