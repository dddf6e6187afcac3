#include "node/kernel_quarantine.h"

#include "util/strformat.h"

namespace vkn {

Result<void> KernelQuarantine::check(std::span<const KernelId> kernels, Clock::time_point now) {
  if (kernels.empty() || tracked_.load(std::memory_order_acquire) == 0) return {};
  std::lock_guard lock(mu_);
  for (const KernelId& k : kernels) {
    auto it = states_.find(k);
    if (it != states_.end() && now < it->second.until) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(it->second.until - now);
      return fail(Errc::kernel_quarantined,
                  vkn::format("kernel {} timed out {} times in a row; quarantined for {} ms more", to_hex(k),
                              it->second.consecutive_timeouts, left.count()));
    }
  }
  return {};
}

void KernelQuarantine::note_timeout(std::span<const KernelId> kernels, Clock::time_point now) {
  std::lock_guard lock(mu_);
  for (const KernelId& k : kernels) {
    State& s = states_[k];
    if (++s.consecutive_timeouts >= threshold_) s.until = now + cooldown_;
  }
  tracked_.store(states_.size(), std::memory_order_release);
}

void KernelQuarantine::note_success(std::span<const KernelId> kernels) {
  if (kernels.empty() || tracked_.load(std::memory_order_acquire) == 0) return;
  std::lock_guard lock(mu_);
  for (const KernelId& k : kernels) {
    auto it = states_.find(k);
    if (it != states_.end() && Clock::now() >= it->second.until) states_.erase(it);
  }
  tracked_.store(states_.size(), std::memory_order_release);
}

bool KernelQuarantine::clear(const KernelId& kernel) {
  std::lock_guard lock(mu_);
  const bool erased = states_.erase(kernel) > 0;
  tracked_.store(states_.size(), std::memory_order_release);
  return erased;
}

size_t KernelQuarantine::quarantined_count(Clock::time_point now) {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [k, s] : states_) n += now < s.until ? 1 : 0;
  return n;
}

}  // namespace vkn
