// OwnedHandle: the one RAII owner of a device-level Vulkan handle. Move-only;
// destroys the handle with its vkDestroy*/vkFree* function when it goes out of scope.
#pragma once

#include <vulkan/vulkan.h>

#include <utility>

namespace vkn {

template <typename H, void (*Destroy)(VkDevice, H, const VkAllocationCallbacks*)>
class OwnedHandle {
 public:
  OwnedHandle() = default;
  OwnedHandle(VkDevice device, H handle) : device_(device), handle_(handle) {}
  OwnedHandle(const OwnedHandle&) = delete;
  OwnedHandle& operator=(const OwnedHandle&) = delete;
  OwnedHandle(OwnedHandle&& other) noexcept
      : device_(other.device_), handle_(std::exchange(other.handle_, VK_NULL_HANDLE)) {}
  OwnedHandle& operator=(OwnedHandle&& other) noexcept {
    if (this != &other) {
      reset();
      device_ = other.device_;
      handle_ = std::exchange(other.handle_, VK_NULL_HANDLE);
    }
    return *this;
  }
  ~OwnedHandle() { reset(); }

  H get() const { return handle_; }
  explicit operator bool() const { return handle_ != VK_NULL_HANDLE; }
  void reset() {
    if (handle_ != VK_NULL_HANDLE) Destroy(device_, std::exchange(handle_, VK_NULL_HANDLE), nullptr);
  }

 private:
  VkDevice device_ = VK_NULL_HANDLE;
  H handle_ = VK_NULL_HANDLE;
};

using OwnedBuffer = OwnedHandle<VkBuffer, vkDestroyBuffer>;
using OwnedMemory = OwnedHandle<VkDeviceMemory, vkFreeMemory>;
using OwnedFence = OwnedHandle<VkFence, vkDestroyFence>;
using OwnedSemaphore = OwnedHandle<VkSemaphore, vkDestroySemaphore>;
using OwnedCommandPool = OwnedHandle<VkCommandPool, vkDestroyCommandPool>;
using OwnedShaderModule = OwnedHandle<VkShaderModule, vkDestroyShaderModule>;
using OwnedPipeline = OwnedHandle<VkPipeline, vkDestroyPipeline>;
using OwnedPipelineLayout = OwnedHandle<VkPipelineLayout, vkDestroyPipelineLayout>;
using OwnedDescriptorSetLayout = OwnedHandle<VkDescriptorSetLayout, vkDestroyDescriptorSetLayout>;
using OwnedPipelineCache = OwnedHandle<VkPipelineCache, vkDestroyPipelineCache>;
using OwnedQueryPool = OwnedHandle<VkQueryPool, vkDestroyQueryPool>;

}  // namespace vkn
