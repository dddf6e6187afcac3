#include "node/node_impl.h"

#include <cstdlib>
#include <exception>
#include <utility>

#include "util/log.h"
#include "util/strformat.h"

namespace vkn::detail {
namespace {

constexpr std::chrono::seconds kSyncTimeout{60};
constexpr std::chrono::microseconds kCallerSpin{50};
constexpr std::chrono::microseconds kWorkerSpin{50};
// Hand-offs between a caller and the worker spin briefly before they sleep: a futex
// wake-up costs 5-30 us on a small VM, more than most tiny jobs. Where cores are few,
// the spin yields at each turn so that the worker, or a CPU device's own threads, can
// run (measured on 2 cores with lavapipe: with_node no-op 7.9 -> 1.1 us; a tiny
// dispatch through the node 85 -> 50 us, the core Stream's own being 40-65 us).
const bool kFewCores = std::thread::hardware_concurrency() < 4;

inline void spin_pause() {
  if (kFewCores) {
    std::this_thread::yield();
    return;
  }
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

// Spins until `done()` or `end`; where turns are pauses, reads the clock only every 32 of
// them: in a VM a clock read can cost far more than a pause, and the reaction time is what
// the spin is for.
template <typename Done>
bool spin_until(Done&& done, std::chrono::steady_clock::time_point end) {
  const int turns = kFewCores ? 1 : 32;
  while (true) {
    for (int i = 0; i < turns; ++i) {
      if (done()) return true;
      spin_pause();
    }
    if (std::chrono::steady_clock::now() >= end) return done();
  }
}

std::optional<std::chrono::milliseconds> timeout_from_env() {
  const char* v = std::getenv("VKNODE_TIMEOUT_MS");
  if (v == nullptr || *v == '\0') return std::nullopt;
  char* end = nullptr;
  const long long ms = std::strtoll(v, &end, 10);
  if (*end != '\0' || ms <= 0) {
    log(LogLevel::warn, "ignoring VKNODE_TIMEOUT_MS='{}': not a positive integer", v);
    return std::nullopt;
  }
  return std::chrono::milliseconds(ms);
}

// The Context a job sees: the node's worker-thread state plus the caller's scratch store.
class NodeContext final : public Context {
 public:
  NodeContext(NodeImpl& node, ScratchStore& scratch) : node_(node), scratch_(scratch) {}
  Device& device() override { return node_.device(); }
  Stream& stream() override { return node_.stream(); }
  KernelCache& kernels() override { return node_.kernels(); }
  PipelineCache& pipeline_cache() override { return node_.pipeline_cache(); }
  BufferRegistry& buffers() override { return node_.registry(); }
  ScratchStore& scratch() override { return scratch_; }
  Result<void> submit_and_wait() override { return node_.submit_and_wait(); }
  Result<std::shared_ptr<Kernel>> kernel(const KernelId& id) override { return node_.kernel(id); }

 private:
  NodeImpl& node_;
  ScratchStore& scratch_;
};

}  // namespace

NodeImpl::NodeImpl(const NodeOptions& options)
    : options_(options),
      default_timeout_(options.default_timeout ? options.default_timeout : timeout_from_env()),
      quarantine_(options.quarantine_after, options.quarantine_cooldown),
      restart_policy_(options.max_restarts, options.restart_window, options.restart_backoff),
      init_failures_left_(options.TEST_fail_initializations) {
  published_.name = options.name;
}

NodeImpl::~NodeImpl() {
  stop();
  if (worker_.joinable()) worker_.join();
  stop_timer();
}

Result<void> NodeImpl::start() {
  worker_ = std::thread([this] { worker_main(); });
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return first_init_done_; });
  if (first_init_error_ && health_ != NodeHealth::ready) return fail(*first_init_error_);
  return {};
}

void NodeImpl::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable() && worker_.get_id() != std::this_thread::get_id()) {
    worker_.join();
    stop_timer();  // the worker has finished every job, so no deadline is left
  }
}

void NodeImpl::stop_timer() {
  {
    std::lock_guard lock(timer_mu_);
    timer_stop_ = true;
  }
  timer_cv_.notify_all();
  if (timer_.joinable() && timer_.get_id() != std::this_thread::get_id()) timer_.join();
}

