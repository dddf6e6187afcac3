#include "protocol/frame_io.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>

#include "protocol/messages.h"
#include "util/strformat.h"

namespace vkn::protocol {
namespace {

Error socket_error(std::string_view what, int err) {
  const bool gone = err == EPIPE || err == ECONNRESET || err == ENOTCONN;
  return Error::make(gone ? Errc::node_dead : Errc::io_error, what, std::strerror(err));
}

}  // namespace

Result<OutgoingFrame> make_frame(FrameHeader header, std::vector<std::byte> payload,
                                 const AttachmentPlan* plan) {
  if (plan == nullptr || plan->pieces.empty()) {
    if (payload.size() > kMaxPayload) {
      return fail(Errc::invalid_argument, "message too large for one frame",
                  vkn::format("{} bytes (limit {})", payload.size(), kMaxPayload));
    }
    header.payload_size = static_cast<uint32_t>(payload.size());
    header.flags &= ~kFlagAttachment;
    OutgoingFrame frame;
    frame.header = encode_header(header);
    frame.payload = std::move(payload);
    return frame;
  }
  if (plan->total > kMaxAttachment) {
    return fail(Errc::invalid_argument, "message data too large",
                vkn::format("{} bytes (limit {} per message)", plan->total, kMaxAttachment));
  }
  auto memory = SharedMemory::create(plan->total, "vknode-blob");
  if (!memory) return fail(memory.error());
  for (const auto& [offset, data] : plan->pieces) {
    std::memcpy(memory->bytes().data() + offset, data.data(), data.size());
  }
  return make_frame_with(header, std::move(payload), *memory);
}

Result<OutgoingFrame> make_frame_with(FrameHeader header, std::vector<std::byte> payload,
                                      const SharedMemory& attachment) {
  if (payload.size() > kMaxPayload) {
    return fail(Errc::invalid_argument, "message too large for one frame",
                vkn::format("{} bytes (limit {})", payload.size(), kMaxPayload));
  }
  if (auto sealed = attachment.seal(); !sealed) return fail(sealed.error());
  header.payload_size = static_cast<uint32_t>(payload.size());
  header.flags |= kFlagAttachment;
  OutgoingFrame frame;
  frame.header = encode_header(header);
  frame.payload = std::move(payload);
  // Only the descriptor travels; this side's mapping goes now.
  frame.attachment = UniqueFd(::dup(attachment.fd()));
  if (!frame.attachment.is_open())
    return fail(Errc::io_error, "dup of a memfd", std::strerror(errno));
  return frame;
}

Result<size_t> send_some(int sock, const OutgoingFrame& frame, size_t offset) {
  iovec iov[2];
  int n = 0;
  if (offset < kHeaderSize) {
    iov[n++] = {const_cast<std::byte*>(frame.header.data()) + offset, kHeaderSize - offset};
    if (!frame.payload.empty())
      iov[n++] = {const_cast<std::byte*>(frame.payload.data()), frame.payload.size()};
  } else {
    const size_t in_payload = offset - kHeaderSize;
    if (in_payload >= frame.payload.size()) return size_t{0};
    iov[n++] = {const_cast<std::byte*>(frame.payload.data()) + in_payload,
                frame.payload.size() - in_payload};
  }
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = n;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  if (offset == 0 && frame.attachment.is_open()) {
    std::memset(control, 0, sizeof(control));
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    const int fd = frame.attachment.get();
    std::memcpy(CMSG_DATA(cm), &fd, sizeof(int));
  }
  for (;;) {
    const ssize_t sent = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (sent >= 0) return static_cast<size_t>(sent);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return size_t{0};
    return fail(socket_error("sending a frame", errno));
  }
}

Result<void> send_frame(int sock, const OutgoingFrame& frame) {
  size_t offset = 0;
  while (offset < frame.size()) {
    auto sent = send_some(sock, frame, offset);
    if (!sent) return fail(sent.error());
    offset += *sent;
    if (*sent == 0) {  // a non-blocking socket is full: wait for room
      pollfd p{sock, POLLOUT, 0};
      if (::poll(&p, 1, -1) < 0 && errno != EINTR) return fail(socket_error("poll", errno));
    }
  }
  return {};
}

Result<RecvOutcome> recv_some(int sock, std::span<std::byte> into, std::vector<UniqueFd>& fds) {
  iovec iov{into.data(), into.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerRecv)];
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t got;
  for (;;) {
    got = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (got >= 0) break;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return RecvOutcome{0, false, true};
    return fail(socket_error("receiving a frame", errno));
  }
  for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
      fds.emplace_back(fd);
    }
  }
  if (msg.msg_flags & MSG_CTRUNC)
    return fail(Errc::protocol_error, "too many descriptors in one message");
  return RecvOutcome{static_cast<size_t>(got), got == 0 && !into.empty(), false};
}

namespace {

Result<void> recv_exact(int sock, std::span<std::byte> into, std::vector<UniqueFd>& fds,
                        int timeout_ms) {
  size_t done = 0;
  while (done < into.size()) {
    auto got = recv_some(sock, into.subspan(done), fds);
    if (!got) return fail(got.error());
    if (got->eof) return fail(Errc::node_dead, "the daemon closed the connection");
    if (got->would_block) {
      pollfd p{sock, POLLIN, 0};
      const int ready = ::poll(&p, 1, timeout_ms);
      if (ready < 0 && errno != EINTR) return fail(socket_error("poll", errno));
      if (ready == 0) return fail(Errc::node_timeout, "the daemon sent nothing in time");
      continue;
    }
    done += got->bytes;
  }
  return {};
}

}  // namespace

Result<void> check_descriptors(const FrameHeader& header, size_t descriptors) {
  const size_t expected = header.has_attachment() ? 1 : 0;
  if (descriptors == expected) return {};
  return fail(Errc::protocol_error, "frame descriptors do not match its flags",
              vkn::format("{} received, {} expected", descriptors, expected));
}

Result<IncomingFrame> recv_frame(int sock, uint64_t max_attachment,
                                 std::optional<std::chrono::milliseconds> timeout) {
  const int timeout_ms = timeout ? static_cast<int>(timeout->count()) : -1;
  std::vector<UniqueFd> fds;
  HeaderBytes header_bytes;
  if (auto r = recv_exact(sock, header_bytes, fds, timeout_ms); !r) return fail(r.error());
  auto header = decode_header(header_bytes);
  if (!header) return fail(header.error());
  IncomingFrame frame;
  frame.header = *header;
  frame.payload.resize(header->payload_size);
  if (auto r = recv_exact(sock, frame.payload, fds, timeout_ms); !r) return fail(r.error());
  if (auto r = check_descriptors(*header, fds.size()); !r) return fail(r.error());
  if (!fds.empty()) {
    auto memory = SharedMemory::adopt(std::move(fds[0]), max_attachment);
    if (!memory) return fail(memory.error());
    frame.attachment.emplace(std::move(*memory));
  }
  return frame;
}

Result<void> check_reply(Reader& r) { return decode_error(r); }

}  // namespace vkn::protocol
