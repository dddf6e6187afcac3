#include "vknode/gpu/device.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include "util/strformat.h"

#include "gpu/memory_allocator.h"
#include "util/log.h"

namespace vkn {
namespace {

int type_rank(VkPhysicalDeviceType t) {
  switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 0;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 1;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 3;
    default: return 4;
  }
}

bool has_extension(const std::vector<VkExtensionProperties>& exts, const char* name) {
  return std::any_of(exts.begin(), exts.end(),
                     [&](const VkExtensionProperties& e) { return std::strcmp(e.extensionName, name) == 0; });
}

std::vector<VkExtensionProperties> device_extensions(VkPhysicalDevice pd) {
  uint32_t n = 0;
  vkEnumerateDeviceExtensionProperties(pd, nullptr, &n, nullptr);
  std::vector<VkExtensionProperties> exts(n);
  vkEnumerateDeviceExtensionProperties(pd, nullptr, &n, exts.data());
  return exts;
}

DeviceInfo read_info(VkPhysicalDevice pd, uint32_t index) {
  VkPhysicalDeviceDriverProperties driver{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
  VkPhysicalDeviceSubgroupProperties subgroup{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES, &driver};
  VkPhysicalDeviceProperties2 props2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, &subgroup};
  vkGetPhysicalDeviceProperties2(pd, &props2);
  VkPhysicalDeviceIDProperties ids{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ID_PROPERTIES};
  VkPhysicalDeviceProperties2 id_props{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, &ids};
  vkGetPhysicalDeviceProperties2(pd, &id_props);
  VkPhysicalDeviceFeatures features{};
  vkGetPhysicalDeviceFeatures(pd, &features);
  const VkPhysicalDeviceProperties& p = props2.properties;

  DeviceInfo info;
  info.index = index;
  info.name = p.deviceName;
  info.type = p.deviceType;
  info.driver_name = driver.driverName;
  info.driver_info = driver.driverInfo;
  info.api_version = p.apiVersion;
  info.driver_version = p.driverVersion;
  info.vendor_id = p.vendorID;
  info.device_id = p.deviceID;
  std::memcpy(info.device_uuid.data(), ids.deviceUUID, 16);
  std::memcpy(info.pipeline_cache_uuid.data(), p.pipelineCacheUUID, 16);
  for (int i = 0; i < 3; ++i) {
    info.max_workgroup_count[i] = p.limits.maxComputeWorkGroupCount[i];
    info.max_workgroup_size[i] = p.limits.maxComputeWorkGroupSize[i];
  }
  info.max_workgroup_invocations = p.limits.maxComputeWorkGroupInvocations;
  info.max_push_constants_size = p.limits.maxPushConstantsSize;
  info.max_storage_buffer_range = p.limits.maxStorageBufferRange;
  info.min_storage_buffer_offset_alignment = p.limits.minStorageBufferOffsetAlignment;
  info.subgroup_size = subgroup.subgroupSize;
  info.timestamp_period_ns = p.limits.timestampPeriod;
  info.has_float64 = features.shaderFloat64;
  info.has_int64 = features.shaderInt64;

  VkPhysicalDeviceMemoryProperties mem{};
  vkGetPhysicalDeviceMemoryProperties(pd, &mem);
  info.heaps.resize(mem.memoryHeapCount);
  for (uint32_t h = 0; h < mem.memoryHeapCount; ++h) {
    info.heaps[h].size = mem.memoryHeaps[h].size;
    info.heaps[h].device_local = mem.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT;
  }
  for (uint32_t t = 0; t < mem.memoryTypeCount; ++t) {
    const auto flags = mem.memoryTypes[t].propertyFlags;
    const uint32_t h = mem.memoryTypes[t].heapIndex;
    if (flags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) info.heaps[h].host_visible = true;
    if ((flags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) && (flags & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT)) {
      info.device_local_host_visible_bytes =
          std::max(info.device_local_host_visible_bytes, mem.memoryHeaps[h].size);
    }
  }
  const auto exts = device_extensions(pd);
  info.has_push_descriptor = has_extension(exts, VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME);
  info.has_robustness2 = has_extension(exts, VK_EXT_ROBUSTNESS_2_EXTENSION_NAME);
  info.has_module_identifier =
      p.apiVersion >= VK_API_VERSION_1_3 && has_extension(exts, VK_EXT_SHADER_MODULE_IDENTIFIER_EXTENSION_NAME);
  info.has_creation_feedback = p.apiVersion >= VK_API_VERSION_1_3 ||
                               has_extension(exts, VK_EXT_PIPELINE_CREATION_FEEDBACK_EXTENSION_NAME);
  if (has_extension(exts, VK_EXT_PCI_BUS_INFO_EXTENSION_NAME)) {
    VkPhysicalDevicePCIBusInfoPropertiesEXT pci{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PCI_BUS_INFO_PROPERTIES_EXT};
    VkPhysicalDeviceProperties2 pci_props{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, &pci};
    vkGetPhysicalDeviceProperties2(pd, &pci_props);
    info.pci_address = vkn::format("{:04x}:{:02x}:{:02x}.{:x}", pci.pciDomain, pci.pciBus, pci.pciDevice,
                                   pci.pciFunction);
  }
  return info;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string hex_only(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::isxdigit(static_cast<unsigned char>(c))) out += static_cast<char>(std::tolower(c));
  }
  return out;
}

