// The in-process NodeTarget (the node.h free functions on a named node) and local_device(),
// which reads a device's facts without creating it; see node_target.h.
#include "vknode/sampler/node_target.h"

#include <vulkan/vulkan.h>

#include <array>
#include <cstring>
#include <utility>
#include <vector>

#include "util/strformat.h"
#include "vknode/gpu/device.h"
#include "vknode/gpu/instance.h"

namespace vkn::sampler {
namespace {

// The facts the backend needs, from the physical device (the node's, or one found by UUID).
TargetDevice facts_of(VkPhysicalDevice pd) {
  VkPhysicalDeviceSubgroupProperties sg{};
  sg.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES;
  VkPhysicalDeviceProperties2 props{};
  props.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2;
  props.pNext = &sg;
  vkGetPhysicalDeviceProperties2(pd, &props);
  VkPhysicalDeviceFeatures features{};
  vkGetPhysicalDeviceFeatures(pd, &features);
  const VkPhysicalDeviceLimits& limits = props.properties.limits;
  const bool arithmetic = (sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) != 0 &&
                          (sg.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT) != 0;
  TargetDevice t;
  t.name = props.properties.deviceName;
  t.cpu = props.properties.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU;
  t.float64 = features.shaderFloat64 == VK_TRUE;
  t.max_storage_buffer_range = limits.maxStorageBufferRange;
  t.arithmetic_subgroup = arithmetic ? sg.subgroupSize : 0u;
  t.shared_memory_bytes = limits.maxComputeSharedMemorySize;
  t.max_workgroup_invocations = limits.maxComputeWorkGroupInvocations;
  return t;
}

std::array<uint8_t, 16> uuid_of(VkPhysicalDevice pd) {
  VkPhysicalDeviceIDProperties ids{};
  ids.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ID_PROPERTIES;
  VkPhysicalDeviceProperties2 props{};
  props.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2;
  props.pNext = &ids;
  vkGetPhysicalDeviceProperties2(pd, &props);
  std::array<uint8_t, 16> uuid{};
  std::memcpy(uuid.data(), ids.deviceUUID, 16);
  return uuid;
}

class InProcessNodeTarget final : public NodeTarget {
 public:
  explicit InProcessNodeTarget(CallOptions call) : call_(std::move(call)) {}

  std::string describe() const override { return vkn::format("node {}", call_.node); }

  Result<TargetDevice> device() override {
    auto facts = with_node([](Context& c) { return facts_of(c.device().physical_device()); }, call_);
    if (!facts) return fail(facts.error());
    // Compiled shaders are cached beside the node's pipeline cache.
    if (auto st = status(call_.node); st && !st->cache_path.empty()) {
      facts->shader_cache_dir = std::filesystem::path(st->cache_path).parent_path();
    }
    return facts;
  }
  Result<KernelId> register_kernel(std::span<const uint32_t> spirv,
                                   std::string_view kernel_name) override {
    return vkn::register_kernel(spirv, {}, kernel_name, call_);
  }
  Result<void> create_buffer(std::string_view name, const BufferSpec& spec) override {
    return vkn::create_buffer(name, spec, call_);
  }
  Result<void> delete_buffer(std::string_view name) override {
    return vkn::delete_buffer(name, call_);
  }
  Result<void> write_buffer(std::string_view name, uint64_t offset,
                            std::span<const std::byte> data) override {
    return vkn::write_buffer(name, offset, data, call_);
  }
  Result<ProgramResult> exec(Program&& program) override {
    return vkn::exec(std::move(program), call_);
  }

 private:
  const CallOptions call_;  // fixed after construction
};

}  // namespace

std::shared_ptr<NodeTarget> make_in_process_target(CallOptions call) {
  return std::make_shared<InProcessNodeTarget>(std::move(call));
}

Result<TargetDevice> local_device(std::string_view device_uuid) {
  auto instance = Instance::create(false);
  if (!instance) return fail(instance.error());
  const VkInstance vk = (*instance)->handle();
  uint32_t n = 0;
  if (VkResult r = vkEnumeratePhysicalDevices(vk, &n, nullptr); r != VK_SUCCESS) {
    return fail(Error::vulkan(r, "vkEnumeratePhysicalDevices"));
  }
  std::vector<VkPhysicalDevice> pds(n);
  if (VkResult r = vkEnumeratePhysicalDevices(vk, &n, pds.data());
      r != VK_SUCCESS && r != VK_INCOMPLETE) {
    return fail(Error::vulkan(r, "vkEnumeratePhysicalDevices"));
  }
  pds.resize(n);
  for (VkPhysicalDevice pd : pds) {
    if (uuid_string(uuid_of(pd)) == device_uuid) return facts_of(pd);
  }
  return fail(Errc::not_found, "no Vulkan device here has the UUID", device_uuid);
}

}  // namespace vkn::sampler
