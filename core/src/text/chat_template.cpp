// ChatTemplate: parses once, renders per conversation with the variables transformers passes to
// a chat template (transformers/utils/chat_template_utils.py: render_jinja_template), and loads
// the template and special tokens from a model directory.
#include "speculators/text/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "speculators/error.h"
#include "text/jinja_eval.h"
#include "text/jinja_parser.h"

namespace speculators {

using text::jinja::Dict;
using text::jinja::Value;

ChatTemplate::ChatTemplate(std::string source)
    : source_(std::move(source)),
      program_(std::make_unique<text::jinja::Body>(text::jinja::parse(source_))) {}
ChatTemplate::~ChatTemplate() = default;
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;

std::string ChatTemplate::render(const nlohmann::ordered_json& messages, const ChatRenderOptions& options) const {
  if (!messages.is_array()) fail_usage("chat template: messages must be a JSON array, got " + std::string(messages.type_name()));
  if (!options.variables.is_object())
    fail_usage("chat template: variables must be a JSON object, got " + std::string(options.variables.type_name()));
  Dict vars = {{"messages", text::jinja::from_json(messages)},
               {"tools", Value::none()},
               {"documents", Value::none()},
               {"add_generation_prompt", Value::boolean(options.add_generation_prompt)},
               {"bos_token", Value::string(options.bos_token)},
               {"eos_token", Value::string(options.eos_token)}};
  for (const auto& [k, v] : options.variables.items()) vars.emplace_back(k, text::jinja::from_json(v));
  return text::jinja::render(*program_, vars);
}

std::string ChatTemplate::render(const nlohmann::json& messages, const ChatRenderOptions& options) const {
  return render(nlohmann::ordered_json::parse(messages.dump()), options);
}

std::string ModelChatTemplate::render(const nlohmann::ordered_json& messages, ChatRenderOptions options) const {
  if (options.bos_token.empty()) options.bos_token = bos_token;
  if (options.eos_token.empty()) options.eos_token = eos_token;
  return chat_template.render(messages, options);
}

namespace {

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_usage("cannot read " + path.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string special_token(const nlohmann::ordered_json& config, const char* key, const std::string& file) {
  if (!config.contains(key) || config[key].is_null()) return "";
  const auto& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  fail_usage(file + ": \"" + key + "\" must be a string or an object with a string \"content\", got " + v.dump());
}

std::string pick_template(const nlohmann::ordered_json& value, const std::string& name, const std::string& file) {
  if (value.is_string()) return value.get<std::string>();
  if (!value.is_array())
    fail_usage(file + ": \"chat_template\" must be a string or a list of {\"name\", \"template\"}, got " +
               std::string(value.type_name()));
  std::string names;
  for (const auto& entry : value) {
    if (!entry.is_object() || !entry.contains("name") || !entry.contains("template") || !entry["name"].is_string() ||
        !entry["template"].is_string())
      fail_usage(file + ": each \"chat_template\" entry must be {\"name\": str, \"template\": str}, got " + entry.dump());
    if (entry["name"] == name) return entry["template"].get<std::string>();
    names += (names.empty() ? "" : ", ") + entry["name"].get<std::string>();
  }
  fail_usage(file + ": no chat template named '" + name + "' (have: " + names + ")");
}

}  // namespace

ModelChatTemplate load_chat_template(const std::string& dir, const std::string& name) {
  const std::filesystem::path root(dir);
  const auto config_path = root / "tokenizer_config.json";
  nlohmann::ordered_json config = nlohmann::ordered_json::object();
  if (std::filesystem::exists(config_path)) {
    try {
      config = nlohmann::ordered_json::parse(read_file(config_path));
    } catch (const nlohmann::json::exception& e) {
      fail_usage(config_path.string() + ": not valid JSON: " + e.what());
    }
    if (!config.is_object()) fail_usage(config_path.string() + ": must hold a JSON object");
  }
  std::string source;
  const auto jinja_path = root / "chat_template.jinja";
  if (std::filesystem::exists(jinja_path)) {
    source = read_file(jinja_path);
  } else if (config.contains("chat_template") && !config["chat_template"].is_null()) {
    source = pick_template(config["chat_template"], name, config_path.string());
  } else {
    fail_usage(dir + ": no chat template (neither chat_template.jinja nor \"chat_template\" in tokenizer_config.json)");
  }
  const std::string bos = special_token(config, "bos_token", config_path.string());
  const std::string eos = special_token(config, "eos_token", config_path.string());
  try {
    return ModelChatTemplate{ChatTemplate(std::move(source)), bos, eos};
  } catch (const Error& e) {
    fail_usage(dir + ": " + e.what());
  }
}

}  // namespace speculators
