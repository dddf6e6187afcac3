#include "sampler/thread_pool.h"

#include <system_error>

namespace vkn::sampler::detail {

Result<std::unique_ptr<ThreadPool>> ThreadPool::create(unsigned threads) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  std::unique_ptr<ThreadPool> pool(new ThreadPool());
  try {
    for (unsigned i = 1; i < threads; ++i) pool->workers_.emplace_back([p = pool.get()] { p->worker_loop(); });
  } catch (const std::system_error& e) {
    return fail(Errc::out_of_host_memory, "cannot start sampler threads", e.what());
  }
  return pool;
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run_items(Job& job) {
  for (size_t i = job.next.fetch_add(1); i < job.n; i = job.next.fetch_add(1)) (*job.fn)(i);
}

void ThreadPool::worker_loop() {
  uint64_t seen = 0;
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
      ++busy_;
    }
    run_items(*job);
    {
      std::lock_guard lock(mu_);
      if (--busy_ == 0) done_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(size_t n, const std::function<void(size_t)>& fn) {
  if (n == 0) return;
  if (workers_.empty() || n == 1) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  auto job = std::make_shared<Job>();
  job->fn = &fn;
  job->n = n;
  {
    std::lock_guard lock(mu_);
    job_ = job;
    ++generation_;
  }
  wake_.notify_all();
  run_items(*job);
  // Wait until every worker that took items has finished them.
  std::unique_lock lock(mu_);
  done_.wait(lock, [&] { return busy_ == 0; });
}

}  // namespace vkn::sampler::detail
