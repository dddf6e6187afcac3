#include "server/connection.h"

#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "protocol/codec.h"
#include "util/strformat.h"

namespace vkn::server {
namespace {

// Reads the request id straight from header bytes, even when the header is bad, so
// the error reply can name the request.
uint64_t raw_request_id(const protocol::HeaderBytes& h) {
  protocol::Reader r(std::span<const std::byte>(h).subspan(16, 8));
  return r.u64();
}

// The message type from header bytes when it is a known one, else ping.
protocol::MessageType raw_type(const protocol::HeaderBytes& h) {
  protocol::Reader r(std::span<const std::byte>(h).subspan(6, 2));
  const uint16_t t = r.u16();
  return protocol::is_known_type(t) ? static_cast<protocol::MessageType>(t)
                                    : protocol::MessageType::ping;
}

}  // namespace

std::expected<Connection::ReadState, FrameError> Connection::read(ServerFrame* out) {
  using Assembler = protocol::FrameAssembler;
  Assembler::Frame whole;
  auto got = incoming_.read(fd_.get(), &whole);
  if (!got) {
    // The stream is lost; a bad header still names its request in the error reply.
    const auto& h = incoming_.header_bytes();
    const bool named = got.error().kind != Assembler::Failure::Kind::transport;
    return std::unexpected(FrameError{got.error().error, named ? raw_request_id(h) : 0,
                                      named ? raw_type(h) : protocol::MessageType::ping, true});
  }
  if (*got == Assembler::Progress::would_block) return ReadState::need_more;
  if (*got == Assembler::Progress::eof) return ReadState::eof;
  // A whole frame, so framing is intact: a bad descriptor or attachment is answered and the
  // connection goes on.
  ServerFrame frame;
  frame.header = whole.header;
  frame.payload = std::move(whole.payload);
  auto frame_error = [&](Error e) {
    return std::unexpected(FrameError{std::move(e), frame.header.request_id, frame.header.type, false});
  };
  if (auto r = protocol::check_descriptors(frame.header, whole.fds.size()); !r) return frame_error(r.error());
  if (!whole.fds.empty()) {
    auto memory = mappings_.adopt(std::move(whole.fds[0]), protocol::kMaxAttachment);
    if (!memory) return frame_error(memory.error());
    frame.attachment = std::move(*memory);
  }
  *out = std::move(frame);
  return ReadState::frame;
}

Connection::SendState Connection::send(protocol::OutgoingFrame frame) {
  std::lock_guard lock(out_mu_);
  if (closed_) return SendState::dropped;
  out_bytes_ += frame.size();
  out_.push_back(std::move(frame));
  if (out_.size() > 1) return SendState::queued;  // behind earlier output
  if (auto r = flush_locked(); !r) return SendState::broken;
  return out_.empty() ? SendState::sent : SendState::queued;
}

Result<void> Connection::flush() {
  std::lock_guard lock(out_mu_);
  if (closed_) return {};
  return flush_locked();
}

Result<void> Connection::flush_locked() {
  while (!out_.empty()) {
    protocol::OutgoingFrame& f = out_.front();
    auto sent = protocol::send_some(fd_.get(), f, out_offset_);
    if (!sent) return fail(sent.error());
    if (*sent == 0) return {};  // the socket is full
    out_offset_ += *sent;
    if (out_offset_ == f.size()) {
      out_bytes_ -= f.size();
      out_.pop_front();
      out_offset_ = 0;
    }
  }
  return {};
}

bool Connection::has_output() const {
  std::lock_guard lock(out_mu_);
  return !out_.empty();
}

uint64_t Connection::output_bytes() const {
  std::lock_guard lock(out_mu_);
  return out_bytes_;
}

void Connection::mark_closed() {
  std::lock_guard lock(out_mu_);
  closed_ = true;
  out_.clear();
  out_bytes_ = 0;
  ::shutdown(fd_.get(), SHUT_RDWR);
}

}  // namespace vkn::server
