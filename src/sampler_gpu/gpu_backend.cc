// GpuLeapfrogBackend: one node Program per advance() (upload states, dispatches, download in
// one block); see gpu_backend.h and docs/sampler.md.
#include "vknode/sampler/gpu_backend.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <thread>

#include "gpu/shader_compiler.h"
#include "sampler/philox.h"
#include "sampler/thread_pool.h"
#include "sampler_gpu/kernel_source.h"
#include "util/huge_pages.h"
#include "util/log.h"
#include "util/strformat.h"

namespace vkn::sampler {

using detail::kStatWords;

namespace {

// A Program's transfers stay well under kMaxProgramTransferBytes.
constexpr uint64_t kMaxDownloadBytes = 256ull << 20;
constexpr uint32_t kNoProposal = 0xffffffffu;
constexpr size_t kTransposeTile = 64;
// Loop iterations one shader invocation may run per dispatch on a CPU device: llvmpipe
// (lavapipe) stops counting at 65535 back-edges of an outermost loop's body (a guard against
// endless loops) and then leaves the loops, so trajectories would silently end early.
constexpr uint64_t kCpuDeviceLoopBudget = 50000;
using Clock = std::chrono::steady_clock;

template <typename T>
std::vector<std::byte> to_bytes(const std::vector<T>& v) {
  std::vector<std::byte> out(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(out.data(), v.data(), out.size());
  return out;
}

template <typename T>
std::vector<std::byte> push_bytes(const T& push) {
  std::vector<std::byte> out(sizeof(T));
  std::memcpy(out.data(), &push, sizeof(T));
  return out;
}

// Reads element i of a REAL array held in bytes.
double real_at(const std::vector<std::byte>& bytes, size_t i, bool f64) {
  if (f64) {
    double v;
    std::memcpy(&v, bytes.data() + i * 8, 8);
    return v;
  }
  float v;
  std::memcpy(&v, bytes.data() + i * 4, 4);
  return v;
}

// A REAL array being filled on the host.
class RealArray {
 public:
  RealArray(size_t n, bool f64) : f64_(f64), bytes_(n * (f64 ? 8 : 4)) {}
  void set(size_t i, double v) {
    if (f64_) {
      std::memcpy(bytes_.data() + i * 8, &v, 8);
    } else {
      const float f = static_cast<float>(v);
      std::memcpy(bytes_.data() + i * 4, &f, 4);
    }
  }
  std::vector<std::byte> take() { return std::move(bytes_); }

 private:
  bool f64_;
  std::vector<std::byte> bytes_;
};

std::string unique_prefix() {
  static std::atomic<uint32_t> counter{0};
  return vkn::format("sampler.{}.{}.", ::getpid(), counter++);
}

}  // namespace

struct GpuLeapfrogBackend::Impl {
  const Model& model;
  GpuBackendOptions options;
  std::shared_ptr<NodeTarget> target;  // never null
  std::string prefix;
  std::string name;
  size_t d = 0;
  bool f64 = false;
  KernelId transition{}, trajectory{};
  uint32_t chains_per_group = 1;                  // of the transition kernel
  // The transition kernel's per-coordinate buffers (q, grad, metric, draws, proposals) are
  // [chain][i] (the separable kernel: a chain's threads read contiguous memory) instead of
  // [i][chain] (one invocation per chain, or per chain and row slice: chains contiguous).
  bool chain_major = false;
  // On CPU devices (kCpuDeviceLoopBudget): an upper bound of the loop iterations of one
  // leapfrog step (the model's loops over coordinates and data rows); 0 on GPUs.
  uint64_t loop_trips_per_step = 0;
  uint64_t max_buffer_bytes = kMaxDownloadBytes;  // per binding: also maxStorageBufferRange
  std::vector<std::string> data_names;            // registry names, binding kDataBindingBase + i
  std::map<std::string, uint64_t> sizes;  // registry buffers of this backend and their bytes
  GpuBackendStats stats;
  // Output of advance() calls with hold_output, in registry buffers "held.<k>.stats" and
  // "held.<k>.draws" (k: the block's index since the last collect()).
  struct HeldBlock {
    size_t chains = 0, iterations = 0;
    bool draws = false;
  };
  std::vector<HeldBlock> held;
  // What the device's "q", "grad" and "metric" buffers hold, as the host has it ([chain][i]):
  // positions and gradients as last downloaded, inverse metrics as last uploaded (see
  // compare_with_device). Empty when a buffer may not hold them.
  std::vector<double> q_on_device, grad_on_device, metric_on_device;
  // Threads for the host's conversions of large blocks, started at the first one.
  mutable std::unique_ptr<detail::ThreadPool> pool;

