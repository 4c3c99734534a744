// Conversation datasets for `speculators-datagen prepare`: local .json/.jsonl files (or a folder of
// them) holding ShareGPT `conversations` [{from, value}], OpenAI-style `messages` [{role, content}],
// UltraChat rows, or speculator-format rows (input_ids + loss_mask). Turns are normalised as the
// reference's speculators/data_generation/preprocessing.py: _normalize_conversation does; a
// malformed row goes to the run's BadSampleLog with its file and line.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/bad_samples.h"

namespace speculators {

// Which key holds the conversation: auto (input_ids+loss_mask, conversations, messages, data, in
// that order), sharegpt (conversations), messages (messages), ultrachat (messages, or data: a list
// of strings alternating user and assistant).
enum class DatasetPreset { kAuto, kShareGpt, kMessages, kUltraChat };
DatasetPreset parse_dataset_preset(const std::string& text);

struct DatasetRecord {
  std::string origin;                 // "file:line" (a .json array: "file: row N")
  nlohmann::ordered_json messages;    // normalised [{role, content, ...}]; empty for pretokenized rows
  nlohmann::ordered_json tools;       // null, or the row's tools list
  bool pretokenized = false;
  std::vector<std::int64_t> input_ids;
  std::vector<std::int64_t> loss_mask;
};

// speculators/data_generation/preprocessing.py: _normalize_conversation: roles human/user ->
// user, gpt/assistant -> assistant, system, tool; any other role -> assistant; content is
// value, else content, else ""; tool_calls, tool_call_id and thinking/reasoning_content kept.
// Throws speculators::Error (kData) for a turn that is not an object or a non-string content.
nlohmann::ordered_json normalize_conversation(const nlohmann::ordered_json& turns);

// Reads `path` (a .json/.jsonl file, or a folder searched recursively for them, files in sorted
// order). Unparsable or malformed rows are reported to `bad` ("file:line: reason") and left out.
std::vector<DatasetRecord> read_conversation_dataset(const std::string& path, DatasetPreset preset,
                                                     BadSampleLog& bad);

}  // namespace speculators
