// A blocking exec run on its caller's thread while the node is idle
// (NodeImpl::try_exec_inline). The caller borrows the node's GPU objects (owner_ from idle
// to caller) only when no job runs or waits, runs the Program as the worker would, and
// gives the node back. What it cannot finish it hands to the worker with the node: at its
// deadline, the wait for its batch (the result is dropped, as for any job that times out
// while it runs); on device loss, the recovery.
#include <chrono>
#include <new>

#include "node/node_context.h"
#include "node/node_impl.h"
#include "node/program_runner.h"
#include "util/spin.h"
#include "util/strformat.h"

namespace vkn::detail {
namespace {

constexpr std::chrono::microseconds kFinishingWait{1000};

double ms_between(NodeImpl::Clock::time_point a, NodeImpl::Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace

bool NodeImpl::borrow() {
  if (!options_.exec_inline) return false;
  // Jobs that wait go first; so does a node closed by its last drain.
  if (doorbell_.mailbox.load(std::memory_order_relaxed) != nullptr ||
      doorbell_.queued.load(std::memory_order_relaxed) != 0) {
    return false;
  }
  // The worker keeps the node for its bookkeeping after it answers a job (microseconds;
  // longer only when it persists the pipeline cache or rebuilds a lost device, which a
  // queued job would wait for as well).
  spin_for([&] { return owner_.load(std::memory_order_relaxed) != Owner::finishing; }, kFinishingWait);
  Owner idle = Owner::idle;
  return owner_.compare_exchange_strong(idle, Owner::caller, std::memory_order_seq_cst);
}

void NodeImpl::give_back() {
  owner_.store(Owner::idle, std::memory_order_seq_cst);
  // Pairs with next_job's sleep (seq_cst on both sides): a worker that went to sleep on
  // work that came meanwhile is woken here. One that sleeps for want of work is not: a
  // caller running execs inline back to back would otherwise pay a futex wake-up for each
  // (2 us on the H200 machine).
  if (!doorbell_.worker_sleeping.load(std::memory_order_seq_cst)) return;
  // Work is published in the mailbox or counted in `queued`, and a stop or crash raises
  // `attention`, each before its publisher wakes the worker: what this misses (pushed but
  // not yet counted) its publisher's own wake-up, after the node is idle again, covers.
  if (is_job(doorbell_.mailbox.load(std::memory_order_seq_cst)) ||
      doorbell_.queued.load(std::memory_order_seq_cst) > 0 || doorbell_.attention.load(std::memory_order_seq_cst)) {
    { std::lock_guard lock(mu_); }
    cv_.notify_one();
  }
}

void NodeImpl::hand_over(ErasedJob rest, std::shared_ptr<const void> keep) {
  auto job = std::make_unique<Job>();
  job->state.store(job_state::kAbandoned, std::memory_order_relaxed);
  job->has_waiter = false;
  job->handed_over = true;
  job->fn = std::move(rest);
  job->payload = std::move(keep);
  // The node first, then the job: once the job is out the worker may run it and give the
  // node back (idle) before a later store here could land, which would leave the node
  // owned by a worker that waits for it.
  owner_.store(Owner::worker, std::memory_order_seq_cst);
  doorbell_.handed_over.store(job.release(), std::memory_order_seq_cst);
  wake_worker();
}

std::optional<Result<ProgramResult>> NodeImpl::try_exec_inline(const Program& program,
                                                               std::optional<std::chrono::milliseconds> timeout) {
  if (!borrow()) return std::nullopt;
  // The node's GPU objects are this thread's until give_back() or hand_over().
  if (!is_accepting()) {  // stopping: the worker waits for the node to drain and stop
    give_back();
    return fail(refusal().error());
  }
  const Clock::time_point start = timeout ? Clock::now() : Clock::time_point{};
  note_job_started(true);
  bump_inline_execs();
  NodeContext ctx(*this, scratch_, no_client_);  // a Program uses no scratch store
  ProgramResult result;
  Result<void> r;
  try {
    r = record_program(ctx, program, result);
  } catch (const std::exception& e) {  // allocation of the download buffers
    r = fail(Errc::job_failed, "the program could not be recorded", e.what());
  } catch (...) {  // nothing may leave with the node still borrowed
    r = fail(Errc::job_failed, "the program could not be recorded");
  }
  if (r) {
    auto ticket = stream_->submit();
    if (!ticket) r = fail(ticket.error());
    if (ticket) {
      const Clock::time_point submitted = Clock::now();
      const Clock::time_point hung_at = submitted + options_.hang_limit;
      const Clock::time_point until = timeout ? std::min(start + *timeout, hung_at) : hung_at;
      r = stream_->wait(*ticket, until - submitted);
      if (!r && r.error().code == Errc::timeout) {
        if (until < hung_at) return time_out(program, *ticket, submitted, std::move(result));
        r = hung();
      }
      if (r) result.gpu_wait_ms = ms_between(submitted, Clock::now());
    }
  }
  if (r = end_inline(std::move(r)); !r) return fail(r.error());
  if (quarantine_.is_tracking()) quarantine_.note_success(program_kernels(program));
  return result;
}

Result<void> NodeImpl::end_inline(Result<void> r) {
  r = settle_job(std::move(r));
  if (device_->is_lost()) return lose_device(std::move(r));
  note_job_ended(r);
  // No publish_stats(): a Program changes none of the figures it publishes (registry and
  // cache sizes, kernels); status() reads the validation layer's count itself.
  give_back();
  return r;
}

Result<ProgramResult> NodeImpl::time_out(const Program& program, Ticket ticket, Clock::time_point submitted,
                                         ProgramResult&& result) {
  timeouts_.fetch_add(1);
  quarantine_.note_timeout(program_kernels(program));
  auto timed_out = fail(timed_out_while_running());
  // The batch's downloads land in these buffers: they live until the batch has been waited
  // for, by the worker or, when there is nothing to hand over with, below.
  std::shared_ptr<ProgramResult> kept;
  try {
    kept = std::make_shared<ProgramResult>(std::move(result));
    hand_over([this, ticket, submitted](Context&) { return wait_batch(ticket, submitted); }, kept);
    return timed_out;
  } catch (const std::bad_alloc&) {
    (void)end_inline(wait_batch(ticket, submitted));  // waited for here; the hang limit still holds
    return timed_out;
  }
}

Result<void> NodeImpl::lose_device(Result<void> r) {
  // The worker counts the job, with this error, and rebuilds the device (run_one sees it lost).
  try {
    hand_over([e = r.error()](Context&) -> Result<void> { return fail(e); }, nullptr);
  } catch (const std::bad_alloc&) {
    note_job_ended(r);
    give_back();
    request_crash();  // the supervisor's restart rebuilds the device instead
  }
  return fail(r.error());
}

}  // namespace vkn::detail
