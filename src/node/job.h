// Job: one unit of work handed to a node. Its state word is the whole hand-off between
// the caller and the node's worker: every change of state is a compare-and-swap, so
// each side learns from the swap itself whether it won, and no lock is taken per job.
//
// Who frees a Job (exactly one party, never while another may still read it):
//   - a blocking job (run_job; `has_waiter`) belongs to its caller, who frees it once it
//     sees `done`. A caller that gives up at its deadline (`withdrawn` before the job
//     started, `abandoned` while it ran) hands it to the node, which frees it when it
//     next takes it up (to start it, or to settle it after it ran).
//   - an asynchronous job (submit_job) belongs to the node once published. Its deadline
//     timer may settle it first (and answer `on_done`), under the timer's mutex; the node
//     frees it only after unwatching its deadline under that same mutex.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vknode/node/node.h"
#include "vknode/node/program.h"

namespace vkn::detail {

// Values of Job::state. kCallerSleeping is or-ed in while the caller sleeps on the word
// (futex); the node wakes it when it sets `done`.
namespace job_state {
constexpr uint32_t kQueued = 0;
constexpr uint32_t kRunning = 1;
constexpr uint32_t kDone = 2;
constexpr uint32_t kWithdrawn = 3;  // by its caller or deadline before it started: never runs
constexpr uint32_t kAbandoned = 4;  // by its caller or deadline while it ran: result dropped
constexpr uint32_t kCallerSleeping = 1u << 31;
constexpr uint32_t base(uint32_t s) { return s & ~kCallerSleeping; }
}  // namespace job_state

// Moves `state` from `from` to `to` (the sleeping bit kept, or cleared when `to` is
// kDone, whose setter wakes the sleeper). Returns the old word, or nullopt when the job
// was not in `from`.
std::optional<uint32_t> advance_job(std::atomic<uint32_t>& state, uint32_t from, uint32_t to);

struct Job;
// Asynchronous jobs by deadline (NodeImpl's deadline timer).
using DeadlineMap = std::multimap<std::chrono::steady_clock::time_point, Job*>;

// Laid out for the hand-off. The first 64 bytes are the caller's alone: freeing the job
// writes the allocator's bookkeeping there, which then costs no transfer of a line the
// worker holds. What the worker needs to start the job and the word the caller waits on
// follow, to share two lines that move once each way. Jobs start on a line (operator
// new below: without it a line's worth of fields moved with each allocation's address, a
// difference between runs); not by alignas(64), whose allocation costs four times a
// plain one.
struct Job {
  static void* operator new(size_t bytes);
  static void operator delete(void* p);

  // The caller's line (the worker reads it only for scratch stores and quarantined kernels).
  std::string client;             // names the scratch store; read only if the job asks for it
  std::vector<KernelId> kernels;  // kernels the job uses (quarantine bookkeeping)
  char caller_line_end[8]{};

  // The hand-off's lines. What the worker writes at a job's end and its caller then reads
  // (the state word, a blocking exec's result) share the first: a second line written
  // there would cost a transfer to the worker before its answer and one back after it.
  std::atomic<uint32_t> state{job_state::kQueued};
  bool has_waiter = true;  // blocking (run_job) rather than asynchronous (submit_job)
  bool is_exec = false;    // counted in NodeStatus::exec_count when it runs
  // The rest of an exec a caller ran inline and gave up (NodeImpl::hand_over): created
  // abandoned, run by the worker before anything else, never claimed.
  bool handed_over = false;
  ProgramResult exec_result;  // a blocking exec's result
  ErasedJob fn;

  std::optional<Error> error;     // written by the node before it sets kDone
  std::shared_ptr<const void> payload;  // what fn works on, freed with the job (exec: Program, result)
  JobDone on_done;                // asynchronous jobs: called once by whoever settles the job
  // Guarded by the node's timer mutex: this job's entry in the deadline map.
  std::optional<DeadlineMap::iterator> deadline_entry;
};

}  // namespace vkn::detail