std::string uuid_hex(const std::array<uint8_t, 16>& u) {
  std::string s;
  for (uint8_t b : u) s += vkn::format("{:02x}", b);
  return s;
}

// Picks the index into `infos` that `selector` names, or the best device when it is empty.
Result<size_t> select_device(const std::vector<DeviceInfo>& infos, const std::string& selector) {
  if (selector.empty()) {
    size_t best = 0;
    for (size_t i = 1; i < infos.size(); ++i) {
      if (type_rank(infos[i].type) < type_rank(infos[best].type)) best = i;
    }
    return best;
  }
  if (std::all_of(selector.begin(), selector.end(), ::isdigit) && selector.size() < 4) {
    const size_t index = std::stoul(selector);
    if (index < infos.size()) return index;
  }
  const std::string hex = hex_only(selector);
  for (size_t i = 0; i < infos.size(); ++i) {
    if (hex.size() == 32 && hex == uuid_hex(infos[i].device_uuid)) return i;
  }
  for (size_t i = 0; i < infos.size(); ++i) {
    if (lower(infos[i].name).find(lower(selector)) != std::string::npos) return i;
  }
  std::string known;
  for (const auto& d : infos) known += vkn::format(" [{}] {} ({})", d.index, d.name, uuid_string(d.device_uuid));
  return fail(Errc::not_found, vkn::format("no Vulkan device matches '{}'; devices:{}", selector, known));
}

Result<std::vector<VkPhysicalDevice>> physical_devices(VkInstance instance) {
  uint32_t n = 0;
  VkResult r = vkEnumeratePhysicalDevices(instance, &n, nullptr);
  if (r != VK_SUCCESS) return fail(Error::vulkan(r, "vkEnumeratePhysicalDevices"));
  std::vector<VkPhysicalDevice> pds(n);
  r = vkEnumeratePhysicalDevices(instance, &n, pds.data());
  if (r != VK_SUCCESS && r != VK_INCOMPLETE) return fail(Error::vulkan(r, "vkEnumeratePhysicalDevices"));
  pds.resize(n);
  if (pds.empty()) return fail(Errc::not_found, "no Vulkan device found (install mesa-vulkan-drivers for lavapipe)");
  return pds;
}

// A compute-capable queue family, preferring one without graphics (a dedicated compute engine).
Result<uint32_t> compute_queue_family(VkPhysicalDevice pd) {
  uint32_t n = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, nullptr);
  std::vector<VkQueueFamilyProperties> families(n);
  vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, families.data());
  int best = -1;
  for (uint32_t i = 0; i < n; ++i) {
    if (!(families[i].queueFlags & VK_QUEUE_COMPUTE_BIT)) continue;
    const bool dedicated = !(families[i].queueFlags & VK_QUEUE_GRAPHICS_BIT);
    if (best < 0 || dedicated) best = static_cast<int>(i);
    if (dedicated) break;
  }
  if (best < 0) return fail(Errc::unsupported, "the device has no compute queue");
  return static_cast<uint32_t>(best);
}

