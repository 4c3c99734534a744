// Decoders ("decoder": ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence) and
// post-processors ("post_processor": TemplateProcessing, ByteLevel, Bert/RobertaProcessing,
// Sequence) of tokenizer.json, as the `tokenizers` library's decoders/ and processors/ define them.
#include "speculators/error.h"
#include "text/tokenizer_parts.h"
#include "text/utf8.h"

namespace speculators::text::detail {

namespace {

class ByteLevelDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    std::string raw;
    for (const auto& t : tokens) {
      raw.clear();
      bool all = true;
      for (std::size_t i = 0; i < t.size();) {
        const int b = char_to_byte(utf8_next(t, i));
        if (b < 0) {
          all = false;
          break;
        }
        raw.push_back(static_cast<char>(b));
      }
      bytes += all ? raw : t;
    }
    tokens.assign(1, utf8_lossy(bytes));
  }
};

class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(const Json& j, const Where& w) {
    replacement_ = utf8_lossy(string_field(j, "replacement", w));
    if (j.contains("prepend_scheme") && !j["prepend_scheme"].is_null()) {
      never_ = string_field(j, "prepend_scheme", w) == "never";
    } else {
      never_ = !bool_field(j, "add_prefix_space", true, w);
    }
  }
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      const std::string& t = tokens[i];
      for (std::size_t k = 0; k < t.size();) {
        if (t.compare(k, replacement_.size(), replacement_) == 0) {
          if (i != 0 || never_) out.push_back(' ');
          k += replacement_.size();
        } else {
          out.push_back(t[k++]);
        }
      }
      tokens[i] = std::move(out);
    }
  }

 private:
  std::string replacement_;
  bool never_ = false;
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(const Json& j, const Where& w) : replace_(make_normalizer(j, w)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) replace_->normalize(t);
  }

 private:
  std::unique_ptr<Normalizer> replace_;
};

void flush_bytes(std::string& bytes, std::size_t count, std::vector<std::string>& out) {
  if (count == 0) return;
  if (utf8_valid(bytes)) {
    out.push_back(bytes);
  } else {
    for (std::size_t i = 0; i < count; ++i) out.emplace_back("\xEF\xBF\xBD");
  }
  bytes.clear();
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class ByteFallbackDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    std::size_t count = 0;
    for (auto& t : tokens) {
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && hex_value(t[3]) >= 0 && hex_value(t[4]) >= 0) {
        bytes.push_back(static_cast<char>(hex_value(t[3]) * 16 + hex_value(t[4])));
        ++count;
        continue;
      }
      flush_bytes(bytes, count, out);
      count = 0;
      out.push_back(std::move(t));
    }
    flush_bytes(bytes, count, out);
    tokens.swap(out);
  }
};

class FuseDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

class StripDecoder : public Decoder {
 public:
  StripDecoder(const Json& j, const Where& w) {
    const std::string content = string_field(j, "content", w);
    std::size_t k = 0;
    if (content.empty()) w.at("content").fail("expected one character");
    content_ = utf8_next(content, k);
    const Json& start = field(j, "start", w);
    const Json& stop = field(j, "stop", w);
    if (!start.is_number_unsigned()) w.at("start").fail("expected a count, got " + start.dump());
    if (!stop.is_number_unsigned()) w.at("stop").fail("expected a count, got " + stop.dump());
    start_ = start.get<std::size_t>();
    stop_ = stop.get<std::size_t>();
  }
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) {
      std::vector<char32_t> chars;
      for (std::size_t i = 0; i < t.size();) chars.push_back(utf8_next(t, i));
      std::size_t begin = 0;
      for (std::size_t i = 0; i < start_ && i < chars.size() && chars[i] == content_; ++i) begin = i + 1;
      std::size_t end = chars.size();
      for (std::size_t i = 0; i < stop_ && i < chars.size(); ++i) {
        const std::size_t index = chars.size() - i - 1;
        if (chars[index] != content_) break;
        end = index;
      }
      std::string out;
      for (std::size_t i = begin; i < end; ++i) utf8_append(out, chars[i]);
      t = std::move(out);
    }
  }

 private:
  char32_t content_ = ' ';
  std::size_t start_ = 0, stop_ = 0;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& p : parts_) p->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

