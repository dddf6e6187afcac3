// Job: one unit of work queued on a node, shared by the caller (who may give up at
// its deadline) and the worker (who runs it). Fields after `mu` are guarded by it.
// An asynchronous job (detail::submit_job) has `on_done` instead of a waiting caller:
// whoever takes it out under `mu` (the worker when the job ends, or the node's
// deadline timer) calls it, so it runs exactly once.
#pragma once

#include <chrono>
#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "vknode/node/node.h"

namespace vkn::detail {

enum class JobState { queued, running, done, withdrawn };

struct Job;
// Asynchronous jobs by deadline (NodeImpl's deadline timer).
using DeadlineMap = std::multimap<std::chrono::steady_clock::time_point, std::shared_ptr<Job>>;

struct Job {
  ErasedJob fn;
  std::vector<KernelId> kernels;  // kernels the job uses (quarantine bookkeeping)
  std::string client;
  bool is_exec = false;  // counted in NodeStatus::exec_count when it runs

  std::atomic<bool> finished{false};  // set with state == done, for callers that spin

  std::mutex mu;
  std::condition_variable cv;
  JobState state = JobState::queued;  // guarded by mu
  bool abandoned = false;             // guarded by mu: the caller timed out while it ran
  std::optional<Error> error;         // guarded by mu: set when done with an error
  JobDone on_done;                    // guarded by mu: asynchronous jobs, until called

  // Guarded by the node's timer mutex: this job's entry in the deadline map.
  std::optional<DeadlineMap::iterator> deadline_entry;
};

}  // namespace vkn::detail
