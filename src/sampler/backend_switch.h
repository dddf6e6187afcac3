// BackendSwitch: the driver's handle on the leapfrog backend. Calls go to the preferred backend
// until it fails with is_fallback_error(); then the chain states are restored from a copy taken
// before the call, a warning is logged, and this and every later call run on the CPU backend.
// Driver thread only.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "vknode/sampler/leapfrog_backend.h"

namespace vkn::sampler::detail {

class BackendSwitch {
 public:
  // `preferred` may be null (CPU only); borrowed, as is `model`.
  static Result<BackendSwitch> create(const Model& model, unsigned threads, LeapfrogBackend* preferred);

  Result<void> advance(std::vector<ChainState>& states, const AdvanceRequest& request, AdvanceOutput& out);
  Result<TrajectoryBatch> trajectories(const TrajectoryRequest& request);

  std::string_view active_name() const { return active_->name(); }
  const std::string& fallback_reason() const { return fallback_reason_; }

 private:
  BackendSwitch(std::unique_ptr<CpuLeapfrogBackend> cpu, LeapfrogBackend* preferred)
      : cpu_(std::move(cpu)), active_(preferred ? preferred : cpu_.get()) {}
  // True (after switching to the CPU) when `error` from the active backend allows a retry.
  bool fall_back(const Error& error);

  std::unique_ptr<CpuLeapfrogBackend> cpu_;
  LeapfrogBackend* active_;
  std::string fallback_reason_;
  std::vector<ChainState> saved_;  // the states before the preferred backend's last call
};

}  // namespace vkn::sampler::detail
