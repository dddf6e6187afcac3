// Test backends: a "GPU" that runs on the CPU and then fails on demand.
#pragma once

#include <memory>

#include "vknode/sampler/leapfrog_backend.h"

namespace vkn::sampler::testing {

// A "GPU" that runs on the CPU for its first `healthy_calls` calls and then fails.
class FlakyBackend final : public LeapfrogBackend {
 public:
  FlakyBackend(const Model& model, int healthy_calls, Errc failure, bool fail_trajectories = false)
      : inner_(std::move(*CpuLeapfrogBackend::create(model, 1))), healthy_(healthy_calls), failure_(failure),
        fail_trajectories_(fail_trajectories) {}
  std::string_view name() const override { return "flaky"; }
  Result<void> advance(std::span<ChainState> states, const AdvanceRequest& request, AdvanceOutput& out) override {
    if (calls_++ >= healthy_) {
      states[0].q[0] = 1e9;  // scribble: the driver must restore the states
      return fail(failure_, "injected fault");
    }
    return inner_->advance(states, request, out);
  }
  Result<TrajectoryBatch> trajectories(const TrajectoryRequest& request) override {
    if (fail_trajectories_) return fail(failure_, "injected fault in trajectories");
    return inner_->trajectories(request);
  }
  int calls() const { return calls_; }

 private:
  std::unique_ptr<CpuLeapfrogBackend> inner_;
  int healthy_, calls_ = 0;
  Errc failure_;
  bool fail_trajectories_;
};

}  // namespace vkn::sampler::testing
