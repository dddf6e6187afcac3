// BackendSwitch: the driver's handle on the leapfrog backend. Calls go to the preferred backend
// until it fails with is_fallback_error(); then the chain states are restored from a copy taken
// before the call, a warning is logged, and this and every later call run on the CPU backend.
// Output held by the preferred backend (AdvanceRequest::hold_output) is covered the same way:
// the states at the start of the held range are kept, and when a held call or collect() fails,
// every held call is run again on the CPU from there, so collect() still returns all of it.
// Driver thread only.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "sampler/thread_pool.h"
#include "vknode/sampler/leapfrog_backend.h"

namespace vkn::sampler::detail {

class BackendSwitch {
 public:
  // `preferred` may be null (CPU only); borrowed, as is `model`.
  static Result<BackendSwitch> create(const Model& model, unsigned threads, LeapfrogBackend* preferred);

  // request.hold_output is for a range of calls that ends with collect(); on the CPU (after a
  // fallback) the output is then kept here.
  Result<void> advance(std::vector<ChainState>& states, const AdvanceRequest& request, AdvanceOutput& out);
  Result<TrajectoryBatch> trajectories(const TrajectoryRequest& request);
  // Whether the active backend keeps held output on its side (else holding only stores it here).
  bool holds_output() const { return active_->can_hold_output(); }
  // The output of the held calls since the last collect(); `states` are rewound and advanced
  // again on the CPU when the preferred backend lost it.
  Result<void> collect(std::vector<ChainState>& states, AdvanceOutput& out);
  // LeapfrogBackend::reserve_held on the active backend when it holds output. A fallback error
  // switches to the CPU as for any call; other failures only mean that the held calls allocate
  // as they go (logged at debug level).
  // Also sizes the copy of the states kept at the start of a held range.
  void reserve_held(size_t chains, size_t dimension, size_t iterations, size_t calls, bool draws);

  std::string_view active_name() const { return active_->name(); }
  const std::string& fallback_reason() const { return fallback_reason_; }

 private:
  // What a backend changes in the states (q, grad, lp, iteration), flat: the start of a held
  // range, cheaper to keep than whole ChainStates.
  struct Checkpoint {
    size_t d = 0;
    std::vector<double> q, grad, lp;
    std::vector<uint32_t> iteration;
    // Sizes (and first-touches) the storage for `chains` chains of dimension `d`.
    void prepare(size_t chains, size_t d);
    // Copies on `pool`'s threads when given.
    void save(const std::vector<ChainState>& states, ThreadPool* pool);
    void restore(std::vector<ChainState>& states) const;
  };
  // A held call's request, with its own copy of the steps.
  struct HeldCall {
    AdvanceRequest request;
    std::vector<uint32_t> steps;
  };

  BackendSwitch(std::unique_ptr<CpuLeapfrogBackend> cpu, LeapfrogBackend* preferred)
      : cpu_(std::move(cpu)), active_(preferred ? preferred : cpu_.get()) {}
  // True (after switching to the CPU) when `error` from the active backend allows a retry.
  bool fall_back(const Error& error);
  Result<void> advance_held(std::vector<ChainState>& states, const AdvanceRequest& request, AdvanceOutput& out);
  // After the preferred backend lost its held output: from the kept states, every held call
  // (and `current`, if any) again on the CPU, output into cpu_held_.
  Result<void> replay_on_cpu(std::vector<ChainState>& states, const AdvanceRequest* current);
  Result<void> run_on_cpu_and_keep(std::vector<ChainState>& states, const AdvanceRequest& request);

  std::unique_ptr<CpuLeapfrogBackend> cpu_;
  LeapfrogBackend* active_;
  std::string fallback_reason_;
  std::vector<ChainState> saved_;  // the states before the preferred backend's last call
  Checkpoint held_start_;             // the states before the first held call
  std::unique_ptr<ThreadPool> pool_;  // copies held_start_ for many chains (from reserve_held)
  std::vector<HeldCall> held_calls_;  // calls whose output the preferred backend holds
  AdvanceOutput cpu_held_;            // output of held calls run on the CPU
};

}  // namespace vkn::sampler::detail
