// Kernel: a compute pipeline built from validated SPIR-V, with the layout reflected
// from it. Owns its shader module and pipeline; uses the device's shared pipeline
// layout (push descriptors) when its bindings fit it, else owns a layout of its own.
// Immutable after creation, so thread-safe to share;
// it must outlive every batch that dispatches it and must not outlive its Device.
#pragma once

#include <vulkan/vulkan.h>

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "vknode/error.h"
#include "vknode/gpu/kernel_layout.h"
#include "vknode/gpu/vk_handle.h"

namespace vkn {

class Device;
class PipelineCache;
class Buffer;

// SHA-256 of the SPIR-V words and the specialization constants: the content hash
// that names a kernel in caches, in Programs and on the wire.
using KernelId = std::array<uint8_t, 32>;
KernelId kernel_id(std::span<const uint32_t> spirv, std::span<const SpecConstant> spec = {});
std::string to_hex(const KernelId& id);
// Parses 64 hex digits. Errors: invalid_argument.
[[nodiscard]] Result<KernelId> kernel_id_from_hex(std::string_view hex);

// A buffer range bound to one storage-buffer binding of a kernel.
struct BufferBinding {
  uint32_t binding = 0;
  const Buffer* buffer = nullptr;
  uint64_t offset = 0;
  uint64_t range = VK_WHOLE_SIZE;  // to the end of the buffer
};

using GroupCount = std::array<uint32_t, 3>;

// Where Kernel::create spent its time, in microseconds.
struct KernelCreationTimes {
  double intake_us = 0;    // SPIR-V validation and reflection
  double layout_us = 0;    // descriptor-set and pipeline layouts
  double pipeline_us = 0;  // shader module (when needed) and vkCreateComputePipelines
};

class Kernel {
 public:
  // Validates and reflects `spirv` (see spirv_intake.h), then creates the pipeline
  // through `cache` (may be nullptr). Errors: invalid_spirv, unsupported,
  // invalid_argument (bad spec constants, workgroup beyond device limits), device_lost, vulkan_error.
  [[nodiscard]] static Result<std::shared_ptr<Kernel>> create(Device& device, PipelineCache* cache,
                                                              std::span<const uint32_t> spirv,
                                                              std::span<const SpecConstant> spec = {},
                                                              std::string_view name = {});
  Kernel(const Kernel&) = delete;
  Kernel& operator=(const Kernel&) = delete;

  const KernelId& id() const { return id_; }
  const std::string& name() const { return name_; }
  const KernelLayout& layout() const { return layout_; }
  VkPipeline pipeline() const { return pipeline_.get(); }
  // The device's shared layout, or the kernel's own where its bindings do not fit that.
  VkPipelineLayout pipeline_layout() const;
  // What the driver said through creation feedback: true when it came from the cache.
  bool was_cache_hit() const { return cache_hit_; }
  double creation_ms() const { return times_.pipeline_us / 1000.0; }
  const KernelCreationTimes& creation_times() const { return times_; }

  // Checks a dispatch before anything reaches the driver: every reflected binding is
  // given exactly once, no extra ones, ranges inside their buffers and aligned, push
  // data exactly the reflected size, group counts within device limits.
  // Errors: invalid_argument naming the kernel and what is wrong.
  [[nodiscard]] Result<void> check_dispatch(std::span<const BufferBinding> bindings,
                                            std::span<const std::byte> push, GroupCount groups) const;

 private:
  explicit Kernel(Device& device) : device_(device) {}
  Result<void> build(PipelineCache* cache, std::span<const uint32_t> spirv, std::span<const SpecConstant> spec);
  Result<void> create_layouts();
  Result<void> create_pipeline(PipelineCache* cache, std::span<const uint32_t> spirv,
                               std::span<const SpecConstant> spec, VkPipelineCreationFeedback& feedback);

  Device& device_;
  KernelId id_{};
  std::string name_;
  KernelLayout layout_;
  // Declared in creation order, so destroyed in reverse. module_ stays empty when the
  // pipeline came from the cache by shader-module identifier.
  OwnedShaderModule module_;
  OwnedDescriptorSetLayout set_layout_;
  OwnedPipelineLayout pipeline_layout_;  // empty when the shared layout serves
  OwnedPipeline pipeline_;
  bool cache_hit_ = false;
  KernelCreationTimes times_;
};

}  // namespace vkn
