// GpuLeapfrogBackend: the LeapfrogBackend of leapfrog_backend.h on a running node. At creation it
// generates one compute shader around model.glsl() (the whole HMC transition fused: Philox
// momentum, K leapfrog steps, Metropolis accept, for every chain, several iterations per
// dispatch), compiles it at run time with shaderc (cached on disk by content hash), registers it
// on the node and uploads model.data_buffers() once into durable registry buffers. advance()
// is then one node Program per call: upload states, one dispatch per
// max_iterations_per_dispatch iterations, download states, stats and draws in one block. The
// node is reached through a NodeTarget (node_target.h): in-process by name (CallOptions::node,
// the default), or through the machine's daemon (daemon_target.h). Node and daemon errors come
// back unchanged, so the driver's fallback to the CPU (is_fallback_error) applies.
//
// Draws versus the CPU backend: the same transition and the same Philox streams (accept and
// jitter uniforms bit-identical), but f32 arithmetic (or f64 with GPU transcendentals) and
// GLSL's sin/cos in the momentum normals, so trajectories drift apart by rounding: GPU and CPU
// runs with one seed are statistically equal, not identical (see docs/sampler.md).
//
// Owns its registry buffers (deleted on destruction, names prefixed "sampler.<pid>.<n>."; the
// shader is always compiled in this process); shares its target; borrows the model, which
// must outlive it. Used by one thread at a time, like every backend.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "vknode/error.h"
#include "vknode/node/node.h"
#include "vknode/sampler/leapfrog_backend.h"
#include "vknode/sampler/model.h"
#include "vknode/sampler/node_target.h"

namespace vkn::sampler {

// Which transition kernel runs. Structure-specific kernels exist for iid families
// ("separable": each chain's coordinates spread over a subgroup or several invocations, one
// sum of the Hamiltonian per leapfrog step) and the built-in logistic regression ("logistic":
// each chain's rows split over up to 32 invocations, one shared-memory reduction per step);
// other models always get the generic one-invocation-per-chain kernel. See docs/sampler.md.
enum class KernelChoice {
  automatic,  // specialized on GPUs; generic on CPU devices (lavapipe), where barriers are slow
  generic,
  specialized,  // where the model has one
};

struct GpuBackendOptions {
  Precision precision = Precision::f32;  // f64 requires the device's shaderFloat64
  CallOptions call;                      // which node, deadline per call (in-process target)
  // Where the node is: null, the in-process node `call` names (make_in_process_target(call));
  // else this target (e.g. make_daemon_target), and `call` is not used.
  std::shared_ptr<NodeTarget> target;
  // Chains per workgroup: one warp, so that a few thousand chains still spread over every SM.
  uint32_t workgroup_size = 32;
  // Iterations per dispatch (a block of more iterations is split into several dispatches of one
  // Program) so that one dispatch stays well below the node's hang limit.
  uint32_t max_iterations_per_dispatch = 128;
  KernelChoice kernel = KernelChoice::automatic;
  // Test-only: a smaller per-buffer limit than the device's, so that tests see a block split
  // over several Programs (0: the device's maxStorageBufferRange, at most 256 MiB).
  uint64_t TEST_max_buffer_bytes = 0;
};

struct GpuBackendStats {
  uint64_t programs = 0;  // node Programs run
  uint64_t dispatches = 0;
  double compile_seconds = 0;  // shaderc (or cache read) at creation
  bool shader_from_cache = false;
  double gpu_wait_ms = 0;          // summed ProgramResult::gpu_wait_ms
  // advance() calls that uploaded positions and gradients (not when the host's states are as
  // the last call left them) and inverse metrics (only when they changed).
  uint64_t state_uploads = 0, metric_uploads = 0;
  std::string kernel = "generic";  // "generic", "separable", "separable/subgroup" or "logistic"
};

class GpuLeapfrogBackend final : public LeapfrogBackend {
 public:
  // Errors: unsupported (f64 without shaderFloat64), invalid_argument (the generated shader
  // does not compile: shaderc's message), and the node's errors (node_dead when no node runs).
  static Result<std::unique_ptr<GpuLeapfrogBackend>> create(const Model& model,
                                                            const GpuBackendOptions& options = {});
  ~GpuLeapfrogBackend() override;
  GpuLeapfrogBackend(const GpuLeapfrogBackend&) = delete;
  GpuLeapfrogBackend& operator=(const GpuLeapfrogBackend&) = delete;

  std::string_view name() const override;
  Result<void> advance(std::span<ChainState> states, const AdvanceRequest& request,
                       AdvanceOutput& out) override;
  Result<TrajectoryBatch> trajectories(const TrajectoryRequest& request) override;
  // Held output stays in registry buffers of the node until collect() downloads it.
  bool can_hold_output() const override { return true; }
  Result<void> collect(AdvanceOutput& out) override;
  void discard_held() override;
  Result<void> reserve_held(size_t chains, size_t iterations, size_t calls, bool draws) override;

  const GpuBackendStats& stats() const;
  // The generated GLSL of the transition kernel (for docs, debugging and tests).
  static std::string transition_glsl(const Model& model, Precision precision,
                                     uint32_t workgroup_size);
  static std::string trajectory_glsl(const Model& model, Precision precision,
                                     uint32_t workgroup_size);

  struct Impl;

 private:
  explicit GpuLeapfrogBackend(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace vkn::sampler
