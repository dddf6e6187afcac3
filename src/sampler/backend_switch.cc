#include "sampler/backend_switch.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "util/log.h"

namespace vkn::sampler::detail {
namespace {

void append(AdvanceOutput& to, AdvanceOutput&& from) {
  if (to.stats.empty() && to.draws.empty()) {
    to.stats = std::move(from.stats);
    to.draws = std::move(from.draws);
    return;
  }
  to.stats.insert(to.stats.end(), from.stats.begin(), from.stats.end());
  to.draws.insert(to.draws.end(), from.draws.begin(), from.draws.end());
}

}  // namespace

void BackendSwitch::Checkpoint::prepare(size_t chains, size_t dimension) {
  d = dimension;
  q.resize(chains * d);
  grad.resize(chains * d);
  lp.resize(chains);
  iteration.resize(chains);
}

void BackendSwitch::Checkpoint::save(const std::vector<ChainState>& states, ThreadPool* pool) {
  prepare(states.size(), states.empty() ? 0 : states[0].q.size());
  constexpr size_t kChainsPerTask = 256;
  auto copy = [&](size_t task) {
    const size_t c1 = std::min(states.size(), (task + 1) * kChainsPerTask);
    for (size_t c = task * kChainsPerTask; c < c1; ++c) {
      std::copy(states[c].q.begin(), states[c].q.end(), q.begin() + c * d);
      std::copy(states[c].grad.begin(), states[c].grad.end(), grad.begin() + c * d);
      lp[c] = states[c].lp;
      iteration[c] = states[c].iteration;
    }
  };
  const size_t tasks = (states.size() + kChainsPerTask - 1) / kChainsPerTask;
  if (pool != nullptr && tasks > 1) {
    pool->parallel_for(tasks, copy);
  } else {
    for (size_t t = 0; t < tasks; ++t) copy(t);
  }
}

void BackendSwitch::Checkpoint::restore(std::vector<ChainState>& states) const {
  for (size_t c = 0; c < states.size(); ++c) {
    states[c].q.assign(q.begin() + c * d, q.begin() + (c + 1) * d);
    states[c].grad.assign(grad.begin() + c * d, grad.begin() + (c + 1) * d);
    states[c].lp = lp[c];
    states[c].iteration = iteration[c];
  }
}

Result<BackendSwitch> BackendSwitch::create(const Model& model, unsigned threads, LeapfrogBackend* preferred) {
  auto cpu = CpuLeapfrogBackend::create(model, threads);
  if (!cpu) return fail(cpu.error());
  return BackendSwitch(std::move(*cpu), preferred);
}

bool BackendSwitch::fall_back(const Error& error) {
  if (active_ == cpu_.get() || !is_fallback_error(error)) return false;
  fallback_reason_ = std::string(active_->name()) + " failed: " + error.to_string();
  vkn::log(LogLevel::warn, "sampler: {}; continuing on the CPU", fallback_reason_);
  active_->discard_held();
  active_ = cpu_.get();
  return true;
}

Result<void> BackendSwitch::advance(std::vector<ChainState>& states, const AdvanceRequest& request,
                                    AdvanceOutput& out) {
  if (request.hold_output) return advance_held(states, request, out);
  if (active_ == cpu_.get()) return active_->advance(states, request, out);
  // Copy-assigning into the kept copy reuses its vectors' storage: no allocation per call.
  saved_.resize(states.size());
  std::copy(states.begin(), states.end(), saved_.begin());
  auto r = active_->advance(states, request, out);
  if (r || !fall_back(r.error())) return r;
  std::copy(saved_.begin(), saved_.end(), states.begin());
  return active_->advance(states, request, out);
}

Result<void> BackendSwitch::advance_held(std::vector<ChainState>& states, const AdvanceRequest& request,
                                         AdvanceOutput& out) {
  if (!active_->can_hold_output()) return run_on_cpu_and_keep(states, request);
  if (held_calls_.empty()) {  // the start of the held range
    const auto t0 = std::chrono::steady_clock::now();
    held_start_.save(states, pool_.get());
    if (log_enabled(LogLevel::debug)) {
      vkn::log(LogLevel::debug, "sampler: states kept for the held range in {:.2f} ms",
               std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
  }
  auto r = active_->advance(states, request, out);
  if (r) {
    held_calls_.push_back({request, {request.steps.begin(), request.steps.end()}});
    held_calls_.back().request.steps = held_calls_.back().steps;
    return r;
  }
  if (!fall_back(r.error())) {
    active_->discard_held();
    held_calls_.clear();
    return r;
  }
  held_start_.restore(states);
  return replay_on_cpu(states, &request);
}

Result<void> BackendSwitch::run_on_cpu_and_keep(std::vector<ChainState>& states, const AdvanceRequest& request) {
  AdvanceRequest plain = request;
  plain.hold_output = false;
  AdvanceOutput out;
  if (auto r = cpu_->advance(states, plain, out); !r) return r;
  append(cpu_held_, std::move(out));
  return {};
}

Result<void> BackendSwitch::replay_on_cpu(std::vector<ChainState>& states, const AdvanceRequest* current) {
  const std::vector<HeldCall> calls = std::move(held_calls_);
  held_calls_.clear();
  for (const HeldCall& call : calls) {
    if (auto r = run_on_cpu_and_keep(states, call.request); !r) return r;
  }
  if (current != nullptr) return run_on_cpu_and_keep(states, *current);
  return {};
}

Result<void> BackendSwitch::collect(std::vector<ChainState>& states, AdvanceOutput& out) {
  if (!held_calls_.empty()) {
    auto r = active_->collect(out);
    if (r) {
      held_calls_.clear();
      return r;
    }
    if (!fall_back(r.error())) {
      held_calls_.clear();
      return r;
    }
    held_start_.restore(states);
    if (auto rr = replay_on_cpu(states, nullptr); !rr) return rr;
  }
  out.stats = std::move(cpu_held_.stats);
  out.draws = std::move(cpu_held_.draws);
  cpu_held_ = {};
  return {};
}

void BackendSwitch::reserve_held(size_t chains, size_t dimension, size_t iterations, size_t calls, bool draws) {
  if (!active_->can_hold_output()) return;
  held_start_.prepare(chains, dimension);
  // Many chains: copying the held range's start on one core would take milliseconds.
  if (chains * dimension >= (1u << 18) && std::thread::hardware_concurrency() >= 8 && pool_ == nullptr) {
    if (auto p = ThreadPool::create(8); p) pool_ = std::move(*p);
  }
  auto r = active_->reserve_held(chains, iterations, calls, draws);
  if (!r && !fall_back(r.error())) {
    vkn::log(LogLevel::debug, "sampler: no room reserved for held output ({})", r.error().to_string());
  }
}

Result<TrajectoryBatch> BackendSwitch::trajectories(const TrajectoryRequest& request) {
  auto r = active_->trajectories(request);
  if (r || !fall_back(r.error())) return r;
  return active_->trajectories(request);
}

}  // namespace vkn::sampler::detail
