// The sampler driver: warm-up with adaptation, then sampling in blocks, over a BackendSwitch.
#include "vknode/sampler/hmc.h"

#include <chrono>
#include <cmath>
#include <memory>
#include <numeric>

#include "sampler/adaptation.h"
#include "sampler/chain_collective.h"
#include "sampler/hmc_init.h"
#include "sampler/thread_pool.h"
#include "util/huge_pages.h"
#include "util/log.h"
#include "util/strformat.h"

namespace vkn::sampler {
namespace {

using Clock = std::chrono::steady_clock;

// Draws are recorded by groups of chains on a thread pool once a block holds this many
// values (below it, starting threads costs more than it saves).
constexpr size_t kChainsPerRecordGroup = 64;
constexpr uint64_t kParallelRecordValues = 1u << 20;
// Output held by the backend between collects (f32 draws and stats): well within a GPU's memory.
constexpr uint64_t kMaxHeldBytes = 256ull << 20;
// 4-byte words of stats per chain and iteration, beside the draw's d.
constexpr uint64_t kHeldStatWords = 6;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Warm-up state that lives only for the adaptation phase.
struct Adaptation {
  std::vector<detail::DualAveraging> dual;
  detail::WindowSchedule windows;
  std::vector<detail::WelfordVariance> variance;
  detail::ChEES chees;
};

// Ends a slow window: new inverse metrics from the variance estimates.
Result<void> update_metrics(const SamplerConfig& config, detail::ChainCollective& group, Adaptation& a,
                            std::vector<ChainState>& states) {
  if (config.metric_pooled) {
    auto pooled = group.pooled(a.variance);
    if (!pooled) return fail(pooled.error());
    const auto var = pooled->regularized_variance();
    for (auto& s : states) s.inv_metric = var;
  } else {
    for (size_t c = 0; c < states.size(); ++c) states[c].inv_metric = a.variance[c].regularized_variance();
  }
  for (auto& v : a.variance) v.restart();
  return {};
}

// Stan's metric windows: feeds the variance estimates, and at a window's end sets the new
// metrics and restarts step-size adaptation around the heuristic's new step sizes.
Result<void> adapt_metric(detail::BackendSwitch& backend, const SamplerConfig& config, detail::ChainCollective& group,
                          Adaptation& a, uint32_t t, std::vector<ChainState>& states) {
  if (a.windows.in_window()) {
    for (size_t c = 0; c < states.size(); ++c) a.variance[c].add(states[c].q);
  }
  if (a.windows.end_of_window()) {
    a.windows.compute_next_window();
    if (auto r = update_metrics(config, group, a, states); !r) return r;
    if (config.adapt_step_size) {
      if (auto r = detail::init_step_sizes(backend, philox_key(config.seed), t + 1, states); !r) return r;
      for (size_t c = 0; c < states.size(); ++c) a.dual[c].restart(states[c].step_size);
    }
  }
  a.windows.next();
  return {};
}

Result<void> finish_step_sizes(const SamplerConfig& config, detail::ChainCollective& group, Adaptation& a,
                               std::vector<ChainState>& states) {
  if (!config.adapt_step_size || config.warmup == 0) return {};
  for (size_t c = 0; c < states.size(); ++c) states[c].step_size = a.dual[c].final_step_size();
  if (!config.step_size_pooled) return {};
  auto mean = group.mean_step_size(states);
  if (!mean) return fail(mean.error());
  for (auto& s : states) s.step_size = *mean;
  return {};
}

Result<void> warmup(detail::BackendSwitch& backend, const SamplerConfig& config, detail::ChainCollective& group,
                    std::vector<ChainState>& states, SampleResult& result) {
  const size_t chains = states.size(), d = states[0].q.size();
  const PhiloxKey key = philox_key(config.seed);
  if (config.adapt_step_size && config.warmup > 0) {
    if (auto r = detail::init_step_sizes(backend, key, 0, states); !r) return r;
  }
  // Only ChEES needs the mean step size during warm-up (it sets K for every chain of the group).
  auto eps = group.mean_step_size(states);
  if (!eps) return fail(eps.error());
  Adaptation a{std::vector<detail::DualAveraging>(chains, detail::DualAveraging(config.target_accept)),
               detail::WindowSchedule(config.warmup), std::vector<detail::WelfordVariance>(chains, detail::WelfordVariance(d)),
               detail::ChEES(config.steps * *eps)};
  for (size_t c = 0; c < chains; ++c) a.dual[c].restart(states[c].step_size);

  AdvanceOutput out;
  std::vector<double> q_before, accept(chains), time(chains);
  for (uint32_t t = 0; t < config.warmup; ++t) {
    const uint32_t k = config.adapt_steps ? a.chees.steps(t, *eps, config.max_steps) : config.steps;
    if (config.adapt_steps) {
      q_before.resize(chains * d);
      for (size_t c = 0; c < chains; ++c) {
        std::copy(states[c].q.begin(), states[c].q.end(), &q_before[c * d]);
      }
    }
    const uint32_t steps[] = {k};
    const AdvanceRequest request{config.seed, steps, config.step_size_jitter, false, config.adapt_steps};
    if (auto r = backend.advance(states, request, out); !r) return r;
    for (size_t c = 0; c < chains; ++c) {
      const TransitionStats& st = out.stats[c];
      result.gradient_evaluations += st.n_leapfrog;
      accept[c] = st.accept_stat;
      time[c] = k * st.step_size;
      if (config.adapt_step_size) states[c].step_size = a.dual[c].learn(st.accept_stat);
    }
    if (config.adapt_metric && a.windows.enabled()) {
      if (auto r = adapt_metric(backend, config, group, a, t, states); !r) return r;
    }
    if (config.adapt_steps) {
      if (eps = group.mean_step_size(states); !eps) return fail(eps.error());
      auto r = a.chees.update(chains, d, q_before, out.proposal_q, out.proposal_velocity, accept, time, *eps,
                              std::max(*eps, config.max_steps * *eps), group.sum_function());
      if (!r) return r;
    }
    if (config.progress) config.progress(t + 1, config.warmup + config.draws);
  }
  if (auto r = finish_step_sizes(config, group, a, states); !r) return r;
  if (eps = group.mean_step_size(states); !eps) return fail(eps.error());
  result.trajectory_length = config.adapt_steps ? a.chees.length() : config.steps * *eps;
  return {};
}

// Copies the output of n iterations (draws first .. first + n - 1 of every chain) into the
// result. Recording is per chain and independent: with thousands of chains on a GPU it is most
// of the host's work, so groups of chains go to a thread pool (started at the first large
// block).
class DrawRecorder {
 public:
  DrawRecorder(const Model& model, const SamplerConfig& config, SampleResult& result)
      : model_(model), config_(config), result_(result) {}

