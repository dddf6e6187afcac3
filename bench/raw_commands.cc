#include "raw_commands.h"

#include "vknode/gpu/device.h"

namespace vkn::detail {

RawCommands::~RawCommands() {
  if (pending_ && fence_) {
    VkFence fence = fence_.get();
    vkWaitForFences(device_, 1, &fence, VK_TRUE, 10'000'000'000ull);
  }
}

Result<RawCommands> RawCommands::create(Device& device) {
  RawCommands rc;
  rc.device_ = device.handle();
  rc.queue_ = device.queue();
  VkCommandPoolCreateInfo pci{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
  pci.queueFamilyIndex = device.queue_family();
  VkCommandPool pool = VK_NULL_HANDLE;
  VkResult r = vkCreateCommandPool(rc.device_, &pci, nullptr, &pool);
  if (r != VK_SUCCESS) return fail(Error::vulkan(r, "vkCreateCommandPool (raw baseline)"));
  rc.pool_ = OwnedCommandPool(rc.device_, pool);
  VkCommandBufferAllocateInfo ai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
  ai.commandPool = pool;
  ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  ai.commandBufferCount = 1;
  r = vkAllocateCommandBuffers(rc.device_, &ai, &rc.cmd_);
  if (r != VK_SUCCESS) return fail(Error::vulkan(r, "vkAllocateCommandBuffers (raw baseline)"));
  VkFenceCreateInfo fci{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  VkFence fence = VK_NULL_HANDLE;
  r = vkCreateFence(rc.device_, &fci, nullptr, &fence);
  if (r != VK_SUCCESS) return fail(Error::vulkan(r, "vkCreateFence (raw baseline)"));
  rc.fence_ = OwnedFence(rc.device_, fence);
  return rc;
}

Result<VkCommandBuffer> RawCommands::begin() {
  if (pending_) return fail(Errc::invalid_argument, "raw command buffer re-recorded while in flight");
  VkResult r = vkResetCommandPool(device_, pool_.get(), 0);
  if (r != VK_SUCCESS) return fail(Error::vulkan(r, "vkResetCommandPool (raw baseline)"));
  VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  r = vkBeginCommandBuffer(cmd_, &bi);
  if (r != VK_SUCCESS) return fail(Error::vulkan(r, "vkBeginCommandBuffer (raw baseline)"));
  return cmd_;
}

Result<void> RawCommands::end() {
  const VkResult r = vkEndCommandBuffer(cmd_);
  if (r != VK_SUCCESS) return fail(Error::vulkan(r, "vkEndCommandBuffer (raw baseline)"));
  return {};
}

Result<void> RawCommands::submit() {
  if (pending_) return fail(Errc::invalid_argument, "raw command buffer submitted while in flight");
  VkFence fence = fence_.get();
  VkResult r = vkResetFences(device_, 1, &fence);
  if (r != VK_SUCCESS) return fail(Error::vulkan(r, "vkResetFences (raw baseline)"));
  VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  si.commandBufferCount = 1;
  si.pCommandBuffers = &cmd_;
  r = vkQueueSubmit(queue_, 1, &si, fence);
  if (r != VK_SUCCESS) return fail(Error::vulkan(r, "vkQueueSubmit (raw baseline)"));
  pending_ = true;
  return {};
}

Result<void> RawCommands::wait_blocking(std::chrono::nanoseconds timeout) {
  if (!pending_) return {};
  VkFence fence = fence_.get();
  const VkResult r = vkWaitForFences(device_, 1, &fence, VK_TRUE, static_cast<uint64_t>(timeout.count()));
  if (r == VK_TIMEOUT) return fail(Errc::timeout, "raw baseline: fence not signalled in time");
  if (r != VK_SUCCESS) return fail(Error::vulkan(r, "vkWaitForFences (raw baseline)"));
  pending_ = false;
  return {};
}

Result<void> RawCommands::wait_spin(std::chrono::nanoseconds timeout) {
  if (!pending_) return {};
  const VkFence fence = fence_.get();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (uint32_t polls = 1;; ++polls) {
    const VkResult r = vkGetFenceStatus(device_, fence);
    if (r == VK_SUCCESS) break;
    if (r != VK_NOT_READY) return fail(Error::vulkan(r, "vkGetFenceStatus (raw baseline)"));
    if (polls % 1024 == 0 && std::chrono::steady_clock::now() >= deadline) {
      return fail(Errc::timeout, "raw baseline: fence not signalled in time");
    }
  }
  pending_ = false;
  return {};
}

}  // namespace vkn::detail
