// Token rows and loss masks of chat conversations, as the reference's
// speculators/data_generation/preprocessing.py: _render_boundary_rows derives them: for every
// assistant turn j >= 1, context = render(conv[:j], add_generation_prompt=True) and full =
// render(conv[:j+1]); the loss mask is 0 on the context tokens (or on the common token prefix
// when the generation prompt diverges from the recorded turn, as reasoning templates that drop
// older <think> blocks do) and 1 on the rest. Renders are tokenized without special tokens and
// cut at the sequence length, as apply_chat_template(tokenize=True) and vLLM's render endpoint do.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "speculators/text/chat_template.h"
#include "speculators/text/tokenizer.h"

namespace speculators {

struct MaskedRow {
  std::vector<std::int64_t> input_ids;
  std::vector<std::int64_t> loss_mask;
};

struct ConversationRows {
  std::vector<MaskedRow> rows;
  std::int64_t skipped_turns = 0;  // assistant turns whose context alone filled the sequence length
};

// A verifier's chat template and tokenizer (DIR/tokenizer.json, DIR/chat_template.jinja or
// tokenizer_config.json).
class ChatEncoder {
 public:
  explicit ChatEncoder(const std::string& model_dir);
  // Token ids of the rendered `messages`, cut to `max_length`.
  std::vector<std::int64_t> encode(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                   const nlohmann::ordered_json& tools, std::int64_t max_length) const;
  const text::Tokenizer& tokenizer() const { return tokenizer_; }
  const ModelChatTemplate& chat_template() const { return template_; }

 private:
  ModelChatTemplate template_;
  text::Tokenizer tokenizer_;
};

// One row per assistant turn j >= 1 (speculators/data_generation/preprocessing.py:
// _render_boundary_rows). Throws speculators::Error (kData) naming the turn when the template
// is not prefix-stable there (the renders diverge inside the history).
ConversationRows per_turn_rows(const ChatEncoder& encoder, const nlohmann::ordered_json& conv,
                               const nlohmann::ordered_json& tools, std::int64_t max_length);

// One row per conversation, rendered through its last assistant turn, with every assistant turn
// j >= 1 supervised on the tokens between its context and its end. Needs a prefix-stable template:
// throws speculators::Error (kData) naming the turn otherwise.
ConversationRows all_assistant_rows(const ChatEncoder& encoder, const nlohmann::ordered_json& conv,
                                    const nlohmann::ordered_json& tools, std::int64_t max_length);

}  // namespace speculators
