// The HTML report's page source (its rendering is checked in headless Chromium by
// e2e_report_html): self-contained, data embedded safely, bad metrics files named by line.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "../../core/io_test_util.h"
#include "observe/report.h"
#include "observe/run_log.h"
#include "speculators/error.h"

using namespace speculators;

TEST_CASE("the report embeds its data without a way out of the script element", "[report]") {
  std::vector<Json> lines = {Json::object({{"global_step", 0}, {"train/loss", 2.0}, {"note", "</script><b>x"}})};
  const std::string html = render_report_html(lines, "run <1>");
  CHECK(html.find("</script><b>") == std::string::npos);
  CHECK(html.find("<\\/script><b>x") != std::string::npos);
  CHECK(html.find("<title>run &lt;1&gt;</title>") != std::string::npos);
  // Nothing is fetched: no external script, style, image or font.
  CHECK(html.find("src=") == std::string::npos);
  CHECK(html.find("href=") == std::string::npos);
  CHECK(html.find("<tr><td>optimizer steps</td><td>1</td></tr>") != std::string::npos);
}

TEST_CASE("a malformed metrics.jsonl is reported with its file and line", "[report]") {
  test::ScratchDir dir;
  std::ofstream(dir.file("metrics.jsonl")) << "{\"global_step\": 0}\n\n[1, 2]\n";
  try {
    write_run_report(dir.path());
    FAIL("no error for a line that is not an object");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kData);
    CHECK(std::string(e.what()).find("metrics.jsonl:3") != std::string::npos);
  }
  // Lines that nest 50,000 levels deep or hold a number no double holds: data errors too, named.
  for (const std::string& bad : {"{\"a\":" + std::string(50000, '[') + std::string(50000, ']') + "}",
                                 std::string("{\"global_step\": 1e400}")}) {
    std::ofstream(dir.file("metrics.jsonl")) << "{\"global_step\": 0}\n" << bad << "\n";
    try {
      write_run_report(dir.path());
      FAIL("no error for " << bad.substr(0, 20));
    } catch (const Error& e) {
      CHECK(e.code() == ExitCode::kData);
      CHECK(std::string(e.what()).rfind(dir.file("metrics.jsonl") + ":2: invalid JSON", 0) == 0);
    }
  }
  std::ofstream(dir.file("metrics.jsonl")) << "{\"global_step\": 0, \"train/loss\": 1.5}\n";
  CHECK(write_run_report(dir.path()) == dir.file("report.html"));
  CHECK(run_report_command({}) == static_cast<int>(ExitCode::kUsage));
}

TEST_CASE("run names expand the reference's placeholders", "[report]") {
  const std::string name = expand_run_name("eagle3-{rank}-{local_rank}-{time}");
  CHECK(name.rfind("eagle3-0-0-", 0) == 0);
  CHECK(name.size() == std::string("eagle3-0-0-").size() + 15);  // YYYYmmdd_HHMMSS
  CHECK(name.find('{') == std::string::npos);
}

TEST_CASE("measured acceptance lengths of the run's checkpoints sit next to the training estimate", "[report]") {
  test::ScratchDir dir;
  std::ofstream(dir.file("metrics.jsonl")) << "{\"global_step\": 0, \"train/loss\": 1.5}\n"
                                           << "{\"global_step\": 1, \"val/acceptance_length_epoch\": 2.75}\n";
  for (const char* ckpt : {"10", "2"}) std::filesystem::create_directories(dir.file(ckpt));
  std::ofstream(dir.file("10/eval.json")) << R"({"acceptance_length": 2.5, "prompts": 4, "exact_prompts": 4, "speculative_tokens": 3})";
  std::ofstream(dir.file("2/eval.json")) << R"({"acceptance_length": 1.25, "prompts": 4, "exact_prompts": 3, "speculative_tokens": 3})";
  const auto measured = read_run_evaluations(dir.path());
  REQUIRE(measured.size() == 2);
  CHECK(measured[0].checkpoint == "2");  // numeric order, not text order
  CHECK(measured[1].checkpoint == "10");
  write_run_report(dir.path());
  std::ifstream in(dir.file("report.html"));
  const std::string html((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(html.find("estimated acceptance length (last validation, 1 + &Sigma; full_acc_k)</td><td>2.75<") != std::string::npos);
  CHECK(html.find("of checkpoint 10 (speculators-eval: 4 prompts, k = 3, exact)</td><td>2.5<") != std::string::npos);
  CHECK(html.find("of checkpoint 2 (speculators-eval: 4 prompts, k = 3, NOT exact)</td><td>1.25<") != std::string::npos);
}
