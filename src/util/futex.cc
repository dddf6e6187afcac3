#include "util/futex.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <ctime>

namespace vkn {
namespace {

static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t), "a futex word is 32 bits");
static_assert(std::chrono::steady_clock::is_steady, "steady_clock reads CLOCK_MONOTONIC");

uint32_t* address(std::atomic<uint32_t>& word) { return reinterpret_cast<uint32_t*>(&word); }

}  // namespace

void futex_wait(std::atomic<uint32_t>& word, uint32_t expected,
                std::optional<std::chrono::steady_clock::time_point> deadline) {
  // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time, the clock steady_clock reads.
  timespec abs{};
  timespec* timeout = nullptr;
  if (deadline) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline->time_since_epoch()).count();
    if (ns <= 0) return;
    abs.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    abs.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    timeout = &abs;
  }
  // EAGAIN (the word changed), EINTR and ETIMEDOUT all mean: re-check.
  (void)syscall(SYS_futex, address(word), FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, expected, timeout, nullptr,
                FUTEX_BITSET_MATCH_ANY);
}

void futex_wake_all(std::atomic<uint32_t>& word) {
  (void)syscall(SYS_futex, address(word), FUTEX_WAKE | FUTEX_PRIVATE_FLAG, INT_MAX, nullptr, nullptr, 0);
}

}  // namespace vkn
