// The text the plugin host shows to a user: `speculators-train --list-plugins` (one line per .so
// found, and the search path) and `speculators-train --describe NAME` (an algorithm's options
// as flags and YAML keys). Pure formatting over PluginRecord and Schema; no loading here.
#include <algorithm>
#include <sstream>

#include "plugin_host/plugin_loader.h"
#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {

namespace {

std::string status_text(const PluginRecord& record) {
  switch (record.status) {
    case PluginStatus::kOk: return "ok";
    case PluginStatus::kShadowed: return record.reason;
    case PluginStatus::kRejected: break;
  }
  return "rejected: " + record.reason;
}

std::string pad(const std::string& text, std::size_t width) {
  return text.size() >= width ? text : text + std::string(width - text.size(), ' ');
}

// "--x / --no-x" for booleans (both flags exist), the plain flag otherwise.
std::string flag_text(const Option& option) {
  std::string flag = option.flag();
  if (option.type != OptionType::kBool) return flag;
  return flag + " / --no-" + flag.substr(2);
}

// Root options (group "root") sit directly under train:, the others inside their group.
std::string yaml_key(const Option& option) {
  const bool root = option.group.empty() || option.group == "root";
  return root ? "train." + option.key : "train." + option.group + "." + option.key;
}

}  // namespace

std::string format_plugin_list(const std::vector<PluginRecord>& records) {
  if (records.empty()) return "(no plugins found)\n";
  std::size_t name_width = 0, version_width = 0, path_width = 0;
  for (const auto& record : records) {
    name_width = std::max(name_width, record.name.size());
    version_width = std::max(version_width, record.version.empty() ? std::size_t{1} : record.version.size());
    path_width = std::max(path_width, record.path.size());
  }
  std::string out;
  for (const auto& record : records) {
    const std::string version = record.version.empty() ? "-" : record.version;
    out += pad(record.name, name_width) + "  " + pad(version, version_width) + "  " + pad(record.path, path_width) +
           "  " + status_text(record) + "\n";
  }
  return out;
}

std::string format_search_path(const std::vector<PluginDir>& dirs) {
  if (dirs.empty()) return "plugin search path: (empty)\n";
  std::string out = "plugin search path (earlier wins):\n";
  for (const auto& dir : dirs) out += "  " + dir.path + "  (" + dir.origin + ")\n";
  return out;
}

std::string describe_algorithm(const Algorithm& algorithm) {
  std::ostringstream out;
  out << algorithm.name() << ": " << algorithm.description() << "\n";
  const Schema schema = algorithm.schema();
  if (schema.empty()) {
    out << "\nNo options of its own (the host's options apply).\n";
    return out.str();
  }
  out << "\nOptions (flag, type, default; YAML key under train:):\n";
  for (const auto& option : schema) {
    out << "  " << flag_text(option) << "  (" << option_type_name(option.type) << ", default "
        << (option.default_value.is_null() ? std::string("unset") : option.default_value.dump()) << ")\n";
    if (!option.help.empty()) out << "      " << option.help << "\n";
    if (!option.range_text().empty()) out << "      range: " << option.range_text() << "\n";
    if (!option.choices.empty()) {
      out << "      choices:";
      for (std::size_t i = 0; i < option.choices.size(); ++i) out << (i ? ", " : " ") << option.choices[i];
      out << "\n";
    }
    out << "      YAML: " << yaml_key(option) << "\n";
  }
  return out.str();
}

}  // namespace speculators