  // fn(0) ... fn(n - 1), on the pool's threads when `parallel` (large blocks) and the machine
  // has at least 8 cores, else inline: on small machines the driver's and the node's threads
  // already compete for the cores, and measured conversions got slower.
  void parallel_for(size_t n, bool parallel, const std::function<void(size_t)>& fn) const {
    if (parallel && pool == nullptr && std::thread::hardware_concurrency() >= 8) {
      if (auto p = detail::ThreadPool::create(0); p) pool = std::move(*p);
    }
    if (!parallel || pool == nullptr || n < 2) {
      for (size_t i = 0; i < n; ++i) fn(i);
      return;
    }
    pool->parallel_for(n, fn);
  }

  size_t real_bytes() const { return f64 ? 8 : 4; }
  // Index of coordinate i of chain c in a per-coordinate buffer of C chains.
  size_t at(size_t i, size_t c, size_t C) const { return chain_major ? c * d + i : i * C + c; }
  // fn(i, c) for every coordinate of chains [c0, c1), in the order that walks a per-coordinate
  // buffer sequentially.
  template <typename Fn>
  void visit_tile(size_t c0, size_t c1, Fn&& fn) const {
    if (chain_major) {
      for (size_t c = c0; c < c1; ++c) {
        for (size_t i = 0; i < d; ++i) fn(i, c);
      }
      return;
    }
    for (size_t i = 0; i < d; ++i) {
      for (size_t c = c0; c < c1; ++c) fn(i, c);
    }
  }
  std::string buf(std::string_view what) const { return prefix + std::string(what); }
  // The registry buffers of held block k (since the last collect()).
  std::string held_stats(size_t k) const { return buf(vkn::format("held.{}.stats", k)); }
  std::string held_draws(size_t k) const { return buf(vkn::format("held.{}.draws", k)); }
  // fn(c0, c1) for the tiles of kTransposeTile chains of C, on the pool for many values.
  void for_each_tile(size_t C, const std::function<void(size_t, size_t)>& fn) const {
    parallel_for((C + kTransposeTile - 1) / kTransposeTile, C * d >= (1u << 18), [&](size_t tile) {
      const size_t c0 = tile * kTransposeTile;
      fn(c0, std::min(C, c0 + kTransposeTile));
    });
  }

  // The buffer exists with at least `bytes`. After an error the sizes are forgotten, so the
  // buffers are re-created (a device reset loses non-durable buffers).
  Result<void> ensure(const std::string& buffer_name, uint64_t bytes) {
    bytes = std::max<uint64_t>(bytes, 16);
    auto it = sizes.find(buffer_name);
    if (it != sizes.end() && it->second >= bytes) return {};
    (void)target->delete_buffer(buffer_name);
    if (buffer_name == buf("metric")) metric_on_device.clear();
    if (buffer_name == buf("q")) q_on_device.clear();
    if (buffer_name == buf("grad")) grad_on_device.clear();
    if (auto r = target->create_buffer(buffer_name, BufferSpec{bytes}); !r) return r;
    sizes[buffer_name] = bytes;
    return {};
  }

  // Which of the device's copies differ from the states: positions and gradients go up only
  // when the host changed them since they came down (a run's consecutive calls do not), the
  // inverse metrics only when they changed since they went up. NaN counts as changed.
  struct Changes {
    bool state = false, metric = false;
  };
  Changes compare_with_device(std::span<const ChainState> states) const {
    const size_t C = states.size();
    std::atomic<bool> state = q_on_device.size() != C * d || grad_on_device.size() != C * d;
    std::atomic<bool> metric = metric_on_device.size() != C * d;
    for_each_tile(C, [&](size_t c0, size_t c1) {
      bool sc = state.load(std::memory_order_relaxed), mc = metric.load(std::memory_order_relaxed);
      for (size_t c = c0; c < c1 && !(sc && mc); ++c) {
        const ChainState& s = states[c];
        sc = sc || !std::equal(s.q.begin(), s.q.end(), q_on_device.begin() + c * d) ||
             !std::equal(s.grad.begin(), s.grad.end(), grad_on_device.begin() + c * d);
        mc = mc || !std::equal(s.inv_metric.begin(), s.inv_metric.end(), metric_on_device.begin() + c * d);
      }
      if (sc) state.store(true, std::memory_order_relaxed);
      if (mc) metric.store(true, std::memory_order_relaxed);
    });
    return {state.load(), metric.load()};
  }

  // Converts and uploads every chain's position and gradient ([chain][i] to the kernel's layout,
  // in tiles of chains so that both sides stay in cache).
  void upload_state(std::span<const ChainState> states, Program& p) {
    const size_t C = states.size();
    RealArray q(d * C, f64), g(d * C, f64);
    for_each_tile(C, [&](size_t c0, size_t c1) {
      visit_tile(c0, c1, [&](size_t i, size_t c) {
        q.set(at(i, c, C), states[c].q[i]);
        g.set(at(i, c, C), states[c].grad[i]);
      });
    });
    p.upload(buf("q"), 0, q.take());
    p.upload(buf("grad"), 0, g.take());
    ++stats.state_uploads;
  }

