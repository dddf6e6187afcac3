#include "vknode/error.h"

#include <vulkan/vulkan.h>

namespace vkn {
namespace {

class ErrcCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "vknode"; }
  std::string message(int ev) const override {
    return std::string(to_string(static_cast<Errc>(ev)));
  }
};

const char* vk_result_name(int32_t r) {
  switch (r) {
    case VK_SUCCESS: return "VK_SUCCESS";
    case VK_NOT_READY: return "VK_NOT_READY";
    case VK_TIMEOUT: return "VK_TIMEOUT";
    case VK_INCOMPLETE: return "VK_INCOMPLETE";
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_MEMORY_MAP_FAILED: return "VK_ERROR_MEMORY_MAP_FAILED";
    case VK_ERROR_LAYER_NOT_PRESENT: return "VK_ERROR_LAYER_NOT_PRESENT";
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT: return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_ERROR_TOO_MANY_OBJECTS: return "VK_ERROR_TOO_MANY_OBJECTS";
    case VK_ERROR_FORMAT_NOT_SUPPORTED: return "VK_ERROR_FORMAT_NOT_SUPPORTED";
    case VK_ERROR_FRAGMENTED_POOL: return "VK_ERROR_FRAGMENTED_POOL";
    case VK_ERROR_OUT_OF_POOL_MEMORY: return "VK_ERROR_OUT_OF_POOL_MEMORY";
    case VK_ERROR_INVALID_SHADER_NV: return "VK_ERROR_INVALID_SHADER_NV";
    default: return "VK_ERROR_UNKNOWN";
  }
}

}  // namespace

std::string_view to_string(Errc code) {
  switch (code) {
    case Errc::ok: return "ok";
    case Errc::device_lost: return "device_lost";
    case Errc::timeout: return "timeout";
    case Errc::out_of_device_memory: return "out_of_device_memory";
    case Errc::out_of_host_memory: return "out_of_host_memory";
    case Errc::invalid_argument: return "invalid_argument";
    case Errc::invalid_spirv: return "invalid_spirv";
    case Errc::not_found: return "not_found";
    case Errc::unsupported: return "unsupported";
    case Errc::io_error: return "io_error";
    case Errc::vulkan_error: return "vulkan_error";
    case Errc::already_exists: return "already_exists";
    case Errc::node_timeout: return "node_timeout";
    case Errc::node_dead: return "node_dead";
    case Errc::job_failed: return "job_failed";
    case Errc::kernel_quarantined: return "kernel_quarantined";
    case Errc::quota_exceeded: return "quota_exceeded";
    case Errc::permission_denied: return "permission_denied";
    case Errc::protocol_error: return "protocol_error";
    case Errc::cancelled: return "cancelled";
  }
  return "unknown";
}

const std::error_category& error_category() {
  static const ErrcCategory category;
  return category;
}

std::string Error::to_string() const {
  std::string s(vkn::to_string(code));
  if (vk_result != 0) {
    s += " (";
    s += vk_result_name(vk_result);
    s += ")";
  }
  if (!message.empty()) {
    s += ": ";
    s += message;
  }
  return s;
}

Error Error::make(Errc code, std::string_view what, std::string_view which) {
  Error e;
  e.code = code;
  e.message = std::string(what);
  if (!which.empty()) {
    e.message += ": ";
    e.message += which;
  }
  return e;
}

Error Error::vulkan(int32_t vk_result, std::string_view what) {
  Errc code = Errc::vulkan_error;
  switch (vk_result) {
    case VK_ERROR_DEVICE_LOST: code = Errc::device_lost; break;
    case VK_TIMEOUT: code = Errc::timeout; break;
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: code = Errc::out_of_device_memory; break;
    case VK_ERROR_OUT_OF_HOST_MEMORY: code = Errc::out_of_host_memory; break;
    case VK_ERROR_FEATURE_NOT_PRESENT:
    case VK_ERROR_EXTENSION_NOT_PRESENT:
    case VK_ERROR_LAYER_NOT_PRESENT:
    case VK_ERROR_INCOMPATIBLE_DRIVER: code = Errc::unsupported; break;
    default: break;
  }
  Error e = make(code, what);
  e.vk_result = vk_result;
  return e;
}

}  // namespace vkn
