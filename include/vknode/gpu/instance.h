// Instance: the VkInstance (and, with validation, the debug messenger that counts
// validation errors). Shared by the devices made from it, so that a node rebuilding its
// device after a loss reuses one instance: some drivers refuse new instances after a
// few dozen in one process. Thread-safe queries; destroyed when the last owner goes.
#pragma once

#include <vulkan/vulkan.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "vknode/error.h"

namespace vkn {

class Instance {
 public:
  // Errors: unsupported (no driver, or validation asked for but not installed).
  [[nodiscard]] static Result<std::shared_ptr<Instance>> create(bool validation);
  ~Instance();
  Instance(const Instance&) = delete;
  Instance& operator=(const Instance&) = delete;

  VkInstance handle() const { return instance_; }
  bool validation_enabled() const { return messenger_ != VK_NULL_HANDLE; }
  // Validation-layer errors reported since creation, and the last message.
  uint64_t validation_error_count() const { return validation_errors_.load(); }
  std::string last_validation_message() const;

 private:
  Instance() = default;
  Result<void> create_messenger();
  static VKAPI_ATTR VkBool32 VKAPI_CALL on_validation_message(
      VkDebugUtilsMessageSeverityFlagBitsEXT severity, VkDebugUtilsMessageTypeFlagsEXT types,
      const VkDebugUtilsMessengerCallbackDataEXT* data, void* user);

  VkInstance instance_ = VK_NULL_HANDLE;
  VkDebugUtilsMessengerEXT messenger_ = VK_NULL_HANDLE;
  std::atomic<uint64_t> validation_errors_{0};
  mutable std::mutex message_mu_;
  std::string last_message_;  // guarded by message_mu_
};

}  // namespace vkn
