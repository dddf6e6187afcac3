#include "server/request.h"

#include "protocol/messages.h"

namespace vkn::server {

std::optional<std::chrono::milliseconds> Request::time_left() const {
  if (!deadline) return std::nullopt;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now());
  return std::max(left, std::chrono::milliseconds(1));
}

ReplyWriter::ReplyWriter(uint64_t shm_threshold) : writer_(&plan_) {
  plan_.threshold = shm_threshold;
  protocol::encode_error(writer_, Error{});
}

Result<protocol::OutgoingFrame> ReplyWriter::finish(const protocol::FrameHeader& request,
                                                    uint16_t version) {
  protocol::FrameHeader h;
  h.version = version;
  h.type = request.type;
  h.flags = protocol::kFlagReply;
  h.request_id = request.request_id;
  return protocol::make_frame(h, writer_.take(), &plan_);
}

Result<protocol::OutgoingFrame> ReplyWriter::finish_with(const protocol::FrameHeader& request,
                                                         uint16_t version,
                                                         protocol::SharedMemory& attachment) {
  protocol::FrameHeader h;
  h.version = version;
  h.type = request.type;
  h.flags = protocol::kFlagReply;
  h.request_id = request.request_id;
  return protocol::make_frame_with(h, writer_.take(), attachment);
}

protocol::OutgoingFrame error_reply(uint64_t request_id, protocol::MessageType type,
                                    uint16_t version, const Error& error) {
  protocol::Writer w;
  Error e = error;
  if (e.code == Errc::ok) e.code = Errc::protocol_error;  // an error reply must carry an error
  protocol::encode_error(w, e);
  protocol::FrameHeader h;
  h.version = version;
  h.type = type;
  h.flags = protocol::kFlagReply;
  h.request_id = request_id;
  auto frame = protocol::make_frame(h, w.take());
  return std::move(*frame);  // small and inline: cannot fail
}

protocol::OutgoingFrame ok_reply(const protocol::FrameHeader& request, uint16_t version) {
  ReplyWriter w(UINT64_MAX);
  return std::move(*w.finish(request, version));
}

}  // namespace vkn::server
