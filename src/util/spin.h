// Spinning before sleeping, for hand-offs between threads that answer within
// microseconds (the node's callers and worker).
#pragma once

#include <chrono>
#include <optional>
#include <thread>

namespace vkn {

// Hand-offs between a caller and the worker spin briefly before they sleep: a futex
// wake-up costs 5-30 us on a small VM, more than most tiny jobs. Where cores are few,
// the spin yields at each turn so that the worker, or a CPU device's own threads, can
// run (measured on 2 cores with lavapipe: with_node no-op 7.9 -> 1.1 us; a tiny
// dispatch through the node 85 -> 50 us, the core Stream's own being 40-65 us).
inline const bool kFewCores = std::thread::hardware_concurrency() < 4;

inline void spin_pause() {
  if (kFewCores) {
    std::this_thread::yield();
    return;
  }
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

// Spins a few turns (pauses, or yields where cores are few) until `done()`; reads no clock.
template <typename Done>
bool spin_turns(Done&& done) {
  const int turns = kFewCores ? 1 : 32;
  for (int i = 0; i < turns; ++i) {
    if (done()) return true;
    spin_pause();
  }
  return done();
}

// Spins until `done()` or for `budget` (at most until `latest`). The clock is read only
// between rounds of spin_turns, the first time after the first round: in a VM a clock read
// costs more than a pause, and a job answered within that round costs no clock read at all.
template <typename Done>
bool spin_for(Done&& done, std::chrono::microseconds budget,
              std::chrono::steady_clock::time_point latest = std::chrono::steady_clock::time_point::max()) {
  std::optional<std::chrono::steady_clock::time_point> end;
  while (!spin_turns(done)) {
    const auto now = std::chrono::steady_clock::now();
    if (!end) end = now + budget < latest ? now + budget : latest;
    if (now >= *end) return done();
  }
  return true;
}

}  // namespace vkn
