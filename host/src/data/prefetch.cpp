// OrderedPrefetcher (see prefetch.h).
#include "data/prefetch.h"

#include <algorithm>
#include <memory>
#include <system_error>

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {

OrderedPrefetcher::OrderedPrefetcher(int workers, std::size_t depth) : depth_(std::max<std::size_t>(1, depth)) {
  if (workers < 1) fail_usage(cat("num_workers must be >= 1 for a prefetcher, got ", workers));
  try {
    for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { worker_loop(); });
  } catch (const std::system_error& e) {
    // The threads already started must be stopped and joined here: the destructor does not run
    // for a constructor that throws, and a joinable std::thread would end the process.
    const std::size_t started = threads_.size();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
    fail_usage(cat("--num-workers ", workers, ": could not start data worker thread ", started + 1, " (", e.what(),
                   "); use fewer workers"));
  }
}

OrderedPrefetcher::~OrderedPrefetcher() {
  cancel();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

void OrderedPrefetcher::worker_loop() {
  while (true) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
      if (stop_ && jobs_.empty()) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();  // a packaged_task: exceptions land in its future
  }
}

void OrderedPrefetcher::submit_next() {
  const std::size_t index = next_index_++;
  auto job = std::make_shared<std::packaged_task<std::optional<Batch>()>>([task = task_, index] { return task(index); });
  in_flight_.push_back(job->get_future());
  {
    std::lock_guard<std::mutex> lock(mutex_);
    jobs_.emplace_back([job] { (*job)(); });
  }
  wake_.notify_one();
}

void OrderedPrefetcher::cancel() {
  {
    // Queued jobs are destroyed unrun: their futures become ready with broken_promise.
    std::lock_guard<std::mutex> lock(mutex_);
    jobs_.clear();
  }
  for (auto& f : in_flight_) f.wait();
  in_flight_.clear();
  next_index_ = end_ = 0;
}

void OrderedPrefetcher::start(Task task, std::size_t first, std::size_t end) {
  cancel();
  task_ = std::move(task);
  next_index_ = first;
  end_ = end;
  while (next_index_ < end_ && in_flight_.size() < depth_) submit_next();
}

std::optional<Batch> OrderedPrefetcher::take() {
  if (in_flight_.empty()) return std::nullopt;
  auto future = std::move(in_flight_.front());
  in_flight_.pop_front();
  if (next_index_ < end_) submit_next();  // keep the queue full while the caller waits
  return future.get();
}

}  // namespace speculators