bool validation_wanted(const DeviceOptions& o) {
  if (o.enable_validation) return true;
  if (!o.validation_from_env) return false;
  const char* v = std::getenv("VKNODE_VALIDATION");
  return v != nullptr && std::strcmp(v, "1") == 0;
}

}  // namespace

const char* to_string(VkPhysicalDeviceType type) {
  switch (type) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "cpu";
    default: return "other";
  }
}

std::string version_string(uint32_t v) {
  return vkn::format("{}.{}.{}", VK_API_VERSION_MAJOR(v), VK_API_VERSION_MINOR(v), VK_API_VERSION_PATCH(v));
}

std::string uuid_string(const std::array<uint8_t, 16>& u) {
  const std::string h = uuid_hex(u);
  return vkn::format("{}-{}-{}-{}-{}", h.substr(0, 8), h.substr(8, 4), h.substr(12, 4), h.substr(16, 4), h.substr(20));
}

std::string describe(const DeviceInfo& d) {
  std::string s = vkn::format("[{}] {} ({})\n", d.index, d.name, to_string(d.type));
  s += vkn::format("    driver: {} {} (version 0x{:x}), Vulkan {}\n", d.driver_name, d.driver_info,
                   d.driver_version, version_string(d.api_version));
  s += vkn::format("    vendor 0x{:04x} device 0x{:04x}, uuid {}\n", d.vendor_id, d.device_id,
                   uuid_string(d.device_uuid));
  s += vkn::format("    pipelineCacheUUID {}\n", uuid_string(d.pipeline_cache_uuid));
  s += vkn::format("    workgroup: max size {}x{}x{}, max invocations {}, max count {}x{}x{}, subgroup {}\n",
                   d.max_workgroup_size[0], d.max_workgroup_size[1], d.max_workgroup_size[2],
                   d.max_workgroup_invocations, d.max_workgroup_count[0], d.max_workgroup_count[1],
                   d.max_workgroup_count[2], d.subgroup_size);
  s += vkn::format("    push constants {} B, storage buffer range {} B, float64 {}, push_descriptor {}, robustness2 {}, "
                   "module identifier {}\n",
                   d.max_push_constants_size, d.max_storage_buffer_range, d.has_float64 ? "yes" : "no",
                   d.has_push_descriptor ? "yes" : "no", d.has_robustness2 ? "yes" : "no",
                   d.has_module_identifier ? "yes" : "no");
  for (size_t h = 0; h < d.heaps.size(); ++h) {
    s += vkn::format("    heap {}: {:.1f} GiB{}{}\n", h, d.heaps[h].size / double(1ull << 30),
                     d.heaps[h].device_local ? " device-local" : "", d.heaps[h].host_visible ? " host-visible" : "");
  }
  return s;
}

Result<std::vector<DeviceInfo>> list_devices() {
  auto instance = Instance::create(false);
  if (!instance) return fail(instance.error());
  auto pds = physical_devices((*instance)->handle());
  if (!pds) return fail(pds.error());
  std::vector<DeviceInfo> infos;
  for (uint32_t i = 0; i < pds->size(); ++i) infos.push_back(read_info((*pds)[i], i));
  return infos;
}

Result<std::unique_ptr<Device>> Device::create(const DeviceOptions& options) {
  std::unique_ptr<Device> d(new Device());
  d->instance_ = options.instance;
  if (d->instance_ == nullptr) {
    auto instance = Instance::create(validation_wanted(options));
    if (!instance) return fail(instance.error());
    d->instance_ = std::move(*instance);
  }
  auto pds = physical_devices(d->instance_->handle());
  if (!pds) return fail(pds.error());
  std::vector<DeviceInfo> infos;
  for (uint32_t i = 0; i < pds->size(); ++i) infos.push_back(read_info((*pds)[i], i));
  std::string selector = options.selector;
  if (selector.empty()) {
    if (const char* env = std::getenv("VKNODE_DEVICE")) selector = env;
  }
  auto chosen = select_device(infos, selector);
  if (!chosen) return fail(chosen.error());
  d->physical_ = (*pds)[*chosen];
  d->info_ = infos[*chosen];
  vkGetPhysicalDeviceMemoryProperties(d->physical_, &d->memory_props_);
  if (auto r = d->create_logical_device(); !r) return fail(r.error());
  d->create_shared_layout();
  d->allocator_ = std::make_unique<MemoryAllocator>(*d);
  log(LogLevel::info, "device: {} ({}), Vulkan {}", d->info_.name, to_string(d->info_.type),
      version_string(d->info_.api_version));
  return d;
}

