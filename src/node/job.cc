#include "node/job.h"

#include <cstdlib>
#include <new>

namespace vkn::detail {

// A plain allocation with room to start the job on a line; the allocation's own address
// is kept just before the job. 16 bytes or more lie between the two, where free() writes.
void* Job::operator new(size_t bytes) {
  constexpr uintptr_t kLine = 64;
  void* raw = std::malloc(bytes + kLine + 16);
  if (raw == nullptr) throw std::bad_alloc();
  const uintptr_t start = (reinterpret_cast<uintptr_t>(raw) + 16 + kLine - 1) & ~(kLine - 1);
  reinterpret_cast<void**>(start)[-1] = raw;
  return reinterpret_cast<void*>(start);
}

void Job::operator delete(void* p) {
  if (p != nullptr) std::free(static_cast<void**>(p)[-1]);
}

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
