// RawConnection: a test client that speaks the protocol by hand (no threads), to
// send malformed, truncated and oversized frames, and to act as a client process
// that gets killed mid-request (it is fork-safe).
#pragma once

#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <optional>

#include "protocol/frame_io.h"
#include "protocol/messages.h"
#include "protocol/socket_path.h"

namespace vkn::server::testing {

class RawConnection {
 public:
  static Result<RawConnection> open(const std::string& path) {
    auto fd = protocol::connect_unix(path, std::chrono::seconds(2));
    if (!fd) return fail(fd.error());
    return RawConnection(std::move(*fd));
  }

  int fd() const { return fd_.get(); }

  Result<void> send_raw(std::span<const std::byte> bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::send(fd_.get(), bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return fail(Errc::node_dead, "send");
      done += static_cast<size_t>(n);
    }
    return {};
  }

  Result<void> send(protocol::MessageType type, uint64_t id, std::vector<std::byte> payload,
                    uint32_t timeout_ms = 0) {
    protocol::FrameHeader h;
    h.type = type;
    h.request_id = id;
    h.timeout_ms = timeout_ms;
    auto frame = protocol::make_frame(h, std::move(payload));
    if (!frame) return fail(frame.error());
    return protocol::send_frame(fd_.get(), *frame);
  }

  template <typename Message>
  Result<void> send_message(protocol::MessageType type, uint64_t id, const Message& m,
                            uint32_t timeout_ms = 0) {
    protocol::Writer w;
    protocol::encode(w, m);
    return send(type, id, w.take(), timeout_ms);
  }

  // The next frame, or node_dead on EOF, or node_timeout when none comes in time.
  Result<protocol::IncomingFrame> recv(
      std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0)
      return fail(Errc::node_timeout, "no frame");
    return protocol::recv_frame(fd_.get(), protocol::kMaxAttachment);
  }

  // The error code a reply carries (ok for success).
  static Errc code_of(const protocol::IncomingFrame& frame) {
    protocol::Reader r(frame.payload, frame.attachment_bytes());
    auto e = protocol::decode_error(r);
    return e ? Errc::ok : e.error().code;
  }

  Result<void> hello() {
    // Every version this side speaks: the daemon picks the newest, which is what
    // send() puts in its frames (FrameHeader's default).
    if (auto r = send_message(
            protocol::MessageType::hello, 1,
            protocol::HelloRequest{protocol::kMinVersion, protocol::kMaxVersion, "raw"});
        !r)
      return r;
    auto reply = recv();
    if (!reply) return fail(reply.error());
    if (code_of(*reply) != Errc::ok) return fail(Errc::protocol_error, "hello refused");
    return {};
  }

  // True when the daemon closed the connection (EOF) within the timeout.
  bool closed_by_peer(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
    char c;
    return ::recv(fd_.get(), &c, 1, MSG_DONTWAIT) == 0;
  }

 private:
  explicit RawConnection(protocol::UniqueFd fd) : fd_(std::move(fd)) {}
  protocol::UniqueFd fd_;
};

}  // namespace vkn::server::testing
