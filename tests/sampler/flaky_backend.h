// Test backends: a "GPU" that runs on the CPU and then fails on demand.
#pragma once

#include <memory>

#include "vknode/sampler/leapfrog_backend.h"

namespace vkn::sampler::testing {

// A "GPU" that runs on the CPU for its first `healthy_calls` calls (advance and collect) and
// then fails. With `holds`, it keeps held output (AdvanceRequest::hold_output) until collect(),
// and loses it when it fails.
class FlakyBackend final : public LeapfrogBackend {
 public:
  FlakyBackend(const Model& model, int healthy_calls, Errc failure, bool fail_trajectories = false,
               bool holds = false)
      : inner_(std::move(*CpuLeapfrogBackend::create(model, 1))), healthy_(healthy_calls), failure_(failure),
        fail_trajectories_(fail_trajectories), holds_(holds) {}
  std::string_view name() const override { return "flaky"; }
  Result<void> advance(std::span<ChainState> states, const AdvanceRequest& request, AdvanceOutput& out) override {
    if (calls_++ >= healthy_) {
      states[0].q[0] = 1e9;  // scribble: the driver must restore the states
      held_ = {};
      return fail(failure_, "injected fault");
    }
    if (!request.hold_output) return inner_->advance(states, request, out);
    if (!holds_) return fail(Errc::unsupported, "hold_output on a backend that cannot hold");
    AdvanceRequest plain = request;
    plain.hold_output = false;
    AdvanceOutput o;
    if (auto r = inner_->advance(states, plain, o); !r) return r;
    held_.stats.insert(held_.stats.end(), o.stats.begin(), o.stats.end());
    held_.draws.insert(held_.draws.end(), o.draws.begin(), o.draws.end());
    out = {};
    ++held_calls_;
    return {};
  }
  bool can_hold_output() const override { return holds_; }
  Result<void> collect(AdvanceOutput& out) override {
    if (calls_++ >= healthy_) {
      held_ = {};
      return fail(failure_, "injected fault in collect");
    }
    out = std::move(held_);
    held_ = {};
    return {};
  }
  void discard_held() override { held_ = {}; }
  int held_calls() const { return held_calls_; }
  Result<TrajectoryBatch> trajectories(const TrajectoryRequest& request) override {
    if (fail_trajectories_) return fail(failure_, "injected fault in trajectories");
    return inner_->trajectories(request);
  }
  int calls() const { return calls_; }

 private:
  std::unique_ptr<CpuLeapfrogBackend> inner_;
  int healthy_, calls_ = 0, held_calls_ = 0;
  Errc failure_;
  bool fail_trajectories_, holds_;
  AdvanceOutput held_;
};

}  // namespace vkn::sampler::testing