void NodeImpl::watch_deadline(const std::shared_ptr<Job>& job, Clock::time_point deadline) {
  bool earliest = false;
  {
    std::lock_guard lock(timer_mu_);
    if (timer_stop_) return;  // the node is stopping: the worker fails the job
    if (!timer_.joinable()) timer_ = std::thread([this] { timer_main(); });
    earliest = deadlines_.empty() || deadline < deadlines_.begin()->first;
    job->deadline_entry = deadlines_.emplace(deadline, job);
  }
  // Only an earlier deadline changes what the timer sleeps until: no wake-up otherwise.
  if (earliest) timer_cv_.notify_one();
}

void NodeImpl::unwatch_deadline(const std::shared_ptr<Job>& job) {
  std::lock_guard lock(timer_mu_);
  if (job->deadline_entry) {
    deadlines_.erase(*job->deadline_entry);
    job->deadline_entry.reset();
  }
}

void NodeImpl::timer_main() {
  std::unique_lock lock(timer_mu_);
  while (!timer_stop_) {
    if (deadlines_.empty()) {
      timer_cv_.wait(lock);
      continue;
    }
    const Clock::time_point next = deadlines_.begin()->first;
    if (Clock::now() < next) {
      timer_cv_.wait_until(lock, next);
      continue;
    }
    std::shared_ptr<Job> job = deadlines_.begin()->second;
    deadlines_.erase(deadlines_.begin());
    job->deadline_entry.reset();
    lock.unlock();
    expire(job);
    lock.lock();
  }
}

void NodeImpl::expire(const std::shared_ptr<Job>& job) {
  JobDone done;
  Result<void> timeout;
  {
    std::lock_guard lock(job->mu);
    if (job->state != JobState::queued && job->state != JobState::running) {
      return;  // done: the worker calls (or called) on_done
    }
    timeout = time_out(*job);
    done = std::exchange(job->on_done, nullptr);
  }
  if (done) call_done(done, std::move(timeout));
}

bool NodeImpl::is_accepting() const {
  std::lock_guard lock(mu_);
  return !stopping_ && (health_ == NodeHealth::ready || health_ == NodeHealth::recovering);
}

void NodeImpl::set_health(NodeHealth h) {
  {
    std::lock_guard lock(mu_);
    health_ = h;
  }
  cv_.notify_all();
}

void NodeImpl::request_crash() {
  {
    // Under mu_: the worker checks the flag under it before it sleeps, so a flag set
    // between that check and the sleep cannot lose its wake-up.
    std::lock_guard lock(mu_);
    crash_requested_.store(true);
  }
  cv_.notify_all();
}

Result<void> NodeImpl::submit(const std::shared_ptr<Job>& job) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || (health_ != NodeHealth::ready && health_ != NodeHealth::recovering)) {
      return fail(Errc::node_dead, vkn::format("node '{}' is {}", options_.name,
                                               stopping_ ? "stopping" : to_string(health_)));
    }
    queue_.push_back(job);
  }
  // Published after the unlock: a worker spinning on it then takes mu_ uncontended
  // instead of sleeping on it and needing a wake-up.
  queued_.fetch_add(1, std::memory_order_release);
  cv_.notify_all();
  return {};
}

Result<void> NodeImpl::wait(const std::shared_ptr<Job>& job, std::optional<Clock::time_point> deadline) {
  // Short jobs answer within microseconds: spin briefly before sleeping, to save the wake-up.
  const auto spin_end = std::min(Clock::now() + kCallerSpin, deadline.value_or(Clock::time_point::max()));
  if (!spin_until([&] { return job->finished.load(std::memory_order_acquire); }, spin_end)) {
    std::unique_lock lock(job->mu);
    auto done = [&] { return job->state == JobState::done; };
    if (!deadline) {
      job->cv.wait(lock, done);
    } else if (!job->cv.wait_until(lock, *deadline, done)) {
      return time_out(*job);
    }
  }
  // Done: its error was written before it was marked done and never changes after, so no
  // lock (after a spin the worker may still hold it while it notifies, and waiting on it
  // costs a wake-up). The worker is past the function, so the caller frees it (and what it
  // captured, such as exec's copy of the Program) here, where it was allocated, instead of
  // the worker doing so before it can take the next job.
  job->fn = nullptr;
  if (job->error) return fail(*job->error);
  return {};
}

Result<void> NodeImpl::time_out(Job& job) {
  timeouts_.fetch_add(1);
  if (job.state == JobState::queued) {
    job.state = JobState::withdrawn;
    withdrawn_.fetch_add(1);
    return fail(Errc::node_timeout, "the deadline passed before the job started; it was withdrawn and will not run");
  }
  job.abandoned = true;
  quarantine_.note_timeout(job.kernels);
  return fail(Errc::node_timeout, "the deadline passed while the job ran; it will finish and its result is dropped");
}

