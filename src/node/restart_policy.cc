#include "node/restart_policy.h"

#include <algorithm>

namespace vkn {

bool RestartPolicy::allow_restart(Clock::time_point now) {
  while (!recent_.empty() && now - recent_.front() > window_) recent_.pop_front();
  if (recent_.size() >= max_restarts_) return false;
  recent_.push_back(now);
  return true;
}

std::chrono::milliseconds RestartPolicy::next_delay() const {
  const uint32_t n = std::max<uint32_t>(1, restarts_in_window());
  const auto delay = backoff_ * (1ll << std::min<uint32_t>(n - 1, 16));
  return std::min<std::chrono::milliseconds>(delay, std::chrono::milliseconds(5000));
}

}  // namespace vkn
