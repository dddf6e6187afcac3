// The node section of `vknode bench`: what the node adds on top of the core layer.
//   - with_node no-op round trip vs a bare mutex + condition-variable hand-off to a
//     worker thread (the least any queue-to-one-thread design can cost);
//   - a tiny dispatch (fill_u32 of 64 words) through exec and through with_node vs the
//     same dispatch through the core layer's Stream on its own device (exec of a Program
//     the caller keeps and shares with the node, as a caller running it again would; and
//     exec of a copy, `exec(const Program&)`, on a row of its own). An exec on an idle
//     node runs on its caller's thread (NodeOptions::exec_inline); a second node with
//     that off gives the row of exec on the worker thread;
//   - exec throughput with 1, 4 and 16 concurrent callers.
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
#include "node/program_runner.h"
#include "node/worker_placement.h"
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
constexpr uint32_t kWords = 64;

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

// Runs each of `ops` n times in many short interleaved rounds, so that clock ramps, core
// placement and other drift hit every op alike (on a small VM the machine switches between
// a fast and a slow phase, a 2x difference, every second or so). Samples per op, in us.
constexpr int kRoundSamples = 10;  // timed samples of an op per round, after 1 untimed warm-up
Result<std::vector<std::vector<double>>> interleaved(int n, const std::vector<std::function<Result<void>()>>& ops) {
  std::vector<std::vector<double>> samples(ops.size());
  const int rounds = std::max(1, n / kRoundSamples);
  for (int round = 0; round < rounds; ++round) {
    for (size_t i = 0; i < ops.size(); ++i) {
      auto r = sample(kRoundSamples, ops[i]);
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

std::vector<std::byte> fill_push() {
  const FillPush push{kWords, 7};
  auto b = std::as_bytes(std::span(&push, 1));
  return {b.begin(), b.end()};
}

Program tiny_program() {
  Program p;
  p.dispatch(builtin_kernel_id(BuiltinKernel::fill_u32), {{0, "bench.tiny"}}, fill_push(), {1, 1, 1});
  return p;
}

// The same tiny dispatch through the core layer alone, on a device of its own, from the
// calling thread: the baseline the node's paths are compared with.
class CoreDispatch {
 public:
  static Result<std::unique_ptr<CoreDispatch>> create(const BenchOptions& options) {
    auto c = std::unique_ptr<CoreDispatch>(new CoreDispatch);
    auto device = Device::create(DeviceOptions{.selector = options.device_selector, .validation_from_env = false});
    if (!device) return fail(device.error());
    c->device_ = std::move(*device);
    auto stream = Stream::create(*c->device_);
    if (!stream) return fail(stream.error());
    c->stream_ = std::move(*stream);
    auto buffer = Buffer::create(*c->device_, kWords * 4);
    if (!buffer) return fail(buffer.error());
    c->buffer_.emplace(std::move(*buffer));
    c->kernels_ = std::make_unique<KernelCache>(*c->device_, nullptr);
    auto kernel = c->kernels_->get_or_create(builtin_spirv(BuiltinKernel::fill_u32));
    if (!kernel) return fail(kernel.error());
    c->kernel_ = *kernel;
    return c;
  }
  const Device& device() const { return *device_; }
  Result<void> once() {
    const BufferBinding b[] = {{0, &*buffer_}};
    if (auto r = stream_->record_dispatch(*kernel_, b, push_, {1, 1, 1}); !r) return r;
    return stream_->submit_and_wait(kTimeout);
  }

 private:
  CoreDispatch() = default;
  std::unique_ptr<Device> device_;
  std::unique_ptr<Stream> stream_;
  std::optional<Buffer> buffer_;
  std::unique_ptr<KernelCache> kernels_;
  std::shared_ptr<Kernel> kernel_;
  std::vector<std::byte> push_ = fill_push();
};

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

Result<void> bench_node(const BenchOptions& options, const RowSink& sink) {
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
  if (auto r = create_buffer("bench.tiny", {kWords * 4}, call); !r) return r;

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

  auto core = CoreDispatch::create(options);
  if (!core) return fail(core.error());
  // The calling thread, which runs the core Stream's dispatches, keeps off the CPUs taking
  // the GPU's interrupts as the node's worker does (worker_placement.h): both sides are
  // then measured where the scheduler's placement cannot triple one of them.
  const std::vector<int> caller_cpus = thread_cpus();
  struct RestoreCpus {
    const std::vector<int>& cpus;
    ~RestoreCpus() { set_thread_cpus(cpus); }
  } restore{caller_cpus};
  (void)keep_thread_off_device_interrupts((*core)->device().info().pci_address, caller_cpus);
  const Program tiny = tiny_program();
  const auto shared_tiny = std::make_shared<const Program>(tiny);
  const KernelId fill = builtin_kernel_id(BuiltinKernel::fill_u32);
  const auto push = fill_push();
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
  auto core_once = [&]() -> Result<void> { return (*core)->once(); };
  // The core Stream's dispatch run on the node's worker thread and timed there: beside
  // with_node, what the node adds when both run on one CPU. (A VM's vCPUs differ in speed
  // from moment to moment, by up to 1.5x in recording and submitting; the caller's and
  // the worker's CPUs then move the first comparison either way.)
  std::vector<double> core_on_worker_recorded;
  auto core_on_worker_once = [&]() {
    return with_node([&](Context&) -> Result<void> {
      const auto t0 = BenchClock::now();
      auto r = (*core)->once();
      core_on_worker_recorded.push_back(elapsed_us(t0));
      return r;
    }, call);
  };
  // The node's own Stream and device, dispatched inside a job and timed there: beside
  // with_node, the cost of a call alone (its hand-off, lookups and bookkeeping), with the
  // CPU and the device held equal (a second device on the same GPU answers up to 0.5 us
  // sooner or later than the first, which moves the comparisons above either way).
  std::vector<double> node_stream_recorded;
  auto node_stream_in_job_once = [&]() {
    return with_node([&](Context& ctx) { return tiny_dispatch_in_job(ctx, &node_stream_recorded); }, call);
  };
  auto main_rows = interleaved(n, {core_once, exec_once, with_node_once, program_in_with_node_once, exec_copy_once,
                                   core_on_worker_once, node_stream_in_job_once});
  if (!main_rows) return fail(main_rows.error());
  const std::vector<double>& core_us = (*main_rows)[0];
  const std::vector<double>& exec_us = (*main_rows)[1];
  const std::vector<double>& with_node_us = (*main_rows)[2];
  const std::vector<double>& program_us = (*main_rows)[3];
  const std::vector<double>& exec_copy_us = (*main_rows)[4];
  for (const auto& [label, samples] : {std::pair{"exec", &exec_us}, std::pair{"with_node", &with_node_us}}) {
    sink({.section = "node", .metric = vkn::format("tiny dispatch p50 via {} vs core Stream", label), .unit = "us",
          .value = median(*samples), .baseline = median(core_us)});
    sink({.section = "node", .metric = vkn::format("tiny dispatch p99 via {} vs core Stream", label), .unit = "us",
          .value = percentile(*samples, 99), .baseline = percentile(core_us, 99)});
  }
  const std::vector<double> core_on_worker_us = without_warm_ups(core_on_worker_recorded);
  sink({.section = "node", .metric = "tiny dispatch p50 via with_node vs core Stream on the worker's thread", .unit = "us",
        .value = median(with_node_us), .baseline = median(core_on_worker_us)});
  sink({.section = "node", .metric = "tiny dispatch p50 via with_node vs the node's Stream in a job", .unit = "us",
        .value = median(with_node_us), .baseline = median(without_warm_ups(node_stream_recorded))});
  // Exec on the worker thread: a node with exec_inline off, started only now, so that its
  // thread takes no CPU from the rows above (on 2 cores it did), with a baseline of its own.
  node_options.name = "bench.worker";
  node_options.exec_inline = false;
  if (auto r = start(node_options); !r) return r;
  CallOptions worker_call = call;
  worker_call.node = "bench.worker";
  if (auto r = create_buffer("bench.tiny", {kWords * 4}, worker_call); !r) return r;
  auto exec_on_worker_once = [&]() -> Result<void> {
    auto r = exec(shared_tiny, worker_call);
    if (!r) return fail(r.error());
    return {};
  };
  auto worker_rows = interleaved(n, {core_once, exec_on_worker_once});
  (void)stop("bench.worker");
  if (!worker_rows) return fail(worker_rows.error());
  sink({.section = "node", .metric = "tiny dispatch p50 via exec on the worker vs core Stream", .unit = "us",
        .value = median((*worker_rows)[1]), .baseline = median((*worker_rows)[0])});
  sink({.section = "node", .metric = "tiny dispatch p50: exec's Program run in with_node vs with_node", .unit = "us",
        .value = median(program_us), .baseline = median(with_node_us)});
  sink({.section = "node", .metric = "tiny dispatch p50: exec of a copied Program vs of a shared one", .unit = "us",
        .value = median(exec_copy_us), .baseline = median(exec_us)});

  const int per = options.quick ? 50 : 500;
  auto one = throughput(call, 1, per);
  if (!one) return fail(one.error());
  for (int callers : {1, 4, 16}) {
    auto t = callers == 1 ? one : throughput(call, callers, per / callers * 4);
    if (!t) return fail(t.error());
    sink({.section = "node", .metric = vkn::format("exec throughput, {} callers vs 1 caller", callers),
          .unit = "ops/s", .value = *t, .baseline = *one});
  }
  return {};
}

}  // namespace vkn::detail
