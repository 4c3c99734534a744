// See token_rows.h.
#include "data/token_rows.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numeric>

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {

namespace {

// input_ids / loss_mask: a list of JSON integers that an int64 holds. A fraction (3.5), a number
// written with an exponent (1e200) or one past 2^63 - 1 is refused, never truncated or wrapped.
std::vector<std::int64_t> integer_list(const nlohmann::json& list, const std::string& where) {
  // What was found, without dumping a nested value (a row may nest thousands of levels).
  const auto refuse = [&](const nlohmann::json& got) {
    const std::string what = got.is_array() ? "a list" : got.is_object() ? "an object" : got.dump().substr(0, 60);
    fail_data(cat(where, ": input_ids and loss_mask must be lists of integers (got ", what, ")"));
  };
  if (!list.is_array()) refuse(list);
  std::vector<std::int64_t> out;
  out.reserve(list.size());
  for (const auto& v : list) {
    const bool too_large = v.is_number_unsigned() &&
                           v.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    if (!v.is_number_integer() || too_large) refuse(v);
    out.push_back(v.get<std::int64_t>());
  }
  return out;
}

}  // namespace

std::vector<TokenRow> read_data_jsonl(const std::string& path) {
  // A FIFO or a device would block the open (and every read) for as long as nobody writes: only a
  // regular file (or a link to one) is read.
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (!ec && std::filesystem::exists(status) && !std::filesystem::is_regular_file(status)) {
    fail_data(cat(path, ": not a regular file (",
                  std::filesystem::is_directory(status) ? "a directory" : status.type() == std::filesystem::file_type::fifo ? "a FIFO" : "a device or socket",
                  "); data.jsonl must be a file with one JSON object per line"));
  }
  std::ifstream in(path);
  if (!in) fail_data(cat(path, ": cannot open (expected one JSON object per line with input_ids and loss_mask)"));
  std::vector<TokenRow> rows;
  std::string line;
  std::size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = cat(path, ":", line_no);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      // parse_error for bad syntax, out_of_range for a number no double holds (1e400).
      fail_data(cat(where, ": invalid JSON: ", e.what()));
    }
    if (!j.is_object() || !j.contains("input_ids")) fail_data(cat(where, ": row has no \"input_ids\""));
    TokenRow row;
    row.line = line_no;
    row.input_ids = integer_list(j.at("input_ids"), where);
    if (j.contains("loss_mask")) {
      row.loss_mask = integer_list(j.at("loss_mask"), where);
    } else {
      row.loss_mask.assign(row.input_ids.size(), 1);
    }
    if (row.input_ids.size() != row.loss_mask.size()) {
      fail_data(cat(where, ": input_ids has ", row.input_ids.size(), " tokens but loss_mask has ",
                    row.loss_mask.size()));
    }
    for (auto m : row.loss_mask) {
      if (m != 0 && m != 1) fail_data(cat(where, ": loss_mask values must be 0 or 1, got ", m));
    }
    rows.push_back(std::move(row));
  }
  if (rows.empty()) fail_data(cat(path, ": no rows (the file is empty)"));
  return rows;
}

void check_token_range(const std::vector<TokenRow>& rows, std::int64_t vocab_size, const std::string& path) {
  for (std::size_t i = 0; i < rows.size(); ++i) {
    for (auto t : rows[i].input_ids) {
      if (t < 0 || t >= vocab_size) {
        fail_data(cat(path, ":", rows[i].line, " (row ", i, "): token id ", t,
                      " is outside the verifier vocabulary [0, ", vocab_size, ")"));
      }
    }
  }
}

std::vector<std::size_t> keep_supervised_rows(const std::vector<TokenRow>& rows,
                                              const std::vector<std::size_t>& indices, BadSampleLog& bad,
                                              const std::string& path) {
  std::vector<std::size_t> kept;
  for (auto i : indices) {
    const auto& mask = rows.at(i).loss_mask;
    if (std::find(mask.begin(), mask.end(), 1) != mask.end()) {
      kept.push_back(i);
    } else {
      bad.report(cat(path, ":", rows[i].line, " (row ", i, "): no supervised token (loss_mask is all 0)"));
    }
  }
  return kept;
}

std::pair<std::vector<std::size_t>, std::vector<std::size_t>> split_rows(std::size_t n, double train_ratio) {
  if (!(train_ratio > 0.0 && train_ratio <= 1.0)) {
    fail_usage(cat("train_data_ratio must be in (0, 1], got ", train_ratio));
  }
  auto n_train = static_cast<std::size_t>(std::floor(static_cast<double>(n) * train_ratio));
  std::vector<std::size_t> train(n_train), val(n - n_train);
  std::iota(train.begin(), train.end(), 0);
  std::iota(val.begin(), val.end(), n_train);
  return {train, val};
}

}  // namespace speculators
