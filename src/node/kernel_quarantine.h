// KernelQuarantine: counts consecutive timeouts per kernel; after `threshold` in a
// row the kernel is quarantined (calls using it fail fast with kernel_quarantined)
// until an operator clears it or the cool-down passes. Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <span>

#include "vknode/error.h"
#include "vknode/gpu/kernel.h"

namespace vkn {

class KernelQuarantine {
 public:
  using Clock = std::chrono::steady_clock;
  KernelQuarantine(uint32_t threshold, std::chrono::milliseconds cooldown)
      : threshold_(threshold), cooldown_(cooldown) {}

  // Errors: kernel_quarantined naming the first quarantined kernel in `kernels`.
  [[nodiscard]] Result<void> check(std::span<const KernelId> kernels) {
    if (!is_tracking() || kernels.empty()) return {};  // the usual case: no clock read, no lock
    return check(kernels, Clock::now());
  }
  [[nodiscard]] Result<void> check(std::span<const KernelId> kernels, Clock::time_point now);
  void note_timeout(std::span<const KernelId> kernels, Clock::time_point now = Clock::now());
  void note_success(std::span<const KernelId> kernels);
  bool clear(const KernelId& kernel);
  size_t quarantined_count(Clock::time_point now = Clock::now());
  // Whether any kernel has timed out lately (only then do checks and notes do anything).
  bool is_tracking() const { return tracked_.load(std::memory_order_acquire) != 0; }

 private:
  struct State {
    uint32_t consecutive_timeouts = 0;
    Clock::time_point until{};  // quarantined while now < until
  };
  uint32_t threshold_;
  std::chrono::milliseconds cooldown_;
  std::mutex mu_;
  std::map<KernelId, State> states_;  // guarded by mu_
  // states_.size(), readable without mu_: with no kernel timing out (the usual case) every
  // job's check and success note skip the lock, which callers and the worker would
  // otherwise pass back and forth on every job.
  std::atomic<size_t> tracked_{0};
};

}  // namespace vkn
