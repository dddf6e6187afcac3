// LeapfrogBackend: the engine that moves a batch of HMC chains, behind an interface so the CPU
// implementation here and a GPU one (fused leapfrog kernels on the node) are interchangeable,
// even in the middle of a run. The sampler driver (hmc.h) owns the ChainStates, adaptation and
// output; a backend only integrates and accepts. Backends are used by one thread at a time.
//
// The transition every backend implements, for each chain c and each iteration t it runs
// (t = state.iteration, then t + 1, ...), with eps = state.step_size, m = state.inv_metric and
// the Philox streams of src/sampler/philox.h:
//   0. With j = request.step_size_jitter > 0 and u1 word 1 of the stream-1 block of (seed, c, t)
//      as a uniform: eps = state.step_size * (1 + j * (2 u1 - 1)) (Stan's stepsize_jitter).
//   1. p[i] = z[i] / sqrt(m[i]), z the stream-0 normals of (seed, c, t).
//   2. H0 = -lp(q) + 0.5 * sum m[i] p[i]^2.
//   3. K leapfrog steps: p += eps/2 grad; q += eps m p; grad = grad lp(q); p += eps/2 grad.
//      After each step H = -lp + kinetic; if H - H0 > 1000 or H is not a number the trajectory
//      stops there and is divergent (n_leapfrog counts the steps taken).
//   4. accept_stat = divergent ? 0 : min(1, exp(H0 - H)) (0 when NaN); with u the stream-1
//      uniform of (seed, c, t), the proposal is accepted iff !divergent and u < accept_stat.
//   5. The state keeps the accepted (or old) q, lp, grad; iteration becomes t + 1.
//      energy = H of the kept point with the momentum it ends with (H0 when rejected).
//
// Plugging in a GPU backend (from a layer above this one: vknode_sampler must not depend on
// vknode_gpu): derive from LeapfrogBackend; build the fused kernel around
// model.glsl({precision}) (vkn_log_density) and upload model.data_buffers() once; in advance(),
// upload q/lp/grad/step_size/inv_metric of the states, run the iterations above for all chains
// (several per dispatch when request.steps has several entries) drawing from the Philox streams
// of src/sampler/philox.h, and write back the states, stats and the requested draws/proposals;
// implement trajectories() too (the driver uses it for initial points and the step-size
// heuristic; tree builders use it directly). Return node failures as they are: on an
// is_fallback_error() code the driver restores its copy of the states and finishes the run on
// the CPU, with the same random streams. Pass the backend to sample(model, config, &backend).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "vknode/error.h"
#include "vknode/sampler/model.h"

namespace vkn::sampler {

namespace detail {
class ThreadPool;
}

// One chain between iterations; both paths read and write it, so a run can switch backend at
// any iteration boundary.
struct ChainState {
  std::vector<double> q;           // position on the unconstrained scale (size d)
  double lp = 0;                   // log density at q
  std::vector<double> grad;        // gradient at q (size d)
  double step_size = 0;            // this chain's leapfrog step size
  std::vector<double> inv_metric;  // diagonal of the inverse mass matrix (size d)
  uint32_t chain = 0;              // chain index: Philox counter word 1
  uint32_t iteration = 0;          // next iteration: Philox counter word 2
};

// One chain's outcome of one iteration.
struct TransitionStats {
  double lp = 0;           // at the kept point
  double step_size = 0;    // the (jittered) step size used
  double accept_stat = 0;  // min(1, exp(H0 - H)), 0 if divergent
  double energy = 0;       // Hamiltonian of the kept point
  uint32_t n_leapfrog = 0;
  bool divergent = false;
  bool accepted = false;
};

struct AdvanceRequest {
  uint64_t seed = 0;
  std::span<const uint32_t> steps;  // K of each iteration to run; steps.size() iterations
  double step_size_jitter = 0;      // in [0, 1): see step 0 of the transition
  bool keep_draws = false;          // fill AdvanceOutput::draws
  bool keep_proposals = false;      // fill AdvanceOutput::proposal_* for the last iteration
  // Keep this call's stats and draws in the backend (a GPU backend: in device memory) instead of
  // returning them; collect() returns them later. Only where can_hold_output().
  bool hold_output = false;
};

struct AdvanceOutput {
  std::vector<TransitionStats> stats;  // [iteration][chain]
  std::vector<double> draws;           // [iteration][chain][d]: q after each iteration
  // Last iteration, before accept/reject: the trajectory's end point and velocity m * p
  // ([chain][d]); ChEES adaptation reads them.
  std::vector<double> proposal_q, proposal_velocity;
};

// A batch of trajectories for tree builders (e.g. NUTS): every chain starts at (q0, p0) and
// takes `steps` leapfrog steps of its own signed step size (negative: backwards in time).
struct TrajectoryRequest {
  size_t chains = 0;
  uint32_t steps = 0;
  std::span<const double> q0, p0;     // [chain][d]
  std::span<const double> step_size;  // [chain]
  std::span<const double> inv_metric; // [d] shared by all chains, or [chain][d]
};

// Every intermediate state: point s = 0 is the start, s = steps the end. Non-finite values are
// passed through (the tree builder decides what a divergence is).
struct TrajectoryBatch {
  size_t chains = 0, dimension = 0;
  uint32_t steps = 0;
  std::vector<double> q, p, grad;  // [chain][s][d]
  std::vector<double> lp;          // [chain][s]

