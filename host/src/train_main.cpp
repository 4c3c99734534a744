// speculators-train: the trainer's entry point (everything else is in speculators_host).
#include <string>
#include <vector>

#include "train_command.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return speculators::run_train_command(args);
}
