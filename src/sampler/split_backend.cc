#include "vknode/sampler/split_backend.h"

#include <algorithm>
#include <thread>

#include "util/log.h"

namespace vkn::sampler {

struct SplitLeapfrogBackend::Part {
  std::unique_ptr<LeapfrogBackend> backend;
  bool retired = false;  // runs on the CPU from now on
  std::vector<ChainState> saved;  // its share before its last call, to hand to the CPU
};

namespace {

// Part i's chains: [begin(i), begin(i + 1)).
size_t begin_of(size_t part, size_t parts, size_t chains) { return part * chains / parts; }

// Runs `work(i)` for every part at once: the parts still on their own backend on threads of
// their own, the retired ones one after another on this thread (they share one CPU backend).
template <typename Work>
void run_parts(const std::vector<SplitLeapfrogBackend::Part>& parts, Work&& work) {
  std::vector<std::jthread> threads;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (!parts[i].retired) threads.emplace_back([&work, i] { work(i); });
  }
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].retired) work(i);
  }
}

}  // namespace

Result<std::unique_ptr<SplitLeapfrogBackend>> SplitLeapfrogBackend::create(
    const Model& model, std::vector<std::unique_ptr<LeapfrogBackend>> parts, unsigned cpu_threads) {
  if (parts.empty()) return fail(Errc::invalid_argument, "a split backend needs at least one part");
  for (const auto& p : parts) {
    if (!p) return fail(Errc::invalid_argument, "a split backend's part is null");
  }
  auto cpu = CpuLeapfrogBackend::create(model, cpu_threads);
  if (!cpu) return fail(cpu.error());
  std::vector<Part> owned;
  for (auto& p : parts) owned.push_back(Part{std::move(p), false});
  return std::unique_ptr<SplitLeapfrogBackend>(new SplitLeapfrogBackend(std::move(owned), std::move(*cpu)));
}

SplitLeapfrogBackend::SplitLeapfrogBackend(std::vector<Part> parts, std::unique_ptr<CpuLeapfrogBackend> cpu)
    : parts_(std::move(parts)), cpu_(std::move(cpu)) {
  rename();
}

SplitLeapfrogBackend::~SplitLeapfrogBackend() = default;

size_t SplitLeapfrogBackend::parts() const { return parts_.size(); }

void SplitLeapfrogBackend::rename() {
  name_ = "split[";
  for (size_t i = 0; i < parts_.size(); ++i) {
    if (i) name_ += ", ";
    name_ += parts_[i].retired ? std::string(cpu_->name()) : std::string(parts_[i].backend->name());
  }
  name_ += "]";
}

Result<void> SplitLeapfrogBackend::advance(std::span<ChainState> states, const AdvanceRequest& request,
                                           AdvanceOutput& out) {
  const size_t chains = states.size(), n = parts_.size(), iterations = request.steps.size();
  const size_t d = chains ? states[0].q.size() : 0;
  std::vector<AdvanceOutput> outs(n);
  std::vector<Result<void>> results(n);
  auto slice = [&](size_t i) {
    const size_t b = begin_of(i, n, chains);
    return states.subspan(b, begin_of(i + 1, n, chains) - b);
  };
  run_parts(parts_, [&](size_t i) {
    if (slice(i).empty()) return;
    // Each part copies its own share on its own thread: for many chains the copies are a large
    // part of the host's work per call.
    if (!parts_[i].retired) {
      parts_[i].saved.resize(slice(i).size());  // storage reused from call to call
      std::copy(slice(i).begin(), slice(i).end(), parts_[i].saved.begin());
    }
    LeapfrogBackend& b = parts_[i].retired ? *cpu_ : *parts_[i].backend;
    results[i] = b.advance(slice(i), request, outs[i]);
  });
  for (size_t i = 0; i < n; ++i) {
    if (results[i] || parts_[i].retired || !is_fallback_error(results[i].error())) continue;
    fallback_reasons_.push_back(std::string(parts_[i].backend->name()) + " failed: " + results[i].error().to_string());
    vkn::log(LogLevel::warn, "sampler: {}; its chains continue on the CPU", fallback_reasons_.back());
    parts_[i].retired = true;
    rename();
    std::copy(parts_[i].saved.begin(), parts_[i].saved.end(), slice(i).begin());
    results[i] = cpu_->advance(slice(i), request, outs[i]);
  }
  for (auto& r : results) {
    if (!r) return r;
  }
  out.stats.assign(iterations * chains, {});
  out.draws.assign(request.keep_draws ? iterations * chains * d : 0, 0.0);
  out.proposal_q.clear();
  out.proposal_velocity.clear();
  for (size_t i = 0; i < n; ++i) {
    const size_t b = begin_of(i, n, chains), m = slice(i).size();
    for (size_t it = 0; it < iterations && m > 0; ++it) {
      std::copy_n(&outs[i].stats[it * m], m, &out.stats[it * chains + b]);
      if (request.keep_draws) std::copy_n(&outs[i].draws[it * m * d], m * d, &out.draws[(it * chains + b) * d]);
    }
    if (request.keep_proposals) {
      out.proposal_q.insert(out.proposal_q.end(), outs[i].proposal_q.begin(), outs[i].proposal_q.end());
      out.proposal_velocity.insert(out.proposal_velocity.end(), outs[i].proposal_velocity.begin(),
                                   outs[i].proposal_velocity.end());
    }
  }
  return {};
}

