// The node section's baseline: a tiny dispatch (fill_u32 of 64 words) through the core
// layer alone, on a device of its own, from the calling thread. The bench runs it in a
// process of its own (core_dispatch_child.h), and beside the node in the bench's process.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vknode/gpu/buffer.h"
#include "vknode/gpu/device.h"
#include "vknode/gpu/kernel_cache.h"
#include "vknode/gpu/stream.h"

namespace vkn::detail {

inline constexpr uint32_t kTinyWords = 64;
inline constexpr uint32_t kTinyFillValue = 7;

// fill_u32's push constants for the tiny dispatch.
std::vector<std::byte> tiny_fill_push();

class CoreDispatch {
 public:
  static Result<std::unique_ptr<CoreDispatch>> create(const std::string& device_selector);
  const Device& device() const { return *device_; }
  // One tiny dispatch: record, submit, wait.
  Result<void> once();
  // Whether the dispatches wrote the buffer (every word kTinyFillValue).
  Result<void> verify();

 private:
  CoreDispatch() = default;
  std::unique_ptr<Device> device_;
  std::unique_ptr<Stream> stream_;
  std::optional<Buffer> buffer_;
  std::unique_ptr<KernelCache> kernels_;
  std::shared_ptr<Kernel> kernel_;
  std::vector<std::byte> push_ = tiny_fill_push();
};

}  // namespace vkn::detail
