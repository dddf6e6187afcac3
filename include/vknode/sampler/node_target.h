// NodeTarget: the node operations GpuLeapfrogBackend needs (what the device can do, kernel
// registration, registry buffers, exec of a Program), so that one backend runs on a node in
// this process (make_in_process_target, the default) or on the machine's daemon through a
// vkn::Client (daemon_target.h, library vknode_sampler_client). Implementations return the
// node's and the daemon's errors unchanged (node_dead, node_timeout, device_lost, ...), so the
// sampler's fallback to the CPU (is_fallback_error) applies whichever way the node is reached.
//
// Thread-safe: the backend calls a target from one thread at a time, but several backends may
// share one target. Owned through shared_ptr by the backends that use it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "vknode/error.h"
#include "vknode/gpu/kernel.h"
#include "vknode/node/buffer_registry.h"
#include "vknode/node/node.h"
#include "vknode/node/program.h"

namespace vkn::sampler {

// What the backend must know about the device to generate and size its kernels. The defaults
// are the minimums every Vulkan device guarantees.
struct TargetDevice {
  std::string name;
  bool cpu = false;      // a CPU device (lavapipe): KernelChoice::automatic picks generic there
  bool float64 = false;  // shaderFloat64
  uint64_t max_storage_buffer_range = 1ull << 27;
  uint32_t arithmetic_subgroup = 0;  // subgroup size when compute shaders have subgroupAdd
  uint32_t shared_memory_bytes = 16384;       // maxComputeSharedMemorySize
  uint32_t max_workgroup_invocations = 128;   // maxComputeWorkGroupInvocations
  // Where compiled SPIR-V is cached; empty: the default directory (shader_compiler.h).
  std::filesystem::path shader_cache_dir;
};

class NodeTarget {
 public:
  virtual ~NodeTarget() = default;

  // For logs: "node vknode", "daemon /run/vknode/vknode.sock".
  virtual std::string describe() const = 0;
  // Errors: node_dead (no node, no daemon), node_timeout.
  [[nodiscard]] virtual Result<TargetDevice> device() = 0;
  // As vkn::register_kernel (the node keeps the SPIR-V to re-create the pipeline after a
  // device reset). Errors: invalid_spirv, and the node's.
  [[nodiscard]] virtual Result<KernelId> register_kernel(std::span<const uint32_t> spirv,
                                                         std::string_view kernel_name) = 0;
  // As vkn::create_buffer. A target may tie non-durable buffers to the caller's lifetime (the
  // daemon frees them when the client's connection closes). Errors: already_exists,
  // out_of_device_memory, quota_exceeded, and the node's.
  [[nodiscard]] virtual Result<void> create_buffer(std::string_view name,
                                                   const BufferSpec& spec) = 0;
  // Errors: not_found, and the node's.
  [[nodiscard]] virtual Result<void> delete_buffer(std::string_view name) = 0;
  [[nodiscard]] virtual Result<void> write_buffer(std::string_view name, uint64_t offset,
                                                  std::span<const std::byte> data) = 0;
  // As vkn::exec. Errors: invalid_argument, not_found, and the node's.
  [[nodiscard]] virtual Result<ProgramResult> exec(Program&& program) = 0;
};

// The node named call.node in this process; every call carries call's deadline and client.
// Implemented in vknode_sampler_gpu.
std::shared_ptr<NodeTarget> make_in_process_target(CallOptions call);

// The facts of this machine's Vulkan device whose UUID (uuid_string, as NodeStatus::device_uuid)
// is `device_uuid`, read without creating a device: how a target that reaches the device from
// another process learns them. Errors: not_found (no such device here), unsupported (no Vulkan
// driver). Implemented in vknode_sampler_gpu.
[[nodiscard]] Result<TargetDevice> local_device(std::string_view device_uuid);

}  // namespace vkn::sampler
