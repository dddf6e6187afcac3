// Sleeping on a 32-bit atomic word until another thread changes it and wakes the word
// (Linux futexes). What a spin-then-sleep hand-off needs beyond std::atomic::wait: a
// deadline, and a wake that is safe to call on a word whose owner may just have freed
// it (a wake on such an address only causes a spurious wake-up somewhere, which every
// waiter tolerates because it re-checks its word).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>

namespace vkn {

// Sleeps while `word` holds `expected`, until a wake, a signal, a spurious wake-up or
// `deadline` (none: no limit). Returns at once when `word` already differs. Callers
// re-check their condition after every return.
void futex_wait(std::atomic<uint32_t>& word, uint32_t expected,
                std::optional<std::chrono::steady_clock::time_point> deadline);

// Wakes every thread sleeping in futex_wait on `word`.
void futex_wake_all(std::atomic<uint32_t>& word);

}  // namespace vkn
