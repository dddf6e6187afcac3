// The plain value types that the daemon protocol carries and vkn::Client returns:
// the daemon's status and health, kernel and buffer listings, and the hello answer.
// Device state reuses the node's NodeStatus so that a status through the daemon reads
// like one in-process. Thread-compatible.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "vknode/gpu/kernel.h"
#include "vknode/node/buffer_registry.h"
#include "vknode/node/node.h"

namespace vkn {

// What the daemon told a client in answer to hello.
struct DaemonHello {
  uint16_t protocol_version = 0;  // the version both sides speak on this connection
  std::string daemon_version;     // vknode's version string
  uint32_t daemon_pid = 0;
  uint32_t peer_uid = 0;        // the client as the daemon sees it (SO_PEERCRED)
  bool peer_is_admin = false;   // may call shutdown and persist
  uint32_t max_payload = 0;     // inline frame limit
  uint64_t shm_threshold = 0;   // blobs from this size travel in a memfd
  uint64_t max_attachment = 0;  // largest memfd the daemon accepts
};

// The caller's usage against its quotas.
struct UserUsage {
  uint32_t uid = 0;
  uint64_t bytes = 0;
  uint64_t buffers = 0;
  uint64_t queued = 0;  // requests queued or running
  uint64_t kernels = 0;
  uint64_t quota_bytes = 0;
  uint64_t quota_buffers = 0;
  uint64_t quota_queued = 0;
};

// Health in the style of inference servers: live means the daemon process answers;
// ready means its node (device) accepts work. devices has one entry per node.
struct DaemonStatus {
  bool live = false;
  bool ready = false;
  std::string daemon_version;
  uint16_t protocol_version = 0;
  uint32_t pid = 0;
  uint32_t daemon_uid = 0;
  std::string socket_path;
  std::string state_dir;
  std::chrono::milliseconds uptime{0};
  uint64_t connections = 0;
  uint64_t queued_requests = 0;  // waiting in the daemon's fair queues
  uint64_t running_requests = 0;
  uint64_t requests = 0;        // answered so far
  uint64_t request_errors = 0;  // of which answered with an error
  uint64_t rejected_quota = 0;  // answered quota_exceeded
  uint64_t snapshots = 0;       // durable-buffer snapshots written
  std::string last_snapshot_error;
  std::vector<NodeStatus> devices;
  UserUsage usage;  // the caller's
};

struct KernelEntry {
  KernelId id{};
  std::string name;
  bool builtin = false;
  uint32_t builtin_index = 0;  // the BuiltinKernel value when builtin
};

// One buffer as listed by the daemon. info.name is the caller's name for it (or,
// for an admin listing all users, the registry name "u<uid>/<name>").
struct BufferListEntry {
  BufferEntryInfo info;
  uint32_t owner_uid = 0;
  bool session = false;  // freed when its connection closes
};

}  // namespace vkn