  void record(const AdvanceOutput& out, uint32_t first, uint32_t n) {
    const size_t chains = result_.chains, d = model_.dimension(), np = result_.num_params();
    const bool large = uint64_t{chains} * n * d >= kParallelRecordValues;
    if (large && pool_ == nullptr) {
      auto p = detail::ThreadPool::create(config_.threads);
      if (p) pool_ = std::move(*p);  // without threads, recording runs on this one
    }
    const size_t groups = (chains + kChainsPerRecordGroup - 1) / kChainsPerRecordGroup;
    std::vector<uint64_t> evaluations(groups, 0);
    auto record_group = [&](size_t g) {
      const size_t c0 = g * kChainsPerRecordGroup, c1 = std::min(chains, c0 + kChainsPerRecordGroup);
      for (size_t c = c0; c < c1; ++c) {
        for (uint32_t i = 0; i < n; ++i) {
          const TransitionStats& st = out.stats[i * chains + c];
          const size_t at = result_.index(c, first + i);
          result_.lp[at] = st.lp;
          result_.accept_stat[at] = st.accept_stat;
          result_.step_size[at] = st.step_size;
          result_.energy[at] = st.energy;
          result_.n_leapfrog[at] = st.n_leapfrog;
          result_.divergent[at] = st.divergent ? 1 : 0;
          evaluations[g] += st.n_leapfrog;
          const auto values = model_.constrain(std::span<const double>(&out.draws[(i * chains + c) * d], d));
          std::copy(values.begin(), values.end(), &result_.values[at * np]);
        }
      }
    };
    if (pool_ != nullptr && groups > 1 && large) {
      pool_->parallel_for(groups, record_group);
    } else {
      for (size_t g = 0; g < groups; ++g) record_group(g);
    }
    for (uint64_t e : evaluations) result_.gradient_evaluations += e;
  }
  // Joins the threads (a large block's recording started them).
  void release_threads() { pool_.reset(); }

