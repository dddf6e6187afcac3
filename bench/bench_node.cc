// The node section of `vknode bench`: what the node adds on top of the core layer.
//   - with_node no-op round trip vs a bare mutex + condition-variable hand-off to a
//     worker thread (the least any queue-to-one-thread design can cost);
//   - a tiny dispatch (fill_u32 of 64 words) through exec and through with_node vs the
//     same dispatch through the core layer's Stream on a device of its own, in a process
//     of its own (core_dispatch_child.h; exec of a Program the caller keeps and shares
//     with the node, as a caller running it again would; and exec of a copy,
//     `exec(const Program&)`, on a row of its own). An exec on an idle node runs on its
//     caller's thread (NodeOptions::exec_inline); a second node with that off gives the
//     row of exec on the worker thread. Rows beside them split what separates with_node
//     from the baseline: the node's own Stream dispatched inside a job (the call's own
//     cost), and the core Stream on a second device of the bench's process;
//   - exec throughput with 1, 4 and 16 concurrent callers.
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <mutex>
#include <thread>

#include "bench_report.h"
#include "bench_sections.h"
#include "core_dispatch.h"
#include "core_dispatch_child.h"
#include "node/program_runner.h"
#include "util/strformat.h"
#include "vknode/gpu/buffer.h"
#include "vknode/gpu/builtin_kernels.h"
#include "vknode/gpu/device.h"
#include "vknode/gpu/kernel_cache.h"
#include "vknode/gpu/stream.h"
#include "vknode/node/node.h"

namespace vkn::detail {
namespace {

constexpr std::chrono::seconds kTimeout{60};

// The baseline hand-off: one worker thread, a queue, a mutex and condition variables.
class Handoff {
 public:
  Handoff() : worker_([this] { loop(); }) {}
  ~Handoff() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }
  void run(const std::function<void()>& fn) {
    bool done = false;
    std::condition_variable done_cv;
    {
      std::lock_guard lock(mu_);
      queue_.push_back([&] {
        fn();
        std::lock_guard l(mu_);
        done = true;
        done_cv.notify_one();
      });
    }
    cv_.notify_one();
    std::unique_lock lock(mu_);
    done_cv.wait(lock, [&] { return done; });
  }

