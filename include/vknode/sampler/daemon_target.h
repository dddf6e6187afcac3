// The sampler's GPU backend through the machine's vknode daemon (`vknode serve`): a NodeTarget
// over a vkn::Client, so that any process samples on the machine's shared GPU. Library
// vknode_sampler_client (src/sampler_client/), the one sampler layer that links the client.
//
// The shader is compiled in the calling process (shaderc, disk cache in the default directory)
// and registered with the daemon as SPIR-V. Device facts come from status (the device's UUID)
// and this machine's Vulkan driver; a device not visible here gets the Vulkan minimums. State
// buffers are session-scoped (the daemon frees them if this process dies); the durable data
// sets are deleted by the backend's destructor. Errors of the daemon and its node come back
// unchanged, except `cancelled`, which the daemon answers only while it shuts down and which
// comes back as node_dead, so that a run falls back to the CPU (is_fallback_error).
//
// Thread-safe (as vkn::Client).
#pragma once

#include <chrono>
#include <memory>
#include <optional>

#include "vknode/client/client.h"
#include "vknode/error.h"
#include "vknode/sampler/gpu_backend.h"
#include "vknode/sampler/model.h"
#include "vknode/sampler/node_target.h"

namespace vkn::sampler {

struct DaemonTargetOptions {
  // Deadline of every call; unset: the client's default_timeout.
  std::optional<std::chrono::milliseconds> timeout;
  // The daemon's device node (position in DaemonStatus::devices) every call names, whatever
  // the client's ClientOptions::device. An index the daemon does not have is not_found.
  uint32_t device = 0;
};

// A target on the daemon behind `client`, which it keeps alive.
// Requires: client is not null.
std::shared_ptr<NodeTarget> make_daemon_target(std::shared_ptr<Client> client,
                                               DaemonTargetOptions options = {});

// For CLI code: connects to the machine's daemon (client_options.socket_path empty: the default
// socket, see ClientOptions) and creates a GpuLeapfrogBackend on it, on the device node
// client_options.device. options.target is replaced; options.call.timeout, when set, is the
// deadline of every daemon call.
// Errors: node_dead when no daemon answers (is_fallback_error: sample on the CPU),
// permission_denied, not_found (no socket path applies), and those of GpuLeapfrogBackend::create.
[[nodiscard]] Result<std::unique_ptr<GpuLeapfrogBackend>> create_daemon_backend(
    const Model& model, GpuBackendOptions options = {}, ClientOptions client_options = {});

}  // namespace vkn::sampler
