#include "client/client_connection.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "protocol/messages.h"
#include "protocol/socket_path.h"
#include "util/strformat.h"

namespace vkn::client {
namespace {

using protocol::MessageType;

int ms_until(Clock::time_point deadline) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, 1 << 30));
}

}  // namespace

Result<std::unique_ptr<ClientConnection>> ClientConnection::open(const std::filesystem::path& path,
                                                                 const std::string& name,
                                                                 std::chrono::milliseconds timeout,
                                                                 std::chrono::microseconds spin) {
  auto fd = protocol::connect_unix(path, timeout);
  if (!fd) return fail(fd.error());
  // Hello, synchronously, before the reader starts.
  protocol::Writer w;
  protocol::encode(w, protocol::HelloRequest{protocol::kMinVersion, protocol::kMaxVersion, name});
  protocol::FrameHeader h;
  h.version = protocol::kMinVersion;
  h.type = MessageType::hello;
  h.request_id = 1;
  h.timeout_ms = static_cast<uint32_t>(timeout.count());
  auto frame = protocol::make_frame(h, w.take());
  if (!frame) return fail(frame.error());
  // The socket is non-blocking from here on; the hello exchange is bounded by the
  // connect timeout, later sends by each call's deadline.
  ::fcntl(fd->get(), F_SETFL, ::fcntl(fd->get(), F_GETFL) | O_NONBLOCK);
  // A fresh socket takes a small hello at once.
  if (auto r = protocol::send_frame(fd->get(), *frame); !r) {
    return fail(Errc::node_dead, "the daemon closed the connection during hello",
                r.error().message);
  }
  auto reply = protocol::recv_frame(fd->get(), protocol::kMaxAttachment, timeout);
  if (!reply) {
    const Errc code = reply.error().code;
    if (code == Errc::io_error || code == Errc::node_timeout) {
      return fail(Errc::node_dead, "no hello reply from the daemon", reply.error().message);
    }
    return fail(reply.error());
  }
  if (!reply->header.is_reply() || reply->header.type != MessageType::hello ||
      reply->header.request_id != 1) {
    return fail(Errc::protocol_error, "the daemon did not answer hello");
  }
  protocol::Reader r(reply->payload, reply->attachment_bytes());
  if (auto e = protocol::decode_error(r); !e) return fail(e.error());
  auto hello = protocol::decode_hello_reply(r);
  if (!hello) return fail(hello.error());
  return std::unique_ptr<ClientConnection>(
      new ClientConnection(std::move(*fd), std::move(*hello), spin));
}

ClientConnection::ClientConnection(protocol::UniqueFd fd, DaemonHello hello,
                                   std::chrono::microseconds spin)
    : fd_(std::move(fd)), hello_(std::move(hello)), spin_(spin) {
  reader_ = std::thread([this] { reader_main(); });
}

ClientConnection::~ClientConnection() {
  ::shutdown(fd_.get(), SHUT_RDWR);  // wakes the reader
  if (reader_.joinable()) reader_.join();
}

bool ClientConnection::is_dead() const {
  std::lock_guard lock(mu_);
  return dead_.has_value();
}

void ClientConnection::mark_dead(const Error& why) {
  std::map<uint64_t, std::promise<Result<protocol::IncomingFrame>>> waiting;
  {
    std::lock_guard lock(mu_);
    if (!dead_) dead_ = why;
    waiting.swap(pending_);
  }
  for (auto& [id, promise] : waiting) promise.set_value(fail(why));
  ::shutdown(fd_.get(), SHUT_RDWR);
}

void ClientConnection::reader_main() {
  for (;;) {
    if (spin_.count() > 0) {
      // Poll for a while before recv_frame sleeps in poll(): replies to a busy
      // client come back-to-back.
      const auto until = Clock::now() + spin_;
      pollfd p{fd_.get(), POLLIN, 0};
      while (::poll(&p, 1, 0) == 0 && Clock::now() < until) {
      }
    }
    auto frame = protocol::recv_frame(fd_.get(), hello_.max_attachment);
    if (!frame) {
      const Error& e = frame.error();
      mark_dead(e.code == Errc::node_dead
                    ? e
                    : Error::make(Errc::node_dead, "connection to the daemon lost", e.to_string()));
      return;
    }
    if (!frame->header.is_reply()) {
      mark_dead(Error::make(Errc::node_dead, "the daemon sent a request frame"));
      return;
    }
    std::optional<std::promise<Result<protocol::IncomingFrame>>> promise;
    {
      std::lock_guard lock(mu_);
      auto it = pending_.find(frame->header.request_id);
      if (it != pending_.end()) {
        promise.emplace(std::move(it->second));
        pending_.erase(it);
      }
    }
    // A reply nobody waits for belongs to a call that timed out: dropped.
    if (promise) promise->set_value(std::move(*frame));
  }
}