  size_t point(size_t chain, size_t s) const { return chain * (steps + 1) + s; }
  std::span<const double> q_at(size_t chain, size_t s) const { return {&q[point(chain, s) * dimension], dimension}; }
  std::span<const double> p_at(size_t chain, size_t s) const { return {&p[point(chain, s) * dimension], dimension}; }
  std::span<const double> grad_at(size_t chain, size_t s) const {
    return {&grad[point(chain, s) * dimension], dimension};
  }
  double lp_at(size_t chain, size_t s) const { return lp[point(chain, s)]; }
};

class LeapfrogBackend {
 public:
  virtual ~LeapfrogBackend() = default;

  // "cpu", "gpu:<device>", ...: for log lines and SampleResult::backend.
  virtual std::string_view name() const = 0;

  // Runs request.steps.size() iterations of the transition above on every chain and fills
  // `out` (resized by the callee). Requires: every state has q, grad, inv_metric of size
  // dimension(), a finite lp, and step_size > 0. On failure `states` may be partly advanced: the
  // caller restores its copy. Errors: invalid_argument for malformed input; a GPU backend adds
  // its node errors (node_timeout, node_dead, device_lost, kernel_quarantined, ...).
  [[nodiscard]] virtual Result<void> advance(std::span<ChainState> states, const AdvanceRequest& request,
                                             AdvanceOutput& out) = 0;

  // The building block of tree samplers: all intermediate states of a batch of trajectories.
  // steps == 0 just evaluates lp and grad at q0. Errors as for advance().
  [[nodiscard]] virtual Result<TrajectoryBatch> trajectories(const TrajectoryRequest& request) = 0;

  // Whether advance() takes request.hold_output: iterations then run without their output
  // crossing to the host, which collect() fetches for many calls at once.
  virtual bool can_hold_output() const { return false; }
  // The stats and draws of every advance() with hold_output since the last collect(), in call
  // order ([iteration][chain] and [iteration][chain][d] over all of them), as advance() would
  // have returned them; then nothing is held. On failure the held output is lost. Errors: as
  // for advance(); unsupported when !can_hold_output().
  [[nodiscard]] virtual Result<void> collect(AdvanceOutput& out) {
    (void)out;
    return fail(Errc::unsupported, "this backend does not hold output");
  }
  // Forgets held output (after a failure elsewhere).
  virtual void discard_held() {}
  // Makes room now for the output of `calls` held advance() calls of `iterations` iterations
  // of `chains` chains each (draws too when `draws`), so that the held calls do not allocate.
  // A backend may ignore it; errors are the backend's allocation errors.
  [[nodiscard]] virtual Result<void> reserve_held(size_t chains, size_t iterations, size_t calls, bool draws) {
    (void)chains, (void)iterations, (void)calls, (void)draws;
    return {};
  }
};

// The CPU backend: chains split over a fixed pool of threads; each chain is advanced by one
// thread at a time, so results do not depend on the thread count. Borrows the model, which must
// outlive it.
class CpuLeapfrogBackend final : public LeapfrogBackend {
 public:
  // threads == 0: std::thread::hardware_concurrency(). Errors: out_of_host_memory if threads
  // cannot be started.
  static Result<std::unique_ptr<CpuLeapfrogBackend>> create(const Model& model, unsigned threads = 0);
  ~CpuLeapfrogBackend() override;
  CpuLeapfrogBackend(const CpuLeapfrogBackend&) = delete;
  CpuLeapfrogBackend& operator=(const CpuLeapfrogBackend&) = delete;

  std::string_view name() const override { return "cpu"; }
  unsigned threads() const;
  Result<void> advance(std::span<ChainState> states, const AdvanceRequest& request, AdvanceOutput& out) override;
  Result<TrajectoryBatch> trajectories(const TrajectoryRequest& request) override;

 private:
  CpuLeapfrogBackend(const Model& model, std::unique_ptr<detail::ThreadPool> pool);

  const Model& model_;
  std::unique_ptr<detail::ThreadPool> pool_;
};

// Whether a backend error should make the driver finish the run on the CPU: node_timeout,
// node_dead, device_lost, kernel_quarantined, timeout and out_of_device_memory.
bool is_fallback_error(const Error& error);

}  // namespace vkn::sampler