  // Converts and uploads every chain's inverse metric, and remembers it.
  void upload_metric(std::span<const ChainState> states, Program& p) {
    const size_t C = states.size();
    RealArray metric(d * C, f64);
    metric_on_device.resize(C * d);
    for_each_tile(C, [&](size_t c0, size_t c1) {
      visit_tile(c0, c1, [&](size_t i, size_t c) {
        metric.set(at(i, c, C), states[c].inv_metric[i]);
        metric_on_device[c * d + i] = states[c].inv_metric[i];
      });
    });
    p.upload(buf("metric"), 0, metric.take());
    ++stats.metric_uploads;
  }

  std::vector<NamedBinding> data_bindings() const {
    std::vector<NamedBinding> b;
    for (size_t i = 0; i < data_names.size(); ++i) {
      b.push_back({static_cast<uint32_t>(kDataBindingBase + i), data_names[i], 0, 0});
    }
    return b;
  }

  Result<ProgramResult> run(Program&& p, uint32_t dispatches) {
    auto r = target->exec(std::move(p));
    if (!r) {
      sizes.clear();  // a device reset loses the buffers: re-create them, and the held output is gone
      held.clear();
      metric_on_device.clear();
      q_on_device.clear();
      grad_on_device.clear();
      return fail(r.error());
    }
    ++stats.programs;
    stats.dispatches += dispatches;
    stats.gpu_wait_ms += r->gpu_wait_ms;
    return r;
  }

