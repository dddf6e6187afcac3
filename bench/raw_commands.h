// RawCommands: the raw-Vulkan baseline the benchmarks compare the gpu layer with: one
// command pool, one reusable command buffer and one fence on a Device's queue, driven
// straight through the Vulkan C API with none of Stream's bookkeeping. The caller records
// once (begin, vkCmd*, end) and then submits and waits as often as it likes.
// Move-only; owns its pool and fence and waits for its last submission before destroying
// them. Must not outlive its Device. Thread-compatible.
#pragma once

#include <vulkan/vulkan.h>

#include <chrono>

#include "vknode/error.h"
#include "vknode/gpu/vk_handle.h"

namespace vkn {
class Device;
}

namespace vkn::detail {

class RawCommands {
 public:
  // Errors: vulkan_error.
  [[nodiscard]] static Result<RawCommands> create(Device& device);
  RawCommands(RawCommands&&) noexcept = default;
  RawCommands& operator=(RawCommands&&) noexcept = default;
  RawCommands(const RawCommands&) = delete;
  RawCommands& operator=(const RawCommands&) = delete;
  ~RawCommands();

  // Resets the pool and begins the command buffer for recording (reusable, not one-time).
  [[nodiscard]] Result<VkCommandBuffer> begin();
  [[nodiscard]] Result<void> end();

  // Resets the fence and submits the recorded command buffer. Errors: device_lost, vulkan_error.
  [[nodiscard]] Result<void> submit();
  // vkWaitForFences until signalled. Errors: timeout, device_lost, vulkan_error.
  [[nodiscard]] Result<void> wait_blocking(std::chrono::nanoseconds timeout);
  // Polls vkGetFenceStatus in a busy loop until signalled. Errors: timeout, device_lost, vulkan_error.
  [[nodiscard]] Result<void> wait_spin(std::chrono::nanoseconds timeout);

 private:
  RawCommands() = default;
  VkDevice device_ = VK_NULL_HANDLE;
  VkQueue queue_ = VK_NULL_HANDLE;
  // Declared in creation order, so destroyed in reverse.
  OwnedCommandPool pool_;
  OwnedFence fence_;
  VkCommandBuffer cmd_ = VK_NULL_HANDLE;  // freed with the pool
  bool pending_ = false;  // submitted and not yet seen signalled
};

}  // namespace vkn::detail
