#include "client/client_connection.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <algorithm>
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
  // Hello, synchronously, before any call reads the socket.
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
    : fd_(std::move(fd)), hello_(std::move(hello)), spin_(spin) {}

bool ClientConnection::is_dead() const {
  std::lock_guard lock(mu_);
  return dead_.has_value();
}

void ClientConnection::mark_dead_locked(const Error& why) {
  if (!dead_) dead_ = why;
  for (auto& [id, waiter] : pending_) waiter->result.emplace(fail(why));
  pending_.clear();
  cv_.notify_all();
  ::shutdown(fd_.get(), SHUT_RDWR);
}

void ClientConnection::mark_dead(const Error& why) {
  std::lock_guard lock(mu_);
  mark_dead_locked(why);
}

bool ClientConnection::forget_locked(uint64_t id) {
  auto it = std::find_if(pending_.begin(), pending_.end(),
                         [id](const auto& p) { return p.first == id; });
  if (it == pending_.end()) return false;
  pending_.erase(it);
  return true;
}

Result<ClientConnection::ReadOutcome> ClientConnection::read_frame(protocol::IncomingFrame* out) {
  protocol::FrameAssembler::Frame whole;
  auto got = incoming_.read(fd_.get(), &whole);
  if (!got) {
    if (got.error().kind == protocol::FrameAssembler::Failure::Kind::wrong_direction) {
      return fail(Errc::node_dead, "the daemon sent a request frame");
    }
    return fail(got.error().error);
  }
  if (*got == protocol::FrameAssembler::Progress::would_block) return ReadOutcome::would_block;
  if (*got == protocol::FrameAssembler::Progress::eof) return fail(Errc::node_dead, "the daemon closed the connection");
  if (auto r = protocol::check_descriptors(whole.header, whole.fds.size()); !r) return fail(r.error());
  protocol::IncomingFrame frame;
  frame.header = whole.header;
  frame.payload = std::move(whole.payload);
  if (!whole.fds.empty()) {
    auto memory = protocol::SharedMemory::adopt(std::move(whole.fds[0]), hello_.max_attachment);
    if (!memory) return fail(memory.error());
    frame.attachment.emplace(std::move(*memory));
  }
  *out = std::move(frame);
  return ReadOutcome::frame;
}

Result<bool> ClientConnection::wait_readable(std::optional<Clock::time_point> deadline) {
  pollfd p{fd_.get(), POLLIN, 0};
  if (spin_.count() > 0) {
    // Poll for a while before sleeping: a busy daemon answers within microseconds.
    const auto until = std::min(Clock::now() + spin_, deadline.value_or(Clock::time_point::max()));
    while (::poll(&p, 1, 0) == 0 && Clock::now() < until) {
    }
    if (p.revents != 0) return true;
  }
  for (;;) {
    const int ready = ::poll(&p, 1, deadline ? ms_until(*deadline) : -1);
    if (ready > 0) return true;
    if (ready < 0 && errno != EINTR) return fail(Errc::node_dead, "poll", std::strerror(errno));
    if (ready == 0 && deadline && Clock::now() >= *deadline) return false;
  }
}

void ClientConnection::read_for(Waiter& me, std::optional<Clock::time_point> deadline,
                                std::unique_lock<std::mutex>& lock) {
  auto lost = [this](const Error& e) {
    mark_dead_locked(e.code == Errc::node_dead ? e
                                               : Error::make(Errc::node_dead,
                                                             "connection to the daemon lost",
                                                             e.to_string()));
  };
  while (!me.result) {
    lock.unlock();
    // Wait first: right after a send the reply is not there yet, and a read that
    // would block costs a system call.
    auto ready = wait_readable(deadline);
    if (!ready || !*ready) {
      lock.lock();
      if (!ready) lost(ready.error());
      return;  // dead, or the deadline passed
    }
    for (;;) {
      protocol::IncomingFrame frame;
      auto got = read_frame(&frame);
      lock.lock();
      if (!got) {
        lost(got.error());
        return;
      }
      if (*got == ReadOutcome::would_block) break;  // wait again
      const uint64_t id = frame.header.request_id;
      auto it = std::find_if(pending_.begin(), pending_.end(),
                             [id](const auto& p) { return p.first == id; });
      // A reply nobody waits for belongs to a call that timed out: dropped.
      if (it != pending_.end()) {
        Waiter* w = it->second;
        w->result.emplace(std::move(frame));
        pending_.erase(it);
        if (w == &me) return;  // our own: stop reading here, without another read
        cv_.notify_all();
      }
      lock.unlock();
    }
  }
}

Result<void> ClientConnection::send_with_deadline(const protocol::OutgoingFrame& frame,
                                                  std::optional<Clock::time_point> deadline,
                                                  bool* sent_any) {
  std::lock_guard lock(send_mu_);
  size_t offset = 0;
  while (offset < frame.size()) {
    auto sent = protocol::send_some(fd_.get(), frame, offset);
    if (!sent) return fail(Errc::node_dead, "connection to the daemon lost", sent.error().message);
    offset += *sent;
    if (offset > 0 && sent_any != nullptr) *sent_any = true;
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
                                                       uint32_t device, bool* sent) {
  if (sent != nullptr) *sent = false;
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
  Waiter me;
  {
    std::lock_guard lock(mu_);
    if (dead_) return fail(*dead_);
    h.request_id = next_id_++;
    pending_.emplace_back(h.request_id, &me);
  }
  auto frame = lent != nullptr ? protocol::make_frame_with(h, std::move(payload), *lent)
                               : protocol::make_frame(h, std::move(payload), plan);
  if (!frame) {
    std::lock_guard lock(mu_);
    forget_locked(h.request_id);
    return fail(frame.error());
  }
  if (auto r = send_with_deadline(*frame, deadline, sent); !r) {
    std::lock_guard lock(mu_);
    forget_locked(h.request_id);
    if (r.error().code == Errc::node_dead) mark_dead_locked(r.error());
    return fail(r.error());
  }
  std::unique_lock lock(mu_);
  while (!me.result) {
    if (!reading_) {
      // Nobody reads the socket: this call does, until its own reply is there.
      reading_ = true;
      read_for(me, deadline, lock);
      reading_ = false;
      if (!pending_.empty()) cv_.notify_all();  // another waiting call takes over reading
    } else if (!deadline) {
      cv_.wait(lock);
    } else {
      cv_.wait_until(lock, *deadline);
    }
    if (!me.result && deadline && Clock::now() >= *deadline) {
      // Withdrawn: a reply that comes later is dropped by whoever reads it.
      forget_locked(h.request_id);
      return fail(Errc::node_timeout,
                  vkn::format("no answer from the daemon before the deadline ({})",
                              protocol::to_string(type)));
    }
  }
  Result<protocol::IncomingFrame> result = std::move(*me.result);
  lock.unlock();
  if (!result) return fail(result.error());
  if (result->header.type != type) {
    return fail(Errc::protocol_error, "reply type does not match the request",
                vkn::format("{} for {}", protocol::to_string(result->header.type),
                            protocol::to_string(type)));
  }
  return result;
}

}  // namespace vkn::client
