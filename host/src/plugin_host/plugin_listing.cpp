// The text the plugin host shows to a user: `speculators-train --list-plugins` (one line per .so
// found, and the search path) and `speculators-train --describe NAME` (an algorithm's options
// as flags and YAML keys), and the record's text form that a probe child sends back. Pure
// formatting over PluginRecord and Schema; no loading here.
#include <algorithm>
#include <cstdlib>
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

namespace {

std::string flat(std::string text) {
  for (char& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return text;
}

std::uint32_t to_u32(const std::string& text) { return static_cast<std::uint32_t>(std::strtoul(text.c_str(), nullptr, 10)); }

}  // namespace

std::string serialize_plugin_record(const PluginRecord& r) {
  std::ostringstream out;
  out << "ok\t" << (r.ok ? 1 : 0) << "\nname\t" << flat(r.name) << "\nversion\t" << flat(r.version)
      << "\nreason\t" << flat(r.reason) << "\nmanifest\t" << flat(r.manifest_path)
      << "\nhas_descriptor\t" << (r.has_descriptor ? 1 : 0) << "\nstruct_size\t" << r.struct_size
      << "\nabi\t" << r.fingerprint.abi_major << "." << r.fingerprint.abi_minor << "\ntorch\t"
      << r.fingerprint.torch_major << "." << r.fingerprint.torch_minor << "\ncxx11\t" << r.fingerprint.cxx11_abi
      << "\ncuda\t" << r.fingerprint.cuda << "\nbuild_info\t" << flat(r.build_info) << "\n";
  for (const auto& name : r.algorithms) out << "algorithm\t" << flat(name) << "\n";
  return out.str();
}

PluginRecord parse_plugin_record(const std::string& text) {
  PluginRecord r;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    const std::size_t tab = line.find('\t');
    if (tab == std::string::npos) continue;
    const std::string key = line.substr(0, tab), value = line.substr(tab + 1);
    const std::size_t dot = value.find('.');
    const std::string first = value.substr(0, dot);
    const std::string second = dot == std::string::npos ? "" : value.substr(dot + 1);
    if (key == "ok") r.ok = value == "1";
    else if (key == "name") r.name = value;
    else if (key == "version") r.version = value;
    else if (key == "reason") r.reason = value;
    else if (key == "manifest") r.manifest_path = value;
    else if (key == "has_descriptor") r.has_descriptor = value == "1";
    else if (key == "struct_size") r.struct_size = to_u32(value);
    else if (key == "abi") r.fingerprint.abi_major = to_u32(first), r.fingerprint.abi_minor = to_u32(second);
    else if (key == "torch") r.fingerprint.torch_major = to_u32(first), r.fingerprint.torch_minor = to_u32(second);
    else if (key == "cxx11") r.fingerprint.cxx11_abi = to_u32(value);
    else if (key == "cuda") r.fingerprint.cuda = to_u32(value);
    else if (key == "build_info") r.build_info = value;
    else if (key == "algorithm") r.algorithms.push_back(value);
  }
  return r;
}

}  // namespace speculators
