// Reading conversation datasets and normalising their turns (see conversations.h).
#include "data/conversations.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {

namespace fs = std::filesystem;
using OJson = nlohmann::ordered_json;

DatasetPreset parse_dataset_preset(const std::string& text) {
  if (text == "auto") return DatasetPreset::kAuto;
  if (text == "sharegpt") return DatasetPreset::kShareGpt;
  if (text == "messages") return DatasetPreset::kMessages;
  if (text == "ultrachat") return DatasetPreset::kUltraChat;
  fail_usage(cat("--preset: unknown preset '", text, "' (auto, sharegpt, messages, ultrachat)"));
}

namespace {

std::string normalized_role(const std::string& role) {
  if (role == "human" || role == "user") return "user";
  if (role == "gpt" || role == "assistant") return "assistant";
  if (role == "system" || role == "tool") return role;
  return "assistant";  // unknown roles (model names in on-policy data) are the assistant's
}

// Python's `a or b`: a value that is missing, null, false, 0, "" or empty falls through.
bool truthy(const OJson* v) {
  if (v == nullptr || v->is_null()) return false;
  if (v->is_string()) return !v->get_ref<const std::string&>().empty();
  if (v->is_array() || v->is_object()) return !v->empty();
  if (v->is_boolean()) return v->get<bool>();
  if (v->is_number()) return v->get<double>() != 0.0;
  return true;
}

const OJson* find(const OJson& obj, const char* key) {
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

}  // namespace

OJson normalize_conversation(const OJson& turns) {
  if (!turns.is_array()) fail_data(cat("the conversation is a ", turns.type_name(), ", not a list of turns"));
  OJson out = OJson::array();
  for (std::size_t i = 0; i < turns.size(); ++i) {
    const OJson& turn = turns[i];
    if (!turn.is_object()) fail_data(cat("turn ", i, " is a ", turn.type_name(), ", not an object"));
    const OJson* role = find(turn, "from");
    if (role == nullptr) role = find(turn, "role");
    if (role != nullptr && !role->is_string()) fail_data(cat("turn ", i, ": the role is not a string"));
    const OJson* value = find(turn, "value");
    const OJson* content = truthy(value) ? value : find(turn, "content");
    if (truthy(content) && !content->is_string()) {
      fail_data(cat("turn ", i, ": the content is a ", content->type_name(), ", not a string"));
    }
    OJson t = OJson::object();
    t["role"] = normalized_role(role == nullptr ? std::string() : role->get<std::string>());
    t["content"] = truthy(content) ? content->get<std::string>() : std::string();
    if (const OJson* v = find(turn, "tool_calls"); truthy(v)) t["tool_calls"] = *v;
    if (const OJson* v = find(turn, "tool_call_id"); truthy(v)) t["tool_call_id"] = *v;
    const OJson* thinking = find(turn, "thinking");
    if (!truthy(thinking)) thinking = find(turn, "reasoning_content");
    if (truthy(thinking)) {
      t["thinking"] = *thinking;
      t["reasoning_content"] = *thinking;
    }
    out.push_back(std::move(t));
  }
  return out;
}

namespace {

std::vector<std::int64_t> int_list(const OJson& v, const char* key) {
  if (!v.is_array()) fail_data(cat(key, " is not a list"));
  std::vector<std::int64_t> out;
  out.reserve(v.size());
  for (const auto& x : v) {
    if (!x.is_number_integer()) fail_data(cat(key, " holds a non-integer value ", x.dump()));
    out.push_back(x.get<std::int64_t>());
  }
  return out;
}

// UltraChat's original layout: "data" is a list of strings, user and assistant alternating.
OJson alternating_turns(const OJson& data) {
  if (!data.is_array()) fail_data("data is not a list of strings");
  OJson turns = OJson::array();
  for (std::size_t i = 0; i < data.size(); ++i) {
    if (!data[i].is_string()) fail_data(cat("data[", i, "] is not a string"));
    turns.push_back(OJson{{"role", i % 2 == 0 ? "user" : "assistant"}, {"content", data[i]}});
  }
  return turns;
}

OJson parse_tools(const OJson& row) {
  const OJson* tools = find(row, "tools");
  if (!truthy(tools)) return nullptr;
  if (tools->is_array()) return *tools;
  if (tools->is_string()) {
    OJson parsed = OJson::parse(tools->get<std::string>(), nullptr, false);
    if (parsed.is_array()) return parsed;
  }
  log::warn("tools is neither a list nor a JSON list; proceeding without tools");
  return nullptr;
}

DatasetRecord record_of(const OJson& row, DatasetPreset preset) {
  if (!row.is_object()) fail_data(cat("the row is a ", row.type_name(), ", not an object"));
  DatasetRecord r;
  if (preset == DatasetPreset::kAuto && row.contains("input_ids") && row.contains("loss_mask")) {
    r.pretokenized = true;
    r.input_ids = int_list(row["input_ids"], "input_ids");
    r.loss_mask = int_list(row["loss_mask"], "loss_mask");
    if (r.input_ids.size() != r.loss_mask.size()) {
      fail_data(cat("input_ids has ", r.input_ids.size(), " ids but loss_mask ", r.loss_mask.size(), " values"));
    }
    return r;
  }
  const bool any = preset == DatasetPreset::kAuto;
  if ((any || preset == DatasetPreset::kShareGpt) && row.contains("conversations")) {
    r.messages = normalize_conversation(row["conversations"]);
  } else if ((any || preset == DatasetPreset::kMessages || preset == DatasetPreset::kUltraChat) &&
             row.contains("messages")) {
    r.messages = normalize_conversation(row["messages"]);
  } else if ((any || preset == DatasetPreset::kUltraChat) && row.contains("data")) {
    r.messages = normalize_conversation(alternating_turns(row["data"]));
  } else {
    fail_data(preset == DatasetPreset::kShareGpt   ? "no 'conversations' key"
              : preset == DatasetPreset::kMessages ? "no 'messages' key"
              : preset == DatasetPreset::kUltraChat
                  ? "no 'messages' or 'data' key"
                  : "no 'conversations', 'messages' or 'data' key, nor input_ids and loss_mask");
  }
  r.tools = parse_tools(row);
  return r;
}

void add_row(std::string_view text, const std::string& origin, DatasetPreset preset, BadSampleLog& bad,
             std::vector<DatasetRecord>& out) {
  try {
    OJson row = OJson::parse(text);
    DatasetRecord r = record_of(row, preset);
    r.origin = origin;
    out.push_back(std::move(r));
  } catch (const nlohmann::json::exception& e) {
    bad.report(cat(origin, ": malformed row: ", e.what()));
  } catch (const Error& e) {
    if (e.code() != ExitCode::kData) throw;
    bad.report(cat(origin, ": malformed row: ", e.what()));
  }
}

void read_file(const fs::path& file, DatasetPreset preset, BadSampleLog& bad, std::vector<DatasetRecord>& out) {
  std::ifstream in(file, std::ios::binary);
  if (!in) fail_data(cat(file.string(), ": cannot read the dataset file"));
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '[') {  // a .json array of rows
    OJson rows = OJson::parse(text, nullptr, false);
    if (rows.is_discarded()) fail_data(cat(file.string(), ": not valid JSON"));
    for (std::size_t i = 0; i < rows.size(); ++i) {
      add_row(rows[i].dump(), cat(file.string(), ": row ", i + 1), preset, bad, out);
    }
    return;
  }
  std::size_t line_no = 0, pos = 0;
  while (pos <= text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    ++line_no;
    std::string_view line(text.data() + pos, end - pos);
    if (line.find_first_not_of(" \t\r") != std::string_view::npos) {
      add_row(line, cat(file.string(), ":", line_no), preset, bad, out);
    }
    pos = end + 1;
  }
}

bool is_dataset_file(const fs::path& p) { return p.extension() == ".json" || p.extension() == ".jsonl"; }

}  // namespace

std::vector<DatasetRecord> read_conversation_dataset(const std::string& path, DatasetPreset preset,
                                                     BadSampleLog& bad) {
  std::vector<fs::path> files;
  if (fs::is_directory(path)) {
    for (const auto& e : fs::recursive_directory_iterator(path)) {
      if (e.is_regular_file() && is_dataset_file(e.path())) files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) fail_data(cat("--dataset ", path, ": no .json/.jsonl files in this folder"));
  } else if (fs::is_regular_file(path)) {
    if (!is_dataset_file(path)) fail_usage(cat("--dataset ", path, ": expected a .json or .jsonl file or a folder"));
    files.emplace_back(path);
  } else {
    fail_data(cat("--dataset ", path, ": no such file or folder"));
  }
  std::vector<DatasetRecord> out;
  for (const auto& f : files) read_file(f, preset, bad, out);
  return out;
}

}  // namespace speculators