void NodeImpl::finish_job(const std::shared_ptr<Job>& job, Result<void> result) {
  if (!result) {
    errors_.fetch_add(1);
    std::lock_guard lock(mu_);
    last_error_ = result.error().to_string();
  }
  JobDone done;
  {
    std::lock_guard lock(job->mu);
    if (!job->abandoned && result) quarantine_.note_success(job->kernels);
    if (!result) job->error = result.error();
    job->state = JobState::done;
    job->finished.store(true, std::memory_order_release);
    job->cv.notify_all();
    // Null for a synchronous job, and once the deadline timer has answered.
    done = std::exchange(job->on_done, nullptr);
  }
  if (!done) return;
  unwatch_deadline(job);
  call_done(done, std::move(result));
}

void NodeImpl::call_done(const JobDone& done, Result<void> result) {
  // A completion that throws must not take the node's worker (or timer) down.
  try {
    done(std::move(result));
  } catch (const std::exception& e) {
    log(LogLevel::error, "node '{}': a job's completion threw: {}", options_.name, e.what());
  } catch (...) {
    log(LogLevel::error, "node '{}': a job's completion threw", options_.name);
  }
}

void NodeImpl::fail_queued(Errc code, const std::string& why) {
  std::deque<std::shared_ptr<Job>> jobs;
  {
    std::lock_guard lock(mu_);
    jobs.swap(queue_);
    queued_.fetch_sub(static_cast<int64_t>(jobs.size()), std::memory_order_release);
  }
  for (auto& job : jobs) finish_job(job, fail(code, why));
}

Result<void> NodeImpl::bring_up() {
  if (init_failures_left_.load() > 0) {
    init_failures_left_.fetch_sub(1);
    return fail(Errc::vulkan_error, "injected initialisation failure");
  }
  if (instance_ == nullptr) {
    // One instance for the node's life: device resets rebuild only the device.
    const char* env = std::getenv("VKNODE_VALIDATION");
    auto instance = Instance::create(options_.enable_validation || (env != nullptr && std::string_view(env) == "1"));
    if (!instance) return fail(instance.error());
    instance_ = std::move(*instance);
  }
  DeviceOptions dopt;
  dopt.selector = options_.device_selector;
  dopt.instance = instance_;
  auto device = Device::create(dopt);
  if (!device) return fail(device.error());
  device_ = std::move(*device);
  PipelineCacheOptions popt;
  popt.directory = options_.cache_dir;
  popt.persistent = options_.persist_pipeline_cache;
  auto cache = PipelineCache::open(*device_, popt);
  if (!cache) return fail(cache.error());
  pipeline_cache_ = std::move(*cache);
  kernels_ = std::make_unique<KernelCache>(*device_, pipeline_cache_.get());
  StreamOptions sopt;
  sopt.max_staging_bytes = kMaxProgramTransferBytes;
  auto stream = Stream::create(*device_, sopt);
  if (!stream) return fail(stream.error());
  stream_ = std::move(*stream);
  if (registry_.budget() == 0) {
    uint64_t heap = 0;
    for (const MemoryHeapInfo& h : device_->info().heaps) {
      if (h.device_local) heap = std::max(heap, h.size);
    }
    registry_ = BufferRegistry(options_.memory_budget ? options_.memory_budget : heap / 10 * 9);
  }
  for (BuiltinKernel k : all_builtin_kernels()) {
    if (auto r = register_kernel(builtin_spirv(k), {}, to_string(k)); !r) return fail(r.error());
  }
  // Pipelines come back from the pipeline cache; durable buffers from their mirrors.
  for (const auto& [id, rec] : kernel_records_) {
    if (auto r = kernels_->get_or_create(rec.spirv, rec.spec, rec.name); !r) return fail(r.error());
  }
  if (auto r = registry_.restore_after_reset(*device_, *stream_, kSyncTimeout); !r) return r;
  publish_stats(true);
  return {};
}

void NodeImpl::tear_down(bool persist) {
  if (persist) maybe_persist(true);
  // Nothing may be destroyed while the GPU still uses it; a lost device answers at once.
  if (device_ != nullptr) vkDeviceWaitIdle(device_->handle());
  scratch_.clear();  // may hold device objects
  registry_.release_device_buffers();
  stream_.reset();
  kernels_.reset();
  pipeline_cache_.reset();
  device_.reset();
}

