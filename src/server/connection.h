// Connection: one client's socket on the daemon's I/O thread. Reads frames
// incrementally (header, then payload, never past the end of the current frame, so
// each frame's descriptors are known), keeps the frames it owes the client in an
// output queue, and sends them as the socket accepts them. Buffers at most one
// partial incoming frame; the server stops reading a connection whose output or
// queued work grows past its limits. Used by the I/O thread only (not thread-safe).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "protocol/frame_io.h"
#include "protocol/unique_fd.h"
#include "protocol/wire.h"

namespace vkn::server {

struct Peer {
  pid_t pid = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
};

// A frame the connection could not read. `fatal`: framing is lost; answer (with
// `request_id`, when it could be read) and close.
struct FrameError {
  Error error;
  uint64_t request_id = 0;
  protocol::MessageType type = protocol::MessageType::ping;
  bool fatal = true;
};

class Connection {
 public:
  Connection(uint64_t id, protocol::UniqueFd fd, Peer peer) : id_(id), fd_(std::move(fd)), peer_(peer) {}

  uint64_t id() const { return id_; }
  int fd() const { return fd_.get(); }
  const Peer& peer() const { return peer_; }

  // --- Reading. ---
  enum class ReadState { frame, need_more, eof };
  // Reads what the socket has toward the next frame. frame: *out holds it.
  // Errors: FrameError for bad headers, descriptors or attachments and socket errors.
  std::expected<ReadState, FrameError> read(protocol::IncomingFrame* out);

  // --- Writing. ---
  void queue(protocol::OutgoingFrame frame);
  // Sends what the socket takes. Errors: node_dead when the peer is gone.
  [[nodiscard]] Result<void> flush();
  bool has_output() const { return !out_.empty(); }
  uint64_t output_bytes() const { return out_bytes_; }

  // --- Session state (I/O thread). ---
  bool hello_done = false;
  uint16_t version = protocol::kMinVersion;
  std::string client_name;
  uint64_t queued_payload_bytes = 0;  // payloads of requests waiting for or in work
  bool reading = true;                // EPOLLIN armed
  bool writing = false;               // EPOLLOUT armed
  bool close_after_flush = false;

 private:
  const uint64_t id_;
  protocol::UniqueFd fd_;
  const Peer peer_;

  protocol::HeaderBytes header_bytes_{};
  size_t header_got_ = 0;
  std::optional<protocol::FrameHeader> header_;
  std::vector<std::byte> payload_;
  size_t payload_got_ = 0;
  std::vector<protocol::UniqueFd> fds_;

  std::deque<protocol::OutgoingFrame> out_;
  size_t out_offset_ = 0;  // bytes of out_.front() already sent
  uint64_t out_bytes_ = 0;
};

}  // namespace vkn::server