  Result<void> advance_block(std::span<ChainState> states, const AdvanceRequest& request,
                             std::span<const uint32_t> steps, bool proposals, AdvanceOutput& out,
                             size_t out_first);
  // Iterations per Program (advance() checked that one fits): stats and draws buffers stay
  // within the device's storage-buffer range.
  size_t iterations_per_program(size_t C, bool draws) const {
    const uint64_t per_iter = C * real_bytes() * std::max<uint64_t>(kStatWords, draws ? d : 0);
    return std::max<size_t>(1, max_buffer_bytes / std::max<uint64_t>(1, per_iter));
  }
  // Iterations per dispatch: the option's, and on CPU devices within kCpuDeviceLoopBudget
  // (unsupported when not even one iteration fits).
  Result<size_t> iterations_per_dispatch(std::span<const uint32_t> steps) const {
    const size_t n = options.max_iterations_per_dispatch;
    if (loop_trips_per_step == 0) return n;
    const uint64_t k = *std::max_element(steps.begin(), steps.end());
    if (auto r = check_loop_budget(k, "one iteration of this model"); !r) return fail(r.error());
    return std::min<size_t>(n, kCpuDeviceLoopBudget / loop_iterations(k));
  }
  // Loop iterations of a trajectory of `steps` leapfrog steps on a CPU device (0 on GPUs).
  uint64_t loop_iterations(uint64_t steps) const { return (steps + 2) * loop_trips_per_step; }
  // unsupported when `what` (a trajectory of `steps`) exceeds kCpuDeviceLoopBudget.
  Result<void> check_loop_budget(uint64_t steps, std::string_view what) const {
    if (loop_iterations(steps) <= kCpuDeviceLoopBudget) return {};
    return fail(Errc::unsupported,
                vkn::format("{} runs more shader loop iterations than a CPU Vulkan device (lavapipe) counts", what),
                vkn::format("about {} loop iterations for {} steps; the limit is {}: fewer steps or a GPU",
                            loop_iterations(steps), steps, kCpuDeviceLoopBudget));
  }
  // Downloaded [iters][kStatWords][C] stats and [iters] x per-coordinate draws into `out`
  // from iteration out_first on.
  void read_stats(const std::vector<std::byte>& bytes, size_t C, size_t iters, AdvanceOutput& out,
                  size_t out_first) const;
  void read_draws(const std::vector<std::byte>& bytes, size_t C, size_t iters, AdvanceOutput& out,
                  size_t out_first) const;
};

void GpuLeapfrogBackend::Impl::read_stats(const std::vector<std::byte>& bytes, size_t C,
                                          size_t iters, AdvanceOutput& out,
                                          size_t out_first) const {
  parallel_for(iters, iters * C >= (1u << 16), [&](size_t t) {  // stats in download order
    const size_t base = t * kStatWords * C;
    TransitionStats* row = &out.stats[(out_first + t) * C];
    for (size_t c = 0; c < C; ++c) row[c].lp = real_at(bytes, base + c, f64);
    for (size_t c = 0; c < C; ++c) row[c].step_size = real_at(bytes, base + C + c, f64);
    for (size_t c = 0; c < C; ++c) row[c].accept_stat = real_at(bytes, base + 2 * C + c, f64);
    for (size_t c = 0; c < C; ++c) row[c].energy = real_at(bytes, base + 3 * C + c, f64);
    for (size_t c = 0; c < C; ++c) {
      row[c].n_leapfrog = static_cast<uint32_t>(real_at(bytes, base + 4 * C + c, f64));
      const auto flags = static_cast<uint32_t>(real_at(bytes, base + 5 * C + c, f64));
      row[c].divergent = (flags & 1u) != 0;
      row[c].accepted = (flags & 2u) != 0;
    }
  });
}

void GpuLeapfrogBackend::Impl::read_draws(const std::vector<std::byte>& bytes, size_t C,
                                          size_t iters, AdvanceOutput& out,
                                          size_t out_first) const {
  const bool parallel = iters * C * d >= (1u << 20);
  if (chain_major) {  // already [t][c][i]
    parallel_for(iters, parallel, [&](size_t t) {
      double* block = &out.draws[(out_first + t) * C * d];
      for (size_t k = 0; k < C * d; ++k) block[k] = real_at(bytes, t * C * d + k, f64);
    });
    return;
  }
  // [t][i][c] to [t][c][i], in tiles of chains, iterations in parallel
  parallel_for(iters, parallel, [&](size_t t) {
    double* block = &out.draws[(out_first + t) * C * d];
    for (size_t c0 = 0; c0 < C; c0 += kTransposeTile) {
      const size_t c1 = std::min(C, c0 + kTransposeTile);
      for (size_t i = 0; i < d; ++i) {
        const size_t from = (t * d + i) * C;
        for (size_t c = c0; c < c1; ++c) block[c * d + i] = real_at(bytes, from + c, f64);
      }
    }
  });
}

GpuLeapfrogBackend::GpuLeapfrogBackend(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

GpuLeapfrogBackend::~GpuLeapfrogBackend() {
  for (const auto& [buffer_name, bytes] : impl_->sizes) (void)impl_->target->delete_buffer(buffer_name);
  for (const auto& buffer_name : impl_->data_names) (void)impl_->target->delete_buffer(buffer_name);
}

std::string_view GpuLeapfrogBackend::name() const { return impl_->name; }
const GpuBackendStats& GpuLeapfrogBackend::stats() const { return impl_->stats; }

std::string GpuLeapfrogBackend::transition_glsl(const Model& model, Precision precision,
                                                uint32_t workgroup_size) {
  return detail::transition_source(model, precision, workgroup_size);
}
std::string GpuLeapfrogBackend::trajectory_glsl(const Model& model, Precision precision,
                                                uint32_t workgroup_size) {
  return detail::trajectory_source(model, precision, workgroup_size);
}

Result<std::unique_ptr<GpuLeapfrogBackend>> GpuLeapfrogBackend::create(
    const Model& model, const GpuBackendOptions& options) {
  if (options.workgroup_size == 0 || options.max_iterations_per_dispatch == 0) {
    return fail(Errc::invalid_argument,
                "workgroup size and iterations per dispatch must be positive");
  }
  auto impl = std::make_unique<Impl>(Impl{model, options});
  impl->prefix = unique_prefix();
  impl->d = model.dimension();
  impl->f64 = options.precision == Precision::f64;
  impl->target = options.target ? options.target : make_in_process_target(options.call);
  auto facts = impl->target->device();
  if (!facts) return fail(facts.error());
  if (impl->f64 && !facts->float64)
    return fail(Errc::unsupported, "f64 sampling needs shaderFloat64", facts->name);
  impl->name = vkn::format("gpu:{}", facts->name);
  // Say where the work goes when it is not an in-process node (e.g. "via daemon (pid 42)").
  if (options.target) impl->name += " via " + options.target->describe();
  impl->max_buffer_bytes = std::min<uint64_t>(kMaxDownloadBytes, facts->max_storage_buffer_range);
  if (facts->cpu) {
    uint64_t trips = impl->d + 8;
    for (const DataBuffer& db : model.data_buffers()) trips += db.values.size() / std::max<size_t>(1, impl->d) + 1;
    impl->loop_trips_per_step = trips;
  }
  if (options.TEST_max_buffer_bytes > 0) {
    impl->max_buffer_bytes = std::min(impl->max_buffer_bytes, options.TEST_max_buffer_bytes);
  }

  // Compile both kernels here (cached beside the node's pipeline cache when the target knows
  // it), then register the SPIR-V.
  ShaderCompileOptions co;
  co.cache_dir = facts->shader_cache_dir;
  const auto t0 = std::chrono::steady_clock::now();
  co.name = "hmc_transition.comp";
  std::string source;
  const bool specialize = options.kernel == KernelChoice::specialized ||
                          (options.kernel == KernelChoice::automatic && !facts->cpu);
  const auto logistic = specialize ? detail::logistic_structure(model) : std::nullopt;
  // Leave a little shared memory to the driver; 48 KiB is what every NVIDIA and AMD part has.
  const size_t shared_limit = std::min<size_t>(facts->shared_memory_bytes, 49152) - 512;
  const detail::LogisticLayout logistic_layout =
      detail::logistic_layout(impl->d, options.precision, shared_limit, facts->max_workgroup_invocations);
  if (specialize && detail::is_separable(model.glsl({options.precision}))) {
    const detail::SeparableLayout layout =
        detail::separable_layout(impl->d, facts->arithmetic_subgroup);
    source = detail::separable_transition_source(model, options.precision, layout);
    impl->chains_per_group = layout.chains_per_group;
    impl->chain_major = true;
    impl->stats.kernel = layout.subgroup_sums ? "separable/subgroup" : "separable";
  } else if (logistic && logistic_layout.slices >= 2) {
    source =
        detail::logistic_transition_source(model, options.precision, logistic_layout, *logistic);
    impl->chains_per_group = logistic_layout.chains_per_group;
    impl->stats.kernel = "logistic";
  } else {
    source = transition_glsl(model, options.precision, options.workgroup_size);
    impl->chains_per_group = options.workgroup_size;
  }
  auto transition = compile_compute_shader(source, co);
  if (!transition) return fail(transition.error());
  co.name = "hmc_trajectory.comp";
  auto trajectory =
      compile_compute_shader(trajectory_glsl(model, options.precision, options.workgroup_size), co);
  if (!trajectory) return fail(trajectory.error());
  impl->stats.compile_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  impl->stats.shader_from_cache = transition->from_cache && trajectory->from_cache;
  auto tid = impl->target->register_kernel(transition->spirv, "hmc_transition");
  if (!tid) return fail(tid.error());
  auto jid = impl->target->register_kernel(trajectory->spirv, "hmc_trajectory");
  if (!jid) return fail(jid.error());
  impl->transition = *tid;
  impl->trajectory = *jid;

  // Data sets: uploaded once, durable so that they survive a device reset. The backend owns
  // them from here on, so that a failed upload deletes what was created.
  std::unique_ptr<GpuLeapfrogBackend> backend(new GpuLeapfrogBackend(std::move(impl)));
  Impl& m = *backend->impl_;
  for (const DataBuffer& db : model.data_buffers()) {
    const std::string name = m.prefix + "data." + db.name;
    BufferSpec spec{std::max<uint64_t>(db.values.size() * 4, 16), ElementType::bytes, {}, true};
    (void)m.target->delete_buffer(name);  // one left by a crashed process with this pid
    if (auto r = m.target->create_buffer(name, spec); !r) return fail(r.error());
    m.data_names.push_back(name);
    if (!db.values.empty()) {
      if (auto r = m.target->write_buffer(name, 0, std::as_bytes(std::span(db.values))); !r)
        return fail(r.error());
    }
  }
  log(LogLevel::info, "sampler: {} {} kernels ready on {} in {:.3f} s{}", m.name, m.stats.kernel,
      m.target->describe(), m.stats.compile_seconds,
      m.stats.shader_from_cache ? " (shader cache)" : "");
  return backend;
}

Result<void> GpuLeapfrogBackend::advance(std::span<ChainState> states,
                                         const AdvanceRequest& request, AdvanceOutput& out) {
  Impl& m = *impl_;
  const size_t d = m.d, chains = states.size(), iters = request.steps.size();
  for (const ChainState& s : states) {
    if (s.q.size() != d || s.grad.size() != d || s.inv_metric.size() != d) {
      return fail(Errc::invalid_argument, "chain state size does not match the model dimension",
                  vkn::format("chain {}", s.chain));
    }
    if (!(s.step_size > 0) || !std::isfinite(s.step_size)) {
      return fail(Errc::invalid_argument, "step size must be finite and positive",
                  vkn::format("chain {}", s.chain));
    }
  }
  if (!(request.step_size_jitter >= 0 && request.step_size_jitter < 1)) {
    return fail(Errc::invalid_argument, "step size jitter must be in [0, 1)");
  }
  const bool hold = request.hold_output;
  out.stats.assign(hold ? 0 : iters * chains, {});
  out.draws.assign(request.keep_draws && !hold ? iters * chains * d : 0, 0.0);
  out.proposal_q.assign(request.keep_proposals ? chains * d : 0, 0.0);
  out.proposal_velocity.assign(request.keep_proposals ? chains * d : 0, 0.0);
  if (chains == 0 || iters == 0) return {};
  // Iterations per Program, so that the stats and draws buffers of one Program stay within the
  // device's storage-buffer range and the downloads bounded.
  const uint64_t per_iter =
      chains * m.real_bytes() * std::max<uint64_t>(kStatWords, request.keep_draws ? d : 0);
  if (per_iter > m.max_buffer_bytes || d * chains * m.real_bytes() > m.max_buffer_bytes) {
    return fail(Errc::invalid_argument,
                "one iteration of these chains exceeds the device's storage-buffer range",
                vkn::format("{} bytes > {}", per_iter, m.max_buffer_bytes));
  }
  const size_t block = m.iterations_per_program(chains, request.keep_draws);
  for (size_t first = 0; first < iters; first += block) {
    const size_t n = std::min(block, iters - first);
    const bool proposals = request.keep_proposals && first + n == iters;
    if (auto r = m.advance_block(states, request, request.steps.subspan(first, n), proposals, out,
                                 first);
        !r) {
      return r;
    }
  }
  return {};
}

Result<void> GpuLeapfrogBackend::Impl::advance_block(std::span<ChainState> states,
                                                     const AdvanceRequest& request,
                                                     std::span<const uint32_t> steps,
                                                     bool proposals, AdvanceOutput& out,
                                                     size_t out_first) {
  const auto t_start = Clock::now();
  const size_t C = states.size(), iters = steps.size(), rb = real_bytes();
  auto per_dispatch_or = iterations_per_dispatch(steps);
  if (!per_dispatch_or) return fail(per_dispatch_or.error());
  const size_t per_dispatch = *per_dispatch_or;
  RealArray scalars(2 * C, f64);
  std::vector<uint32_t> counters(2 * C + iters);
  const Changes changes = compare_with_device(states);
  for (size_t c = 0; c < C; ++c) {
    const ChainState& s = states[c];
    scalars.set(c, s.lp);
    scalars.set(C + c, s.step_size);
    counters[c] = s.chain;
    counters[C + c] = s.iteration;
  }
  std::copy(steps.begin(), steps.end(), counters.begin() + 2 * C);
  const uint64_t state_bytes = d * C * rb, stats_bytes = iters * kStatWords * C * rb,
                 draw_bytes = request.keep_draws ? iters * d * C * rb : 0,
                 prop_bytes = proposals ? 2 * d * C * rb : 0;
  // Held output goes to this block's own buffers, kept until collect().
  const bool hold = request.hold_output;
  const std::string stats_name = hold ? held_stats(held.size()) : buf("stats");
  const std::string draws_name = hold && request.keep_draws ? held_draws(held.size()) : buf("draws");
  const auto t_buffers = Clock::now();
  for (auto [what, bytes] : {std::pair<std::string, uint64_t>{buf("q"), state_bytes},
                             {buf("grad"), state_bytes},
                             {buf("metric"), state_bytes},
                             {buf("scalars"), 2 * C * rb},
                             {buf("counters"), counters.size() * 4},
                             {stats_name, stats_bytes},
                             {draws_name, draw_bytes},
                             {buf("proposals"), prop_bytes}}) {
    if (auto r = ensure(what, bytes); !r) return r;
  }
  const auto t_program = Clock::now();
  Program p;
  // After ensure(): a re-created buffer has forgotten what it held.
  if (changes.state || q_on_device.size() != C * d || grad_on_device.size() != C * d) upload_state(states, p);
  if (changes.metric || metric_on_device.size() != C * d) upload_metric(states, p);
  p.upload(buf("scalars"), 0, scalars.take());
  p.upload(buf("counters"), 0, to_bytes(counters));
  p.barrier();
  std::vector<NamedBinding> bindings = {{detail::kBindQ, buf("q")},
                                        {detail::kBindGrad, buf("grad")},
                                        {detail::kBindMetric, buf("metric")},
                                        {detail::kBindScalars, buf("scalars")},
                                        {detail::kBindCounters, buf("counters")},
                                        {detail::kBindStats, stats_name},
                                        {detail::kBindDraws, draws_name},
                                        {detail::kBindProposals, buf("proposals")}};
  for (auto& b : data_bindings()) bindings.push_back(b);
  const uint32_t groups = static_cast<uint32_t>((C + chains_per_group - 1) / chains_per_group);
  const PhiloxKey key = philox_key(request.seed);
  uint32_t dispatches = 0;
  for (size_t first = 0; first < iters; first += per_dispatch) {
    const size_t n = std::min<size_t>(per_dispatch, iters - first);
    detail::TransitionPush push{key[0],
                                key[1],
                                static_cast<uint32_t>(C),
                                static_cast<uint32_t>(first),
                                static_cast<uint32_t>(n),
                                proposals ? static_cast<uint32_t>(iters - 1) : kNoProposal,
                                request.keep_draws ? 1u : 0u,
                                static_cast<float>(request.step_size_jitter)};
    if (dispatches > 0) p.barrier();
    p.dispatch(transition, bindings, push_bytes(push), {groups, 1, 1});
    ++dispatches;
  }
  p.barrier();
  p.download(buf("q"), 0, state_bytes);
  p.download(buf("grad"), 0, state_bytes);
  p.download(buf("scalars"), 0, C * rb);
  if (!hold) p.download(stats_name, 0, stats_bytes);
  if (request.keep_draws && !hold) p.download(draws_name, 0, draw_bytes);
  if (proposals) p.download(buf("proposals"), 0, prop_bytes);
  const auto t_exec = Clock::now();
  auto result = run(std::move(p), dispatches);
  if (!result) return fail(result.error());
  const double exec_ms = std::chrono::duration<double, std::milli>(Clock::now() - t_exec).count();
  const auto& dl = result->downloads;
  q_on_device.resize(C * d);
  grad_on_device.resize(C * d);
  if (hold) {
    held.push_back({C, iters, request.keep_draws});
  } else if (request.keep_draws) {
    read_draws(dl[4], C, iters, out, out_first);
  }
  for_each_tile(C, [&](size_t c0, size_t c1) {
    visit_tile(c0, c1, [&](size_t i, size_t c) {
      states[c].q[i] = q_on_device[c * d + i] = real_at(dl[0], at(i, c, C), f64);
      states[c].grad[i] = grad_on_device[c * d + i] = real_at(dl[1], at(i, c, C), f64);
    });
  });
  for (size_t c = 0; c < C; ++c) {
    states[c].lp = real_at(dl[2], c, f64);
    states[c].iteration += static_cast<uint32_t>(iters);
  }
  if (!hold) read_stats(dl[3], C, iters, out, out_first);
  if (proposals) {
    const auto& pd = dl.back();
    for (size_t c0 = 0; c0 < C; c0 += kTransposeTile) {
      const size_t c1 = std::min(C, c0 + kTransposeTile);
      for (size_t i = 0; i < d; ++i) {
        for (size_t c = c0; c < c1; ++c) {
          out.proposal_q[c * d + i] = real_at(pd, at(i, c, C), f64);
          out.proposal_velocity[c * d + i] = real_at(pd, d * C + at(i, c, C), f64);
        }
      }
    }
  }
  if (log_enabled(LogLevel::debug)) {
    const auto ms = [](Clock::time_point a, Clock::time_point b) {
      return std::chrono::duration<double, std::milli>(b - a).count();
    };
    log(LogLevel::debug,
        "sampler: {} iterations x {} chains: host before the Program {:.2f} ms (of which registry "
        "buffers {:.2f} ms), Program {:.2f} ms (GPU wait {:.2f} ms), host after it {:.2f} ms",
        iters, C, ms(t_start, t_exec), ms(t_buffers, t_program), exec_ms, result->gpu_wait_ms,
        ms(t_exec, Clock::now()) - exec_ms);
  }
  return {};
}

Result<void> GpuLeapfrogBackend::collect(AdvanceOutput& out) {
  Impl& m = *impl_;
  size_t iters = 0, chains = m.held.empty() ? 0 : m.held[0].chains;
  bool draws = !m.held.empty();
  for (const auto& h : m.held) {
    iters += h.iterations;
    draws = draws && h.draws;
    if (h.chains != chains) {
      m.held.clear();
      return fail(Errc::invalid_argument, "held blocks of different chain counts");
    }
  }
  out.stats.clear();
  out.draws.clear();
  resize_with_huge_pages(out.stats, iters * chains);
  resize_with_huge_pages(out.draws, draws ? iters * chains * m.d : 0);
  out.proposal_q.clear();
  out.proposal_velocity.clear();
  // One Program per held block: each block's buffers are within the per-buffer limit.
  size_t first = 0;
  for (size_t k = 0; k < m.held.size(); ++k) {
    const auto& h = m.held[k];
    Program p;
    p.download(m.held_stats(k), 0, h.iterations * kStatWords * h.chains * m.real_bytes());
    if (draws) p.download(m.held_draws(k), 0, h.iterations * h.chains * m.d * m.real_bytes());
    const size_t n = h.iterations;  // `run` clears m.held on failure
    auto r = m.run(std::move(p), 0);
    if (!r) return fail(r.error());
    m.read_stats(r->downloads[0], chains, n, out, first);
    if (draws) m.read_draws(r->downloads[1], chains, n, out, first);
    first += n;
  }
  m.held.clear();
  return {};
}

void GpuLeapfrogBackend::discard_held() { impl_->held.clear(); }

Result<void> GpuLeapfrogBackend::reserve_held(size_t chains, size_t iterations, size_t calls, bool draws) {
  Impl& m = *impl_;
  if (chains == 0 || iterations == 0) return {};
  // The held blocks those calls will write: each call split as advance() splits it.
  const size_t block = m.iterations_per_program(chains, draws);
  size_t k = 0;
  for (size_t call = 0; call < calls; ++call) {
    for (size_t first = 0; first < iterations; first += block, ++k) {
      const size_t n = std::min(block, iterations - first);
      if (auto r = m.ensure(m.held_stats(k), n * kStatWords * chains * m.real_bytes()); !r) return r;
      if (!draws) continue;
      if (auto r = m.ensure(m.held_draws(k), n * m.d * chains * m.real_bytes()); !r) return r;
    }
  }
  return {};
}

Result<TrajectoryBatch> GpuLeapfrogBackend::trajectories(const TrajectoryRequest& r) {
  Impl& m = *impl_;
  const size_t d = m.d, n = r.chains, rb = m.real_bytes();
  if (r.q0.size() != n * d || r.p0.size() != n * d || r.step_size.size() != n ||
      (r.inv_metric.size() != d && r.inv_metric.size() != n * d)) {
    return fail(Errc::invalid_argument,
                "trajectory request sizes do not match chains and dimension");
  }
  TrajectoryBatch b;
  b.chains = n;
  b.dimension = d;
  b.steps = r.steps;
  const size_t points = n * (size_t{r.steps} + 1);
  if (n == 0) return b;
  const bool shared_metric = r.inv_metric.size() == d && n > 1;
  RealArray q(d * n, m.f64), p(d * n, m.f64), metric(d * n, m.f64), eps(n, m.f64);
  for (size_t c = 0; c < n; ++c) {
    for (size_t i = 0; i < d; ++i) {
      q.set(i * n + c, r.q0[c * d + i]);
      p.set(i * n + c, r.p0[c * d + i]);
      metric.set(i * n + c, shared_metric ? r.inv_metric[i] : r.inv_metric[c * d + i]);
    }
    eps.set(c, r.step_size[c]);
  }
  if (auto e = m.check_loop_budget(r.steps, "a trajectory"); !e) return fail(e.error());
  const uint64_t in_bytes = d * n * rb, out_bytes = points * d * rb;
  if (3 * out_bytes + points * rb > kMaxProgramTransferBytes / 2 ||
      out_bytes > m.max_buffer_bytes) {
    return fail(Errc::invalid_argument, "trajectory batch too large for one Program",
                vkn::format("{} bytes per output", out_bytes));
  }
  for (auto [what, bytes] : {std::pair<const char*, uint64_t>{"t.q0", in_bytes},
                             {"t.p0", in_bytes},
                             {"t.metric", in_bytes},
                             {"t.eps", n * rb},
                             {"t.q", out_bytes},
                             {"t.p", out_bytes},
                             {"t.grad", out_bytes},
                             {"t.lp", points * rb}}) {
    if (auto e = m.ensure(m.buf(what), bytes); !e) return fail(e.error());
  }
  Program prog;
  prog.upload(m.buf("t.q0"), 0, q.take());
  prog.upload(m.buf("t.p0"), 0, p.take());
  prog.upload(m.buf("t.metric"), 0, metric.take());
  prog.upload(m.buf("t.eps"), 0, eps.take());
  prog.barrier();
  std::vector<NamedBinding> bindings = {
      {detail::kBindQ0, m.buf("t.q0")},          {detail::kBindP0, m.buf("t.p0")},
      {detail::kBindTMetric, m.buf("t.metric")}, {detail::kBindEps, m.buf("t.eps")},
      {detail::kBindOutQ, m.buf("t.q")},         {detail::kBindOutP, m.buf("t.p")},
      {detail::kBindOutGrad, m.buf("t.grad")},   {detail::kBindOutLp, m.buf("t.lp")}};
  for (auto& db : m.data_bindings()) bindings.push_back(db);
  const detail::TrajectoryPush push{static_cast<uint32_t>(n), r.steps};
  const uint32_t groups =
      static_cast<uint32_t>((n + m.options.workgroup_size - 1) / m.options.workgroup_size);
  prog.dispatch(m.trajectory, bindings, push_bytes(push), {groups, 1, 1});
  prog.barrier();
  prog.download(m.buf("t.q"), 0, out_bytes);
  prog.download(m.buf("t.p"), 0, out_bytes);
  prog.download(m.buf("t.grad"), 0, out_bytes);
  prog.download(m.buf("t.lp"), 0, points * rb);
  auto result = m.run(std::move(prog), 1);
  if (!result) return fail(result.error());
  const auto& dl = result->downloads;
  b.q.resize(points * d);
  b.p.resize(points * d);
  b.grad.resize(points * d);
  b.lp.resize(points);
  for (size_t i = 0; i < points * d; ++i) {
    b.q[i] = real_at(dl[0], i, m.f64);
    b.p[i] = real_at(dl[1], i, m.f64);
    b.grad[i] = real_at(dl[2], i, m.f64);
  }
  for (size_t i = 0; i < points; ++i) b.lp[i] = real_at(dl[3], i, m.f64);
  return b;
}

}  // namespace vkn::sampler
