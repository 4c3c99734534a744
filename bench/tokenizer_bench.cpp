// speculators-tokenizer-bench: single-threaded encode throughput of the tokenizer on a corpus of
// documents (a JSON array of strings), in thread CPU time (the machine may be shared), cold (fresh
// tokenizer) and warm (second pass), with the ids
// optionally checked against a reference file of little-endian uint32 ids (bench/tokenizer_bench.py
// writes one from the `tokenizers` library and prints both throughputs; docs/data.md).
#include <time.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "speculators/error.h"
#include "speculators/text/tokenizer.h"

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) speculators::fail_usage(path + ": cannot open");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

double thread_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double encode_all(const speculators::text::Tokenizer& tok, const std::vector<std::string>& docs,
                  std::vector<std::uint32_t>& all) {
  all.clear();
  const double t0 = thread_seconds();
  for (const auto& d : docs) {
    const auto ids = tok.encode(d, false);
    all.insert(all.end(), ids.begin(), ids.end());
  }
  return thread_seconds() - t0;
}

int run(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s TOKENIZER_JSON DOCS_JSON [REFERENCE_IDS_U32]\n", argv[0]);
    return 2;
  }
  const auto docs_json = nlohmann::json::parse(slurp(argv[2]));
  const auto docs = docs_json.get<std::vector<std::string>>();
  std::size_t bytes = 0;
  for (const auto& d : docs) bytes += d.size();
  const auto tok = speculators::text::Tokenizer::from_file(argv[1]);
  std::vector<std::uint32_t> ids;
  const double cold = encode_all(tok, docs, ids);
  const double warm = encode_all(tok, docs, ids);
  bool same = true;
  if (argc > 3) {
    const std::string ref = slurp(argv[3]);
    same = ref.size() == ids.size() * 4 && std::equal(ids.begin(), ids.end(), reinterpret_cast<const std::uint32_t*>(ref.data()));
  }
  std::printf("{\"bytes\": %zu, \"tokens\": %zu, \"cold_mb_s\": %.3f, \"warm_mb_s\": %.3f, \"ids_match\": %s}\n", bytes,
              ids.size(), bytes / cold / 1e6, bytes / warm / 1e6, same ? "true" : "false");
  return same ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "speculators-tokenizer-bench: %s\n", e.what());
    return 1;
  }
}
