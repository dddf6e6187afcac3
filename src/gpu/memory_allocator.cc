#include "gpu/memory_allocator.h"

#include <algorithm>
#include "util/strformat.h"

#include "vknode/gpu/device.h"

namespace vkn {

MemoryLease& MemoryLease::operator=(MemoryLease&& o) noexcept {
  if (this != &o) {
    release();
    owner_ = std::exchange(o.owner_, nullptr);
    block_ = std::exchange(o.block_, nullptr);
    offset_ = o.offset_;
    size_ = o.size_;
  }
  return *this;
}

void MemoryLease::release() {
  if (owner_ != nullptr) std::exchange(owner_, nullptr)->release(block_, offset_, size_);
  block_ = nullptr;
}

bool MemoryAllocator::take_range(MemoryBlock& block, uint64_t size, uint64_t alignment, uint64_t* offset) {
  for (auto it = block.free_ranges.begin(); it != block.free_ranges.end(); ++it) {
    const uint64_t start = (it->first + alignment - 1) / alignment * alignment;
    const uint64_t end = it->first + it->second;
    if (start + size > end) continue;
    const uint64_t range_start = it->first;
    block.free_ranges.erase(it);
    if (start > range_start) block.free_ranges[range_start] = start - range_start;
    if (start + size < end) block.free_ranges[start + size] = end - (start + size);
    block.used += size;
    *offset = start;
    return true;
  }
  return false;
}

Result<MemoryBlock*> MemoryAllocator::new_block(uint64_t size, uint32_t memory_type, bool dedicated) {
  VkMemoryAllocateInfo ai{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
  ai.allocationSize = size;
  ai.memoryTypeIndex = memory_type;
  const bool host_visible =
      device_.memory_properties().memoryTypes[memory_type].propertyFlags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT;
  VkDeviceMemory memory = VK_NULL_HANDLE;
  VkResult r = VK_SUCCESS;
  if (device_.TEST_faults().fail_allocations.load() > 0 &&
      device_.TEST_faults().fail_allocations.fetch_sub(1) > 0) {
    const bool device_local = device_.memory_properties().memoryTypes[memory_type].propertyFlags &
                              VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
    r = device_local ? VK_ERROR_OUT_OF_DEVICE_MEMORY : VK_ERROR_OUT_OF_HOST_MEMORY;
  } else {
    r = vkAllocateMemory(device_.handle(), &ai, nullptr, &memory);
  }
  if (r != VK_SUCCESS) {
    return fail(Error::vulkan(r, vkn::format("vkAllocateMemory of {} bytes (memory type {})", size, memory_type)));
  }
  auto block = std::make_unique<MemoryBlock>();
  block->memory = OwnedMemory(device_.handle(), memory);
  block->size = size;
  block->memory_type = memory_type;
  block->dedicated = dedicated;
  block->free_ranges[0] = size;
  if (host_visible) {
    void* p = nullptr;
    r = vkMapMemory(device_.handle(), memory, 0, VK_WHOLE_SIZE, 0, &p);
    if (r != VK_SUCCESS) return fail(Error::vulkan(r, "vkMapMemory"));
    block->mapped = static_cast<std::byte*>(p);
  }
  ++device_allocations_;
  blocks_.push_back(std::move(block));
  return blocks_.back().get();
}

Result<MemoryLease> MemoryAllocator::allocate(const VkMemoryRequirements& req, uint32_t memory_type) {
  if (req.size == 0) return fail(Errc::invalid_argument, "zero-sized allocation");
  const uint64_t alignment = std::max<uint64_t>(req.alignment, 256);
  std::lock_guard lock(mu_);
  if (req.size <= kDedicatedThreshold) {
    for (auto& b : blocks_) {
      uint64_t offset = 0;
      if (!b->dedicated && b->memory_type == memory_type && take_range(*b, req.size, alignment, &offset)) {
        return MemoryLease(this, b.get(), offset, req.size);
      }
    }
  }
  const bool dedicated = req.size > kDedicatedThreshold;
  auto block = new_block(dedicated ? req.size : kBlockSize, memory_type, dedicated);
  if (!block) return fail(block.error());
  uint64_t offset = 0;
  take_range(**block, req.size, alignment, &offset);
  return MemoryLease(this, *block, offset, req.size);
}

void MemoryAllocator::release(MemoryBlock* block, uint64_t offset, uint64_t size) {
  std::lock_guard lock(mu_);
  block->used -= size;
  auto [it, inserted] = block->free_ranges.emplace(offset, size);
  // Coalesce with the following and the preceding free range.
  auto next = std::next(it);
  if (next != block->free_ranges.end() && it->first + it->second == next->first) {
    it->second += next->second;
    block->free_ranges.erase(next);
  }
  if (it != block->free_ranges.begin()) {
    auto prev = std::prev(it);
    if (prev->first + prev->second == it->first) {
      prev->second += it->second;
      block->free_ranges.erase(it);
    }
  }
  // Dedicated blocks go back to the driver at once; shared blocks stay for reuse.
  if (block->dedicated && block->used == 0) {
    std::erase_if(blocks_, [&](const std::unique_ptr<MemoryBlock>& b) { return b.get() == block; });
  }
}

AllocatorStats MemoryAllocator::stats() const {
  std::lock_guard lock(mu_);
  AllocatorStats s;
  for (const auto& b : blocks_) {
    s.reserved_bytes += b->size;
    s.used_bytes += b->used;
  }
  s.blocks = blocks_.size();
  s.device_allocations = device_allocations_;
  return s;
}

}  // namespace vkn
