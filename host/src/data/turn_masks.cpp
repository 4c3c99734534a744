// Per-turn and all-assistant loss masks of rendered conversations (see turn_masks.h).
#include "data/turn_masks.h"

#include <algorithm>
#include <filesystem>

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {

using OJson = nlohmann::ordered_json;

ChatEncoder::ChatEncoder(const std::string& model_dir)
    : template_(load_chat_template(model_dir)),
      tokenizer_(text::Tokenizer::from_file((std::filesystem::path(model_dir) / "tokenizer.json").string())) {}

std::vector<std::int64_t> ChatEncoder::encode(const OJson& messages, bool add_generation_prompt, const OJson& tools,
                                              std::int64_t max_length) const {
  ChatRenderOptions options;
  options.add_generation_prompt = add_generation_prompt;
  if (!tools.is_null()) options.variables["tools"] = tools;
  const std::string text = template_.render(messages, options);
  const std::vector<std::uint32_t> ids = tokenizer_.encode(text, /*add_special_tokens=*/false);
  const std::size_t n = std::min<std::size_t>(ids.size(), static_cast<std::size_t>(max_length));
  return std::vector<std::int64_t>(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(n));
}

namespace {

OJson head(const OJson& conv, std::size_t n) {
  OJson out = OJson::array();
  for (std::size_t i = 0; i < n; ++i) out.push_back(conv[i]);
  return out;
}

bool starts_with(const std::vector<std::int64_t>& a, const std::vector<std::int64_t>& prefix) {
  return prefix.size() <= a.size() && std::equal(prefix.begin(), prefix.end(), a.begin());
}

std::size_t common_prefix(const std::vector<std::int64_t>& a, const std::vector<std::int64_t>& b) {
  std::size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

}  // namespace

ConversationRows per_turn_rows(const ChatEncoder& encoder, const OJson& conv, const OJson& tools,
                               std::int64_t max_length) {
  ConversationRows out;
  for (std::size_t j = 1; j < conv.size(); ++j) {
    if (conv[j].value("role", "") != "assistant") continue;
    const auto prompt = encoder.encode(head(conv, j), true, tools, max_length);
    if (static_cast<std::int64_t>(prompt.size()) >= max_length) {
      ++out.skipped_turns;  // a later turn can fit again when the template drops old reasoning
      continue;
    }
    auto full = encoder.encode(head(conv, j + 1), false, tools, max_length);
    std::size_t boundary = prompt.size();
    if (!starts_with(full, prompt)) {
      // The generation prompt diverges from the recorded turn (a pre-filled <think> scaffold vs
      // recorded reasoning): the common prefix, valid only when the history itself agrees.
      boundary = common_prefix(prompt, full);
      const auto history = encoder.encode(head(conv, j), false, tools, max_length);
      if (!starts_with(full, history) || boundary < history.size()) {
        fail_data(cat("the chat template is not prefix-stable at assistant turn ", j,
                      ": the renders with and without that turn diverge inside the history"));
      }
    }
    MaskedRow row;
    row.loss_mask.assign(full.size(), 0);
    std::fill(row.loss_mask.begin() + static_cast<std::ptrdiff_t>(boundary), row.loss_mask.end(), 1);
    row.input_ids = std::move(full);
    out.rows.push_back(std::move(row));
  }
  return out;
}

ConversationRows all_assistant_rows(const ChatEncoder& encoder, const OJson& conv, const OJson& tools,
                                    std::int64_t max_length) {
  ConversationRows out;
  std::size_t last = 0;
  for (std::size_t j = 1; j < conv.size(); ++j) {
    if (conv[j].value("role", "") == "assistant") last = j;
  }
  if (last == 0) return out;
  MaskedRow row;
  row.input_ids = encoder.encode(head(conv, last + 1), false, tools, max_length);
  row.loss_mask.assign(row.input_ids.size(), 0);
  for (std::size_t j = 1; j <= last; ++j) {
    if (conv[j].value("role", "") != "assistant") continue;
    const auto prompt = encoder.encode(head(conv, j), true, tools, max_length);
    if (static_cast<std::int64_t>(prompt.size()) >= max_length) {
      ++out.skipped_turns;
      continue;
    }
    const auto end = encoder.encode(head(conv, j + 1), false, tools, max_length);
    if (!starts_with(row.input_ids, prompt) || !starts_with(end, prompt) || !starts_with(row.input_ids, end)) {
      fail_data(cat("the chat template is not prefix-stable at assistant turn ", j,
                    " (--mask-mode all-assistant needs one; use --mask-mode per-turn)"));
    }
    std::fill(row.loss_mask.begin() + static_cast<std::ptrdiff_t>(prompt.size()),
              row.loss_mask.begin() + static_cast<std::ptrdiff_t>(end.size()), 1);
  }
  out.rows.push_back(std::move(row));
  return out;
}

}  // namespace speculators