 private:
  const Model& model_;
  const SamplerConfig& config_;
  SampleResult& result_;
  std::unique_ptr<detail::ThreadPool> pool_;
};

// Bytes a backend holds for `draws` iterations of `chains` chains.
uint64_t held_bytes(size_t chains, size_t d, uint64_t draws) { return uint64_t{chains} * draws * (d + kHeldStatWords) * 4; }

// How many sampling blocks the first held range takes (draw_samples collects when the next
// block would pass kMaxHeldBytes).
size_t blocks_per_held_range(const SamplerConfig& config, size_t d) {
  size_t blocks = 0;
  for (uint64_t held = 0; held < config.draws; held += config.block_size, ++blocks) {
    const uint64_t n = std::min<uint64_t>(config.block_size, config.draws - held);
    if (blocks > 0 && held_bytes(config.chains, d, held + n) > kMaxHeldBytes) break;
  }
  return blocks;
}

// Sampling: blocks of block_size iterations. Where the backend can hold output (a GPU
// backend: draws and stats stay in device memory), blocks run back to back without their
// output crossing to the host, and the held output is collected and recorded once it reaches
// kMaxHeldBytes and at the end (that time is SampleResult::readback_seconds).
Result<void> draw_samples(detail::BackendSwitch& backend, const Model& model, const SamplerConfig& config,
                          detail::ChainCollective& group, std::vector<ChainState>& states, SampleResult& result) {
  const size_t chains = states.size(), d = model.dimension();
  const detail::ChEES jitter(std::max(result.trajectory_length, 1e-300));
  DrawRecorder recorder(model, config, result);
  // Step sizes are fixed from here on: one mean for the whole group.
  auto eps = group.mean_step_size(states);
  if (!eps) return fail(eps.error());
  const bool hold = backend.holds_output();
  uint32_t recorded = 0;  // draws recorded; with hold, [recorded, done) are held
  AdvanceOutput out;
  auto collect = [&](uint32_t done) -> Result<void> {
    const auto t0 = Clock::now();
    if (auto r = backend.collect(states, out); !r) return r;
    const auto t1 = Clock::now();
    recorder.record(out, recorded, done - recorded);
    // Freeing the fetched output (hundreds of MB for large runs) and the recording threads is
    // part of the read-back.
    out = {};
    recorder.release_threads();
    result.readback_seconds += seconds_since(t0);
    if (log_enabled(LogLevel::debug)) {
      log(LogLevel::debug, "sampler: {} held draws x {} chains: collect {:.2f} ms, recording {:.2f} ms", done - recorded,
          chains, std::chrono::duration<double, std::milli>(t1 - t0).count(), seconds_since(t1) * 1e3);
    }
    recorded = done;
    return {};
  };
  for (uint32_t done = 0; done < config.draws;) {
    const uint32_t n = std::min(config.block_size, config.draws - done);
    if (hold && done > recorded && held_bytes(chains, d, done - recorded + n) > kMaxHeldBytes) {
      if (auto r = collect(done); !r) return r;
    }
    std::vector<uint32_t> steps(n, config.steps);
    if (config.adapt_steps) {
      for (uint32_t i = 0; i < n; ++i) {
        steps[i] = jitter.steps(config.warmup + done + i, *eps, config.max_steps);
      }
    }
    AdvanceRequest request{config.seed, steps, config.step_size_jitter, true, false};
    request.hold_output = hold;
    const auto t_advance = Clock::now();
    if (auto r = backend.advance(states, request, out); !r) return r;
    const auto t_record = Clock::now();
    if (!hold) {
      recorder.record(out, done, n);
      recorded = done + n;
    }
    if (log_enabled(LogLevel::debug)) {
      const double advance_ms = std::chrono::duration<double, std::milli>(t_record - t_advance).count();
      log(LogLevel::debug, "sampler: {} draws x {} chains: advance {:.2f} ms{}, recording {:.2f} ms", n, chains,
          advance_ms, hold ? " (output held)" : "", seconds_since(t_record) * 1e3);
    }
    done += n;
    if (config.progress) config.progress(config.warmup + done, config.warmup + config.draws);
  }
  if (recorded < config.draws) return collect(config.draws);
  return {};
}

}  // namespace

std::vector<double> SampleResult::param_draws(size_t param) const {
  std::vector<double> out(size_t{chains} * draws);
  for (size_t c = 0; c < chains; ++c) {
    for (size_t i = 0; i < draws; ++i) out[c * draws + i] = value(c, i, param);
  }
  return out;
}

Result<void> validate(const SamplerConfig& config, const Model& model) {
  auto bad = [](std::string_view field, std::string_view why) {
    return fail(Errc::invalid_argument, vkn::format("sampler config: {} {}", field, why));
  };
  if (model.dimension() == 0) return bad("model", "has dimension 0");
  if (config.chains == 0) return bad("chains", "must be at least 1");
  if (config.draws == 0) return bad("draws", "must be at least 1");
  if (config.steps == 0) return bad("steps", "must be at least 1");
  if (config.max_steps == 0) return bad("max_steps", "must be at least 1");
  if (config.block_size == 0) return bad("block_size", "must be at least 1");
  if (!(config.step_size > 0) || !std::isfinite(config.step_size)) return bad("step_size", "must be positive");
  if (!(config.target_accept > 0 && config.target_accept < 1)) return bad("target_accept", "must be in (0, 1)");
  if (!(config.step_size_jitter >= 0 && config.step_size_jitter < 1)) return bad("step_size_jitter", "must be in [0, 1)");
  if (!(config.init_radius >= 0) || !std::isfinite(config.init_radius)) return bad("init_radius", "must be >= 0");
  if (!config.init.empty() && config.init.size() != model.dimension()) {
    return bad("init", vkn::format("has {} values for dimension {}", config.init.size(), model.dimension()));
  }
  const uint64_t total_chains = config.group ? config.group->total_chains() : config.chains;
  if (uint64_t{config.first_chain} + config.chains > total_chains) {
    return bad("first_chain", vkn::format("{} + {} chains exceeds the group's {} chains", config.first_chain,
                                          config.chains, total_chains));
  }
  if (config.adapt_steps && total_chains < 2) return bad("adapt_steps", "(ChEES) needs at least 2 chains");
  if (uint64_t{config.warmup} + config.draws > 0xFFFFFFFFull) return bad("warmup + draws", "must fit 32 bits");
  return {};
}

Result<SampleResult> sample(const Model& model, const SamplerConfig& config, LeapfrogBackend* preferred) {
  if (auto r = validate(config, model); !r) return fail(r.error());
  auto backend = detail::BackendSwitch::create(model, config.threads, preferred);
  if (!backend) return fail(backend.error());
  const size_t d = model.dimension(), chains = config.chains;

  SampleResult result;
  result.chains = config.chains;
  result.draws = config.draws;
  result.warmup = config.warmup;
  result.steps = config.steps;
  result.param_names = model.param_names();
  const size_t total = chains * config.draws;
  resize_with_huge_pages(result.values, total * result.num_params());
  result.lp.resize(total);
  result.accept_stat.resize(total);
  result.step_size.resize(total);
  result.energy.resize(total);
  result.n_leapfrog.resize(total);
  result.divergent.resize(total);

  std::vector<ChainState> states(chains);
  for (size_t c = 0; c < chains; ++c) {
    states[c].q.assign(d, 0.0);
    states[c].grad.assign(d, 0.0);
    states[c].inv_metric.assign(d, 1.0);
    states[c].step_size = config.step_size;
    states[c].chain = config.first_chain + static_cast<uint32_t>(c);
  }
  result.first_chain = config.first_chain;
  detail::ChainCollective group(config.group);
  // Device memory for the held draws is allocated with the result's host arrays, before the clocks.
  backend->reserve_held(chains, d, std::min(config.block_size, config.draws), blocks_per_held_range(config, d), true);
  const auto start = Clock::now();
  if (auto r = detail::initialize_chains(*backend, config, states); !r) return fail(r.error());
  if (auto r = warmup(*backend, config, group, states, result); !r) return fail(r.error());
  result.warmup_seconds = seconds_since(start);
  for (const auto& s : states) {
    result.adapted_step_size.push_back(s.step_size);
    result.inv_metric.push_back(s.inv_metric);
  }
  const auto sampling_start = Clock::now();
  if (auto r = draw_samples(*backend, model, config, group, states, result); !r) return fail(r.error());
  result.sampling_seconds = seconds_since(sampling_start);
  result.backend = std::string(backend->active_name());
  result.fallback_reason = backend->fallback_reason();
  return result;
}

}  // namespace vkn::sampler
