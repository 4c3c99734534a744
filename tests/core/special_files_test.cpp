// A directory or a FIFO where a .safetensors or .npy file should be: a data error naming the
// file (README.md, "Exit codes": 4), at once. Opening a FIFO for reading would otherwise wait for
// a writer; here a helper thread opens one after a few seconds, so that a reader which waited is
// measured instead of hanging the test.
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/stat.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>

#include "io_test_util.h"
#include "speculators/tensor_io.h"

using speculators::test::ScratchDir;

namespace {

struct Refusal {
  speculators::ExitCode code = speculators::ExitCode::kFailure;
  std::string message;
  double seconds = 0;
};

Refusal refusal_of(const std::string& fifo_or_empty, const std::function<void()>& action) {
  std::thread writer;
  if (!fifo_or_empty.empty()) {
    writer = std::thread([fifo_or_empty] {
      std::this_thread::sleep_for(std::chrono::seconds(3));
      const int fd = ::open(fifo_or_empty.c_str(), O_WRONLY | O_NONBLOCK);  // releases a waiting reader
      if (fd >= 0) ::close(fd);
    });
  }
  Refusal out;
  const auto start = std::chrono::steady_clock::now();
  try {
    action();
    FAIL_CHECK("nothing was thrown");
  } catch (const speculators::Error& e) {
    out.code = e.code();
    out.message = e.what();
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (writer.joinable()) writer.join();
  return out;
}

}  // namespace

TEST_CASE("a directory or FIFO in place of a tensor file is a data error at once", "[safetensors][npy]") {
  ScratchDir dir;
  const std::function<void(const std::string&)> readers[] = {
      [](const std::string& path) { speculators::load_safetensors(path); },
      [](const std::string& path) { speculators::load_npy(path); },
  };
  for (const char* name : {"model.safetensors", "d2t.npy"}) {
    const auto& read = std::string(name).find(".npy") != std::string::npos ? readers[1] : readers[0];
    const std::string as_dir = dir.file(std::string("dir_") + name);
    std::filesystem::create_directory(as_dir);
    const std::string fifo = dir.file(std::string("fifo_") + name);
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    for (const std::string& path : {as_dir, fifo}) {
      INFO(path);
      const Refusal r = refusal_of(path == fifo ? fifo : "", [&] { read(path); });
      CHECK(r.code == speculators::ExitCode::kData);
      CHECK_THAT(r.message, Catch::Contains(path) && Catch::EndsWith(": not a regular file"));
      CHECK(r.seconds < 2);
    }
  }
}
