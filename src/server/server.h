// Server: the vknode daemon. Owns one node per selected device (each through a
// Backend), listens on a Unix socket, and serves the protocol of docs/protocol.md to
// every process on the machine: per-user namespaces and quotas, round-robin fairness
// across clients, deadlines, session-scoped and durable buffers, and a graceful stop
// that persists the pipeline caches and snapshots durable buffers. Optionally serves
// Prometheus metrics over HTTP on the loopback interface. `vknode serve` runs one; tests
// run one in-process on a temporary socket. create() and request_stop() may be
// called from any thread; run() from one thread.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "server/backend.h"
#include "server/user_table.h"
#include "vknode/error.h"
#include "vknode/node/node.h"

namespace vkn::server {

struct ServerOptions {
  std::string socket_path;  // empty: see protocol::server_socket_path
  // A listening socket inherited from systemd (socket activation); -1: bind our own.
  int inherited_listen_fd = -1;
  mode_t socket_mode = 0660;
  std::optional<gid_t> socket_group;
  // Durable-buffer snapshots. Empty: $VKNODE_STATE_DIR, else /var/lib/vknode as root,
  // else $XDG_STATE_HOME/vknode, else ~/.local/state/vknode.
  std::filesystem::path state_dir;
  NodeOptions node;  // for every device node; its name is replaced by a unique one
  // One device node per entry, in this order (the protocol's device index): each an
  // index, a device UUID or a name substring (as DeviceOptions::selector), or "all"
  // for every device that is not a CPU (the CPU device when it is the only kind);
  // entries may be comma lists. Empty: one node on node.device_selector. A device
  // may be named twice (two nodes on one device; tests do this on lavapipe).
  std::vector<std::string> devices;
  // Prometheus text metrics on http://127.0.0.1:<port>/metrics (docs/daemon.md);
  // 0: an ephemeral port (see Server::metrics_port). Unset: no metrics endpoint.
  std::optional<uint16_t> metrics_port;
  Quota quota;
  uint32_t workers = 2;  // threads handing requests to the node
  uint32_t max_connections = 256;
  uint32_t max_connections_per_user = 64;
  uint64_t shm_threshold = 1u << 20;
  // Periodic durable-buffer snapshots (when changed); 0: only at shutdown.
  std::chrono::milliseconds snapshot_interval{60'000};
  // After activity, the I/O thread and idle workers poll for this long before they
  // sleep, so a client's next request does not wait for a thread to wake up (tens
  // of microseconds on a server CPU). Costs CPU while it spins. Unset: 50 us on
  // machines with at least 8 hardware threads, else 0.
  std::optional<std::chrono::microseconds> spin;
  // How long a stopping daemon keeps sending replies it owes.
  std::chrono::milliseconds drain_timeout{5'000};
  // Test seam: called once per device node (devices.size(), at least 1) instead of
  // starting a node; the selectors themselves are not read.
  std::function<Result<std::unique_ptr<Backend>>()> TEST_backend;
};

// The state dir ServerOptions::state_dir defaults to. Errors: not_found.
[[nodiscard]] Result<std::filesystem::path> default_state_dir();

class Server {
 public:
  // Binds the socket (refusing if a daemon serves it), starts the node and restores
  // durable buffers from the last snapshot. Errors: already_exists, not_found (no
  // socket path), io_error, and the node's start errors.
  [[nodiscard]] static Result<std::unique_ptr<Server>> create(ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Serves until request_stop() (or an admin's shutdown), then stops gracefully:
  // stops accepting, cancels queued requests, finishes running ones, sends the
  // replies it owes, persists the pipeline cache, snapshots durable buffers and
  // stops the node. Errors: a failure of the I/O loop itself.
  [[nodiscard]] Result<void> run();
  // Thread-safe and async-signal-safe (writes an eventfd).
  void request_stop();

  const std::filesystem::path& socket_path() const;
  const std::filesystem::path& snapshot_path() const;
  // The name of the daemon's device node `device` in this process (see
  // vkn::CallOptions::node); empty beyond the last node.
  std::string node_name(uint32_t device = 0) const;
  uint32_t device_count() const;
  // The port the metrics endpoint listens on (the bound one when 0 was asked for);
  // 0 when there is no endpoint.
  uint16_t metrics_port() const;

  class Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace vkn::server
