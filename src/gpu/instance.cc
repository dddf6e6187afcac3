#include "vknode/gpu/instance.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "util/log.h"

namespace vkn {
namespace {

constexpr const char* kValidationLayer = "VK_LAYER_KHRONOS_validation";

bool has_layer(const char* name) {
  uint32_t n = 0;
  vkEnumerateInstanceLayerProperties(&n, nullptr);
  std::vector<VkLayerProperties> layers(n);
  vkEnumerateInstanceLayerProperties(&n, layers.data());
  return std::any_of(layers.begin(), layers.end(),
                     [&](const VkLayerProperties& l) { return std::strcmp(l.layerName, name) == 0; });
}

}  // namespace

Result<std::shared_ptr<Instance>> Instance::create(bool validation) {
  VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
  app.pApplicationName = "vknode";
  app.pEngineName = "vknode";
  app.apiVersion = VK_API_VERSION_1_3;
  std::vector<const char*> layers;
  std::vector<const char*> exts;
  if (validation) {
    if (!has_layer(kValidationLayer)) {
      return fail(Errc::unsupported, "validation requested but the Khronos validation layer is not installed",
                  "install vulkan-validationlayers");
    }
    layers.push_back(kValidationLayer);
    exts.push_back(VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
  }
  VkInstanceCreateInfo ci{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
  ci.pApplicationInfo = &app;
  ci.enabledLayerCount = static_cast<uint32_t>(layers.size());
  ci.ppEnabledLayerNames = layers.data();
  ci.enabledExtensionCount = static_cast<uint32_t>(exts.size());
  ci.ppEnabledExtensionNames = exts.data();
  std::shared_ptr<Instance> instance(new Instance());
  const VkResult r = vkCreateInstance(&ci, nullptr, &instance->instance_);
  if (r != VK_SUCCESS) return fail(Error::vulkan(r, "vkCreateInstance failed (is a Vulkan driver installed?)"));
  if (validation) {
    if (auto m = instance->create_messenger(); !m) return fail(m.error());
  }
  return instance;
}

Result<void> Instance::create_messenger() {
  VkDebugUtilsMessengerCreateInfoEXT ci{VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT};
  ci.messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
  ci.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT;
  ci.pfnUserCallback = &Instance::on_validation_message;
  ci.pUserData = this;
  auto create = reinterpret_cast<PFN_vkCreateDebugUtilsMessengerEXT>(
      vkGetInstanceProcAddr(instance_, "vkCreateDebugUtilsMessengerEXT"));
  if (create == nullptr) return fail(Errc::unsupported, "VK_EXT_debug_utils is missing");
  const VkResult r = create(instance_, &ci, nullptr, &messenger_);
  if (r != VK_SUCCESS) return fail(Error::vulkan(r, "vkCreateDebugUtilsMessengerEXT"));
  return {};
}

Instance::~Instance() {
  if (messenger_ != VK_NULL_HANDLE) {
    auto destroy = reinterpret_cast<PFN_vkDestroyDebugUtilsMessengerEXT>(
        vkGetInstanceProcAddr(instance_, "vkDestroyDebugUtilsMessengerEXT"));
    if (destroy != nullptr) destroy(instance_, messenger_, nullptr);
  }
  if (instance_ != VK_NULL_HANDLE) vkDestroyInstance(instance_, nullptr);
}

VKAPI_ATTR VkBool32 VKAPI_CALL Instance::on_validation_message(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                                               VkDebugUtilsMessageTypeFlagsEXT,
                                                               const VkDebugUtilsMessengerCallbackDataEXT* data,
                                                               void* user) {
  auto* self = static_cast<Instance*>(user);
  const char* msg = data && data->pMessage ? data->pMessage : "(no message)";
  if (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) {
    self->validation_errors_.fetch_add(1);
    {
      std::lock_guard lock(self->message_mu_);
      self->last_message_ = msg;
    }
    log(LogLevel::error, "validation: {}", msg);
  } else {
    log(LogLevel::warn, "validation: {}", msg);
  }
  return VK_FALSE;
}

std::string Instance::last_validation_message() const {
  std::lock_guard lock(message_mu_);
  return last_message_;
}

}  // namespace vkn
