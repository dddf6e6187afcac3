// ClientConnection: one socket to the daemon, after hello. A reader thread receives
// replies and hands each to the call waiting on its request id; callers send under a
// mutex. When the socket breaks, every waiting call gets node_dead and the
// connection stays dead (the Client then opens a new one). Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

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
  ~ClientConnection();
  ClientConnection(const ClientConnection&) = delete;
  ClientConnection& operator=(const ClientConnection&) = delete;

  const DaemonHello& hello() const { return hello_; }
  bool is_dead() const;

  // Sends a request and waits for its reply until `deadline` (none: until the reply
  // or the connection's death). Large blobs go as `plan` says, or in `lent` (a
  // memfd the caller filled, or lends for the reply to be written into). Returns
  // the reply frame; the caller decodes the envelope. `device` names the daemon's
  // device node the request targets (header field of protocol version 2).
  // Errors: node_dead, node_timeout, invalid_argument (too large, or a device other
  // than 0 on a connection that negotiated protocol version 1).
  [[nodiscard]] Result<protocol::IncomingFrame> call(protocol::MessageType type,
                                                     std::vector<std::byte> payload,
                                                     const protocol::AttachmentPlan* plan,
                                                     std::optional<Clock::time_point> deadline,
                                                     const protocol::SharedMemory* lent = nullptr,
                                                     uint32_t device = 0);

 private:
  ClientConnection(protocol::UniqueFd fd, DaemonHello hello, std::chrono::microseconds spin);
  void reader_main();
  void mark_dead(const Error& why);
  Result<void> send_with_deadline(const protocol::OutgoingFrame& frame,
                                  std::optional<Clock::time_point> deadline);

  protocol::UniqueFd fd_;
  const DaemonHello hello_;
  const std::chrono::microseconds spin_;

  mutable std::mutex mu_;
  // Guarded by mu_.
  uint64_t next_id_ = 2;  // 1 was hello
  std::map<uint64_t, std::promise<Result<protocol::IncomingFrame>>> pending_;
  std::optional<Error> dead_;

  std::mutex send_mu_;  // one frame at a time on the socket
  std::thread reader_;
};

}  // namespace vkn::client