Result<TrajectoryBatch> SplitLeapfrogBackend::trajectories(const TrajectoryRequest& request) {
  const size_t chains = request.chains, n = parts_.size();
  if (chains == 0 || request.q0.size() % chains != 0) {
    return fail(Errc::invalid_argument, "trajectory request: q0 is not [chain][d]");
  }
  const size_t d = request.q0.size() / chains;
  const bool shared_metric = request.inv_metric.size() == d;
  if (request.p0.size() != chains * d || request.step_size.size() != chains ||
      (!shared_metric && request.inv_metric.size() != chains * d)) {
    return fail(Errc::invalid_argument, "trajectory request: p0, step_size or inv_metric has the wrong size");
  }
  std::vector<TrajectoryRequest> requests(n, request);
  for (size_t i = 0; i < n; ++i) {
    const size_t b = begin_of(i, n, chains), m = begin_of(i + 1, n, chains) - b;
    TrajectoryRequest& r = requests[i];
    r.chains = m;
    r.q0 = request.q0.subspan(b * d, m * d);
    r.p0 = request.p0.subspan(b * d, m * d);
    r.step_size = request.step_size.subspan(b, m);
    if (!shared_metric) r.inv_metric = request.inv_metric.subspan(b * d, m * d);
  }
  std::vector<Result<TrajectoryBatch>> results(n, TrajectoryBatch{});
  run_parts(parts_, [&](size_t i) {
    if (requests[i].chains == 0) return;
    LeapfrogBackend& b = parts_[i].retired ? *cpu_ : *parts_[i].backend;
    results[i] = b.trajectories(requests[i]);
  });
  TrajectoryBatch all{0, d, request.steps, {}, {}, {}, {}};
  for (size_t i = 0; i < n; ++i) {
    if (requests[i].chains == 0) continue;
    if (!results[i] && !parts_[i].retired && is_fallback_error(results[i].error())) {
      fallback_reasons_.push_back(std::string(parts_[i].backend->name()) + " failed: " +
                                  results[i].error().to_string());
      vkn::log(LogLevel::warn, "sampler: {}; its chains continue on the CPU", fallback_reasons_.back());
      parts_[i].retired = true;
      rename();
      results[i] = cpu_->trajectories(requests[i]);
    }
    if (!results[i]) return fail(results[i].error());
    const TrajectoryBatch& part = *results[i];
    all.chains += part.chains;
    all.q.insert(all.q.end(), part.q.begin(), part.q.end());
    all.p.insert(all.p.end(), part.p.begin(), part.p.end());
    all.grad.insert(all.grad.end(), part.grad.begin(), part.grad.end());
    all.lp.insert(all.lp.end(), part.lp.begin(), part.lp.end());
  }
  return all;
}

}  // namespace vkn::sampler
