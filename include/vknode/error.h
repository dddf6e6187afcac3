// vkn::Error and vkn::Result: every fallible vknode call returns Result<T>, an
// std::expected holding either the value or an Error (a code, the VkResult when
// Vulkan failed, and a readable message). Plain value types; thread-compatible.
#pragma once

#include <cstdint>
#include <expected>
#include <string>
#include <string_view>
#include <system_error>

namespace vkn {

enum class Errc : int {
  ok = 0,
  // Core (gpu layer).
  device_lost,           // VK_ERROR_DEVICE_LOST, or a hang treated as one
  timeout,               // a GPU wait passed its deadline
  out_of_device_memory,  // device memory exhausted
  out_of_host_memory,    // host or staging memory exhausted
  invalid_argument,      // a caller's input is wrong (sizes, ranges, names, bindings)
  invalid_spirv,         // SPIR-V failed validation or is not a compute shader
  not_found,             // no such device, buffer, kernel or file
  unsupported,           // the device lacks a feature vknode needs
  io_error,              // a file could not be read or written
  vulkan_error,          // any other Vulkan failure (see Error::vk_result)
  already_exists,        // a name is taken
  // Node and daemon.
  node_timeout,          // the caller's deadline passed before the node answered
  node_dead,             // no node under that name, or it died
  job_failed,            // the job itself failed (e.g. threw an exception)
  kernel_quarantined,    // the kernel timed out too often and is fenced off
  quota_exceeded,        // a memory budget or per-user quota would be exceeded
  permission_denied,     // the caller may not touch that object
  protocol_error,        // a malformed frame or message
  cancelled,             // withdrawn before it ran
};

// The stable snake_case name of a code, e.g. "device_lost".
std::string_view to_string(Errc code);

// The std::error_category of vknode codes, so Errc converts to std::error_code.
const std::error_category& error_category();
inline std::error_code make_error_code(Errc e) { return {static_cast<int>(e), error_category()}; }

struct Error {
  Errc code = Errc::ok;
  int32_t vk_result = 0;  // VkResult when a Vulkan call failed, else 0 (VK_SUCCESS)
  std::string message;

  // "<code>: <message>" (and the VkResult name when set).
  std::string to_string() const;

  static Error make(Errc code, std::string_view what, std::string_view which = {});
  static Error invalid_argument(std::string_view what, std::string_view which = {}) {
    return make(Errc::invalid_argument, what, which);
  }
  static Error not_found(std::string_view what, std::string_view which = {}) {
    return make(Errc::not_found, what, which);
  }
  static Error unsupported(std::string_view what, std::string_view which = {}) {
    return make(Errc::unsupported, what, which);
  }
  static Error io(std::string_view what, std::string_view which = {}) {
    return make(Errc::io_error, what, which);
  }
  static Error invalid_spirv(std::string_view what, std::string_view which = {}) {
    return make(Errc::invalid_spirv, what, which);
  }
  static Error timeout(std::string_view what, std::string_view which = {}) {
    return make(Errc::timeout, what, which);
  }
  // Maps a failed VkResult onto the closest code (device_lost, out_of_device_memory, ...).
  static Error vulkan(int32_t vk_result, std::string_view what);
};

template <typename T>
using Result = std::expected<T, Error>;

// Shorthand for returning an error: `return vkn::fail(Errc::not_found, "buffer", name);`
inline std::unexpected<Error> fail(Errc code, std::string_view what, std::string_view which = {}) {
  return std::unexpected(Error::make(code, what, which));
}
inline std::unexpected<Error> fail(Error e) { return std::unexpected(std::move(e)); }

}  // namespace vkn

template <>
struct std::is_error_code_enum<vkn::Errc> : std::true_type {};
