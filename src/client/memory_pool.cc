#include "client/memory_pool.h"

#include <algorithm>
#include <bit>

namespace vkn::client {

Result<protocol::SharedMemory> MemoryPool::acquire(uint64_t bytes) {
  {
    std::lock_guard lock(mu_);
    // The smallest pooled memfd that is large enough.
    auto best = free_.end();
    for (auto it = free_.begin(); it != free_.end(); ++it) {
      if (it->size() >= bytes && (best == free_.end() || it->size() < best->size())) best = it;
    }
    if (best != free_.end()) {
      protocol::SharedMemory m = std::move(*best);
      free_.erase(best);
      pooled_bytes_ -= m.size();
      return m;
    }
  }
  // Round up so that transfers of similar sizes share one memfd.
  const uint64_t size = bytes <= (1u << 20) ? bytes : std::bit_ceil(bytes);
  return protocol::SharedMemory::create(std::max<uint64_t>(size, bytes), "vknode-client");
}

void MemoryPool::release(protocol::SharedMemory memory) {
  std::lock_guard lock(mu_);
  if (memory.size() > kMaxPooledBytes) return;
  while (!free_.empty() && pooled_bytes_ + memory.size() > kMaxPooledBytes) {
    pooled_bytes_ -= free_.front().size();
    free_.erase(free_.begin());
  }
  pooled_bytes_ += memory.size();
  free_.push_back(std::move(memory));
}

}  // namespace vkn::client
