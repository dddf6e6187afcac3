// Request: one decoded frame from a client, as it waits in the fair queue and runs on
// a worker; and the helpers that build reply frames. A Request is shared (shared_ptr)
// because a node job that outlives its caller's deadline may still read its payload
// or attachment. Plain data; thread-compatible.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>

#include "protocol/codec.h"
#include "protocol/frame_io.h"
#include "server/connection.h"

namespace vkn::server {

using Clock = std::chrono::steady_clock;

struct Request {
  uint64_t conn = 0;
  std::weak_ptr<Connection> connection;  // where the reply goes (gone if the client left)
  Peer peer;
  uint16_t version = protocol::kMinVersion;
  protocol::FrameHeader header;
  std::vector<std::byte> payload;
  std::shared_ptr<protocol::SharedMemory>
      attachment;  // may be shared with later requests (MappingCache)
  Clock::time_point received{};
  std::optional<Clock::time_point> deadline;

  protocol::Reader reader() const {
    return protocol::Reader(payload,
                            attachment ? attachment->bytes() : std::span<const std::byte>());
  }
  // Time left before the deadline (unset: none), at least 1 ms.
  std::optional<std::chrono::milliseconds> time_left() const;
  bool is_expired() const { return deadline && Clock::now() >= *deadline; }
};

// A reply body under construction: the success envelope, then the body.
class ReplyWriter {
 public:
  explicit ReplyWriter(uint64_t shm_threshold);
  protocol::Writer& body() { return writer_; }
  // Errors: make_frame's.
  [[nodiscard]] Result<protocol::OutgoingFrame> finish(const protocol::FrameHeader& request,
                                                       uint16_t version);
  // With a memfd the caller already filled (referenced by blob_ref in the body).
  [[nodiscard]] Result<protocol::OutgoingFrame> finish_with(const protocol::FrameHeader& request,
                                                            uint16_t version,
                                                            protocol::SharedMemory& attachment);

 private:
  protocol::AttachmentPlan plan_;
  protocol::Writer writer_;
};

// A reply carrying `error` (never fails: error replies are small and inline).
protocol::OutgoingFrame error_reply(uint64_t request_id, protocol::MessageType type,
                                    uint16_t version, const Error& error);
// An empty success reply.
protocol::OutgoingFrame ok_reply(const protocol::FrameHeader& request, uint16_t version);

}  // namespace vkn::server
