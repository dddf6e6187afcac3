// The node section's baseline in a process of its own: this binary re-executed as
// `bench-child dispatch [device_selector]` runs the core layer's tiny dispatch
// (core_dispatch.h) in blocks the bench asks for, timing each dispatch itself.
//
// Why a process: on the H200 the same tiny dispatch on two devices of one process differed
// by 0.2-0.5 us, by the order they were made and the devices made before them (2026-11-29:
// with the harness's idle device alive, the device made next was the slower one in every
// run, the node's or the core Stream's alike; an idle device made before both took the
// difference away). The child's device is the first and only one of its process, as the
// node's is in the bench's (docs/benchmarks.md, "The baseline in a process of its own").
//
// A block may run on a CPU the bench names: a VM's vCPUs differ in speed from moment to
// moment (recording and submitting by up to 1.5x on the H200), so the bench runs the
// baseline on the CPU where the node's side of the comparison runs, at that moment.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "protocol/unique_fd.h"
#include "vknode/error.h"

namespace vkn::detail {

class CoreDispatchChild {
 public:
  // Starts `exe` as the child and waits until its device and kernel are ready. Every
  // answer of the child is waited for `answer_timeout` at most (errors: timeout).
  static Result<std::unique_ptr<CoreDispatchChild>> start(
      const std::string& exe, const std::string& device_selector,
      std::chrono::milliseconds answer_timeout = std::chrono::seconds(60));
  ~CoreDispatchChild();  // kills a child still running
  CoreDispatchChild(const CoreDispatchChild&) = delete;
  CoreDispatchChild& operator=(const CoreDispatchChild&) = delete;

  // `count` dispatches after one untimed warm-up, each timed in the child, in us; on CPU
  // `cpu` alone, or (-1) where the scheduler puts the child among its CPUs.
  Result<std::vector<double>> block(int count, int cpu = -1);
  // Ends the child, which first checks that its dispatches wrote their buffer.
  Result<void> finish();

 private:
  CoreDispatchChild(pid_t pid, protocol::UniqueFd socket, std::chrono::milliseconds answer_timeout)
      : pid_(pid), socket_(std::move(socket)), answer_timeout_(answer_timeout) {}
  Result<void> send_line(const std::string& line);
  Result<std::string> read_line();
  // Why the child stopped answering: its exit status, once it has exited.
  Error gone(std::string_view what);

  pid_t pid_ = -1;
  protocol::UniqueFd socket_;
  std::chrono::milliseconds answer_timeout_;
  std::string received_;  // bytes read past the last line
};

// The child's side; `argv` are the words after "dispatch". Returns the exit status.
int core_dispatch_child_main(int argc, char** argv);

}  // namespace vkn::detail