Result<void> NodeImpl::recover_device() {
  set_health(NodeHealth::recovering);
  log(LogLevel::warn, "node '{}': device lost or hung; rebuilding it", options_.name);
  tear_down(false);
  restarts_.fetch_add(1);
  device_resets_.fetch_add(1);
  if (auto r = bring_up(); !r) return r;
  set_health(NodeHealth::ready);
  return {};
}

void NodeImpl::worker_main() {
  struct MarkFinished {
    NodeImpl* self;
    ~MarkFinished() {
      self->finished_.store(true);
      {
        std::lock_guard lock(self->mu_);
        self->first_init_done_ = true;
      }
      self->cv_.notify_all();
    }
  } mark{this};
  while (true) {
    auto up = bring_up();
    if (up) {
      set_health(NodeHealth::ready);
      {
        std::lock_guard lock(mu_);
        first_init_done_ = true;
      }
      cv_.notify_all();
      serve();
      const bool crashed = crash_requested_.exchange(false);
      if (!crashed) {
        tear_down(true);
        set_health(NodeHealth::stopped);
        fail_queued(Errc::node_dead, "the node stopped");
        return;
      }
      tear_down(true);
      up = fail(Errc::job_failed, "the node's worker hit an unrecoverable error");
    } else {
      tear_down(false);
    }
    {
      std::lock_guard lock(mu_);
      if (!first_init_done_) {
        first_init_error_ = up.error();
      }
      first_init_done_ = true;
    }
    if (!supervise_restart(up.error())) return;
  }
}

bool NodeImpl::supervise_restart(const Error& why) {
  set_health(NodeHealth::down);
  {
    std::lock_guard lock(mu_);
    last_error_ = why.to_string();
  }
  fail_queued(Errc::node_dead, "the node is down: " + why.to_string());
  if (!restart_policy_.allow_restart(Clock::now())) {
    log(LogLevel::error, "node '{}': giving up after {} restarts: {}", options_.name,
        restart_policy_.restarts_in_window(), why.to_string());
    return false;
  }
  const auto delay = restart_policy_.next_delay();
  log(LogLevel::warn, "node '{}' is down ({}); restarting in {} ms", options_.name, why.to_string(), delay.count());
  std::unique_lock lock(mu_);
  if (cv_.wait_for(lock, delay, [&] { return stopping_; })) {
    health_ = NodeHealth::stopped;
    return false;
  }
  restarts_.fetch_add(1);
  health_ = NodeHealth::starting;
  return true;
}

void NodeImpl::serve() {
  while (true) {
    std::shared_ptr<Job> job;
    // A caller that just got its answer often sends the next job at once.
    spin_until([&] { return queued_.load(std::memory_order_acquire) > 0; }, Clock::now() + kWorkerSpin);
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, options_.persist_interval,
                   [&] { return !queue_.empty() || stopping_ || crash_requested_.load(); });
      if (crash_requested_.load()) return;
      if (queue_.empty()) {
        if (stopping_) return;
        lock.unlock();
        maybe_persist(false);
        continue;
      }
      job = std::move(queue_.front());
      queue_.pop_front();
      queued_.fetch_sub(1, std::memory_order_release);
      // In flight from here (one lock of mu_ per job instead of two).
      inflight_ = job;
      inflight_since_ = Clock::now();
    }
    run_one(job);
    if (device_ == nullptr) return;  // recovery failed: the supervisor takes over
    maybe_persist(false);
  }
}

void NodeImpl::run_one(const std::shared_ptr<Job>& job) {
  bool withdrawn = false;
  {
    std::lock_guard jl(job->mu);
    withdrawn = job->state == JobState::withdrawn;
    if (!withdrawn) job->state = JobState::running;
  }
  if (withdrawn) {
    std::lock_guard lock(mu_);
    inflight_.reset();
    return;
  }
  Result<void> result;
  if (auto q = quarantine_.check(job->kernels); !q) {
    result = q;
  } else {
    if (job->is_exec) exec_count_.fetch_add(1);
    NodeContext ctx(*this, scratch_[job->client]);
    try {
      result = job->fn(ctx);
    } catch (const std::exception& e) {
      result = fail(Errc::job_failed, "the job threw an exception", e.what());
    } catch (...) {
      result = fail(Errc::job_failed, "the job threw a non-standard exception");
    }
    if (stream_->has_open_batch()) stream_->discard_open_batch();
    if (!device_->is_lost() && result) {
      if (auto s = registry_.sync_durable(*stream_, options_.hang_limit); !s) result = s;
    }
  }
  job_count_.fetch_add(1);
  const bool lost = device_->is_lost();
  if (lost && (result || result.error().code != Errc::device_lost)) {
    result = fail(Errc::device_lost, "the device was lost while the job ran",
                  result ? std::string_view{} : std::string_view(result.error().message));
  }
  finish_job(job, result);
  {
    std::lock_guard lock(mu_);
    inflight_.reset();
  }
  if (lost) {
    if (auto r = recover_device(); !r) {
      tear_down(false);
      crash_requested_.store(true);
      std::lock_guard lock(mu_);
      last_error_ = r.error().to_string();
      return;
    }
  }
  publish_stats(false);
}

