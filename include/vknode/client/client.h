// vkn::Client: a connection to the machine's vknode daemon (`vknode serve`), with
// the same calls and Result/Errc model as the in-process node API (node.h). Errors
// from the daemon and its node come through unchanged; the client adds node_dead
// (no daemon answers, or it died mid-call) and node_timeout (the call's deadline
// passed). After a daemon restart the next call reconnects, and kernels this client
// registered are registered again; session-scoped buffers are gone, durable ones
// come back from the daemon's snapshot.
//
// A daemon may run several device nodes (one per GPU). Each buffer lives on the node
// named when it was created, and calls on it must name the same node
// (RequestOptions::device or ClientOptions::device; default 0). Kernels registered
// by a client can be dispatched on every node.
//
// Thread-safe: many threads may call one Client at once; their requests share one
// connection (matched by request id). Large data moves through shared memory
// (memfd) rather than the socket. A Client needs no GPU.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vknode/error.h"
#include "vknode/gpu/builtin_kernels.h"
#include "vknode/node/program.h"
#include "vknode/protocol/daemon_types.h"

namespace vkn {

struct ClientOptions {
  // Empty: $VKNODE_SOCKET, else /run/vknode/vknode.sock if it exists (always for
  // root), else $XDG_RUNTIME_DIR/vknode.sock.
  std::string socket_path;
  std::string name;  // shown in the daemon's logs
  // Deadline for calls that give none; unset: $VKNODE_TIMEOUT_MS, else none (a
  // call then waits until the daemon answers or dies).
  std::optional<std::chrono::milliseconds> default_timeout;
  std::chrono::milliseconds connect_timeout{2'000};
  // Blobs from this size travel in a memfd; 0: the daemon's threshold.
  uint64_t shm_threshold = 0;
  // How long a call polls the socket for its reply before it sleeps in poll(): saves
  // a thread wake-up per call at the cost of CPU while it spins.
  // Unset: 50 us on machines with at least 8 hardware threads, else 0.
  std::optional<std::chrono::microseconds> spin;
  // The daemon's device node (position in DaemonStatus::devices) that calls touching a
  // node go to when a call names none: kernel registration, buffers, exec, cache
  // persist. 0, the first node, is what a daemon of one device has.
  uint32_t device = 0;
};

struct RequestOptions {
  std::optional<std::chrono::milliseconds> timeout;  // unset: ClientOptions::default_timeout
  // The device node this call targets; unset: ClientOptions::device. Ignored by calls
  // that touch no node (ping, status, list_kernels, shutdown).
  std::optional<uint32_t> device;
};

// Shared memory (a memfd mapped here) for transfers without a copy: fill it and
// write_buffer() hands it to the daemon, which uploads straight from it; or
// read_buffer() has the daemon download straight into it. At most 1 GiB.
// After a call on it ends in node_timeout, the daemon may still be reading or
// writing it: do not reuse its contents until a later call on it succeeds.
// Move-only; thread-compatible.
class SharedBuffer {
 public:
  // Errors: out_of_host_memory, io_error.
  [[nodiscard]] static Result<SharedBuffer> create(uint64_t bytes);
  SharedBuffer(SharedBuffer&&) noexcept;
  SharedBuffer& operator=(SharedBuffer&&) noexcept;
  ~SharedBuffer();

  std::span<std::byte> bytes();
  std::span<const std::byte> bytes() const;
  uint64_t size() const;

  class Memory;  // the memfd and its mapping

