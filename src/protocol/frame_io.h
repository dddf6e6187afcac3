// Frames on a Unix stream socket: building one from an encoded payload (moving
// large blobs into a memfd), sending it with the memfd as SCM_RIGHTS, and receiving
// one. Each frame's descriptor rides on the first byte of its header, so a reader
// that never reads past the end of the current frame sees exactly that frame's
// descriptors. Functions are thread-safe; one socket must not be read (or written)
// by two threads at once.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "protocol/codec.h"
#include "protocol/shared_memory.h"
#include "protocol/unique_fd.h"
#include "protocol/wire.h"
#include "vknode/error.h"

namespace vkn::protocol {

struct OutgoingFrame {
  HeaderBytes header{};
  std::vector<std::byte> payload;
  UniqueFd attachment;  // sent with the first byte, then closed

  size_t size() const { return kHeaderSize + payload.size(); }
};

struct IncomingFrame {
  FrameHeader header;
  std::vector<std::byte> payload;
  std::optional<SharedMemory> attachment;

  std::span<const std::byte> attachment_bytes() const {
    return attachment ? attachment->bytes() : std::span<const std::byte>();
  }
};

// Finishes `header` (payload size, attachment flag) around `payload`. When `plan`
// holds pieces, copies them into one sealed memfd. Errors: invalid_argument when the
// payload exceeds kMaxPayload or the attachment kMaxAttachment; memfd errors.
[[nodiscard]] Result<OutgoingFrame> make_frame(FrameHeader header, std::vector<std::byte> payload,
                                               const AttachmentPlan* plan = nullptr);
// As make_frame, with an already filled memfd (sealed here if it is not yet); the
// frame carries a duplicate of its descriptor, so `attachment` may be reused later.
[[nodiscard]] Result<OutgoingFrame> make_frame_with(FrameHeader header,
                                                    std::vector<std::byte> payload,
                                                    const SharedMemory& attachment);

// Sends bytes of `frame` from `offset` on; returns how many went out (0 when a
// non-blocking socket would block). The attachment goes with offset 0.
// Errors: node_dead when the peer is gone (EPIPE, ECONNRESET), io_error otherwise.
[[nodiscard]] Result<size_t> send_some(int sock, const OutgoingFrame& frame, size_t offset);
// Sends the whole frame on a blocking socket.
[[nodiscard]] Result<void> send_frame(int sock, const OutgoingFrame& frame);

struct RecvOutcome {
  size_t bytes = 0;
  bool eof = false;
  bool would_block = false;
};
// One recvmsg into `into`; descriptors that came with the bytes are appended to
// `fds` (at most kMaxFdsPerRecv). Errors: protocol_error when descriptors were
// truncated, node_dead on ECONNRESET, io_error otherwise.
inline constexpr int kMaxFdsPerRecv = 4;
[[nodiscard]] Result<RecvOutcome> recv_some(int sock, std::span<std::byte> into,
                                            std::vector<UniqueFd>& fds);

// A whole frame's descriptors against its header: one when it has an attachment, else none.
// Errors: protocol_error.
[[nodiscard]] Result<void> check_descriptors(const FrameHeader& header, size_t descriptors);

// Reads one whole frame and maps its attachment; on a non-blocking socket it polls,
// waiting at most `timeout` for each piece (none: forever).
// Errors: node_dead on EOF or reset, node_timeout when nothing came in time,
// protocol_error for a bad header, stray or missing descriptors, or an attachment
// above `max_attachment`.
[[nodiscard]] Result<IncomingFrame> recv_frame(
    int sock, uint64_t max_attachment,
    std::optional<std::chrono::milliseconds> timeout = std::nullopt);

// The error of a reply: decodes the envelope at the start of `frame`'s payload and
// leaves `r` after it.
[[nodiscard]] Result<void> check_reply(Reader& r);

}  // namespace vkn::protocol
