#include "protocol/frame_assembler.h"

#include <algorithm>

namespace vkn::protocol {
namespace {

// The payload buffer grows by doubling from this as bytes arrive.
constexpr size_t kFirstPayloadChunk = 64 * 1024;

}  // namespace

std::expected<FrameAssembler::Progress, FrameAssembler::Failure> FrameAssembler::read(int sock, Frame* out) {
  using Kind = Failure::Kind;
  for (;;) {
    std::span<std::byte> into;
    if (!header_) {
      into = std::span(header_bytes_).subspan(header_got_);
    } else {
      if (payload_got_ == payload_.size() && payload_.size() < header_->payload_size) {
        payload_.resize(std::min<size_t>(header_->payload_size, std::max(kFirstPayloadChunk, 2 * payload_.size())));
      }
      into = std::span(payload_).subspan(payload_got_);
    }
    if (!into.empty()) {
      auto got = recv_some(sock, into, fds_);
      if (!got) return std::unexpected(Failure{Kind::transport, got.error()});
      if (got->would_block) return Progress::would_block;
      if (got->eof) return Progress::eof;
      if (fds_.size() > 1) {
        return std::unexpected(
            Failure{Kind::transport, Error::make(Errc::protocol_error, "more than one descriptor with a frame")});
      }
      (header_ ? payload_got_ : header_got_) += got->bytes;
    }
    if (!header_) {
      if (header_got_ < kHeaderSize) continue;
      auto h = decode_header(header_bytes_);
      if (!h) return std::unexpected(Failure{Kind::bad_header, h.error()});
      if (h->is_reply() != replies_) {
        return std::unexpected(Failure{
            Kind::wrong_direction,
            Error::make(Errc::protocol_error, replies_ ? "a request frame where replies come" : "a reply frame where requests come")});
      }
      header_ = *h;
      payload_.clear();
      payload_got_ = 0;
    }
    if (payload_got_ < header_->payload_size) continue;
    out->header = *header_;
    out->payload = std::move(payload_);
    out->fds = std::move(fds_);
    header_.reset();
    header_got_ = 0;
    payload_ = {};
    payload_got_ = 0;
    fds_.clear();
    return Progress::frame;
  }
}

}  // namespace vkn::protocol
