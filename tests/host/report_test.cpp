// The HTML report's page source (its rendering is checked in headless Chromium by
// e2e_report_html): self-contained, data embedded safely, bad metrics files named by line.
#include <catch2/catch.hpp>

#include <fstream>

#include "../core/io_test_util.h"
#include "report.h"
#include "run_log.h"
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
