// Device: the Vulkan instance, one physical device, its logical device and one
// compute queue. Owns every instance- and device-level handle it creates; objects
// made from it (buffers, kernels, streams) must be destroyed before it.
// Thread-safety: the const queries are thread-safe; the queue is used by one
// Stream at a time (a node serializes all GPU work on its thread).
#pragma once

#include <vulkan/vulkan.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "vknode/error.h"
#include "vknode/gpu/instance.h"
#include "vknode/gpu/vk_handle.h"

namespace vkn {

class MemoryAllocator;

struct MemoryHeapInfo {
  uint64_t size = 0;
  bool device_local = false;
  bool host_visible = false;  // some memory type of this heap can be mapped
};

struct DeviceInfo {
  uint32_t index = 0;  // position in the loader's enumeration
  std::string name;
  VkPhysicalDeviceType type = VK_PHYSICAL_DEVICE_TYPE_OTHER;
  std::string driver_name;
  std::string driver_info;
  uint32_t api_version = 0;
  uint32_t driver_version = 0;
  uint32_t vendor_id = 0;
  uint32_t device_id = 0;
  std::array<uint8_t, 16> device_uuid{};
  std::array<uint8_t, 16> pipeline_cache_uuid{};
  std::array<uint32_t, 3> max_workgroup_count{};
  std::array<uint32_t, 3> max_workgroup_size{};
  uint32_t max_workgroup_invocations = 0;
  uint32_t max_push_constants_size = 0;
  uint64_t max_storage_buffer_range = 0;
  uint64_t min_storage_buffer_offset_alignment = 0;
  uint32_t subgroup_size = 0;
  float timestamp_period_ns = 0;
  std::vector<MemoryHeapInfo> heaps;
  uint64_t device_local_host_visible_bytes = 0;  // ReBAR / unified memory, 0 if none
  bool has_float64 = false;
  bool has_int64 = false;
  bool has_push_descriptor = false;
  bool has_robustness2 = false;
  bool has_creation_feedback = false;
  bool has_module_identifier = false;  // VK_EXT_shader_module_identifier (with cache control)
  // "dddd:bb:dd.f" where the driver reports it (VK_EXT_pci_bus_info), else empty.
  std::string pci_address;
};

// "discrete", "integrated", "virtual", "cpu" or "other".
const char* to_string(VkPhysicalDeviceType type);
// "1.3.230"
std::string version_string(uint32_t vk_version);
std::string uuid_string(const std::array<uint8_t, 16>& uuid);
// A few readable lines: name, type, driver, API, UUIDs, key limits and heaps.
std::string describe(const DeviceInfo& info);

struct DeviceOptions {
  // Empty: $VKNODE_DEVICE, else the best device (discrete, integrated, virtual, cpu).
  // Otherwise an index, a device UUID, or a case-insensitive substring of the name.
  std::string selector;
  // Khronos validation layer with a messenger that counts errors. Default: on when
  // $VKNODE_VALIDATION is 1 (the tests set it).
  bool enable_validation = false;
  bool validation_from_env = true;
  // Create the device on this instance (validation settings above are then ignored).
  // Null: the device makes an instance of its own.
  std::shared_ptr<Instance> instance;
};

// Test-only fault injection (the seam the tests use for faults lavapipe cannot produce).
// Each counter, when positive, makes that many next operations fail, then disarms.
struct FaultInjection {
  std::atomic<int> fail_allocations{0};  // vkAllocateMemory -> VK_ERROR_OUT_OF_DEVICE_MEMORY
  std::atomic<int> lose_device_on_submit{0};  // vkQueueSubmit -> VK_ERROR_DEVICE_LOST
  std::atomic<int> hang_waits{0};  // GPU waits behave as if the GPU never finishes
};

// Every device the loader sees, in enumeration order.
[[nodiscard]] Result<std::vector<DeviceInfo>> list_devices();

class Device {
 public:
  // Creates the instance and device. Errors: not_found (no Vulkan device, or
  // none matches the selector; the message lists the devices), unsupported (no
  // compute queue, VK_KHR_push_descriptor missing, validation layer missing when asked).
  [[nodiscard]] static Result<std::unique_ptr<Device>> create(const DeviceOptions& options = {});
  ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  const DeviceInfo& info() const { return info_; }
  VkInstance instance() const { return instance_->handle(); }
  const std::shared_ptr<Instance>& shared_instance() const { return instance_; }
  VkPhysicalDevice physical_device() const { return physical_; }
  VkDevice handle() const { return device_; }
  VkQueue queue() const { return queue_; }
  uint32_t queue_family() const { return queue_family_; }
  bool validation_enabled() const { return instance_->validation_enabled(); }
  MemoryAllocator& allocator() { return *allocator_; }
  PFN_vkCmdPushDescriptorSetKHR push_descriptor_fn() const { return push_descriptor_; }
  // Set when VK_EXT_shader_module_identifier is enabled, else nullptr.
  PFN_vkGetShaderModuleCreateInfoIdentifierEXT module_identifier_fn() const { return module_identifier_; }

  // One pipeline layout every ordinary kernel shares: storage buffers at bindings
  // 0..kSharedLayoutBindings-1 (push descriptors) and the device's whole push-constant
  // range. A pipeline may declare more than its shader uses, and on some drivers each
  // new layout costs 50 us to milliseconds, so kernels skip that. VK_NULL_HANDLE if its
  // creation failed (kernels then make their own).
  static constexpr uint32_t kSharedLayoutBindings = 16;
  VkPipelineLayout shared_pipeline_layout() const { return shared_pipeline_layout_.get(); }

  // Validation-layer errors reported since creation, and the last message.
  uint64_t validation_error_count() const { return instance_->validation_error_count(); }
  std::string last_validation_message() const { return instance_->last_validation_message(); }

  // Once lost, every later GPU call on this device fails with device_lost.
  bool is_lost() const { return lost_.load(); }
  void mark_lost() { lost_.store(true); }

  // Test-only seam; the gpu layer consults it on allocation, submit and wait.
  FaultInjection& TEST_faults() { return faults_; }

  // Memory type index with all `required` flags (and as many `preferred` as possible).
  [[nodiscard]] Result<uint32_t> find_memory_type(uint32_t type_bits, VkMemoryPropertyFlags required,
                                                  VkMemoryPropertyFlags preferred) const;
  const VkPhysicalDeviceMemoryProperties& memory_properties() const { return memory_props_; }

 private:
  Device() = default;
  Result<void> create_logical_device();
  void create_shared_layout();

  // Fixed after construction.
  std::shared_ptr<Instance> instance_;
  VkPhysicalDevice physical_ = VK_NULL_HANDLE;
  VkDevice device_ = VK_NULL_HANDLE;
  VkQueue queue_ = VK_NULL_HANDLE;
  uint32_t queue_family_ = 0;
  DeviceInfo info_;
  VkPhysicalDeviceMemoryProperties memory_props_{};
  PFN_vkCmdPushDescriptorSetKHR push_descriptor_ = nullptr;
  PFN_vkGetShaderModuleCreateInfoIdentifierEXT module_identifier_ = nullptr;
  std::unique_ptr<MemoryAllocator> allocator_;
  OwnedDescriptorSetLayout shared_set_layout_;
  OwnedPipelineLayout shared_pipeline_layout_;

  std::atomic<bool> lost_{false};
  FaultInjection faults_;
};

}  // namespace vkn
