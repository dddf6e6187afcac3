// The node: a named, long-lived owner of one GPU device, its persisted pipeline
// cache, kernel cache and buffer registry. It runs every job on one worker thread,
// one at a time, and reports every failure as a value so that callers can fall back
// to the CPU. A supervisor inside the node restarts it after an unrecoverable
// failure (with backoff, within a restart budget); device loss and GPU hangs are
// recovered in place (device rebuilt, pipelines re-created, durable buffers
// restored).
//
// Nodes are found by name in a process-wide registry (the only global state).
// Every function here is thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <vector>

#include "vknode/error.h"
#include "vknode/gpu/builtin_kernels.h"
#include "vknode/gpu/kernel.h"
#include "vknode/node/buffer_registry.h"
#include "vknode/node/program.h"

namespace vkn {

class Device;
class Stream;
class KernelCache;
class PipelineCache;
class BufferRegistry;

inline constexpr std::string_view kDefaultNodeName = "vknode";

struct NodeOptions {
  std::string name{kDefaultNodeName};
  std::string device_selector;  // see DeviceOptions::selector
  // Deadline for calls that give none. Unset: $VKNODE_TIMEOUT_MS, else no deadline.
  std::optional<std::chrono::milliseconds> default_timeout;
  std::filesystem::path cache_dir;       // empty: the default pipeline-cache directory
  bool persist_pipeline_cache = true;
  uint64_t memory_budget = 0;            // 0: 90% of the largest device-local heap
  // A GPU wait longer than this is a hung device; the node recovers as for device loss.
  std::chrono::milliseconds hang_limit{10'000};
  uint32_t quarantine_after = 3;         // consecutive timeouts of one kernel
  std::chrono::milliseconds quarantine_cooldown{60'000};
  std::chrono::milliseconds persist_interval{30'000};  // pipeline cache, when changed
  // Supervisor: at most max_restarts restarts within restart_window, with
  // exponential backoff from restart_backoff; beyond that the node gives up.
  uint32_t max_restarts = 5;
  std::chrono::milliseconds restart_window{60'000};
  std::chrono::milliseconds restart_backoff{100};
  bool enable_validation = false;  // also on with $VKNODE_VALIDATION=1
  // Keeps the worker thread off the CPUs that take the GPU's interrupts (Linux, PCI
  // devices): fence waits from such a CPU cost 3x on the H200 machine.
  bool avoid_device_interrupt_cpus = true;
  // A blocking exec runs on its calling thread while the node is idle (no job running or
  // queued), still one job at a time: the hand-off to the worker thread and back costs
  // more than a small Program (on the H200 about 10 % of a tiny dispatch). Off: every
  // exec runs on the worker thread. with_node jobs always do.
  bool exec_inline = true;
  // Test-only: the first N initialisations fail (supervisor tests).
  uint32_t TEST_fail_initializations = 0;
};

enum class NodeHealth { starting, ready, recovering, down, stopped };
const char* to_string(NodeHealth health);

struct NodeStatus {
  std::string name;
  NodeHealth health = NodeHealth::stopped;
  std::chrono::milliseconds uptime{0};
  uint64_t exec_count = 0;       // Programs run
  uint64_t inline_execs = 0;     // of them, run on their caller's thread (NodeOptions::exec_inline)
  uint64_t job_count = 0;        // jobs run (with_node and exec)
  uint64_t queue_depth = 0;
  std::chrono::milliseconds inflight_age{0};  // age of the running job, 0 when idle
  uint64_t timeouts = 0;         // calls answered node_timeout
  uint64_t withdrawn = 0;        // queued jobs withdrawn at their deadline
  uint64_t errors = 0;           // jobs that ended in an error
  uint64_t restarts = 0;         // device resets and supervisor restarts
  uint64_t device_resets = 0;
  std::string device_name;
  std::string device_uuid;
  uint64_t registry_bytes = 0;
  uint64_t registry_budget = 0;
  uint64_t buffer_count = 0;
  uint64_t kernel_count = 0;
  uint64_t quarantined_kernels = 0;
  uint64_t cache_hits = 0;
  uint64_t cache_misses = 0;
  uint64_t cache_bytes = 0;
  std::string cache_path;
  uint64_t validation_errors = 0;  // from the validation layer, when it is on
  std::string last_error;
};

// A per-client store that persists between calls of the same client: the place to
// keep per-shader state. Values are shared_ptr<T>, keyed by name and checked by type.
class ScratchStore {
 public:
  template <typename T, typename Make>
  T& get_or_create(const std::string& key, Make&& make) {
    if (auto* found = find_raw(key, typeid(T))) return *static_cast<T*>(found);
    std::shared_ptr<T> value = std::make_shared<T>(make());
    T& ref = *value;
    put_raw(key, typeid(T), std::move(value));
    return ref;
  }
  bool erase(const std::string& key);
  size_t size() const;

 private:
  void* find_raw(const std::string& key, const std::type_info& type);
  void put_raw(const std::string& key, const std::type_info& type, std::shared_ptr<void> value);
  struct Slot {
    const std::type_info* type;
    std::shared_ptr<void> value;
  };
  std::vector<std::pair<std::string, Slot>> slots_;
};

// What a with_node function sees: everything the node owns. Valid only during the call.
class Context {
 public:
  virtual ~Context() = default;
  virtual Device& device() = 0;
  virtual Stream& stream() = 0;
  virtual KernelCache& kernels() = 0;
  virtual PipelineCache& pipeline_cache() = 0;
  virtual BufferRegistry& buffers() = 0;
  virtual ScratchStore& scratch() = 0;  // this client's store
  // Submits the open batch and waits with the node's hang limit; a longer wait is
  // treated as a hung device. Errors: device_lost, vulkan_error.
  [[nodiscard]] virtual Result<void> submit_and_wait() = 0;
  // The kernel registered under `id` (see Node::register_kernel), valid during the call
  // unless the call erases it from kernels() (kernels().find gives a reference to keep).
  // Errors: not_found, kernel_quarantined.
  [[nodiscard]] virtual Result<Kernel*> kernel(const KernelId& id) = 0;
};

struct CallOptions {
  std::string node{kDefaultNodeName};
  std::optional<std::chrono::milliseconds> timeout;  // unset: the node's default
  std::string client;                                 // names the scratch store
};

// --- Lifecycle. ---
// Starts a node and waits until it is ready (or its first initialisation failed).
// Errors: already_exists (names the running node), and the initialisation error.
[[nodiscard]] Result<void> start(const NodeOptions& options = {});
// Graceful: finishes queued work, persists the pipeline cache, releases the device.
// Errors: node_dead when no node has that name.
[[nodiscard]] Result<void> stop(std::string_view name = kDefaultNodeName);
// True only while a node under that name runs and accepts work.
bool alive(std::string_view name = kDefaultNodeName);
[[nodiscard]] Result<NodeStatus> status(std::string_view name = kDefaultNodeName);

// --- Work. ---
namespace detail {
using ErasedJob = std::function<Result<void>(Context&)>;
// Runs `job` on the node's thread. Errors: node_dead, node_timeout, kernel_quarantined,
// device_lost, job_failed (an exception escaped), or the job's own error.
Result<void> run_job(const CallOptions& call, ErasedJob job, std::vector<KernelId> kernels = {});
// Called once with an asynchronous job's result (see submit_job).
using JobDone = std::function<void(Result<void>)>;
// Queues `job` on the node's thread and returns at once. Unless it returns an error
// (node_dead, kernel_quarantined: the job was not queued and `on_done` is never
// called), `on_done` is called exactly once: on the node's thread when the job ends
// (with the errors of run_job), or at the deadline with node_timeout, on the node's
// timer thread: a job that has not started is then withdrawn and never runs, a
// running one finishes and its result is dropped, as in run_job.
// Requires: `on_done` is quick and never waits for the node (it runs on its thread).
Result<void> submit_job(const CallOptions& call, ErasedJob job, std::vector<KernelId> kernels,
                        JobDone on_done);

template <typename T>
struct ResultTraits {
  static constexpr bool is_result = false;
  using value = T;
};
template <typename T>
struct ResultTraits<Result<T>> {
  static constexpr bool is_result = true;
  using value = T;
};
}  // namespace detail

// Runs fn(Context&) on the node's worker thread and returns its value. fn may return
// a plain value, void, or a Result<T>. On node_timeout a job that has not started is
// withdrawn and never runs; a running one finishes and its result is dropped.
template <typename Fn>
auto with_node(Fn&& fn, const CallOptions& call = {}) {
  using Ret = std::invoke_result_t<Fn&, Context&>;
  constexpr bool kIsResult = detail::ResultTraits<Ret>::is_result;
  using Value = typename detail::ResultTraits<Ret>::value;
  if constexpr (std::is_void_v<Ret>) {
    return detail::run_job(call, [f = std::forward<Fn>(fn)](Context& c) mutable -> Result<void> {
      f(c);
      return {};
    });
  } else if constexpr (kIsResult && std::is_void_v<Value>) {
    return detail::run_job(call, [f = std::forward<Fn>(fn)](Context& c) mutable -> Result<void> { return f(c); });
  } else {
    auto out = std::make_shared<std::optional<Value>>();
    auto r = detail::run_job(call, [f = std::forward<Fn>(fn), out](Context& c) mutable -> Result<void> {
      if constexpr (kIsResult) {
        auto v = f(c);
        if (!v) return fail(v.error());
        out->emplace(std::move(*v));
      } else {
        out->emplace(f(c));
      }
      return {};
    });
    if (!r) return Result<Value>(std::unexpected(r.error()));
    return Result<Value>(std::move(**out));
  }
}

// Runs a Program (see program.h). Errors: as with_node, plus invalid_argument and
// not_found for anything in the Program that does not match the registry or kernels.
[[nodiscard]] Result<ProgramResult> exec(const Program& program, const CallOptions& call = {});
// The same without copying the Program (its upload data can be large).
[[nodiscard]] Result<ProgramResult> exec(Program&& program, const CallOptions& call = {});
// The same for a Program the caller keeps and runs again: the node shares it instead of
// copying it (it must not change while shared). Errors: as above; invalid_argument for null.
[[nodiscard]] Result<ProgramResult> exec(std::shared_ptr<const Program> program, const CallOptions& call = {});
// As exec, without waiting: `on_done` gets the result once, as detail::submit_job
// describes (on the node's thread, or at the deadline on its timer thread). Errors
// (the Program was not queued, `on_done` is never called): node_dead, kernel_quarantined.
using ExecDone = std::function<void(Result<ProgramResult>)>;
[[nodiscard]] Result<void> exec_async(Program&& program, const CallOptions& call, ExecDone on_done);

// Builds (or finds) the kernel for this SPIR-V on the node and returns its id.
// The node keeps the SPIR-V so it can re-create the pipeline after a device reset.
[[nodiscard]] Result<KernelId> register_kernel(std::span<const uint32_t> spirv, std::span<const SpecConstant> spec = {},
                                               std::string_view kernel_name = {}, const CallOptions& call = {});
// The id of a built-in kernel (registered at node start).
KernelId builtin_kernel_id(BuiltinKernel kernel);

// --- Buffer registry through the node. ---
[[nodiscard]] Result<void> create_buffer(std::string_view name, const BufferSpec& spec, const CallOptions& call = {});
[[nodiscard]] Result<void> delete_buffer(std::string_view name, const CallOptions& call = {});
// Writes `data` at `offset`. A call without a deadline reads the caller's memory in
// place; with a deadline it copies `data` first (the job may outlive a timed-out caller).
[[nodiscard]] Result<void> write_buffer(std::string_view name, uint64_t offset, std::span<const std::byte> data,
                                        const CallOptions& call = {});
// Zero-copy whatever the deadline: the job holds `keep_alive` for as long as it may touch
// `data` (e.g. the owner of a shared-memory mapping).
[[nodiscard]] Result<void> write_buffer(std::string_view name, uint64_t offset, std::span<const std::byte> data,
                                        std::shared_ptr<const void> keep_alive, const CallOptions& call = {});
// bytes == 0 reads to the end of the buffer.
[[nodiscard]] Result<std::vector<std::byte>> read_buffer(std::string_view name, uint64_t offset = 0,
                                                         uint64_t bytes = 0, const CallOptions& call = {});
// Reads out.size() bytes into `out` (no allocation: reuse `out` across calls). The job
// holds `keep_alive` while it may write `out`; pass nullptr only for a call without a
// deadline (else invalid_argument: a timed-out caller's memory could be written later).
[[nodiscard]] Result<void> read_buffer_into(std::string_view name, uint64_t offset, std::span<std::byte> out,
                                            std::shared_ptr<void> keep_alive, const CallOptions& call = {});
[[nodiscard]] Result<std::vector<BufferEntryInfo>> list_buffers(const CallOptions& call = {});

// --- Operations. ---
[[nodiscard]] Result<void> clear_quarantine(const KernelId& kernel, std::string_view name = kDefaultNodeName);
[[nodiscard]] Result<void> persist_pipeline_cache(std::string_view name = kDefaultNodeName);
// Test-only: makes the node's worker fail as if it hit an unrecoverable error, so
// that its supervisor restarts it.
[[nodiscard]] Result<void> TEST_crash(std::string_view name = kDefaultNodeName);
// Test-only: the node's device fault seam (FaultInjection) for the next operations.
[[nodiscard]] Result<void> TEST_inject(std::string_view name, int lose_device_on_submit, int hang_waits,
                                       int fail_allocations);
// Test-only: waits until the node is idle (its worker waits for work, nothing queued), so
// that a blocking exec sent next runs inline. Errors: node_dead, timeout.
[[nodiscard]] Result<void> TEST_wait_idle(std::string_view name, std::chrono::milliseconds timeout);

}  // namespace vkn
