// Buffer: one VkBuffer with its memory, sub-allocated from the device's pool.
// Move-only; owns its VkBuffer and memory lease. Must not outlive its Device.
// Thread-compatible: the node's thread is its only user.
#pragma once

#include <vulkan/vulkan.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "vknode/error.h"

namespace vkn {

class Device;
class MemoryLease;

enum class BufferKind {
  device,           // device-local; reached through copies
  device_mappable,  // device-local and host-visible when the device has it (ReBAR), else device
  upload,           // host-visible, write-combined where possible: CPU writes, GPU reads
  readback,         // host-visible and host-cached where possible: GPU writes, CPU reads
};

const char* to_string(BufferKind kind);

class Buffer {
 public:
  // Errors: invalid_argument (zero size), out_of_device_memory / out_of_host_memory.
  [[nodiscard]] static Result<Buffer> create(Device& device, uint64_t bytes, BufferKind kind = BufferKind::device);

  Buffer(Buffer&&) noexcept;
  Buffer& operator=(Buffer&&) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();

  VkBuffer handle() const;
  uint64_t size() const { return size_; }
  BufferKind kind() const { return kind_; }
  // Host pointer to the whole buffer when its memory is host-visible, else nullptr.
  std::byte* mapped() const;
  bool is_mapped() const { return mapped() != nullptr; }

  // invalid_argument unless [offset, offset + bytes) lies inside the buffer.
  [[nodiscard]] Result<void> check_range(uint64_t offset, uint64_t bytes) const;
  // Direct CPU access to a mapped buffer. Requires: no GPU work uses the range.
  // Errors: invalid_argument (not mapped, or out of range).
  [[nodiscard]] Result<void> write_mapped(uint64_t offset, std::span<const std::byte> data);
  [[nodiscard]] Result<void> read_mapped(uint64_t offset, std::span<std::byte> out) const;

 private:
  struct State;
  explicit Buffer(std::unique_ptr<State> state, uint64_t size, BufferKind kind);
  std::unique_ptr<State> state_;
  uint64_t size_ = 0;
  BufferKind kind_ = BufferKind::device;
};

}  // namespace vkn
