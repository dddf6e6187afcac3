// `vknode serve`: runs the daemon in the foreground until SIGTERM/SIGINT or an
// admin's shutdown (see docs/daemon.md).
#include <grp.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "command.h"
#include "server/server.h"
#include "util/log.h"

namespace vkn::cli {
namespace {

constexpr const char* kServeHelp =
    "usage: vknode serve [options]\n"
    "\n"
    "Runs the vknode daemon in the foreground: one node per selected GPU, shared by every\n"
    "process on the machine through a Unix socket (protocol in docs/protocol.md); clients\n"
    "pick a node by its index (`vknode status` lists them). Stops gracefully on\n"
    "SIGTERM or SIGINT: finishes running work, persists the pipeline cache and snapshots\n"
    "durable buffers so that the next daemon restores them.\n"
    "\n"
    "options:\n"
    "  --socket PATH           socket path (default: $VKNODE_SOCKET, /run/vknode/vknode.sock\n"
    "                          as root, else $XDG_RUNTIME_DIR/vknode.sock)\n"
    "  --group NAME            group owning the socket (members may connect)\n"
    "  --mode OCTAL            socket mode (default 0660)\n"
    "  --state-dir DIR         durable-buffer snapshots (default: $VKNODE_STATE_DIR,\n"
    "                          /var/lib/vknode as root, else $XDG_STATE_HOME/vknode)\n"
    "  --cache-dir DIR         pipeline cache directory (default: see docs)\n"
    "  --device SELECTOR       a device node on this GPU: an index, UUID or name substring\n"
    "                          (as $VKNODE_DEVICE); repeat it or give a comma list for\n"
    "                          several nodes (node 0 first); 'all': every GPU (the CPU\n"
    "                          device when there is none). Default: one node, the best GPU\n"
    "  --workers N             requests in flight on the nodes, and threads feeding them (default 2)\n"
    "  --quota-bytes N         buffer bytes per user (default: the node's budget)\n"
    "  --quota-buffers N       buffers per user (default 1024)\n"
    "  --quota-queued N        requests queued or running per user (default 64)\n"
    "  --client-queue N        requests queued or running per connection (default 32)\n"
    "  --snapshot-interval S   seconds between durable-buffer snapshots when changed\n"
    "                          (default 60; 0: only at shutdown)\n"
    "  --metrics-port N        Prometheus metrics on http://127.0.0.1:N/metrics (0: any\n"
    "                          free port, printed at start)\n"
    "  --metrics 127.0.0.1:N   the same (only the loopback address is accepted)\n"
    "\n"
    "exit codes: 0 stopped cleanly, 1 could not start (e.g. a daemon already serves the\n"
    "socket) or failed, 2 bad usage.\n";

bool parse_u64(const char* s, uint64_t* out) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(s, &end, 10);
  if (end == s || *end != '\0') return false;
  *out = v;
  return true;
}

// "127.0.0.1:N" (or "localhost:N"): the metrics port. The endpoint has no access
// control, so other addresses are refused rather than silently rebound.
bool parse_metrics_address(std::string_view s, uint64_t* port) {
  const size_t colon = s.rfind(':');
  if (colon == std::string_view::npos) return false;
  const std::string_view host = s.substr(0, colon);
  if (host != "127.0.0.1" && host != "localhost") return false;
  const std::string digits(s.substr(colon + 1));
  return parse_u64(digits.c_str(), port) && *port <= 65535;
}

}  // namespace

int serve_command(Args args) {
  server::ServerOptions options;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string_view a = args[i];
    const bool has_value = i + 1 < args.size();
    uint64_t n = 0;
    auto number = [&](uint64_t* out) { return has_value && parse_u64(args[++i], out); };
    if (a == "--help" || a == "-h") {
      std::fputs(kServeHelp, stdout);
      return kExitOk;
    } else if (a == "--socket" && has_value) {
      options.socket_path = args[++i];
    } else if (a == "--group" && has_value) {
      const group* g = ::getgrnam(args[++i]);
      if (g == nullptr) {
        std::fprintf(stderr, "vknode serve: no group '%s'\n", args[i]);
        return kExitUsage;
      }
      options.socket_group = g->gr_gid;
    } else if (a == "--mode" && has_value) {
      options.socket_mode = static_cast<mode_t>(std::strtoul(args[++i], nullptr, 8));
    } else if (a == "--state-dir" && has_value) {
      options.state_dir = args[++i];
    } else if (a == "--cache-dir" && has_value) {
      options.node.cache_dir = args[++i];
    } else if (a == "--device" && has_value) {
      options.devices.push_back(args[++i]);
    } else if (a == "--metrics-port" && number(&n) && n <= 65535) {
      options.metrics_port = static_cast<uint16_t>(n);
    } else if (a == "--metrics" && has_value) {
      if (!parse_metrics_address(args[++i], &n)) {
        std::fprintf(stderr,
                     "vknode serve: --metrics takes 127.0.0.1:PORT (loopback only), not '%s'\n",
                     args[i]);
        return kExitUsage;
      }
      options.metrics_port = static_cast<uint16_t>(n);
    } else if (a == "--workers" && number(&n) && n > 0) {
      options.workers = static_cast<uint32_t>(n);
    } else if (a == "--quota-bytes" && number(&n)) {
      options.quota.bytes = n;
    } else if (a == "--quota-buffers" && number(&n)) {
      options.quota.buffers = n;
    } else if (a == "--quota-queued" && number(&n)) {
      options.quota.queued = n;
    } else if (a == "--client-queue" && number(&n)) {
      options.quota.per_client_queued = n;
    } else if (a == "--snapshot-interval" && number(&n)) {
      options.snapshot_interval = std::chrono::seconds(n);
    } else {
      std::fprintf(stderr, "vknode serve: unknown or incomplete option '%s'\n\n%s", args[i],
                   kServeHelp);
      return kExitUsage;
    }
  }
  // systemd socket activation (packaging/vknode.socket): the socket is fd 3.
  if (const char* pid = std::getenv("LISTEN_PID"); pid != nullptr && std::atol(pid) == ::getpid()) {
    if (const char* fds = std::getenv("LISTEN_FDS"); fds != nullptr && std::atoi(fds) >= 1) {
      options.inherited_listen_fd = 3;
    }
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_FDNAMES");
  }
  // Signals go to one thread (sigwait), blocked everywhere else, so the daemon's
  // threads (and the node's) never run a handler.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto server = server::Server::create(options);
  if (!server) {
    std::fprintf(stderr, "vknode serve: %s\n", server.error().to_string().c_str());
    return kExitFailure;
  }
  std::fprintf(stderr, "vknode serve: listening on %s with %u device nodes\n",
               (*server)->socket_path().c_str(), (*server)->device_count());
  if (const uint16_t port = (*server)->metrics_port(); port != 0) {
    std::fprintf(stderr, "vknode serve: metrics on http://127.0.0.1:%u/metrics\n", port);
  }
  std::thread signals([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    (*server)->request_stop();
  });
  auto r = (*server)->run();
  // Wake the signal thread if the stop came from a client's shutdown.
  pthread_kill(signals.native_handle(), SIGTERM);
  signals.join();
  server->reset();
  if (!r) {
    std::fprintf(stderr, "vknode serve: %s\n", r.error().to_string().c_str());
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace vkn::cli
