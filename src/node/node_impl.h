// NodeImpl: one running node: its worker thread, job queue, supervisor loop, and the
// GPU objects, which the worker uses and lends to callers running an exec inline (owner_).
// Created by vkn::start, found through the node registry (node_registry.cc). Public
// methods are thread-safe, but for the GPU-object accessors below, which require ownership.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "node/job.h"
#include "node/kernel_quarantine.h"
#include "node/restart_policy.h"
#include "vknode/gpu/device.h"
#include "vknode/gpu/kernel_cache.h"
#include "vknode/gpu/pipeline_cache.h"
#include "vknode/gpu/stream.h"
#include "vknode/node/buffer_registry.h"
#include "vknode/node/node.h"

namespace vkn::detail {

class NodeImpl {
 public:
  using Clock = std::chrono::steady_clock;
  explicit NodeImpl(const NodeOptions& options);
  ~NodeImpl();
  NodeImpl(const NodeImpl&) = delete;
  NodeImpl& operator=(const NodeImpl&) = delete;

  // Starts the worker and waits for the first initialisation. Errors: its error.
  Result<void> start();
  // Refuses new work, lets queued work finish, persists, releases the device.
  void stop();
  bool is_accepting() const { return accepting_.load(std::memory_order_acquire); }
  // True once the worker has exited (stopped, or the supervisor gave up).
  bool is_finished() const { return finished_.load(); }
  NodeStatus status();
  // Hands `job` (state queued) to the worker; an asynchronous one is the node's from then
  // on (`job` is null after). Errors: node_dead when the node is down or stopping; `job`
  // is then still the caller's.
  Result<void> submit(std::unique_ptr<Job>& job);
  // Waits for the blocking `job` for `timeout` (none: forever). Errors: node_timeout
  // (`job` is then the node's and null here) or the job's error.
  Result<void> wait(std::unique_ptr<Job>& job, std::optional<std::chrono::milliseconds> timeout);
  // Has the deadline timer expire the asynchronous `job` at `deadline` (see submit_job).
  // Requires: job->on_done is set; call before submit().
  void watch_deadline(Job* job, Clock::time_point deadline);
  void unwatch_deadline(Job* job);
  // Runs `program` on the calling thread if the node is idle (its worker waits for work and
  // none is queued) and NodeOptions::exec_inline is on: for a small Program the hand-off to
  // the worker and back costs more than the Program. Exclusive like any job: the caller
  // takes owner_ from idle. At its deadline, or when the device is lost, the caller hands
  // the rest (the wait for its batch, recovery) to the worker and returns node_timeout or
  // device_lost. nullopt: the node is busy; hand the job over as usual. (inline_exec.cc)
  std::optional<Result<ProgramResult>> try_exec_inline(const Program& program,
                                                       std::optional<std::chrono::milliseconds> timeout);
  std::optional<std::chrono::milliseconds> default_timeout() const { return default_timeout_; }
  // Nothing runs, nothing waits: the worker waits for work (TEST_wait_idle).
  bool is_idle() const {
    return owner_.load() == Owner::idle && doorbell_.mailbox.load() == nullptr && doorbell_.queued.load() == 0;
  }
  KernelQuarantine& quarantine() { return quarantine_; }
  void request_crash();

  // --- GPU-object state for the node's owner (owner_), used by the Context and jobs. ---
  struct KernelRecord {
    std::vector<uint32_t> spirv;
    std::vector<SpecConstant> spec;
    std::string name;
  };
  Result<KernelId> register_kernel(std::span<const uint32_t> spirv, std::span<const SpecConstant> spec,
                                   std::string_view name);
  // Valid while the kernel stays in kernels() (see Context::kernel).
  Result<Kernel*> kernel(const KernelId& id);
  Result<void> submit_and_wait();
  // Waits for `ticket`, submitted at `submitted`, within the hang limit: a wait past it
  // marks the device lost (device_lost).
  Result<void> wait_batch(Ticket ticket, Clock::time_point submitted);
  Device& device() { return *device_; }
  Stream& stream() { return *stream_; }
  KernelCache& kernels() { return *kernels_; }
  PipelineCache& pipeline_cache() { return *pipeline_cache_; }
  BufferRegistry& registry() { return registry_; }
  ScratchStore& scratch(const std::string& client) { return scratch_[client]; }
  std::chrono::milliseconds hang_limit() const { return options_.hang_limit; }

