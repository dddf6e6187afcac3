#include "core_dispatch_child.h"

#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>
#include <utility>

#include "bench_report.h"
#include "core_dispatch.h"
#include "node/worker_placement.h"
#include "util/strformat.h"

extern char** environ;

namespace vkn::detail {
namespace {

constexpr int kMaxBlock = 100000;

// A child that has answered its last line (or stopped answering) gets this long to exit
// before it is killed: its device's teardown must not hang the bench.
constexpr std::chrono::seconds kExitTimeout{10};

std::string errno_text(int err) { return std::strerror(err); }

// Waits for `pid` to exit, killing it after kExitTimeout. Returns its wait status, and
// whether it had to be killed.
std::pair<int, bool> reap(pid_t pid) {
  const auto deadline = BenchClock::now() + kExitTimeout;
  int status = 0;
  while (true) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return {status, false};
    if (r < 0 && errno != EINTR) return {status, false};  // not ours to wait for (already reaped)
    if (BenchClock::now() >= deadline) break;
    usleep(1000);
  }
  kill(pid, SIGKILL);
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return {status, true};
}

}  // namespace

Result<std::unique_ptr<CoreDispatchChild>> CoreDispatchChild::start(const std::string& exe,
                                                                     const std::string& device_selector,
                                                                     std::chrono::milliseconds answer_timeout) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return fail(Errc::io_error, "socketpair for the dispatch child", errno_text(errno));
  }
  protocol::UniqueFd ours(fds[0]), theirs(fds[1]);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // dup2 clears close-on-exec: the child reads and answers on its stdin and stdout.
  posix_spawn_file_actions_adddup2(&actions, theirs.get(), STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, theirs.get(), STDOUT_FILENO);
  std::vector<std::string> args = {exe, "bench-child", "dispatch"};
  if (!device_selector.empty()) args.push_back(device_selector);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return fail(Errc::io_error, vkn::format("cannot start the dispatch child {}", exe), errno_text(rc));
  theirs.reset();
  auto child = std::unique_ptr<CoreDispatchChild>(new CoreDispatchChild(pid, std::move(ours), answer_timeout));
  auto ready = child->read_line();
  if (!ready) return fail(ready.error());
  if (*ready != "ready") return fail(Errc::job_failed, "the dispatch child could not start", *ready);
  return child;
}

CoreDispatchChild::~CoreDispatchChild() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
}

Result<void> CoreDispatchChild::send_line(const std::string& line) {
  const std::string text = line + "\n";
  size_t sent = 0;
  while (sent < text.size()) {
    // MSG_NOSIGNAL: a child that died is an error here, not a SIGPIPE for the bench.
    const ssize_t n = send(socket_.get(), text.data() + sent, text.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(gone(vkn::format("when the bench sent '{}' ({})", line, errno_text(errno))));
    sent += static_cast<size_t>(n);
  }
  return {};
}

Result<std::string> CoreDispatchChild::read_line() {
  const auto deadline = BenchClock::now() + answer_timeout_;
  while (true) {
    if (const size_t end = received_.find('\n'); end != std::string::npos) {
      std::string line = received_.substr(0, end);
      received_.erase(0, end + 1);
      return line;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - BenchClock::now());
    if (left.count() <= 0) {
      return fail(Errc::timeout, vkn::format("the dispatch child did not answer within {} ms", answer_timeout_.count()));
    }
    pollfd p{socket_.get(), POLLIN, 0};
    const int ready = poll(&p, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return fail(Errc::io_error, "poll on the dispatch child", errno_text(errno));
    if (ready == 0) continue;  // the deadline decides above
    char buf[4096];
    const ssize_t n = recv(socket_.get(), buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail(gone(n == 0 ? "before it answered" : errno_text(errno)));
    received_.append(buf, static_cast<size_t>(n));
  }
}

Error CoreDispatchChild::gone(std::string_view what) {
  const auto [status, killed] = reap(pid_);
  pid_ = -1;
  const std::string how = killed                ? std::string("stopped answering and was killed")
                          : WIFEXITED(status) ? vkn::format("exited with status {}", WEXITSTATUS(status))
                                              : vkn::format("died of signal {}", WTERMSIG(status));
  return Error::make(Errc::job_failed, vkn::format("the dispatch child {} {}", how, what));
}

Result<std::vector<double>> CoreDispatchChild::block(int count, int cpu) {
  if (count <= 0 || count > kMaxBlock) {
    return fail(Errc::invalid_argument, vkn::format("a block of {} dispatches (1 to {})", count, kMaxBlock));
  }
  if (cpu < -1 || cpu >= CPU_SETSIZE) return fail(Errc::invalid_argument, vkn::format("no CPU {}", cpu));
  if (auto r = send_line(vkn::format("block {} {}", count, cpu)); !r) return fail(r.error());
  auto line = read_line();
  if (!line) return fail(line.error());
  std::istringstream in(*line);
  std::string word;
  in >> word;
  if (word != "samples") return fail(Errc::job_failed, "the dispatch child's block failed", *line);
  std::vector<double> us;
  double v = 0;
  while (in >> v) us.push_back(v);
  if (static_cast<int>(us.size()) != count) {
    return fail(Errc::job_failed, vkn::format("the dispatch child sent {} samples for a block of {}", us.size(), count));
  }
  return us;
}

Result<void> CoreDispatchChild::finish() {
  if (auto r = send_line("end"); !r) return r;
  auto line = read_line();
  if (!line) return fail(line.error());
  const auto [status, killed] = reap(pid_);
  pid_ = -1;
  if (*line != "ok") return fail(Errc::job_failed, "the dispatch child", *line);
  if (killed || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return fail(Errc::job_failed, "the dispatch child checked its buffer but did not exit cleanly");
  }
  return {};
}

int core_dispatch_child_main(int argc, char** argv) {
  if (argc > 1) {
    std::fputs("usage: vknode bench-child dispatch [device_selector]\n", stderr);
    return 2;
  }
  auto answer = [](const std::string& line) {
    std::fputs((line + "\n").c_str(), stdout);
    std::fflush(stdout);
  };
  auto core = CoreDispatch::create(argc > 0 ? argv[0] : "");
  if (!core) {
    answer("error " + core.error().to_string());
    return 1;
  }
  // Placed as the node's worker and the bench's caller are (worker_placement.h), unless a
  // block names its CPU.
  (void)keep_thread_off_device_interrupts((*core)->device().info().pci_address, thread_cpus());
  const std::vector<int> placed = thread_cpus();
  answer("ready");
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line == "end") {
      auto ok = (*core)->verify();
      answer(ok ? "ok" : "error " + ok.error().to_string());
      return ok ? 0 : 1;
    }
    int count = 0, cpu = -1;
    if (std::sscanf(line.c_str(), "block %d %d", &count, &cpu) != 2 || count <= 0 || count > kMaxBlock) {
      answer("error unknown request: " + line);
      return 1;
    }
    set_thread_cpus(cpu >= 0 ? std::vector<int>{cpu} : placed);
    if (cpu >= 0 && thread_cpus() != std::vector<int>{cpu}) {
      answer(vkn::format("error cannot run on CPU {}", cpu));
      return 1;
    }
    std::string out = "samples";
    for (int i = -1; i < count; ++i) {  // one untimed warm-up first
      const auto t0 = BenchClock::now();
      if (auto r = (*core)->once(); !r) {
        answer("error " + r.error().to_string());
        return 1;
      }
      if (i >= 0) out += vkn::format(" {:.4f}", elapsed_us(t0));
    }
    answer(out);
  }
  return 1;  // the bench went away without "end"
}

}  // namespace vkn::detail