Result<void> Device::create_logical_device() {
  if (!info_.has_push_descriptor) {
    return fail(Errc::unsupported, "the device lacks VK_KHR_push_descriptor", info_.name);
  }
  if (info_.api_version < VK_API_VERSION_1_2) {
    return fail(Errc::unsupported, "vknode needs Vulkan 1.2 or newer", info_.name);
  }
  auto family = compute_queue_family(physical_);
  if (!family) return fail(family.error());
  queue_family_ = *family;
  const float priority = 1.0f;
  VkDeviceQueueCreateInfo qci{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
  qci.queueFamilyIndex = queue_family_;
  qci.queueCount = 1;
  qci.pQueuePriorities = &priority;

  // robustBufferAccess keeps an out-of-range shader access inside the bound buffer.
  VkPhysicalDeviceRobustness2FeaturesEXT robust2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ROBUSTNESS_2_FEATURES_EXT};
  VkPhysicalDeviceShaderModuleIdentifierFeaturesEXT ident{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_MODULE_IDENTIFIER_FEATURES_EXT};
  VkPhysicalDeviceVulkan13Features v13{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES};
  VkPhysicalDeviceTimelineSemaphoreFeatures timeline{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_TIMELINE_SEMAPHORE_FEATURES};
  VkPhysicalDeviceFeatures2 supported{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
  supported.pNext = &timeline;
  if (info_.has_robustness2) {
    robust2.pNext = supported.pNext;
    supported.pNext = &robust2;
  }
  if (info_.has_module_identifier) {
    ident.pNext = &v13;
    v13.pNext = supported.pNext;
    supported.pNext = &ident;
  }
  vkGetPhysicalDeviceFeatures2(physical_, &supported);
  // Streams wait on a timeline semaphore (a Vulkan 1.2 feature every 1.2 device has).
  if (!timeline.timelineSemaphore) return fail(Errc::unsupported, "the device lacks timeline semaphores", info_.name);
  info_.has_module_identifier = info_.has_module_identifier && ident.shaderModuleIdentifier &&
                                v13.pipelineCreationCacheControl;
  VkPhysicalDeviceRobustness2FeaturesEXT robust2_on{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ROBUSTNESS_2_FEATURES_EXT};
  robust2_on.robustBufferAccess2 = robust2.robustBufferAccess2;
  VkPhysicalDeviceTimelineSemaphoreFeatures timeline_on{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_TIMELINE_SEMAPHORE_FEATURES};
  timeline_on.timelineSemaphore = VK_TRUE;
  VkPhysicalDeviceFeatures2 enabled{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
  enabled.pNext = &timeline_on;
  enabled.features.robustBufferAccess = supported.features.robustBufferAccess;
  enabled.features.shaderFloat64 = supported.features.shaderFloat64;
  enabled.features.shaderInt64 = supported.features.shaderInt64;
  std::vector<const char*> exts{VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME};
  if (info_.has_robustness2 && robust2.robustBufferAccess2 && supported.features.robustBufferAccess) {
    exts.push_back(VK_EXT_ROBUSTNESS_2_EXTENSION_NAME);
    robust2_on.pNext = enabled.pNext;
    enabled.pNext = &robust2_on;
  } else {
    info_.has_robustness2 = false;
  }
  if (info_.api_version < VK_API_VERSION_1_3 && info_.has_creation_feedback) {
    exts.push_back(VK_EXT_PIPELINE_CREATION_FEEDBACK_EXTENSION_NAME);
  }
  VkPhysicalDeviceShaderModuleIdentifierFeaturesEXT ident_on{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_MODULE_IDENTIFIER_FEATURES_EXT};
  VkPhysicalDeviceVulkan13Features v13_on{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES};
  if (info_.has_module_identifier) {
    exts.push_back(VK_EXT_SHADER_MODULE_IDENTIFIER_EXTENSION_NAME);
    ident_on.shaderModuleIdentifier = VK_TRUE;
    v13_on.pipelineCreationCacheControl = VK_TRUE;
    ident_on.pNext = &v13_on;
    v13_on.pNext = enabled.pNext;
    enabled.pNext = &ident_on;
  }
  VkDeviceCreateInfo ci{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
  ci.pNext = &enabled;
  ci.queueCreateInfoCount = 1;
  ci.pQueueCreateInfos = &qci;
  ci.enabledExtensionCount = static_cast<uint32_t>(exts.size());
  ci.ppEnabledExtensionNames = exts.data();
  const VkResult r = vkCreateDevice(physical_, &ci, nullptr, &device_);
  if (r != VK_SUCCESS) return fail(Error::vulkan(r, "vkCreateDevice"));
  vkGetDeviceQueue(device_, queue_family_, 0, &queue_);
  push_descriptor_ = reinterpret_cast<PFN_vkCmdPushDescriptorSetKHR>(
      vkGetDeviceProcAddr(device_, "vkCmdPushDescriptorSetKHR"));
  if (push_descriptor_ == nullptr) return fail(Errc::unsupported, "vkCmdPushDescriptorSetKHR not found");
  if (info_.has_module_identifier) {
    module_identifier_ = reinterpret_cast<PFN_vkGetShaderModuleCreateInfoIdentifierEXT>(
        vkGetDeviceProcAddr(device_, "vkGetShaderModuleCreateInfoIdentifierEXT"));
  }
  return {};
}

// Also pays, at device creation, the lazy initialisation some drivers do on the first
// layout object of a process (about 4-6 ms on NVIDIA's), rather than in a first job.
void Device::create_shared_layout() {
  std::array<VkDescriptorSetLayoutBinding, kSharedLayoutBindings> bindings;
  for (uint32_t i = 0; i < kSharedLayoutBindings; ++i) {
    bindings[i] = {i, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, VK_SHADER_STAGE_COMPUTE_BIT, nullptr};
  }
  VkDescriptorSetLayoutCreateInfo dslci{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
  dslci.flags = VK_DESCRIPTOR_SET_LAYOUT_CREATE_PUSH_DESCRIPTOR_BIT_KHR;
  dslci.bindingCount = kSharedLayoutBindings;
  dslci.pBindings = bindings.data();
  VkDescriptorSetLayout set_layout = VK_NULL_HANDLE;
  if (vkCreateDescriptorSetLayout(device_, &dslci, nullptr, &set_layout) != VK_SUCCESS) return;
  shared_set_layout_ = OwnedDescriptorSetLayout(device_, set_layout);
  VkPushConstantRange push{VK_SHADER_STAGE_COMPUTE_BIT, 0, info_.max_push_constants_size};
  VkPipelineLayoutCreateInfo plci{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
  plci.setLayoutCount = 1;
  plci.pSetLayouts = &set_layout;
  plci.pushConstantRangeCount = 1;
  plci.pPushConstantRanges = &push;
  VkPipelineLayout layout = VK_NULL_HANDLE;
  if (vkCreatePipelineLayout(device_, &plci, nullptr, &layout) != VK_SUCCESS) return;
  shared_pipeline_layout_ = OwnedPipelineLayout(device_, layout);
}

Device::~Device() {
  if (device_ != VK_NULL_HANDLE) vkDeviceWaitIdle(device_);
  allocator_.reset();
  shared_pipeline_layout_.reset();
  shared_set_layout_.reset();
  if (device_ != VK_NULL_HANDLE) vkDestroyDevice(device_, nullptr);
  // The instance goes with the last device that shares it.
}

Result<uint32_t> Device::find_memory_type(uint32_t type_bits, VkMemoryPropertyFlags required,
                                          VkMemoryPropertyFlags preferred) const {
  int best = -1;
  int best_score = -1;
  for (uint32_t t = 0; t < memory_props_.memoryTypeCount; ++t) {
    if (!(type_bits & (1u << t))) continue;
    const VkMemoryPropertyFlags f = memory_props_.memoryTypes[t].propertyFlags;
    if ((f & required) != required) continue;
    const int score = __builtin_popcount(f & preferred);
    if (score > best_score) {
      best = static_cast<int>(t);
      best_score = score;
    }
  }
  if (best < 0) return fail(Errc::unsupported, vkn::format("no memory type with flags 0x{:x}", required));
  return static_cast<uint32_t>(best);
}

}  // namespace vkn
