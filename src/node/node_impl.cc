#include "node/node_impl.h"

#include <cstdlib>
#include <ctime>
#include <exception>
#include <utility>

#include "node/node_context.h"
#include "node/worker_placement.h"
#include "util/futex.h"
#include "util/log.h"
#include "util/prefetch.h"
#include "util/spin.h"
#include "util/strformat.h"

namespace vkn::detail {
namespace {

constexpr std::chrono::seconds kSyncTimeout{60};
constexpr std::chrono::microseconds kCallerSpin{50};
constexpr std::chrono::microseconds kWorkerSpin{50};

// A counter only the node's owner (owner_) writes: a plain add, not a locked one (which
// would first wait for every store the job made to reach other cores).
void bump(std::atomic<uint64_t>& counter) {
  counter.store(counter.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

// The coarse monotonic clock (the same epoch as steady_clock, a few ms behind it at most):
// a quarter of the cost of steady_clock::now, and status() reports ages in ms.
int64_t coarse_steady_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
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

int64_t steady_ns(NodeImpl::Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

void prefetch_for_claim(const Job* job) {
  // The state word's line, which run_one's claim swaps (so: for writing), and the next one,
  // where the job's function ends: both travel at once. (Asking for them earlier, as soon
  // as the spinning worker sees the job, and having the caller take the doorbell for
  // writing before reading it, measured no better on the H200: the other side, spinning
  // on the same lines, takes them straight back.)
  const char* line = reinterpret_cast<const char*>(&job->state);
  prefetch_for_write(line);
  prefetch_for_read(line + 64);
}

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
    update_accepting();
  }
  doorbell_.attention.store(true);
  cv_.notify_all();
  if (worker_.joinable() && worker_.get_id() != std::this_thread::get_id()) {
    worker_.join();
    stop_timer();  // the worker has settled every job, so no deadline is left
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

void NodeImpl::watch_deadline(Job* job, Clock::time_point deadline) {
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

void NodeImpl::unwatch_deadline(Job* job) {
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
    Job* job = deadlines_.begin()->second;
    deadlines_.erase(deadlines_.begin());
    job->deadline_entry.reset();
    // Under timer_mu_: the node frees an asynchronous job only after unwatching it, so
    // the job lives until this settles it or finds it done.
    JobDone done;
    std::optional<Error> timeout = expire(*job);
    if (timeout) done = std::move(job->on_done);
    lock.unlock();
    if (done) call_done(done, fail(*timeout));
    lock.lock();
  }
}

std::optional<Error> NodeImpl::expire(Job& job) {
  using namespace job_state;
  // Copied first: once the swap below succeeds the node may free the job.
  const std::vector<KernelId> kernels = job.kernels;
  if (advance_job(job.state, kQueued, kWithdrawn)) {
    timeouts_.fetch_add(1);
    withdrawn_.fetch_add(1);
    return Error::make(Errc::node_timeout, "the deadline passed before the job started; it was withdrawn and will not run");
  }
  if (advance_job(job.state, kRunning, kAbandoned)) {
    timeouts_.fetch_add(1);
    quarantine_.note_timeout(kernels);
    return timed_out_while_running();
  }
  return std::nullopt;  // done
}

Error NodeImpl::timed_out_while_running() {
  return Error::make(Errc::node_timeout, "the deadline passed while the job ran; it will finish and its result is dropped");
}

bool NodeImpl::accepts_work() const {
  return !stopping_ && (health_ == NodeHealth::ready || health_ == NodeHealth::recovering);
}

void NodeImpl::update_accepting() { accepting_.store(accepts_work(), std::memory_order_seq_cst); }

void NodeImpl::set_health(NodeHealth h) {
  {
    std::lock_guard lock(mu_);
    health_ = h;
    update_accepting();
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
  doorbell_.attention.store(true);
  cv_.notify_all();
}

Result<void> NodeImpl::refusal() {
  std::lock_guard lock(mu_);
  return fail(Errc::node_dead, vkn::format("node '{}' is {}", options_.name,
                                           stopping_ ? "stopping" : to_string(health_)));
}

Result<void> NodeImpl::submit(std::unique_ptr<Job>& job) {
  if (!is_accepting()) return refusal();
  const bool asynchronous = !job->has_waiter;  // read first: the node may free it once published
  if (!publish(job.get())) return refusal();
  if (asynchronous) job.release();
  return {};
}

bool NodeImpl::publish(Job* job) {
  // The mailbox first (the one-caller case: one swap, no lock). It fails when full, or
  // closed by the worker's last drain; the queue then decides under mu_, where a stop or
  // a failure is seen before the drain takes the queue.
  if (doorbell_.queued.load(std::memory_order_relaxed) == 0) {
    Job* empty = nullptr;
    if (doorbell_.mailbox.compare_exchange_strong(empty, job, std::memory_order_seq_cst,
                                                  std::memory_order_relaxed)) {
      wake_worker();
      return true;
    }
  }
  {
    std::lock_guard lock(mu_);
    if (!accepts_work()) return false;
    queue_.push_back(job);
  }
  // Counted after the unlock: a worker spinning on it then takes mu_ uncontended.
  doorbell_.queued.fetch_add(1, std::memory_order_seq_cst);
  wake_worker();
  return true;
}

void NodeImpl::wake_worker() {
  // Pairs with next_job: the worker announces its sleep, then looks for work once more
  // (seq_cst on both sides), so a job published meanwhile is seen there or wakes it here.
  if (doorbell_.worker_sleeping.load(std::memory_order_seq_cst)) {
    { std::lock_guard lock(mu_); }
    cv_.notify_one();
  }
}

bool NodeImpl::is_job(const Job* boxed) const { return boxed != nullptr && boxed != closed_mark(); }

Result<void> NodeImpl::wait(std::unique_ptr<Job>& job, std::optional<std::chrono::milliseconds> timeout) {
  using namespace job_state;
  std::atomic<uint32_t>& state = job->state;
  auto done = [&] { return base(state.load(std::memory_order_acquire)) == kDone; };
  // Short jobs answer within microseconds: spin before sleeping, to save the wake-up. The
  // first turns read no clock; the deadline counts from the first read, a few hundred
  // nanoseconds after the call began.
  if (!spin_turns(done)) {
    std::optional<Clock::time_point> deadline;
    if (timeout) deadline = Clock::now() + *timeout;
    if (!spin_for(done, kCallerSpin, deadline.value_or(Clock::time_point::max()))) {
      if (auto r = sleep_until_done(job, deadline); !r) return r;
    }
  }
  // Done: the node wrote the error before it set kDone and never touches the job again.
  if (job->error) return fail(*job->error);
  return {};
}

Result<void> NodeImpl::sleep_until_done(std::unique_ptr<Job>& job, std::optional<Clock::time_point> deadline) {
  using namespace job_state;
  std::atomic<uint32_t>& state = job->state;
  while (true) {
    uint32_t s = state.load(std::memory_order_acquire);
    if (base(s) == kDone) return {};
    if (deadline && Clock::now() >= *deadline) {
      if (std::optional<Error> timeout = expire(*job)) {
        job.release();  // the node's now (see job.h)
        return fail(*timeout);
      }
      continue;  // it finished just now
    }
    if ((s & kCallerSleeping) == 0 &&
        !state.compare_exchange_weak(s, s | kCallerSleeping, std::memory_order_acquire)) {
      continue;
    }
    futex_wait(state, s | kCallerSleeping, deadline);
  }
}

void NodeImpl::finish_job(Job* job, Result<void> result, uint32_t from) {
  using namespace job_state;
  if (!result) job->error = result.error();
  // Read before the swap, after which a waiting caller may free the job.
  const bool has_waiter = job->has_waiter;
  std::vector<KernelId> succeeded;
  if (result && from == kRunning && quarantine_.is_tracking()) succeeded = job->kernels;
  const std::optional<uint32_t> old = advance_job(job->state, from, kDone);
  if (!old) {
    retire(job);  // given up by its caller or deadline, which had the node_timeout
    return;
  }
  if (!succeeded.empty()) quarantine_.note_success(succeeded);
  if (has_waiter) {
    if ((*old & kCallerSleeping) != 0) futex_wake_all(job->state);
    return;
  }
  JobDone done = std::move(job->on_done);
  retire(job);  // before the completion, which may take its time
  call_done(done, std::move(result));
}

void NodeImpl::retire(Job* job) {
  if (!job->has_waiter) unwatch_deadline(job);  // waits out a timer still settling it
  delete job;
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
  // Callers see the node stopped or down (health_ or stopping_, set before this under mu_)
  // when they push to the queue after the swap, and a closed mailbox after the exchange.
  std::deque<Job*> jobs;
  {
    std::lock_guard lock(mu_);
    jobs.swap(queue_);
    doorbell_.queued.fetch_sub(static_cast<int64_t>(jobs.size()), std::memory_order_release);
  }
  if (Job* boxed = doorbell_.mailbox.exchange(closed_mark(), std::memory_order_seq_cst); is_job(boxed)) {
    jobs.push_front(boxed);
  }
  for (Job* job : jobs) {
    count_error(Error::make(code, why));
    finish_job(job, fail(code, why), job_state::kQueued);
  }
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
    live_instance_.store(instance_.get(), std::memory_order_release);
  }
  DeviceOptions dopt;
  dopt.selector = options_.device_selector;
  dopt.instance = instance_;
  auto device = Device::create(dopt);
  if (!device) return fail(device.error());
  device_ = std::move(*device);
  if (options_.avoid_device_interrupt_cpus) {
    if (worker_cpus_.empty()) worker_cpus_ = thread_cpus();
    const std::string placed = keep_thread_off_device_interrupts(device_->info().pci_address, worker_cpus_);
    if (!placed.empty()) log(LogLevel::info, "node '{}': worker {}", options_.name, placed);
  }
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
  recent_kernels_ = {};
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
      Job* closed = closed_mark();  // by the drain of a previous life: open it again
      doorbell_.mailbox.compare_exchange_strong(closed, nullptr);
      set_health(NodeHealth::ready);
      {
        std::lock_guard lock(mu_);
        first_init_done_ = true;
      }
      cv_.notify_all();
      serve();
      owner_.store(Owner::worker, std::memory_order_relaxed);  // until the next serve()
      const bool crashed = crash_requested_.exchange(false);
      if (!crashed) {
        tear_down(true);
        set_health(NodeHealth::stopped);
        fail_queued(Errc::node_dead, "the node stopped");
        release_host_state();
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

void NodeImpl::release_host_state() {
  registry_ = BufferRegistry(0);  // durable buffers' host mirrors
  kernel_records_.clear();
  {
    std::lock_guard lock(stats_mu_);  // status() reads the instance under it
    live_instance_.store(nullptr, std::memory_order_release);
  }
  instance_.reset();
}

bool NodeImpl::supervise_restart(const Error& why) {
  set_health(NodeHealth::down);
  {
    std::lock_guard lock(stats_mu_);
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
    update_accepting();
    return false;
  }
  restarts_.fetch_add(1);
  health_ = NodeHealth::starting;
  update_accepting();
  if (!stopping_) doorbell_.attention.store(false);  // the crash request is handled
  return true;
}

void NodeImpl::serve() {
  while (Job* job = next_job()) {
    run_one(job);
    if (device_ == nullptr) return;  // recovery failed: the supervisor takes over
    maybe_persist(false);
  }
}

bool NodeImpl::take_ownership() {
  Owner idle = Owner::idle;
  return owner_.compare_exchange_strong(idle, Owner::worker, std::memory_order_seq_cst);
}

void NodeImpl::release_ownership() { owner_.store(Owner::idle, std::memory_order_seq_cst); }

Job* NodeImpl::take_handed_over() {
  if (doorbell_.handed_over.load(std::memory_order_relaxed) == nullptr) return nullptr;
  // owner_ is the worker's already: hand_over() passed it on.
  return doorbell_.handed_over.exchange(nullptr, std::memory_order_acquire);
}

Job* NodeImpl::take_ready() {
  // Left in the box until run_one has claimed it: emptying it first would make the claim
  // wait for that store to reach the callers' cores.
  if (Job* job = doorbell_.mailbox.load(std::memory_order_acquire); is_job(job)) return job;
  if (doorbell_.queued.load(std::memory_order_acquire) <= 0) return nullptr;
  std::lock_guard lock(mu_);
  if (queue_.empty()) return nullptr;  // counted a moment before it is pushed
  Job* job = queue_.front();
  queue_.pop_front();
  doorbell_.queued.fetch_sub(1, std::memory_order_release);
  return job;
}

Job* NodeImpl::next_job() {
  // Between jobs the node is idle: a caller may run an exec inline (try_exec_inline).
  release_ownership();
  const auto work_waits = [&] {
    return is_job(doorbell_.mailbox.load(std::memory_order_relaxed)) ||
           doorbell_.queued.load(std::memory_order_relaxed) > 0 || doorbell_.attention.load(std::memory_order_relaxed) ||
           doorbell_.handed_over.load(std::memory_order_relaxed) != nullptr;
  };
  while (true) {
    // A caller that just got its answer often sends the next job at once.
    spin_for(work_waits, kWorkerSpin);
    if (Job* rest = take_handed_over()) return rest;
    if (work_waits()) {
      // A caller running an exec inline is done within microseconds, usually.
      spin_for([&] {
        return owner_.load(std::memory_order_relaxed) != Owner::caller ||
               doorbell_.handed_over.load(std::memory_order_relaxed) != nullptr;
      }, kWorkerSpin);
      if (Job* rest = take_handed_over()) return rest;
      if (take_ownership()) {
        if (crash_requested_.load()) return nullptr;
        if (Job* job = take_ready()) return job;
        {
          std::lock_guard lock(mu_);
          if (stopping_ && queue_.empty() && !is_job(doorbell_.mailbox.load())) return nullptr;
        }
        release_ownership();
      }
    }
    std::unique_lock lock(mu_);
    // Announced before the last look, which pairs with publish's and give_back's checks of
    // it (seq_cst on both sides): work published, or the node given back, meanwhile is
    // either seen here or wakes the sleep.
    doorbell_.worker_sleeping.store(true, std::memory_order_seq_cst);
    const bool woken = cv_.wait_for(lock, options_.persist_interval, [&] {
      if (doorbell_.handed_over.load(std::memory_order_seq_cst) != nullptr) return true;
      const bool job = is_job(doorbell_.mailbox.load(std::memory_order_seq_cst)) || !queue_.empty();
      return (job || stopping_ || crash_requested_.load()) && owner_.load(std::memory_order_seq_cst) != Owner::caller;
    });
    doorbell_.worker_sleeping.store(false, std::memory_order_relaxed);
    lock.unlock();
    if (!woken && take_ownership()) {
      maybe_persist(false);
      release_ownership();
    }
  }
}

void NodeImpl::bump_inline_execs() { bump(inline_execs_); }

void NodeImpl::note_job_started(bool is_exec) {
  inflight_since_ns_.store(coarse_steady_ns(), std::memory_order_relaxed);
  if (is_exec) bump(exec_count_);
}

void NodeImpl::note_job_ended(const Result<void>& result) {
  bump(job_count_);
  inflight_since_ns_.store(0, std::memory_order_relaxed);
  if (!result) count_error(result.error());
}

void NodeImpl::count_error(const Error& error) {
  bump(errors_);
  std::lock_guard lock(stats_mu_);
  last_error_ = error.to_string();
}

void NodeImpl::run_one(Job* job) {
  using namespace job_state;
  prefetch_for_claim(job);
  const bool claimed = job->handed_over || advance_job(job->state, kQueued, kRunning).has_value();
  // The worker is the mailbox's only reader and the only one to close it, so a plain store
  // empties it: no caller's swap can land while the box holds this job.
  if (doorbell_.mailbox.load(std::memory_order_relaxed) == job) {
    doorbell_.mailbox.store(nullptr, std::memory_order_relaxed);
  }
  if (!claimed) {
    retire(job);  // withdrawn at its deadline: it never runs
    return;
  }
  // The kernels' list lies on the caller's line: read only while a kernel times out.
  Result<void> result = quarantine_.is_tracking() ? quarantine_.check(job->kernels) : Result<void>{};
  if (!job->handed_over) note_job_started(job->is_exec && result);  // the rest of one keeps its start
  if (result) {
    NodeContext ctx(*this, scratch_, job->client);
    try {
      result = job->fn(ctx);
    } catch (const std::exception& e) {
      result = fail(Errc::job_failed, "the job threw an exception", e.what());
    } catch (...) {
      result = fail(Errc::job_failed, "the job threw a non-standard exception");
    }
    result = settle_job(std::move(result));
  }
  const bool lost = device_->is_lost();
  note_job_ended(result);
  // Before the answer, so that its caller's next status() shows what the job changed (a
  // comparison of four numbers when nothing did).
  publish_stats(false);
  // Before the answer: a caller that gets it and borrows the node at once sees this.
  owner_.store(Owner::finishing, std::memory_order_relaxed);
  finish_job(job, std::move(result), kRunning);
  if (lost) {
    owner_.store(Owner::worker, std::memory_order_relaxed);  // no moment: callers queue meanwhile
    if (auto r = recover_device(); !r) {
      tear_down(false);
      crash_requested_.store(true);
      std::lock_guard lock(stats_mu_);
      last_error_ = r.error().to_string();
    }
  }
}

Result<void> NodeImpl::settle_job(Result<void> result) {
  if (stream_->has_open_batch()) stream_->discard_open_batch();
  if (result && !device_->is_lost()) result = registry_.sync_durable(*stream_, options_.hang_limit);
  if (device_->is_lost() && (result || result.error().code != Errc::device_lost)) {
    result = fail(Errc::device_lost, "the device was lost while the job ran",
                  result ? std::string_view{} : std::string_view(result.error().message));
  }
  return result;
}

Result<void> NodeImpl::submit_and_wait() {
  auto ticket = stream_->submit();
  if (!ticket) return fail(ticket.error());
  auto r = stream_->wait(*ticket, options_.hang_limit);
  if (!r && r.error().code == Errc::timeout) return hung();
  return r;
}

Result<void> NodeImpl::wait_batch(Ticket ticket, Clock::time_point submitted) {
  auto r = stream_->wait(ticket, submitted + options_.hang_limit - Clock::now());
  if (!r && r.error().code == Errc::timeout) return hung();
  return r;
}

Result<void> NodeImpl::hung() {
  // A GPU wait past the hang limit: the device is treated as hung and rebuilt.
  device_->mark_lost();
  return fail(Errc::device_lost, vkn::format("GPU hang: a batch ran past the {} ms hang limit",
                                             options_.hang_limit.count()));
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

Result<Kernel*> NodeImpl::kernel(const KernelId& id) {
  const KernelId one[] = {id};
  if (auto q = quarantine_.check(one); !q) return fail(q.error());
  if (const uint64_t generation = kernels_->generation(); generation != recent_generation_) {
    recent_kernels_ = {};
    recent_generation_ = generation;
  }
  for (const RecentKernel& r : recent_kernels_) {
    if (r.kernel != nullptr && r.id == id) return r.kernel;
  }
  auto k = kernels_->find(id);
  if (!k) return fail(Errc::not_found, "no kernel registered with id", to_hex(id));
  recent_kernels_[recent_next_++ % recent_kernels_.size()] = {id, k.get()};
  return k.get();  // the cache holds it
}

void NodeImpl::maybe_persist(bool force) {
  if (pipeline_cache_ == nullptr || device_ == nullptr || device_->is_lost() || !pipeline_cache_->is_dirty()) return;
  const auto now = Clock::now();
  if (!force && now - last_persist_ < options_.persist_interval) return;
  last_persist_ = now;
  figures_stale_ = true;
  if (auto r = pipeline_cache_->persist(); !r) {
    log(LogLevel::warn, "node '{}': pipeline cache not persisted: {}", options_.name, r.error().to_string());
  }
}

void NodeImpl::publish_stats(bool device_changed) {
  const Figures figures{registry_.bytes_in_use(), registry_.size(), kernels_->generation(),
                        pipeline_cache_->creations()};
  if (!device_changed && !figures_stale_ && figures == published_figures_) return;
  published_figures_ = figures;
  figures_stale_ = false;
  // Strings change only with the device; the per-job refresh copies numbers alone.
  std::string name, uuid, path;
  if (device_changed) {
    name = device_->info().name;
    uuid = uuid_string(device_->info().device_uuid);
    path = pipeline_cache_->path().string();
  }
  const PipelineCacheStats ps = pipeline_cache_->stats();
  std::lock_guard lock(stats_mu_);
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
}

NodeStatus NodeImpl::status() {
  NodeStatus s;
  {
    std::lock_guard lock(stats_mu_);
    s = published_;
    s.last_error = last_error_;
    // Read here, not published after each job: an exec run inline publishes nothing.
    if (const Instance* instance = live_instance_.load(std::memory_order_acquire)) {
      s.validation_errors = instance->validation_error_count();
    }
  }
  {
    std::lock_guard lock(mu_);
    s.health = health_;
    s.queue_depth = queue_.size() + (is_job(doorbell_.mailbox.load()) ? 1 : 0);
  }
  const auto now = Clock::now();
  const int64_t since = inflight_since_ns_.load(std::memory_order_relaxed);
  s.inflight_age = since == 0 ? std::chrono::milliseconds(0)
                              : std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::nanoseconds(steady_ns(now) - since));
  s.name = options_.name;
  s.uptime = std::chrono::duration_cast<std::chrono::milliseconds>(now - started_at_);
  s.exec_count = exec_count_.load();
  s.inline_execs = inline_execs_.load();
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
