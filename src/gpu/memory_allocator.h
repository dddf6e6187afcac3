// MemoryAllocator: sub-allocates buffer memory out of large VkDeviceMemory blocks so
// that creating a buffer does not call vkAllocateMemory once a block of its memory
// type exists. Requests above kDedicatedThreshold get a block of their own.
// Host-visible blocks are mapped once, persistently. Owned by the Device.
// Thread-safe (one mutex); MemoryLease gives its range back when destroyed.
#pragma once

#include <vulkan/vulkan.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "vknode/gpu/vk_handle.h"
#include "vknode/error.h"

namespace vkn {

class Device;
class MemoryAllocator;

struct MemoryBlock {
  OwnedMemory memory;
  uint64_t size = 0;
  uint32_t memory_type = 0;
  bool dedicated = false;
  std::byte* mapped = nullptr;
  std::map<uint64_t, uint64_t> free_ranges;  // offset -> size, coalesced
  uint64_t used = 0;
};

class MemoryLease {
 public:
  MemoryLease() = default;
  MemoryLease(MemoryAllocator* owner, MemoryBlock* block, uint64_t offset, uint64_t size)
      : owner_(owner), block_(block), offset_(offset), size_(size) {}
  MemoryLease(const MemoryLease&) = delete;
  MemoryLease& operator=(const MemoryLease&) = delete;
  MemoryLease(MemoryLease&& o) noexcept { *this = std::move(o); }
  MemoryLease& operator=(MemoryLease&& o) noexcept;
  ~MemoryLease() { release(); }

  VkDeviceMemory memory() const { return block_->memory.get(); }
  uint64_t offset() const { return offset_; }
  uint64_t size() const { return size_; }
  // Host pointer to this range, or nullptr when the memory is not host-visible.
  std::byte* mapped() const { return block_->mapped ? block_->mapped + offset_ : nullptr; }
  uint32_t memory_type() const { return block_->memory_type; }

 private:
  void release();
  MemoryAllocator* owner_ = nullptr;
  MemoryBlock* block_ = nullptr;
  uint64_t offset_ = 0;
  uint64_t size_ = 0;
};

struct AllocatorStats {
  uint64_t reserved_bytes = 0;    // held in VkDeviceMemory blocks
  uint64_t used_bytes = 0;        // leased out
  uint64_t device_allocations = 0;  // vkAllocateMemory calls so far
  uint64_t blocks = 0;
};

class MemoryAllocator {
 public:
  static constexpr uint64_t kBlockSize = 64ull << 20;
  static constexpr uint64_t kDedicatedThreshold = 16ull << 20;

  explicit MemoryAllocator(Device& device) : device_(device) {}
  MemoryAllocator(const MemoryAllocator&) = delete;
  MemoryAllocator& operator=(const MemoryAllocator&) = delete;

  // A range satisfying `req` in `memory_type`. Errors: out_of_device_memory /
  // out_of_host_memory (also when the test seam injects a failure).
  [[nodiscard]] Result<MemoryLease> allocate(const VkMemoryRequirements& req, uint32_t memory_type);
  AllocatorStats stats() const;

 private:
  friend class MemoryLease;
  void release(MemoryBlock* block, uint64_t offset, uint64_t size);
  Result<MemoryBlock*> new_block(uint64_t size, uint32_t memory_type, bool dedicated);
  static bool take_range(MemoryBlock& block, uint64_t size, uint64_t alignment, uint64_t* offset);

  Device& device_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<MemoryBlock>> blocks_;  // guarded by mu_
  uint64_t device_allocations_ = 0;                   // guarded by mu_
};

}  // namespace vkn
