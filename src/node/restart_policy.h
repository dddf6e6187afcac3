// RestartPolicy: the supervisor's restart budget, in the manner of OTP: at most
// max_restarts restarts within a sliding window, each after an exponentially
// growing backoff. Not thread-safe (the node's worker thread owns it).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>

namespace vkn {

class RestartPolicy {
 public:
  using Clock = std::chrono::steady_clock;
  RestartPolicy(uint32_t max_restarts, std::chrono::milliseconds window, std::chrono::milliseconds backoff)
      : max_restarts_(max_restarts), window_(window), backoff_(backoff) {}

  // Records a restart at `now` if the budget allows one; false means give up.
  bool allow_restart(Clock::time_point now);
  // How long to wait before the restart just allowed: backoff * 2^(restarts in window - 1), at most 5 s.
  std::chrono::milliseconds next_delay() const;
  uint32_t restarts_in_window() const { return static_cast<uint32_t>(recent_.size()); }

 private:
  uint32_t max_restarts_;
  std::chrono::milliseconds window_;
  std::chrono::milliseconds backoff_;
  std::deque<Clock::time_point> recent_;
};

}  // namespace vkn
