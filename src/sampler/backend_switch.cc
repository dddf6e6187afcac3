#include "sampler/backend_switch.h"

#include "util/log.h"

namespace vkn::sampler::detail {

Result<BackendSwitch> BackendSwitch::create(const Model& model, unsigned threads, LeapfrogBackend* preferred) {
  auto cpu = CpuLeapfrogBackend::create(model, threads);
  if (!cpu) return fail(cpu.error());
  return BackendSwitch(std::move(*cpu), preferred);
}

bool BackendSwitch::fall_back(const Error& error) {
  if (active_ == cpu_.get() || !is_fallback_error(error)) return false;
  fallback_reason_ = std::string(active_->name()) + " failed: " + error.to_string();
  vkn::log(LogLevel::warn, "sampler: {}; continuing on the CPU", fallback_reason_);
  active_ = cpu_.get();
  return true;
}

Result<void> BackendSwitch::advance(std::vector<ChainState>& states, const AdvanceRequest& request,
                                    AdvanceOutput& out) {
  if (active_ == cpu_.get()) return active_->advance(states, request, out);
  std::vector<ChainState> saved = states;
  auto r = active_->advance(states, request, out);
  if (r || !fall_back(r.error())) return r;
  states = std::move(saved);
  return active_->advance(states, request, out);
}

Result<TrajectoryBatch> BackendSwitch::trajectories(const TrajectoryRequest& request) {
  auto r = active_->trajectories(request);
  if (r || !fall_back(r.error())) return r;
  return active_->trajectories(request);
}

}  // namespace vkn::sampler::detail