 private:
  // Who may use the GPU objects (device, stream, registry, caches, scratch stores): the
  // worker, which lends them out only while it waits for work (next_job), or a caller
  // running an exec inline. Moves from idle by compare-and-swap. `finishing`: the worker
  // has answered its job and does the bookkeeping after it, a moment that a caller about
  // to borrow the node waits out rather than queue behind it.
  enum class Owner : uint32_t { idle, worker, caller, finishing };
  bool take_ownership();  // the worker: idle -> worker
  void release_ownership();
  // A caller: idle -> caller, only when no job waits. give_back() makes it idle again;
  // hand_over() passes it, with the rest of the caller's work, straight to the worker.
  bool borrow();
  void give_back();
  void hand_over(ErasedJob rest, std::shared_ptr<const void> keep);
  Job* take_handed_over();
  // try_exec_inline's ends. end_inline: settles the job as run_one does, then gives the
  // node back, or hands it over to rebuild a lost device (lose_device); the job's result.
  // time_out: a deadline that passed while the batch ran.
  Result<void> end_inline(Result<void> result);
  Result<void> lose_device(Result<void> result);
  Result<ProgramResult> time_out(const Program& program, Ticket ticket, Clock::time_point submitted,
                                 ProgramResult&& result);
  void bump_inline_execs();
  void note_job_started(bool is_exec);
  void note_job_ended(const Result<void>& result);  // counts; requires ownership
  void count_error(const Error& error);
  Result<void> hung();  // marks the device lost: device_lost
  // After a job's own work: drops what it left recorded, syncs durable buffers it wrote,
  // and makes any error on a lost device device_lost. Requires ownership.
  Result<void> settle_job(Result<void> result);
  void worker_main();
  Result<void> bring_up();
  void tear_down(bool persist);
  Result<void> recover_device();
  // After the final stop: what the node holds on the host (the Vulkan instance, durable
  // buffers' mirrors, kernels' SPIR-V) goes at once, not with the last reference to the
  // node, which a thread's lookup memo (node_registry.cc) may keep for a while.
  void release_host_state();
  void serve();
  // The next job for the worker (the mailbox first, then the queue); spins briefly, then
  // sleeps, persisting the pipeline cache when idle. Null: a crash was requested, or the
  // node is stopping and nothing is left.
  Job* next_job();
  Job* take_ready();
  // False when the node no longer accepts work (checked under mu_ where it matters).
  bool publish(Job* job);
  void wake_worker();
  Result<void> sleep_until_done(std::unique_ptr<Job>& job, std::optional<Clock::time_point> deadline);
  // The mailbox holds a job, nothing, or closed_mark() after the worker's last drain.
  Job* closed_mark() const { return reinterpret_cast<Job*>(const_cast<Doorbell*>(&doorbell_)); }
  bool is_job(const Job* boxed) const;
  void run_one(Job* job);
  // Settles a job that was `from` (running, or queued when failed unstarted) with
  // `result`: the waiter is woken, or on_done is answered, or, where the caller or the
  // deadline gave the job up, it is freed.
  void finish_job(Job* job, Result<void> result, uint32_t from);
  // Frees a job the node owns (given up by its caller or deadline, or an asynchronous one
  // answered), after its deadline is unwatched.
  void retire(Job* job);
  // At a job's deadline: withdraws it (queued) or abandons it (running), counts the
  // timeout and returns the caller's node_timeout; nullopt when it is already done.
  std::optional<Error> expire(Job& job);
  // The caller's node_timeout for a job whose deadline passed while it ran (its own or inline).
  static Error timed_out_while_running();
  Result<void> refusal();
  void call_done(const JobDone& done, Result<void> result);
  void timer_main();
  void stop_timer();
  void fail_queued(Errc code, const std::string& why);
  void maybe_persist(bool force);
  void publish_stats(bool device_changed);
  void set_health(NodeHealth h);
  bool accepts_work() const;  // !stopping_ and ready or recovering; requires mu_
  void update_accepting();    // accepting_ = accepts_work(); requires mu_
  bool supervise_restart(const Error& why);

  const NodeOptions options_;
  std::optional<std::chrono::milliseconds> default_timeout_;
  const Clock::time_point started_at_ = Clock::now();
  KernelQuarantine quarantine_;
  RestartPolicy restart_policy_;

