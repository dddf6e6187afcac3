// MemoryPool: memfds a Client reuses for large writes and reads, so a transfer
// does not pay for fresh shared memory (page faults and zeroing) every time. A
// memfd goes back to the pool only after a call that succeeded: after a timeout the
// daemon may still be using it. Holds at most kMaxPooledBytes. Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

#include "protocol/shared_memory.h"

namespace vkn::client {

class MemoryPool {
 public:
  static constexpr uint64_t kMaxPooledBytes = 1ull << 30;

  // A memfd of at least `bytes` (from the pool, or new). Errors: SharedMemory::create's.
  [[nodiscard]] Result<protocol::SharedMemory> acquire(uint64_t bytes);
  void release(protocol::SharedMemory memory);

 private:
  std::mutex mu_;
  std::vector<protocol::SharedMemory> free_;  // guarded by mu_
  uint64_t pooled_bytes_ = 0;                 // guarded by mu_
};

}  // namespace vkn::client