 private:
  explicit SharedBuffer(std::unique_ptr<Memory> memory);
  std::unique_ptr<Memory> memory_;
  friend class Client;
};

// How long a buffer lives: until deleted (daemon), or until this client's
// connection closes (session). Durable buffers (BufferSpec::durable) also survive a
// daemon restart; they cannot be session-scoped.
enum class BufferScope { daemon, session };

class Client {
 public:
  // Connects and says hello. Errors: node_dead (no daemon answers), permission_denied
  // (the socket's mode or group keeps this user out), protocol_error (no common
  // protocol version), not_found (no socket path applies).
  [[nodiscard]] static Result<std::unique_ptr<Client>> connect(ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // What the daemon said at the last hello.
  DaemonHello daemon() const;

  [[nodiscard]] Result<void> ping(const RequestOptions& options = {});
  [[nodiscard]] Result<DaemonStatus> status(const RequestOptions& options = {});

  // As vkn::register_kernel. The kernel is this user's: other users cannot dispatch it.
  [[nodiscard]] Result<KernelId> register_kernel(std::span<const uint32_t> spirv,
                                                 std::span<const SpecConstant> spec = {},
                                                 std::string_view kernel_name = {},
                                                 const RequestOptions& options = {});
  // The built-ins, then this user's kernels.
  [[nodiscard]] Result<std::vector<KernelEntry>> list_kernels(const RequestOptions& options = {});
  // The id of a built-in kernel (asked of the daemon once, then cached).
  [[nodiscard]] Result<KernelId> builtin_kernel_id(BuiltinKernel kernel);

  // Buffers live in this user's namespace on one device node: names are 1..100
  // characters of [A-Za-z0-9_.:/-], and no other user can see or touch them. The same
  // name on two device nodes is two buffers. A device index the daemon does not have
  // is not_found.
  // Errors: as vkn::create_buffer, plus quota_exceeded (per-user bytes or buffers).
  [[nodiscard]] Result<void> create_buffer(std::string_view name, const BufferSpec& spec,
                                           BufferScope scope = BufferScope::daemon,
                                           const RequestOptions& options = {});
  [[nodiscard]] Result<void> delete_buffer(std::string_view name,
                                           const RequestOptions& options = {});
  [[nodiscard]] Result<void> write_buffer(std::string_view name, uint64_t offset,
                                          std::span<const std::byte> data,
                                          const RequestOptions& options = {});
  // bytes == 0 reads to the end of the buffer (at most 1 GiB; give `bytes` for more).
  [[nodiscard]] Result<std::vector<std::byte>> read_buffer(std::string_view name,
                                                           uint64_t offset = 0, uint64_t bytes = 0,
                                                           const RequestOptions& options = {});
  // Reads out.size() bytes into `out` (one copy, from the daemon's memfd).
  [[nodiscard]] Result<void> read_buffer_into(std::string_view name, uint64_t offset,
                                              std::span<std::byte> out,
                                              const RequestOptions& options = {});
  // Zero-copy transfers through `shared` (its first `bytes`; 0: all of it).
  [[nodiscard]] Result<void> write_buffer(std::string_view name, uint64_t offset,
                                          const SharedBuffer& shared, uint64_t bytes = 0,
                                          const RequestOptions& options = {});
  [[nodiscard]] Result<void> read_buffer(std::string_view name, uint64_t offset,
                                         SharedBuffer& shared, uint64_t bytes = 0,
                                         const RequestOptions& options = {});
  // This user's buffers on the device node; all users' (registry names "u<uid>/<name>",
  // "d<device>/u<uid>/<name>" beyond node 0) for an admin.
  [[nodiscard]] Result<std::vector<BufferListEntry>> list_buffers(
      bool all_users = false, const RequestOptions& options = {});

  // As vkn::exec: buffer names are this user's; kernels must be this user's or built-ins.
  [[nodiscard]] Result<ProgramResult> exec(const Program& program,
                                           const RequestOptions& options = {});

  // Admin (root or the daemon's uid). Returns the cache file's path.
  [[nodiscard]] Result<std::string> persist_pipeline_cache(const RequestOptions& options = {});
  // Admin: the daemon stops as on SIGTERM (after answering).
  [[nodiscard]] Result<void> shutdown(const RequestOptions& options = {});

  class Impl;

 private:
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace vkn