  // What a caller and the worker touch to hand over a job, on a cache line of its own:
  // a job goes into the mailbox when it is empty and nothing is queued (the one-caller
  // case: one swap by the caller, one read by the spinning worker), into the queue
  // otherwise. The worker spins on this line before it sleeps; a caller that publishes
  // while `worker_sleeping` wakes it through cv_.
  struct alignas(64) Doorbell {
    std::atomic<Job*> mailbox{nullptr};
    // queue_.size(), readable without mu_. Raised just after the push (so that a spinning
    // worker takes mu_ uncontended), it can lag the queue for an instant.
    std::atomic<int64_t> queued{0};
    std::atomic<bool> worker_sleeping{false};
    std::atomic<bool> attention{false};  // a stop or crash was requested
    std::atomic<Job*> handed_over{nullptr};  // see hand_over(); the worker's turn, first
  };
  Doorbell doorbell_;
  // On a line of its own, which the idle worker does not read: a caller borrowing the
  // node again and again takes it without a transfer.
  alignas(64) std::atomic<Owner> owner_{Owner::worker};
  // Read by every submission (a quick refusal; publish() decides); written when the node
  // stops or changes health.
  alignas(64) std::atomic<bool> accepting_{false};  // !stopping_ and ready or recovering

  // Guarded by mu_.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job*> queue_;
  NodeHealth health_ = NodeHealth::starting;
  bool stopping_ = false;
  bool first_init_done_ = false;
  std::optional<Error> first_init_error_;

  // Guarded by stats_mu_ (the worker refreshes it after each job; status() reads it).
  mutable std::mutex stats_mu_;
  NodeStatus published_;  // device/registry/cache figures
  std::string last_error_;

  // Written by the node's owner (owner_) per job.
  alignas(64) std::atomic<uint64_t> exec_count_{0}, inline_execs_{0};
  std::atomic<uint64_t> job_count_{0}, errors_{0};
  std::atomic<int64_t> inflight_since_ns_{0};  // coarse monotonic clock; 0: nothing in flight
  // Written rarely.
  alignas(64) std::atomic<uint64_t> timeouts_{0}, withdrawn_{0};
  std::atomic<uint64_t> restarts_{0}, device_resets_{0};
  std::atomic<bool> crash_requested_{false};
  std::atomic<bool> finished_{false};
  std::atomic<uint32_t> init_failures_left_{0};

  // The node's owner only (owner_: the worker, or a caller running an exec inline).
  std::shared_ptr<Instance> instance_;
  // instance_ for status() on other threads, who read it under stats_mu_: set with it, and
  // cleared before it goes (release_host_state).
  std::atomic<const Instance*> live_instance_{nullptr};
  std::unique_ptr<Device> device_;
  std::unique_ptr<PipelineCache> pipeline_cache_;
  std::unique_ptr<KernelCache> kernels_;
  std::unique_ptr<Stream> stream_;
  BufferRegistry registry_{0};
  std::map<KernelId, KernelRecord> kernel_records_;
  // Kernels kernel() found lately, good while the kernel cache's generation stays
  // recent_generation_: a job's lookup then takes no lock and no reference (on the H200 the
  // lock and the reference cost 60-100 ns a dispatch). Emptied with the cache (tear_down).
  struct RecentKernel {
    KernelId id{};
    Kernel* kernel = nullptr;
  };
  std::array<RecentKernel, 4> recent_kernels_{};
  uint64_t recent_generation_ = 0;
  size_t recent_next_ = 0;
  std::map<std::string, ScratchStore> scratch_;
  const std::string no_client_;  // the client of inline execs, which use no scratch store
  Clock::time_point last_persist_ = Clock::now();
  // What publish_stats() last copied: unchanged (the usual job), it copies nothing and
  // takes no lock. figures_stale_: the pipeline cache persisted since (its size changed).
  struct Figures {
    uint64_t registry_bytes = 0, buffers = 0, kernel_generation = 0, pipelines = 0;
    bool operator==(const Figures&) const = default;
  };
  Figures published_figures_;
  bool figures_stale_ = true;
  std::vector<int> worker_cpus_;  // where the worker could run before placement

  // The deadline timer of asynchronous jobs: started with the first one that has a
  // deadline; sleeps until the earliest. Guarded by timer_mu_.
  std::mutex timer_mu_;
  std::condition_variable timer_cv_;
  DeadlineMap deadlines_;
  bool timer_stop_ = false;
  std::thread timer_;

  std::thread worker_;
};

}  // namespace vkn::detail
