#include "sampler/backend_switch.h"

#include <algorithm>

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
  // Copy-assigning into the kept copy reuses its vectors' storage: no allocation per call.
  saved_.resize(states.size());
  std::copy(states.begin(), states.end(), saved_.begin());
  auto r = active_->advance(states, request, out);
  if (r || !fall_back(r.error())) return r;
  std::copy(saved_.begin(), saved_.end(), states.begin());
  return active_->advance(states, request, out);
}

Result<TrajectoryBatch> BackendSwitch::trajectories(const TrajectoryRequest& request) {
  auto r = active_->trajectories(request);
  if (r || !fall_back(r.error())) return r;
  return active_->trajectories(request);
}

}  // namespace vkn::sampler::detail