 private:
  void loop() {
    std::unique_lock lock(mu_);
    while (true) {
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      auto job = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      job();
      lock.lock();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::thread worker_;
};

template <typename F>
Result<std::vector<double>> sample(int n, F&& op) {
  std::vector<double> us;
  us.reserve(n);
  for (int i = -n / 10; i < n; ++i) {
    const auto t0 = BenchClock::now();
    if (auto r = op(); !r) return fail(r.error());
    if (i >= 0) us.push_back(elapsed_us(t0));
  }
  return us;
}

// One op's turn in a round of interleaved(): kRoundSamples timed samples, in us, after an
// untimed warm-up (the first call after another device's or process's dispatch pays a GPU
// context switch, about 150 us on the H200).
constexpr int kRoundSamples = 10;
using Turn = std::function<Result<std::vector<double>>()>;

// A turn of `op` timed here, one call a sample.
Turn timed_here(std::function<Result<void>()> op) {
  return [op = std::move(op)] { return sample(kRoundSamples, op); };
}

// Runs each of `turns` in many short interleaved rounds, n samples each, so that clock
// ramps, core placement and other drift hit every op alike (on a small VM the machine
// switches between a fast and a slow phase, a 2x difference, every second or so).
Result<std::vector<std::vector<double>>> interleaved(int n, const std::vector<Turn>& turns) {
  std::vector<std::vector<double>> samples(turns.size());
  const int rounds = std::max(1, n / kRoundSamples);
  for (int round = 0; round < rounds; ++round) {
    for (size_t i = 0; i < turns.size(); ++i) {
      auto r = turns[i]();
      if (!r) return fail(r.error());
      samples[i].insert(samples[i].end(), r->begin(), r->end());
    }
  }
  return samples;
}

// What an op that times itself (inside a with_node job) recorded in interleaved(): every
// call, each round's warm-up too, which this drops.
std::vector<double> without_warm_ups(const std::vector<double>& recorded) {
  std::vector<double> timed;
  for (size_t i = 0; i < recorded.size(); ++i) {
    if (i % (kRoundSamples + 1) != 0) timed.push_back(recorded[i]);
  }
  return timed;
}

Program tiny_program() {
  Program p;
  p.dispatch(builtin_kernel_id(BuiltinKernel::fill_u32), {{0, "bench.tiny"}}, tiny_fill_push(), {1, 1, 1});
  return p;
}

// Programs per second from `callers` threads each running `per_caller` tiny execs.
Result<double> throughput(const CallOptions& call, int callers, int per_caller) {
  std::atomic<int> failures{0};
  const Program p = tiny_program();
  const auto t0 = BenchClock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < callers; ++c) {
    threads.emplace_back([&] {
      for (int i = 0; i < per_caller; ++i) {
        if (!exec(p, call)) failures.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  if (failures.load() > 0) return fail(Errc::job_failed, vkn::format("{} execs failed", failures.load()));
  return callers * per_caller / (elapsed_us(t0) / 1e6);
}

}  // namespace

Result<void> bench_node(const BenchOptions& options, const std::string& exe, const RowSink& sink) {
  const int n = options.quick ? 300 : 3000;
  NodeOptions node_options;
  node_options.name = "bench";
  node_options.device_selector = options.device_selector;
  node_options.persist_pipeline_cache = false;
  if (auto r = start(node_options); !r) return r;
  struct StopAtExit {
    ~StopAtExit() {
      (void)stop("bench");
      (void)stop("bench.worker");
    }
  } stop_at_exit;
  CallOptions call;
  call.node = "bench";
  call.timeout = kTimeout;
  if (auto r = create_buffer("bench.tiny", {kTinyWords * 4}, call); !r) return r;

  Handoff handoff;
  auto bare = sample(n, [&]() -> Result<void> {
    handoff.run([] {});
    return {};
  });
  auto noop = sample(n, [&]() { return with_node([](Context&) {}, call); });
  if (!bare || !noop) return fail(bare ? noop.error() : bare.error());
  sink({.section = "node", .metric = vkn::format("with_node no-op p50 vs mutex+cv hand-off, n={}", n), .unit = "us",
        .value = median(*noop), .baseline = median(*bare)});
  sink({.section = "node", .metric = "with_node no-op p99 vs mutex+cv hand-off", .unit = "us",
        .value = percentile(*noop, 99), .baseline = percentile(*bare, 99)});

  // The baseline: the core layer in a process of its own, where its device is the first and
  // only one, as the node's is here (core_dispatch_child.h).
  auto child = CoreDispatchChild::start(exe, options.device_selector);
  if (!child) return fail(child.error());
  // And the core layer here, on this process's second device, from the caller's thread:
  // beside the child on the caller's CPU, what that position costs.
  auto core = CoreDispatch::create(options.device_selector);
  if (!core) return fail(core.error());
  const Program tiny = tiny_program();
  const auto shared_tiny = std::make_shared<const Program>(tiny);
  const KernelId fill = builtin_kernel_id(BuiltinKernel::fill_u32);
  const auto push = tiny_fill_push();
  // The baseline's turns: on the CPU the caller runs on (beside exec, which runs there), on
  // the one the node's worker runs on (beside with_node), and where the scheduler puts it.
  // The worker's CPU is asked just before the turn; it then waits for work, asleep after a
  // short spin that the turn's warm-up absorbs.
  // (The calling thread, like the node's worker and the child, keeps off the CPUs taking
  // the GPU's interrupts: the harness placed it.)
  auto core_child_on_caller_cpu = [&] { return (*child)->block(kRoundSamples, sched_getcpu()); };
  auto core_child_on_worker_cpu_of = [&](const CallOptions& node) -> Turn {
    return [&child, node]() -> Result<std::vector<double>> {
      auto cpu = with_node([](Context&) { return sched_getcpu(); }, node);
      if (!cpu) return fail(cpu.error());
      return (*child)->block(kRoundSamples, *cpu);
    };
  };
  auto core_child_placed = [&] { return (*child)->block(kRoundSamples); };
  auto exec_once = [&]() -> Result<void> {
    auto r = exec(shared_tiny, call);
    if (!r) return fail(r.error());
    return {};
  };
  auto exec_copy_once = [&]() -> Result<void> {
    auto r = exec(tiny, call);
    if (!r) return fail(r.error());
    return {};
  };
  // The tiny dispatch as a with_node job writes it: its kernel and buffer looked up by
  // name, then recorded and waited for (that part timed into `timed` when given).
  auto tiny_dispatch_in_job = [&](Context& ctx, std::vector<double>* timed) -> Result<void> {
    auto kernel = ctx.kernel(fill);
    if (!kernel) return fail(kernel.error());
    auto buffer = ctx.buffers().get("bench.tiny");
    if (!buffer) return fail(buffer.error());
    const BufferBinding b[] = {{0, *buffer}};
    const auto t0 = timed != nullptr ? BenchClock::now() : BenchClock::time_point{};  // no clock read untimed
    if (auto r = ctx.stream().record_dispatch(**kernel, b, push, {1, 1, 1}); !r) return r;
    auto r = ctx.submit_and_wait();
    if (timed != nullptr) timed->push_back(elapsed_us(t0));
    return r;
  };
  auto with_node_once = [&]() {
    return with_node([&](Context& ctx) { return tiny_dispatch_in_job(ctx, nullptr); }, call);
  };
  // exec's own work on the node's thread (validation, name lookups, recording) without
  // its caller-side wrapping: splits exec's cost from with_node's.
  auto program_in_with_node_once = [&]() {
    return with_node([&](Context& ctx) -> Result<void> {
      auto r = run_program(ctx, tiny);
      if (!r) return fail(r.error());
      return {};
    }, call);
  };
  auto core_here_once = [&]() -> Result<void> { return (*core)->once(); };
  // The node's own Stream and device, dispatched inside a job and timed there: beside
  // with_node, the cost of a call alone (its hand-off, lookups and bookkeeping), with the
  // CPU and the device held equal; beside the child, the worker's CPU and the node's device
  // against the baseline's.
  std::vector<double> node_stream_recorded;
  auto node_stream_in_job_once = [&]() {
    return with_node([&](Context& ctx) { return tiny_dispatch_in_job(ctx, &node_stream_recorded); }, call);
  };
  auto main_rows = interleaved(n, {core_child_on_caller_cpu, timed_here(exec_once), timed_here(with_node_once),
                                   timed_here(program_in_with_node_once), timed_here(exec_copy_once),
                                   timed_here(core_here_once), timed_here(node_stream_in_job_once),
                                   core_child_on_worker_cpu_of(call), core_child_placed});
  if (!main_rows) return fail(main_rows.error());
  const std::vector<double>& core_on_caller_us = (*main_rows)[0];
  const std::vector<double>& exec_us = (*main_rows)[1];
  const std::vector<double>& with_node_us = (*main_rows)[2];
  const std::vector<double>& program_us = (*main_rows)[3];
  const std::vector<double>& exec_copy_us = (*main_rows)[4];
  const std::vector<double>& core_here_us = (*main_rows)[5];
  const std::vector<double> node_stream_us = without_warm_ups(node_stream_recorded);
  const std::vector<double>& core_on_worker_us = (*main_rows)[7];
  const std::vector<double>& core_placed_us = (*main_rows)[8];
  struct Compared {
    const char* path;
    const std::vector<double>* samples;
    const char* cpu;
    const std::vector<double>* baseline;
  };
  for (const Compared& c : {Compared{"exec", &exec_us, "caller's", &core_on_caller_us},
                            Compared{"with_node", &with_node_us, "worker's", &core_on_worker_us}}) {
    sink({.section = "node", .metric = vkn::format("tiny dispatch p50 via {} vs core Stream on the {} CPU", c.path, c.cpu),
          .unit = "us", .value = median(*c.samples), .baseline = median(*c.baseline)});
    sink({.section = "node", .metric = vkn::format("tiny dispatch p99 via {} vs core Stream on the {} CPU", c.path, c.cpu),
          .unit = "us", .value = percentile(*c.samples, 99), .baseline = percentile(*c.baseline, 99)});
  }
  for (const auto& [label, samples] : {std::pair{"exec", &exec_us}, std::pair{"with_node", &with_node_us}}) {
    sink({.section = "node", .metric = vkn::format("tiny dispatch p50 via {} vs core Stream where the scheduler puts it", label),
          .unit = "us", .value = median(*samples), .baseline = median(core_placed_us)});
  }
  sink({.section = "node", .metric = "tiny dispatch p50 via with_node vs the node's Stream in a job", .unit = "us",
        .value = median(with_node_us), .baseline = median(node_stream_us)});
  sink({.section = "node", .metric = "tiny dispatch p50: the node's Stream in a job vs core Stream on the worker's CPU",
        .unit = "us", .value = median(node_stream_us), .baseline = median(core_on_worker_us)});
  sink({.section = "node", .metric = "tiny dispatch p50: core Stream on this process's second device vs on its own",
        .unit = "us", .value = median(core_here_us), .baseline = median(core_on_caller_us)});
  sink({.section = "node", .metric = "tiny dispatch p50: exec's Program run in with_node vs with_node", .unit = "us",
        .value = median(program_us), .baseline = median(with_node_us)});
  sink({.section = "node", .metric = "tiny dispatch p50: exec of a copied Program vs of a shared one", .unit = "us",
        .value = median(exec_copy_us), .baseline = median(exec_us)});
  if (auto r = (*core)->verify(); !r) return r;

  const int per = options.quick ? 50 : 500;
  auto one = throughput(call, 1, per);
  if (!one) return fail(one.error());
  for (int callers : {1, 4, 16}) {
    auto t = callers == 1 ? one : throughput(call, callers, per / callers * 4);
    if (!t) return fail(t.error());
    sink({.section = "node", .metric = vkn::format("exec throughput, {} callers vs 1 caller", callers),
          .unit = "ops/s", .value = *t, .baseline = *one});
  }

  // Exec on the worker thread: a node with exec_inline off, started only now, once the
  // devices above are gone (its own is then this process's only one), so that its thread
  // takes no CPU from the rows above (on 2 cores it did).
  core->reset();
  (void)stop("bench");
  node_options.name = "bench.worker";
  node_options.exec_inline = false;
  if (auto r = start(node_options); !r) return r;
  CallOptions worker_call = call;
  worker_call.node = "bench.worker";
  if (auto r = create_buffer("bench.tiny", {kTinyWords * 4}, worker_call); !r) return r;
  auto exec_on_worker_once = [&]() -> Result<void> {
    auto r = exec(shared_tiny, worker_call);
    if (!r) return fail(r.error());
    return {};
  };
  auto worker_rows = interleaved(n, {core_child_on_worker_cpu_of(worker_call), timed_here(exec_on_worker_once)});
  (void)stop("bench.worker");
  if (!worker_rows) return fail(worker_rows.error());
  sink({.section = "node", .metric = "tiny dispatch p50 via exec on the worker vs core Stream on the worker's CPU",
        .unit = "us", .value = median((*worker_rows)[1]), .baseline = median((*worker_rows)[0])});
  return (*child)->finish();
}

}  // namespace vkn::detail