Result<void> NodeImpl::submit_and_wait() {
  auto ticket = stream_->submit();
  if (!ticket) return fail(ticket.error());
  auto r = stream_->wait(*ticket, options_.hang_limit);
  if (!r && r.error().code == Errc::timeout) {
    // A GPU wait past the hang limit: the device is treated as hung and rebuilt.
    device_->mark_lost();
    return fail(Errc::device_lost, vkn::format("GPU hang: a batch ran past the {} ms hang limit",
                                               options_.hang_limit.count()));
  }
  return r;
}

Result<KernelId> NodeImpl::register_kernel(std::span<const uint32_t> spirv, std::span<const SpecConstant> spec,
                                           std::string_view name) {
  auto kernel = kernels_->get_or_create(spirv, spec, name);
  if (!kernel) return fail(kernel.error());
  const KernelId id = (*kernel)->id();
  if (!kernel_records_.contains(id)) {
    kernel_records_.emplace(id, KernelRecord{{spirv.begin(), spirv.end()}, {spec.begin(), spec.end()},
                                             (*kernel)->name()});
  }
  return id;
}

Result<std::shared_ptr<Kernel>> NodeImpl::kernel(const KernelId& id) {
  const KernelId one[] = {id};
  if (auto q = quarantine_.check(one); !q) return fail(q.error());
  auto k = kernels_->find(id);
  if (!k) return fail(Errc::not_found, "no kernel registered with id", to_hex(id));
  return k;
}

void NodeImpl::maybe_persist(bool force) {
  if (pipeline_cache_ == nullptr || device_ == nullptr || device_->is_lost()) return;
  const auto now = Clock::now();
  if (!pipeline_cache_->is_dirty() || (!force && now - last_persist_ < options_.persist_interval)) return;
  last_persist_ = now;
  if (auto r = pipeline_cache_->persist(); !r) {
    log(LogLevel::warn, "node '{}': pipeline cache not persisted: {}", options_.name, r.error().to_string());
  }
}

void NodeImpl::publish_stats(bool device_changed) {
  // Strings change only with the device; the per-job refresh copies numbers alone.
  std::string name, uuid, path;
  if (device_changed) {
    name = device_->info().name;
    uuid = uuid_string(device_->info().device_uuid);
    path = pipeline_cache_->path().string();
  }
  const PipelineCacheStats ps = pipeline_cache_->stats();
  std::lock_guard lock(mu_);
  NodeStatus& s = published_;
  if (device_changed) {
    s.device_name = std::move(name);
    s.device_uuid = std::move(uuid);
    s.cache_path = std::move(path);
  }
  s.registry_bytes = registry_.bytes_in_use();
  s.registry_budget = registry_.budget();
  s.buffer_count = registry_.size();
  s.kernel_count = kernels_->size();
  s.cache_hits = ps.hits;
  s.cache_misses = ps.misses;
  s.cache_bytes = ps.persisted_bytes ? ps.persisted_bytes : ps.loaded_bytes;
  s.validation_errors = device_->validation_error_count();
}

NodeStatus NodeImpl::status() {
  NodeStatus s;
  {
    std::lock_guard lock(mu_);
    s = published_;
    s.health = health_;
    s.queue_depth = queue_.size();
    s.inflight_age = inflight_ ? std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - inflight_since_)
                               : std::chrono::milliseconds(0);
    s.last_error = last_error_;
  }
  s.name = options_.name;
  s.uptime = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started_at_);
  s.exec_count = exec_count_.load();
  s.job_count = job_count_.load();
  s.timeouts = timeouts_.load();
  s.withdrawn = withdrawn_.load();
  s.errors = errors_.load();
  s.restarts = restarts_.load();
  s.device_resets = device_resets_.load();
  s.quarantined_kernels = quarantine_.quarantined_count();
  return s;
}

}  // namespace vkn::detail
