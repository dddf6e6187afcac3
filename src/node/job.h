// Job: one unit of work queued on a node, shared by the caller (who may give up at
// its deadline) and the worker (who runs it). Fields after `mu` are guarded by it.
#pragma once

#include <chrono>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "vknode/node/node.h"

namespace vkn::detail {

enum class JobState { queued, running, done, withdrawn };

struct Job {
  ErasedJob fn;
  std::vector<KernelId> kernels;  // kernels the job uses (quarantine bookkeeping)
  std::string client;

  std::atomic<bool> finished{false};  // set with state == done, for callers that spin

  std::mutex mu;
  std::condition_variable cv;
  JobState state = JobState::queued;  // guarded by mu
  bool abandoned = false;             // guarded by mu: the caller timed out while it ran
  std::optional<Error> error;         // guarded by mu: set when done with an error
};

}  // namespace vkn::detail
