#include "node/job.h"

namespace vkn::detail {

std::optional<uint32_t> advance_job(std::atomic<uint32_t>& state, uint32_t from, uint32_t to) {
  using namespace job_state;
  // The first attempt assumes no sleeper: one swap that takes the line for writing,
  // instead of a read followed by a swap (two transfers when the other side holds it).
  uint32_t seen = from;
  while (true) {
    const uint32_t next = to == kDone ? kDone : to | (seen & kCallerSleeping);
    if (state.compare_exchange_weak(seen, next, std::memory_order_acq_rel, std::memory_order_acquire)) return seen;
    if (base(seen) != from) return std::nullopt;
  }
}

}  // namespace vkn::detail
