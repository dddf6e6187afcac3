// UserTable: the daemon's record of who owns what. Maps each user's buffer names into
// the node's registry ("u<uid>/<name>"), holds per-user kernels, counts each user's
// bytes, buffers and queued requests against quotas, and tracks each connection's
// requests in flight and session-scoped buffers. Thread-safe (one mutex).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "vknode/error.h"
#include "vknode/protocol/daemon_types.h"

namespace vkn::server {

struct Quota {
  uint64_t bytes = 0;               // buffer bytes per user; 0: no limit beyond the node's budget
  uint64_t buffers = 1024;          // buffers per user
  uint64_t queued = 64;             // requests queued or running per user
  uint64_t kernels = 1024;          // registered kernels per user
  uint64_t per_client_queued = 32;  // requests queued or running per connection
};

// A registry name taken apart (UserTable::parse_registry_name).
struct RegistryName {
  uint32_t device = 0;
  uint32_t uid = 0;
  std::string name;  // the user's name for the buffer
};

struct BufferRecord {
  uint32_t owner = 0;
  uint64_t bytes = 0;
  bool durable = false;
  uint64_t session = 0;  // the connection that owns it, 0 when it outlives connections
  bool pending = false;  // being created
};

class UserTable {
 public:
  explicit UserTable(Quota quota) : quota_(quota) {}

  const Quota& quota() const { return quota_; }

  // "u<uid>/<name>" on device node 0, "d<device>/u<uid>/<name>" on the others: the
  // name in that node's registry and this table's key, unique across device nodes, so
  // that one name on two nodes is two buffers and snapshots (which store these names)
  // know each buffer's node. Node 0 keeps the form of daemons that had one node.
  // Errors: invalid_argument unless `name` is 1..100 characters of [A-Za-z0-9_.:/-].
  [[nodiscard]] static Result<std::string> registry_name(uint32_t uid, std::string_view name,
                                                         uint32_t device = 0);
  // The device node, owner and user-visible name of a registry name; nullopt if not
  // of that form.
  static std::optional<RegistryName> parse_registry_name(std::string_view registry_name);

  // --- Buffers. ---
  // Reserves quota for a new buffer. Errors: already_exists, quota_exceeded.
  [[nodiscard]] Result<void> reserve_buffer(uint32_t uid, const std::string& registry_name,
                                            uint64_t bytes, bool durable, uint64_t session);
  void commit_buffer(const std::string& registry_name);
  void cancel_buffer(const std::string& registry_name);  // the create failed
  // The buffer if it exists (and is not being created). Errors: not_found.
  [[nodiscard]] Result<BufferRecord> find_buffer(const std::string& registry_name) const;
  void remove_buffer(const std::string& registry_name);
  // Adds a buffer restored from a snapshot (not counted against quotas' refusals).
  void adopt_buffer(const std::string& registry_name, const BufferRecord& record);
  std::vector<std::pair<std::string, BufferRecord>> buffers_of(std::optional<uint32_t> uid) const;
  // Every user's buffers (not those being created): count and bytes.
  std::pair<uint64_t, uint64_t> totals() const;
  // Counts durable buffers created or removed. A buffer deleted and made again under
  // its name can show the same size and write count as before; snapshots compare this
  // too, so that they never miss the new buffer's contents.
  uint64_t durable_generation() const;

  // --- Kernels. ---
  void set_builtins(std::vector<KernelEntry> builtins);
  // Errors: quota_exceeded.
  [[nodiscard]] Result<void> add_kernel(uint32_t uid, const KernelId& id, const std::string& name);
  bool may_use_kernel(uint32_t uid, const KernelId& id) const;
  // The built-ins, then the user's kernels.
  std::vector<KernelEntry> kernels_of(uint32_t uid) const;

  // --- Requests and connections. ---
  void open_connection(uint64_t conn, uint32_t uid);
  // Counts a request against the connection's and user's queue limits.
  // Errors: quota_exceeded.
  [[nodiscard]] Result<void> admit_request(uint64_t conn);
  // Returns true when the connection is closed and now idle: time to free its session buffers.
  bool finish_request(uint64_t conn);
  // Returns true when the connection was idle: free its session buffers now.
  bool close_connection(uint64_t conn);
  // Session buffers of a closed, idle connection, removed from the table's
  // connection list (the buffers themselves stay until remove_buffer).
  std::vector<std::string> session_buffers(uint64_t conn);
  void forget_connection(uint64_t conn);

  UserUsage usage(uint32_t uid) const;

 private:
  struct User {
    uint64_t bytes = 0;
    uint64_t buffers = 0;
    uint64_t queued = 0;
    std::map<KernelId, std::string> kernels;
  };
  struct Conn {
    uint32_t uid = 0;
    uint64_t inflight = 0;
    bool closed = false;
  };

  const Quota quota_;
  mutable std::mutex mu_;
  // Guarded by mu_.
  std::map<uint32_t, User> users_;
  std::map<std::string, BufferRecord, std::less<>> buffers_;
  std::map<uint64_t, Conn> conns_;
  std::vector<KernelEntry> builtins_;
  uint64_t durable_generation_ = 0;
};

}  // namespace vkn::server