std::uint32_t token_id_pair(const Json& j, const char* name, const Where& w) {
  const Json& pair = field(j, name, w);
  if (!pair.is_array() || pair.size() != 2 || !pair[1].is_number_unsigned()) {
    w.at(name).fail("expected [token, id], got " + pair.dump());
  }
  return pair[1].get<std::uint32_t>();
}

void template_processing(const Json& j, const Where& w, PostTemplate& t) {
  const Json& single = field(j, "single", w);
  const Json& specials = field(j, "special_tokens", w);
  if (!single.is_array()) w.at("single").fail("expected an array");
  bool seen_sequence = false;
  for (std::size_t i = 0; i < single.size(); ++i) {
    const Where wi = w.at("single").at(i);
    const Json& item = single[i];
    if (item.is_object() && item.contains("Sequence")) {
      if (seen_sequence) wi.fail("a second Sequence in a single-sequence template");
      seen_sequence = true;
      continue;
    }
    if (!item.is_object() || !item.contains("SpecialToken")) wi.fail("expected Sequence or SpecialToken, got " + item.dump());
    const std::string name = string_field(item["SpecialToken"], "id", wi.at("SpecialToken"));
    if (!specials.is_object() || !specials.contains(name)) {
      w.at("special_tokens").fail("no entry for '" + name + "' used by the template");
    }
    const Json& ids = field(specials[name], "ids", w.at("special_tokens").at(name));
    if (!ids.is_array()) w.at("special_tokens").at(name).at("ids").fail("expected an array of ids");
    for (const auto& id : ids) {
      if (!id.is_number_unsigned()) w.at("special_tokens").at(name).at("ids").fail("expected ids, got " + id.dump());
      (seen_sequence ? t.after : t.before).push_back(id.get<std::uint32_t>());
    }
  }
}

void add_post_processor(const Json& j, const Where& w, PostTemplate& t) {
  if (j.is_null()) return;
  const std::string type = string_field(j, "type", w);
  if (type == "ByteLevel") return;  // offsets only
  if (type == "TemplateProcessing") return template_processing(j, w, t);
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    t.before.push_back(token_id_pair(j, "cls", w));
    t.after.push_back(token_id_pair(j, "sep", w));
    return;
  }
  if (type == "Sequence") {
    const Json& list = field(j, "processors", w);
    if (!list.is_array()) w.at("processors").fail("expected an array");
    for (std::size_t i = 0; i < list.size(); ++i) add_post_processor(list[i], w.at("processors").at(i), t);
    return;
  }
  w.at("type").fail("unsupported post_processor type '" + type +
                    "' (supported: TemplateProcessing, ByteLevel, BertProcessing, RobertaProcessing, Sequence)");
}

}  // namespace

std::unique_ptr<Decoder> make_decoder(const Json& j, const Where& w) {
  if (j.is_null()) return nullptr;
  const std::string type = string_field(j, "type", w);
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Metaspace") return std::make_unique<MetaspaceDecoder>(j, w);
  if (type == "Replace") return std::make_unique<ReplaceDecoder>(j, w);
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") return std::make_unique<StripDecoder>(j, w);
  if (type == "Sequence") {
    const Json& list = field(j, "decoders", w);
    if (!list.is_array()) w.at("decoders").fail("expected an array");
    std::vector<std::unique_ptr<Decoder>> parts;
    for (std::size_t i = 0; i < list.size(); ++i) {
      auto p = make_decoder(list[i], w.at("decoders").at(i));
      if (p) parts.push_back(std::move(p));
    }
    return std::make_unique<SequenceDecoder>(std::move(parts));
  }
  w.at("type").fail("unsupported decoder type '" + type +
                    "' (supported: ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence)");
}

PostTemplate make_post_processor(const Json& j, const Where& w) {
  PostTemplate t;
  add_post_processor(j, w, t);
  return t;
}

}  // namespace speculators::text::detail
