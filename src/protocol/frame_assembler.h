// FrameAssembler: one connection's incoming frame as it arrives on a non-blocking socket:
// the header bytes, then the payload (grown as bytes arrive, so a header that announces a
// large payload commits no memory until the peer sends it), with the descriptors that came
// alongside. The client's and the daemon's connections both read with it; each then adopts
// the attachment its own way.
#pragma once

#include <cstddef>
#include <expected>
#include <optional>
#include <vector>

#include "protocol/codec.h"
#include "protocol/frame_io.h"
#include "protocol/unique_fd.h"

namespace vkn::protocol {

class FrameAssembler {
 public:
  struct Frame {
    FrameHeader header;
    std::vector<std::byte> payload;
    std::vector<UniqueFd> fds;  // checked against the header by check_descriptors()
  };
  enum class Progress { frame, would_block, eof };
  // After any failure the byte stream cannot be followed further.
  struct Failure {
    enum class Kind {
      transport,        // recv failed, or more than one descriptor came with a frame
      bad_header,       // the header did not decode: header_bytes() holds it
      wrong_direction,  // a reply where requests come, or the other way round
    };
    Kind kind;
    Error error;
  };

  // replies: the frames must be replies (a client's connection), else requests (the daemon's).
  explicit FrameAssembler(bool replies) : replies_(replies) {}

  // Reads what the socket has toward the next frame. frame: *out holds it whole, and the
  // assembler starts on the next one.
  std::expected<Progress, Failure> read(int sock, Frame* out);
  // The current (or failed) header's bytes, for naming the request in an error reply.
  const HeaderBytes& header_bytes() const { return header_bytes_; }

 private:
  const bool replies_;
  HeaderBytes header_bytes_{};
  size_t header_got_ = 0;
  std::optional<FrameHeader> header_;
  std::vector<std::byte> payload_;
  size_t payload_got_ = 0;
  std::vector<UniqueFd> fds_;
};

}  // namespace vkn::protocol