Result<void> ClientConnection::send_with_deadline(const protocol::OutgoingFrame& frame,
                                                  std::optional<Clock::time_point> deadline) {
  std::lock_guard lock(send_mu_);
  size_t offset = 0;
  while (offset < frame.size()) {
    auto sent = protocol::send_some(fd_.get(), frame, offset);
    if (!sent) return fail(Errc::node_dead, "connection to the daemon lost", sent.error().message);
    offset += *sent;
    if (*sent > 0 || offset == frame.size()) continue;
    pollfd p{fd_.get(), POLLOUT, 0};
    const int wait_ms = deadline ? ms_until(*deadline) : -1;
    const int ready = ::poll(&p, 1, wait_ms);
    if (ready < 0 && errno != EINTR) return fail(Errc::node_dead, "poll", std::strerror(errno));
    if (ready == 0) {
      if (offset > 0) {
        // Half a frame on the wire: the stream cannot be resumed.
        mark_dead(Error::make(Errc::node_dead, "a send timed out midway through a frame"));
      }
      return fail(Errc::node_timeout, "the daemon did not take the request before its deadline");
    }
  }
  return {};
}

Result<protocol::IncomingFrame> ClientConnection::call(MessageType type,
                                                       std::vector<std::byte> payload,
                                                       const protocol::AttachmentPlan* plan,
                                                       std::optional<Clock::time_point> deadline,
                                                       const protocol::SharedMemory* lent,
                                                       uint32_t device) {
  protocol::FrameHeader h;
  h.version = hello_.protocol_version;
  h.type = type;
  if (device != 0 && h.version < protocol::kDeviceVersion) {
    return fail(Errc::invalid_argument,
                "this daemon speaks protocol version 1, which has only device node 0",
                vkn::format("device {} asked for", device));
  }
  h.device = device;
  if (deadline) {
    const int ms = ms_until(*deadline);
    if (ms <= 0) return fail(Errc::node_timeout, "the deadline passed before the request was sent");
    h.timeout_ms = static_cast<uint32_t>(ms);
  }
  std::future<Result<protocol::IncomingFrame>> reply;
  {
    std::lock_guard lock(mu_);
    if (dead_) return fail(*dead_);
    h.request_id = next_id_++;
    reply = pending_[h.request_id].get_future();
  }
  auto forget = [&] {
    std::lock_guard lock(mu_);
    pending_.erase(h.request_id);
  };
  auto frame = lent != nullptr ? protocol::make_frame_with(h, std::move(payload), *lent)
                               : protocol::make_frame(h, std::move(payload), plan);
  if (!frame) {
    forget();
    return fail(frame.error());
  }
  if (auto r = send_with_deadline(*frame, deadline); !r) {
    forget();
    if (r.error().code == Errc::node_dead) mark_dead(r.error());
    return fail(r.error());
  }
  if (spin_.count() > 0) {
    const auto until = std::min(Clock::now() + spin_, deadline.value_or(Clock::time_point::max()));
    while (reply.wait_for(std::chrono::seconds(0)) != std::future_status::ready &&
           Clock::now() < until) {
    }
  }
  if (deadline && reply.wait_until(*deadline) != std::future_status::ready) {
    // Withdraw the call unless the reader got its reply in the meantime; a reply that
    // comes later is dropped by the reader.
    std::optional<std::promise<Result<protocol::IncomingFrame>>> withdrawn;
    {
      std::lock_guard lock(mu_);
      if (auto it = pending_.find(h.request_id); it != pending_.end()) {
        withdrawn.emplace(std::move(it->second));
        pending_.erase(it);
      }
    }
    if (withdrawn) {
      withdrawn->set_value(
          fail(Errc::node_timeout, vkn::format("no answer from the daemon before the deadline ({})",
                                               protocol::to_string(type))));
    }
  }
  auto result = reply.get();
  if (!result) return fail(result.error());
  if (result->header.type != type) {
    return fail(Errc::protocol_error, "reply type does not match the request",
                vkn::format("{} for {}", protocol::to_string(result->header.type),
                            protocol::to_string(type)));
  }
  return result;
}

}  // namespace vkn::client
