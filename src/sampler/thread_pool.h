// ThreadPool: a fixed set of worker threads that run one parallel_for at a time. The calling
// thread takes part, so a pool of size 1 has no workers. parallel_for is not reentrant and must
// be called from one thread at a time; the pool owns its threads and joins them on destruction.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "vknode/error.h"

namespace vkn::sampler::detail {

class ThreadPool {
 public:
  // threads == 0: std::thread::hardware_concurrency(). out_of_host_memory if a thread cannot start.
  static Result<std::unique_ptr<ThreadPool>> create(unsigned threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  unsigned size() const { return static_cast<unsigned>(workers_.size()) + 1; }

  // Runs fn(i) for every i in [0, n), in any order and on any thread; returns when all are done.
  void parallel_for(size_t n, const std::function<void(size_t)>& fn);

 private:
  // One parallel_for. Workers copy the pointer under mu_, so one that wakes late holds the old,
  // exhausted job and never calls a stale fn.
  struct Job {
    const std::function<void(size_t)>* fn = nullptr;
    size_t n = 0;
    std::atomic<size_t> next{0};
  };

  ThreadPool() = default;
  void worker_loop();
  static void run_items(Job& job);

  std::vector<std::thread> workers_;  // fixed after create()

  std::mutex mu_;
  std::condition_variable wake_;   // workers wait for a new generation
  std::condition_variable done_;   // the caller waits for busy_ == 0
  uint64_t generation_ = 0;        // guarded by mu_
  unsigned busy_ = 0;              // workers inside the current job; guarded by mu_
  bool stop_ = false;              // guarded by mu_
  std::shared_ptr<Job> job_;  // guarded by mu_
};

}  // namespace vkn::sampler::detail
