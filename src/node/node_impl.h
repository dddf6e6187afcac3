// NodeImpl: one running node: its worker thread, job queue, supervisor loop, and the
// GPU objects the worker owns. Created by vkn::start, found through the node
// registry (node_registry.cc). Public methods are thread-safe.
#pragma once

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
  bool is_accepting() const;
  // True once the worker has exited (stopped, or the supervisor gave up).
  bool is_finished() const { return finished_.load(); }
  NodeStatus status();
  // Queues a job. Errors: node_dead when the node is down or stopping.
  Result<void> submit(const std::shared_ptr<Job>& job);
  // Waits for `job` until `deadline` (none: forever). Errors: node_timeout or the job's error.
  Result<void> wait(const std::shared_ptr<Job>& job, std::optional<Clock::time_point> deadline);
  // Has the deadline timer expire the asynchronous `job` at `deadline` (see submit_job).
  // Requires: job->on_done is set; call before submit().
  void watch_deadline(const std::shared_ptr<Job>& job, Clock::time_point deadline);
  void unwatch_deadline(const std::shared_ptr<Job>& job);
  std::optional<std::chrono::milliseconds> default_timeout() const { return default_timeout_; }
  KernelQuarantine& quarantine() { return quarantine_; }
  void request_crash();

  // --- Worker-thread state, used by the Context and jobs. ---
  struct KernelRecord {
    std::vector<uint32_t> spirv;
    std::vector<SpecConstant> spec;
    std::string name;
  };
  Result<KernelId> register_kernel(std::span<const uint32_t> spirv, std::span<const SpecConstant> spec,
                                   std::string_view name);
  Result<std::shared_ptr<Kernel>> kernel(const KernelId& id);
  Result<void> submit_and_wait();
  Device& device() { return *device_; }
  Stream& stream() { return *stream_; }
  KernelCache& kernels() { return *kernels_; }
  PipelineCache& pipeline_cache() { return *pipeline_cache_; }
  BufferRegistry& registry() { return registry_; }
  ScratchStore& scratch(const std::string& client) { return scratch_[client]; }
  std::chrono::milliseconds hang_limit() const { return options_.hang_limit; }

 private:
  void worker_main();
  Result<void> bring_up();
  void tear_down(bool persist);
  Result<void> recover_device();
  void serve();
  void run_one(const std::shared_ptr<Job>& job);
  void finish_job(const std::shared_ptr<Job>& job, Result<void> result);
  // At an asynchronous job's deadline: withdraws or abandons it and calls on_done.
  void expire(const std::shared_ptr<Job>& job);
  // At a job's deadline, with job.mu held and the job queued or running: withdraws it
  // (it never runs) or marks it abandoned (it finishes, its result dropped), counts the
  // timeout, and returns the caller's node_timeout.
  Result<void> time_out(Job& job);
  void call_done(const JobDone& done, Result<void> result);
  void timer_main();
  void stop_timer();
  void fail_queued(Errc code, const std::string& why);
  void maybe_persist(bool force);
  void publish_stats(bool device_changed);
  void set_health(NodeHealth h);
  bool supervise_restart(const Error& why);

  const NodeOptions options_;
  std::optional<std::chrono::milliseconds> default_timeout_;
  const Clock::time_point started_at_ = Clock::now();
  KernelQuarantine quarantine_;
  RestartPolicy restart_policy_;

  // Guarded by mu_.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  NodeHealth health_ = NodeHealth::starting;
  bool stopping_ = false;
  bool first_init_done_ = false;
  std::optional<Error> first_init_error_;
  std::shared_ptr<Job> inflight_;
  Clock::time_point inflight_since_{};
  NodeStatus published_;  // device/registry/cache figures, refreshed by the worker
  std::string last_error_;

  std::atomic<uint64_t> exec_count_{0}, job_count_{0}, timeouts_{0}, withdrawn_{0}, errors_{0};
  std::atomic<uint64_t> restarts_{0}, device_resets_{0};
  std::atomic<bool> crash_requested_{false};
  std::atomic<bool> finished_{false};
  // Mirrors queue_.size() for the worker's lock-free spin. Raised after mu_ is released,
  // so it may lag the queue (even dip below zero) for an instant; each job adds one and
  // takes one, so it settles.
  std::atomic<int64_t> queued_{0};
  std::atomic<uint32_t> init_failures_left_{0};

  // Worker thread only.
  std::shared_ptr<Instance> instance_;
  std::unique_ptr<Device> device_;
  std::unique_ptr<PipelineCache> pipeline_cache_;
  std::unique_ptr<KernelCache> kernels_;
  std::unique_ptr<Stream> stream_;
  BufferRegistry registry_{0};
  std::map<KernelId, KernelRecord> kernel_records_;
  std::map<std::string, ScratchStore> scratch_;
  Clock::time_point last_persist_ = Clock::now();

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
