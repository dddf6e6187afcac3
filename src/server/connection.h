// Connection: one client's socket. The I/O thread reads frames incrementally
// (header, then payload, never past the end of the current frame, so each frame's
// descriptors are known); it buffers at most one partial incoming frame, and stops
// reading a connection whose output or queued work grows past its limits. Replies
// go out from any thread: a worker sends its reply straight to the socket when
// nothing is queued ahead of it (saving a hop through the I/O thread), else queues
// it for the I/O thread to flush when the socket has room.
// Reading and the fields marked "I/O thread" are for the I/O thread only; output is
// guarded by an internal mutex; shared by shared_ptr so a worker's reply can
// outlive the I/O thread's interest in it.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "protocol/frame_assembler.h"
#include "protocol/frame_io.h"
#include "protocol/unique_fd.h"
#include "protocol/wire.h"
#include "server/mapping_cache.h"

namespace vkn::server {

struct Peer {
  pid_t pid = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
};

// A whole frame from a client; its memfd, if any, mapped (and cached, see MappingCache).
struct ServerFrame {
  protocol::FrameHeader header;
  std::vector<std::byte> payload;
  std::shared_ptr<protocol::SharedMemory> attachment;
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
  Connection(uint64_t id, protocol::UniqueFd fd, Peer peer)
      : id_(id), fd_(std::move(fd)), peer_(peer) {}

  uint64_t id() const { return id_; }
  int fd() const { return fd_.get(); }
  const Peer& peer() const { return peer_; }

  // --- Reading. ---
  enum class ReadState { frame, need_more, eof };
  // Reads what the socket has toward the next frame. frame: *out holds it.
  // Errors: FrameError for bad headers, descriptors or attachments and socket errors.
  std::expected<ReadState, FrameError> read(ServerFrame* out);

  // --- Writing (any thread). ---
  enum class SendState { sent, queued, dropped, broken };
  // Sends `frame` now if nothing is queued ahead of it and the socket takes it all
  // (sent); otherwise queues the rest for flush() (queued). dropped: the
  // connection is closed; broken: the peer is gone (close it).
  SendState send(protocol::OutgoingFrame frame);
  // Sends queued output while the socket takes it. Errors: node_dead when the peer is gone.
  [[nodiscard]] Result<void> flush();
  bool has_output() const;
  uint64_t output_bytes() const;
  // Later sends are dropped; the peer sees the connection end.
  void mark_closed();

  // --- Shared with workers. ---
  std::atomic<uint64_t> queued_payload_bytes{0};  // payloads of requests waiting for or in work
  std::atomic<bool> reading{true};                // EPOLLIN armed

  // --- Session state (I/O thread). ---
  bool hello_done = false;
  uint16_t version = protocol::kMinVersion;
  std::string client_name;
  bool close_after_flush = false;

 private:
  const uint64_t id_;
  protocol::UniqueFd fd_;
  const Peer peer_;

  protocol::FrameAssembler incoming_{/*replies=*/false};
  MappingCache mappings_;

  Result<void> flush_locked();

  mutable std::mutex out_mu_;
  // Guarded by out_mu_.
  std::deque<protocol::OutgoingFrame> out_;
  size_t out_offset_ = 0;  // bytes of out_.front() already sent
  uint64_t out_bytes_ = 0;
  bool closed_ = false;
};

}  // namespace vkn::server
