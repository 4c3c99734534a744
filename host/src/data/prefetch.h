// Background batch building for the Loader: a fixed pool of worker threads computes batch
// indices [first, end) of one epoch ahead of the consumer, at most `depth` at a time, and hands
// the results back strictly in index order. Because each batch is a function of its index
// alone, the batches are the same as when built one by one on the consumer's thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "speculators/algorithm.h"

namespace speculators {

class OrderedPrefetcher {
 public:
  using Task = std::function<std::optional<Batch>(std::size_t index)>;

  OrderedPrefetcher(int workers, std::size_t depth);
  ~OrderedPrefetcher();
  OrderedPrefetcher(const OrderedPrefetcher&) = delete;
  OrderedPrefetcher& operator=(const OrderedPrefetcher&) = delete;

  // Drops the previous run (waits for batches being built) and starts building [first, end).
  void start(Task task, std::size_t first, std::size_t end);
  // The result of the next index, in order; blocks until it is built. Rethrows the exception a
  // worker caught while building it.
  std::optional<Batch> take();
  // Drops queued work and waits for the batches being built.
  void cancel();

 private:
  void worker_loop();
  void submit_next();

  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;
  bool stop_ = false;
  std::deque<std::future<std::optional<Batch>>> in_flight_;  // consumer thread only
  Task task_;
  std::size_t depth_;
  std::size_t next_index_ = 0;
  std::size_t end_ = 0;
};

}  // namespace speculators
