// speculators-train: the trainer's entry point (everything else is in speculators_host).
// `speculators-train report RUN_DIR` renders a run's HTML report; `speculators-train plugins ...`
// manages installed plugin packages; anything else trains.
#include <string>
#include <vector>

#include "observe/report.h"
#include "plugin_host/plugin_packages.h"
#include "tools/guard.h"
#include "tools/train_command.h"

namespace {

int run_main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == "report") {
    return speculators::run_report_command(std::vector<std::string>(args.begin() + 1, args.end()));
  }
  if (!args.empty() && args[0] == "plugins") {
    return speculators::run_plugins_command(std::vector<std::string>(args.begin() + 1, args.end()));
  }
  return speculators::run_train_command(args);
}

}  // namespace

int main(int argc, char** argv) {
  return speculators::run_guarded("speculators-train", [&] { return run_main(argc, argv); });
}
