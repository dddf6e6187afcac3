// ClientConnection: one socket to the daemon, after hello. There is no reader thread:
// a call sends its request and then reads replies itself ("leader/followers"). One
// waiting call at a time reads the socket; it keeps the replies meant for other
// calls in their waiters and wakes them, and when it has its own reply (or gives
// up at its deadline) it hands the reading over to another waiting call. A call
// alone on the connection (the common case) so reads its own reply, with no thread
// hand-off. Callers send under a mutex. When the socket breaks, every waiting call
// gets node_dead and the connection stays dead (the Client then opens a new one).
// Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "protocol/frame_assembler.h"
#include "protocol/frame_io.h"
#include "protocol/unique_fd.h"
#include "vknode/error.h"
#include "vknode/protocol/daemon_types.h"

namespace vkn::client {

using Clock = std::chrono::steady_clock;

class ClientConnection {
 public:
  // Connects to `path` and says hello. Errors: see Client::connect.
  [[nodiscard]] static Result<std::unique_ptr<ClientConnection>> open(
      const std::filesystem::path& path, const std::string& name, std::chrono::milliseconds timeout,
      std::chrono::microseconds spin = {});
  ~ClientConnection() = default;
  ClientConnection(const ClientConnection&) = delete;
  ClientConnection& operator=(const ClientConnection&) = delete;

  const DaemonHello& hello() const { return hello_; }
  bool is_dead() const;

  // Sends a request and waits for its reply until `deadline` (none: until the reply
  // or the connection's death). Large blobs go as `plan` says, or in `lent` (a
  // memfd the caller filled, or lends for the reply to be written into). Returns
  // the reply frame; the caller decodes the envelope. `device` names the daemon's
  // device node the request targets (header field of protocol version 2).
  // `*sent` (when given) tells whether any byte of the request reached the socket:
  // a node_dead call with nothing sent can be retried on a new connection.
  // Errors: node_dead, node_timeout, invalid_argument (too large, or a device other
  // than 0 on a connection that negotiated protocol version 1).
  [[nodiscard]] Result<protocol::IncomingFrame> call(protocol::MessageType type,
                                                     std::vector<std::byte> payload,
                                                     const protocol::AttachmentPlan* plan,
                                                     std::optional<Clock::time_point> deadline,
                                                     const protocol::SharedMemory* lent = nullptr,
                                                     uint32_t device = 0, bool* sent = nullptr);

 private:
  // A call waiting for its reply; lives on the caller's stack while it is in pending_.
  struct Waiter {
    std::optional<Result<protocol::IncomingFrame>> result;  // guarded by mu_
  };
  enum class ReadOutcome { frame, would_block };

  ClientConnection(protocol::UniqueFd fd, DaemonHello hello, std::chrono::microseconds spin);
  // Requires: mu_ held. Ends the connection: every waiter gets `why`.
  void mark_dead_locked(const Error& why);
  void mark_dead(const Error& why);
  // Requires: mu_ held. Removes `id` from pending_; false when it was not there.
  bool forget_locked(uint64_t id);
  Result<void> send_with_deadline(const protocol::OutgoingFrame& frame,
                                  std::optional<Clock::time_point> deadline, bool* sent);
  // Reading (the caller holding reading_ only). Reads what the socket has toward the
  // next frame without blocking. Errors: node_dead (EOF, reset), protocol_error.
  Result<ReadOutcome> read_frame(protocol::IncomingFrame* out);
  // Waits until the socket is readable, spinning first for spin_. false: the deadline
  // passed. Errors: node_dead when poll fails.
  Result<bool> wait_readable(std::optional<Clock::time_point> deadline);
  // As reader, until `me` has its result or `deadline` passes. Requires: `lock` holds
  // mu_ and reading_ was set by this call; both hold again on return.
  void read_for(Waiter& me, std::optional<Clock::time_point> deadline,
                std::unique_lock<std::mutex>& lock);

  protocol::UniqueFd fd_;
  const DaemonHello hello_;
  const std::chrono::microseconds spin_;

  mutable std::mutex mu_;
  std::condition_variable cv_;  // a waiter got its result, or reading_ was released
  // Guarded by mu_.
  uint64_t next_id_ = 2;  // 1 was hello
  std::vector<std::pair<uint64_t, Waiter*>> pending_;
  std::optional<Error> dead_;
  bool reading_ = false;  // a call reads the socket now

  // The partial incoming frame: only the call that set reading_ touches it.
  protocol::FrameAssembler incoming_{/*replies=*/true};

  std::mutex send_mu_;  // one frame at a time on the socket
};

}  // namespace vkn::client
