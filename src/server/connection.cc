#include "server/connection.h"

#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "protocol/codec.h"
#include "util/strformat.h"

namespace vkn::server {
namespace {

using protocol::kHeaderSize;

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
  for (;;) {
    std::span<std::byte> into;
    if (!header_) {
      into = std::span(header_bytes_).subspan(header_got_);
    } else {
      // Grow the payload buffer as bytes arrive, so a header that announces 64 MiB
      // commits no memory until the client actually sends it.
      if (payload_got_ == payload_.size() && payload_.size() < header_->payload_size) {
        payload_.resize(std::min<size_t>(header_->payload_size,
                                         std::max<size_t>(64 * 1024, 2 * payload_.size())));
      }
      into = std::span(payload_).subspan(payload_got_);
    }
    if (!into.empty()) {
      auto got = protocol::recv_some(fd_.get(), into, fds_);
      if (!got)
        return std::unexpected(FrameError{got.error(), 0, protocol::MessageType::ping, true});
      if (got->would_block) return ReadState::need_more;
      if (got->eof) return ReadState::eof;
      if (fds_.size() > 1) {
        return std::unexpected(
            FrameError{Error::make(Errc::protocol_error, "more than one descriptor with a frame"),
                       0, protocol::MessageType::ping, true});
      }
      if (!header_) {
        header_got_ += got->bytes;
      } else {
        payload_got_ += got->bytes;
      }
    }
    if (!header_) {
      if (header_got_ < kHeaderSize) continue;
      auto h = protocol::decode_header(header_bytes_);
      if (!h)
        return std::unexpected(
            FrameError{h.error(), raw_request_id(header_bytes_), raw_type(header_bytes_), true});
      if (h->is_reply()) {
        return std::unexpected(
            FrameError{Error::make(Errc::protocol_error, "a client sent a reply frame"),
                       h->request_id, h->type, true});
      }
      header_ = *h;
      payload_.clear();
      payload_got_ = 0;
    }
    if (payload_got_ < header_->payload_size) continue;

    // A whole frame: check its descriptor against its flag.
    ServerFrame frame;
    frame.header = *header_;
    frame.payload = std::move(payload_);
    auto fds = std::move(fds_);
    header_.reset();
    header_got_ = 0;
    payload_ = {};
    payload_got_ = 0;
    fds_.clear();
    const size_t expected = frame.header.has_attachment() ? 1 : 0;
    if (fds.size() != expected) {
      // The frame itself was read whole, so framing is intact: answer and go on.
      return std::unexpected(
          FrameError{Error::make(Errc::protocol_error, "frame descriptors do not match its flags",
                                 vkn::format("{} received, {} expected", fds.size(), expected)),
                     frame.header.request_id, frame.header.type, false});
    }
    if (expected == 1) {
      auto memory = mappings_.adopt(std::move(fds[0]), protocol::kMaxAttachment);
      if (!memory) {
        return std::unexpected(
            FrameError{memory.error(), frame.header.request_id, frame.header.type, false});
      }
      frame.attachment = std::move(*memory);
    }
    *out = std::move(frame);
    return ReadState::frame;
  }
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
