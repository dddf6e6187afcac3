// Section "init": how long Device::create takes to hand back a ready device, against the
// minimal raw-Vulkan sequence that gives the same queue (instance, enumeration, one
// compute queue, VK_KHR_push_descriptor). Both run alternately, medians compared.
#include "bench_sections.h"

#include <vulkan/vulkan.h>

#include <vector>

#include "util/strformat.h"
#include "vknode/gpu/device.h"

namespace vkn::detail {
namespace {

// Destroys what the raw sequence created, on every path out of it.
struct RawInit {
  VkInstance instance = VK_NULL_HANDLE;
  VkDevice device = VK_NULL_HANDLE;
  RawInit() = default;
  RawInit(const RawInit&) = delete;
  RawInit& operator=(const RawInit&) = delete;
  ~RawInit() {
    if (device != VK_NULL_HANDLE) vkDestroyDevice(device, nullptr);
    if (instance != VK_NULL_HANDLE) vkDestroyInstance(instance, nullptr);
  }
};

// Microseconds from nothing to a VkDevice and its compute queue on physical device `index`.
Result<double> raw_init_us(uint32_t index) {
  RawInit raw;
  const auto t0 = BenchClock::now();
  VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
  app.apiVersion = VK_API_VERSION_1_3;
  VkInstanceCreateInfo ici{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
  ici.pApplicationInfo = &app;
  VkResult r = vkCreateInstance(&ici, nullptr, &raw.instance);
  if (r != VK_SUCCESS) return fail(Error::vulkan(r, "vkCreateInstance (raw baseline)"));
  uint32_t n = 0;
  r = vkEnumeratePhysicalDevices(raw.instance, &n, nullptr);
  if (r != VK_SUCCESS) return fail(Error::vulkan(r, "vkEnumeratePhysicalDevices (raw baseline)"));
  std::vector<VkPhysicalDevice> pds(n);
  r = vkEnumeratePhysicalDevices(raw.instance, &n, pds.data());
  if (r != VK_SUCCESS) return fail(Error::vulkan(r, "vkEnumeratePhysicalDevices (raw baseline)"));
  if (index >= n) return fail(Errc::not_found, vkn::format("raw baseline: no physical device {}", index));
  const VkPhysicalDevice pd = pds[index];
  uint32_t families = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(pd, &families, nullptr);
  std::vector<VkQueueFamilyProperties> props(families);
  vkGetPhysicalDeviceQueueFamilyProperties(pd, &families, props.data());
  int family = -1;
  for (uint32_t i = 0; i < families; ++i) {
    if (!(props[i].queueFlags & VK_QUEUE_COMPUTE_BIT)) continue;
    const bool dedicated = !(props[i].queueFlags & VK_QUEUE_GRAPHICS_BIT);
    if (family < 0 || dedicated) family = static_cast<int>(i);
    if (dedicated) break;
  }
  if (family < 0) return fail(Errc::unsupported, "raw baseline: no compute queue");
  const float priority = 1.0f;
  VkDeviceQueueCreateInfo qci{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
  qci.queueFamilyIndex = static_cast<uint32_t>(family);
  qci.queueCount = 1;
  qci.pQueuePriorities = &priority;
  const char* ext = VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME;
  VkDeviceCreateInfo dci{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
  dci.queueCreateInfoCount = 1;
  dci.pQueueCreateInfos = &qci;
  dci.enabledExtensionCount = 1;
  dci.ppEnabledExtensionNames = &ext;
  r = vkCreateDevice(pd, &dci, nullptr, &raw.device);
  if (r != VK_SUCCESS) return fail(Error::vulkan(r, "vkCreateDevice (raw baseline)"));
  VkQueue queue = VK_NULL_HANDLE;
  vkGetDeviceQueue(raw.device, static_cast<uint32_t>(family), 0, &queue);
  if (queue == VK_NULL_HANDLE) return fail(Errc::vulkan_error, "raw baseline: no queue");
  return elapsed_us(t0);
}

Result<double> device_create_us(const BenchOptions& options) {
  const auto t0 = BenchClock::now();
  auto device = Device::create(DeviceOptions{.selector = options.device_selector, .validation_from_env = false});
  const double us = elapsed_us(t0);
  if (!device) return fail(device.error());
  return us;  // the device is destroyed here, outside the measured time
}

}  // namespace

Result<void> bench_init(const BenchOptions& options, const Device& device, const RowSink& sink) {
  const int reps = options.quick ? 3 : 9;
  std::vector<double> layer_ms, raw_ms;
  // One untimed round first: the loader and driver are loaded, but first-use paths remain.
  for (int i = -1; i < reps; ++i) {
    // Alternate which goes first so neither always follows the other's teardown.
    for (int k = 0; k < 2; ++k) {
      const bool layer_now = (i + k) % 2 == 0;
      auto us = layer_now ? device_create_us(options) : raw_init_us(device.info().index);
      if (!us) return fail(us.error());
      if (i >= 0) (layer_now ? layer_ms : raw_ms).push_back(*us / 1000.0);
    }
  }
  sink({.section = "init",
        .metric = vkn::format("Device::create vs raw instance+device, n={}", reps),
        .unit = "ms",
        .value = median(layer_ms),
        .baseline = median(raw_ms)});
  return {};
}

}  // namespace vkn::detail
