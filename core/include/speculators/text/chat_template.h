// Chat templates: renders a model's own Jinja `chat_template` for a list of messages, as
// transformers' apply_chat_template(tokenize=False) does, with a self-contained interpreter of the
// Jinja subset chat templates use (no file access, no Python). Also loads the template and the
// bos/eos tokens from a model directory.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace speculators {

namespace text::jinja {
struct Stmt;
}

struct ChatRenderOptions {
  bool add_generation_prompt = false;
  std::string bos_token;
  std::string eos_token;
  // Further template variables (enable_thinking, date_string, tools, ...), by name. They are
  // set after messages, add_generation_prompt, tools=None, documents=None, bos_token and
  // eos_token and so override them.
  nlohmann::ordered_json variables = nlohmann::ordered_json::object();
};

class ChatTemplate {
 public:
  // Parses `source`; throws speculators::Error("chat template line L, column C: ...").
  explicit ChatTemplate(std::string source);
  ~ChatTemplate();
  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;

  // Renders the template for `messages` (a JSON array of {"role", "content", ...} objects; key
  // order is kept, as Python's dicts keep it). Throws speculators::Error with the template line
  // and column for an error while rendering, including the template's own raise_exception().
  std::string render(const nlohmann::ordered_json& messages, const ChatRenderOptions& options = {}) const;
  std::string render(const nlohmann::json& messages, const ChatRenderOptions& options = {}) const;

  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::unique_ptr<std::vector<std::unique_ptr<text::jinja::Stmt>>> program_;
};

// A model directory's chat template and special tokens.
struct ModelChatTemplate {
  ChatTemplate chat_template;
  std::string bos_token;  // empty when tokenizer_config.json names none
  std::string eos_token;
  // Renders with this model's bos/eos tokens; `options` tokens, when set, win.
  std::string render(const nlohmann::ordered_json& messages, ChatRenderOptions options = {}) const;
};

// Loads `dir`/chat_template.jinja when present, else tokenizer_config.json's "chat_template" (a
// string, or a list of {"name", "template"} from which `name` is chosen); bos_token and eos_token
// come from tokenizer_config.json as strings or {"content": ...} objects. Throws
// speculators::Error naming the file and key when there is no template or a value is malformed.
ModelChatTemplate load_chat_template(const std::string& dir, const std::string& name = "default");

}  // namespace speculators
