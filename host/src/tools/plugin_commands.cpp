// `speculators-train plugins install|list|remove`: argument handling and output of the package
// commands whose work is in plugin_host/plugin_packages.cpp.
#include <filesystem>
#include <iostream>

#include "plugin_host/plugin_packages.h"
#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {

namespace {

std::string plugins_usage() {
  const std::string user = user_plugin_dir();
  return cat(
      "Usage: speculators-train plugins install PACKAGE [--plugin-dir DIR]\n"
      "       speculators-train plugins list [--plugin-dir DIR]\n"
      "       speculators-train plugins remove NAME [--plugin-dir DIR]\n"
      "\n"
      "install  checks PACKAGE's manifest (plugin ABI, LibTorch major.minor, C++11 ABI, CUDA) against\n"
      "         this host and the sha256 of its .so, then copies both into DIR\n"
      "         (PACKAGE: a .tar.gz or .deb made by speculators_add_plugin(... PACKAGE))\n"
      "list     the plugins in DIR with their manifests and whether this host can load them\n"
      "remove   deletes NAME.so and its manifest from DIR\n"
      "\n"
      "DIR defaults to the user plugin directory, ",
      user.empty() ? std::string("$XDG_DATA_HOME or $HOME/.local/share + /speculators/plugins (neither is set)")
                   : user,
      ", which speculators-train searches after SPECULATORS_PLUGIN_PATH.\n");
}

struct PluginsArgs {
  std::string subcommand;
  std::vector<std::string> positional;
  std::string dir;
  bool help = false;
};

PluginsArgs parse_plugins_args(const std::vector<std::string>& args) {
  PluginsArgs out;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help") {
      out.help = true;
    } else if (a == "--plugin-dir") {
      if (i + 1 >= args.size()) fail_usage("plugins: --plugin-dir needs a value");
      out.dir = args[++i];
    } else if (a.rfind("--plugin-dir=", 0) == 0) {
      out.dir = a.substr(std::string("--plugin-dir=").size());
    } else if (a.rfind("-", 0) == 0) {
      fail_usage(cat("plugins: unknown option \"", a, "\" (see speculators-train plugins --help)"));
    } else if (out.subcommand.empty()) {
      out.subcommand = a;
    } else {
      out.positional.push_back(a);
    }
  }
  if (out.dir.empty() && !out.help) {
    out.dir = user_plugin_dir();
    if (out.dir.empty()) fail_usage("plugins: neither HOME nor XDG_DATA_HOME is set; pass --plugin-dir DIR");
  }
  return out;
}

void expect_operands(const PluginsArgs& args, std::size_t count, const char* what) {
  if (args.positional.size() != count) {
    fail_usage(cat("plugins ", args.subcommand, ": expected ", what, ", got ", args.positional.size(), " operand",
                   args.positional.size() == 1 ? "" : "s"));
  }
}

}  // namespace

int run_plugins_command(const std::vector<std::string>& argv) {
  try {
    const PluginsArgs args = parse_plugins_args(argv);
    if (args.help) {
      std::cout << plugins_usage();
      return 0;
    }
    if (args.subcommand == "install") {
      expect_operands(args, 1, "one PACKAGE");
      const PluginManifest m = install_plugin_package(args.positional[0], args.dir);
      std::cout << cat("installed ", m.name, " ", m.version, " into ", args.dir, " (plugin ABI ",
                       m.fingerprint.abi_major, ".", m.fingerprint.abi_minor, ", LibTorch ", m.torch_version,
                       ", sha256 ", m.sha256, ")\n");
      return 0;
    }
    if (args.subcommand == "list") {
      expect_operands(args, 0, "no operand");
      if (!std::filesystem::is_directory(args.dir)) {
        std::cout << cat("plugins in ", args.dir, ":\n  (none: the directory does not exist)\n");
        return 0;
      }
      std::cout << format_installed_plugins(args.dir, list_installed_plugins(args.dir));
      return 0;
    }
    if (args.subcommand == "remove") {
      expect_operands(args, 1, "one NAME");
      remove_installed_plugin(args.positional[0], args.dir);
      std::cout << cat("removed ", args.positional[0], " from ", args.dir, "\n");
      return 0;
    }
    fail_usage(args.subcommand.empty()
                   ? std::string("plugins: expected install, list or remove (see speculators-train plugins --help)")
                   : cat("plugins: unknown subcommand \"", args.subcommand, "\"; expected install, list or remove"));
  } catch (const Error& e) {
    log::error(e.what());
    return static_cast<int>(e.code());
  } catch (const std::exception& e) {
    log::error(e.what());
    return static_cast<int>(ExitCode::kFailure);
  }
}

}  // namespace speculators
