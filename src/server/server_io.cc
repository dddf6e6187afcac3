// The daemon's I/O thread (epoll loop, connections, cheap requests) and its workers.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "protocol/messages.h"
#include "server/server_impl.h"
#include "util/log.h"
#include "util/strformat.h"

namespace vkn::server {
namespace {

using protocol::MessageType;

constexpr int kMaxEvents = 64;
// Frames read per readiness event. One: after a whole frame the loop goes back to
// epoll_wait (level-triggered, so a client with more to send is reported again at
// once) instead of trying another read that, for a client waiting on its reply,
// would only find the socket empty: one system call less per request. It also lets
// no chatty client hog the loop.
constexpr int kMaxFramesPerWakeup = 1;
// Backpressure: stop reading a client that owes us this much queued work or has
// not read this much of its replies.
constexpr uint64_t kMaxQueuedPayload = 256ull << 20;
constexpr uint64_t kMaxPendingOutput = 96ull << 20;

}  // namespace

Connection* Server::Impl::find(uint64_t id) {
  auto it = conns_.find(id);
  return it == conns_.end() ? nullptr : it->second.get();
}

int Server::Impl::loop_once(int timeout_ms, bool draining) {
  epoll_event events[kMaxEvents];
  const int n = ::epoll_wait(epoll_fd_, events, kMaxEvents, timeout_ms);
  for (int i = 0; i < n; ++i) {
    const uint64_t id = events[i].data.u64;
    if (id == 0) {
      if (!draining) accept_clients();
      continue;
    }
    if (id == 1) {
      uint64_t v;
      while (::read(wake_fd_, &v, sizeof(v)) > 0) {
      }
      continue;
    }
    Connection* conn = find(id);
    if (conn == nullptr) continue;
    if (events[i].events & (EPOLLERR | EPOLLHUP)) {
      if (!(events[i].events & EPOLLIN)) {
        close_connection(id);
        continue;
      }
    }
    if (events[i].events & EPOLLOUT) on_writable(*conn);
    if ((conn = find(id)) == nullptr) continue;
    if ((events[i].events & (EPOLLIN | EPOLLHUP)) && conn->reading && !draining) on_readable(*conn);
  }
  drain_completions();
  for (uint64_t id : std::exchange(to_close_, {})) close_connection(id);
  return n;
}

void Server::Impl::accept_clients() {
  for (;;) {
    const int fd = ::accept4(listener_.fd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        log(LogLevel::warn, "vknoded: accept: {}", std::strerror(errno));
      }
      return;
    }
    protocol::UniqueFd owned(fd);
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) continue;
    size_t of_user = 0;
    for (const auto& [cid, c] : conns_) of_user += c->peer().uid == cred.uid;
    if (conns_.size() >= options_.max_connections || of_user >= options_.max_connections_per_user) {
      log(LogLevel::warn, "vknoded: refusing a connection from uid {} (connection limit)",
          cred.uid);
      continue;  // closing it: the client sees node_dead
    }
    const uint64_t id = next_conn_id_++;
    auto conn =
        std::make_shared<Connection>(id, std::move(owned), Peer{cred.pid, cred.uid, cred.gid});
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = id;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, conn->fd(), &ev) != 0) continue;
    users_.open_connection(id, cred.uid);
    conns_.emplace(id, std::move(conn));
    connection_count_.store(conns_.size());
  }
}

void Server::Impl::on_readable(Connection& conn) {
  const uint64_t id = conn.id();
  for (int i = 0; i < kMaxFramesPerWakeup; ++i) {
    ServerFrame frame;
    auto state = conn.read(&frame);
    if (!state) {
      const FrameError& e = state.error();
      if (e.error.code == Errc::node_dead || e.error.code == Errc::io_error) {
        close_connection(id);
        return;
      }
      count_answer(e.type, e.error.code, Clock::now());
      send(conn, error_reply(e.request_id, e.type, conn.version, e.error));
      if (find(id) == nullptr) return;
      if (e.fatal) {
        conn.close_after_flush = true;
        conn.reading = false;
        update_interest(conn);
        if (!conn.has_output()) close_connection(id);
        return;
      }
      continue;
    }
    if (*state == Connection::ReadState::need_more) break;
    if (*state == Connection::ReadState::eof) {
      close_connection(id);
      return;
    }
    on_frame(conn, std::move(frame));
    if (find(id) == nullptr) return;
    if (conn.queued_payload_bytes > kMaxQueuedPayload || conn.output_bytes() > kMaxPendingOutput) {
      conn.reading = false;
      update_interest(conn);
    }
    return;  // see kMaxFramesPerWakeup
  }
}

void Server::Impl::on_frame(Connection& conn, ServerFrame frame) {
  auto request = std::make_shared<Request>();
  request->conn = conn.id();
  request->connection = conns_[conn.id()];
  request->peer = conn.peer();
  request->version = conn.version;
  request->header = frame.header;
  request->payload = std::move(frame.payload);
  request->attachment = std::move(frame.attachment);
  request->received = Clock::now();
  if (frame.header.timeout_ms != 0) {
    request->deadline = request->received + std::chrono::milliseconds(frame.header.timeout_ms);
  }
  const auto& h = request->header;
  auto reject = [&](const Error& e) {
    count_answer(h.type, e.code, request->received);
    send(conn, error_reply(h.request_id, h.type, conn.version, e));
  };
  if (h.type == MessageType::hello) return on_hello(conn, *request);
  if (!conn.hello_done) return reject(Error::make(Errc::protocol_error, "send hello first"));
  if (h.version != conn.version) {
    return reject(Error::make(Errc::protocol_error, "frame version differs from the negotiated one",
                              vkn::format("{} != {}", h.version, conn.version)));
  }
  if (!RequestHandler::is_queued(h.type)) {
    if (h.device != 0) {
      return reject(
          Error::make(Errc::invalid_argument, "only requests that touch a device node name one",
                      vkn::format("{} for device {}", protocol::to_string(h.type), h.device)));
    }
    return answer_now(conn, request);
  }
  if (stopping_) return reject(Error::make(Errc::cancelled, "the daemon is shutting down"));
  if (auto r = users_.admit_request(conn.id()); !r) return reject(r.error());
  conn.queued_payload_bytes += request->payload.size();
  queue_.push(conn.id(), WorkItem{request, {}});
}

void Server::Impl::on_hello(Connection& conn, const Request& request) {
  auto reader = request.reader();
  auto m = protocol::decode_hello_request(reader);
  const uint16_t lo = m ? std::max(m->min_version, protocol::kMinVersion) : 0;
  const uint16_t hi = m ? std::min(m->max_version, protocol::kMaxVersion) : 0;
  if (!m || lo > hi) {
    Error e = m ? Error::make(Errc::protocol_error, "no common protocol version",
                              vkn::format("the daemon speaks {}..{}, the client {}..{}",
                                          protocol::kMinVersion, protocol::kMaxVersion,
                                          m->min_version, m->max_version))
                : m.error();
    count_answer(MessageType::hello, e.code, request.received);
    send(conn,
         error_reply(request.header.request_id, MessageType::hello, protocol::kMinVersion, e));
    return;
  }
  conn.hello_done = true;
  conn.version = hi;
  conn.client_name = m->client_name;
  DaemonHello reply;
  reply.protocol_version = hi;
  reply.daemon_version = VKNODE_VERSION_STRING;
  reply.daemon_pid = static_cast<uint32_t>(::getpid());
  reply.peer_uid = conn.peer().uid;
  reply.peer_is_admin = is_admin(conn.peer());
  reply.max_payload = protocol::kMaxPayload;
  reply.shm_threshold = options_.shm_threshold;
  reply.max_attachment = protocol::kMaxAttachment;
  ReplyWriter w(UINT64_MAX);
  protocol::encode(w.body(), reply);
  count_answer(MessageType::hello, Errc::ok, request.received);
  send(conn, std::move(*w.finish(request.header, protocol::kMinVersion)));
}

void Server::Impl::answer_now(Connection& conn, const std::shared_ptr<Request>& request) {
  const auto& h = request->header;
  const uint32_t uid = conn.peer().uid;
  Result<protocol::OutgoingFrame> reply = fail(Errc::protocol_error, "unexpected request type");
  switch (h.type) {
    case MessageType::ping:
      reply = ok_reply(h, conn.version);
      break;
    case MessageType::status: {
      ReplyWriter w(UINT64_MAX);
      protocol::encode(w.body(), make_status(uid));
      reply = w.finish(h, conn.version);
      break;
    }
    case MessageType::list_kernels: {
      ReplyWriter w(UINT64_MAX);
      protocol::encode(w.body(), users_.kernels_of(uid));
      reply = w.finish(h, conn.version);
      break;
    }
    case MessageType::shutdown:
      if (!is_admin(conn.peer())) {
        reply = fail(Errc::permission_denied, "shutdown is an admin operation");
      } else {
        log(LogLevel::info, "vknoded: shutdown requested by uid {} (pid {})", uid, conn.peer().pid);
        reply = ok_reply(h, conn.version);
        request_stop();
      }
      break;
    default:
      break;
  }
  if (!reply) {
    count_answer(h.type, reply.error().code, request->received);
    send(conn, error_reply(h.request_id, h.type, conn.version, reply.error()));
    return;
  }
  count_answer(h.type, Errc::ok, request->received);
  send(conn, std::move(*reply));
}

void Server::Impl::send(Connection& conn, protocol::OutgoingFrame frame) {
  switch (conn.send(std::move(frame))) {
    case Connection::SendState::sent:
      if (conn.close_after_flush) to_close_.push_back(conn.id());
      break;
    case Connection::SendState::queued:
      update_interest(conn);
      break;
    case Connection::SendState::dropped:
      break;
    case Connection::SendState::broken:
      to_close_.push_back(conn.id());
      break;
  }
}

void Server::Impl::on_writable(Connection& conn) {
  const uint64_t id = conn.id();
  if (auto r = conn.flush(); !r) {
    to_close_.push_back(id);
    return;
  }
  if (!conn.has_output() && conn.close_after_flush) {
    to_close_.push_back(id);
    return;
  }
  if (!conn.reading && !conn.close_after_flush && !stopping_ &&
      conn.output_bytes() <= kMaxPendingOutput / 2 &&
      conn.queued_payload_bytes <= kMaxQueuedPayload / 2) {
    conn.reading = true;
  }
  update_interest(conn);
}

void Server::Impl::update_interest(Connection& conn) {
  const bool want_write = conn.has_output();
  epoll_event ev{};
  ev.events = (conn.reading ? uint32_t{EPOLLIN} : 0u) | (want_write ? uint32_t{EPOLLOUT} : 0u);
  ev.data.u64 = conn.id();
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, conn.fd(), &ev);
}

void Server::Impl::close_connection(uint64_t id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, it->second->fd(), nullptr);
  it->second->mark_closed();
  conns_.erase(it);
  connection_count_.store(conns_.size());
  // Queued requests of a vanished client never run; a running one finishes and
  // its reply is dropped; session buffers go once nothing of it runs.
  for (auto& item : queue_.drop_client(id)) {
    (void)item;
    after_request(id);
  }
  if (users_.close_connection(id)) {
    queue_.push_system(WorkItem{nullptr, [this, id] { handler_.free_session_buffers(id); }});
  }
}

void Server::Impl::count_answer(MessageType type, Errc code, Clock::time_point received) {
  requests_.fetch_add(1);
  if (code != Errc::ok) request_errors_.fetch_add(1);
  if (code == Errc::quota_exceeded) rejected_quota_.fetch_add(1);
  metrics_.record(type, code, Clock::now() - received);
}

void Server::Impl::drain_completions() {
  std::vector<Completion> done;
  {
    std::lock_guard lock(completions_mu_);
    done.swap(completions_);
  }
  for (Completion& c : done) {
    if (Connection* conn = find(c.conn)) on_writable(*conn);
  }
}

void Server::Impl::post(Completion completion) {
  {
    std::lock_guard lock(completions_mu_);
    completions_.push_back(std::move(completion));
  }
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof(one));
}

void Server::Impl::after_request(uint64_t conn) {
  if (users_.finish_request(conn)) {
    queue_.push_system(WorkItem{nullptr, [this, conn] { handler_.free_session_buffers(conn); }});
  }
}

std::optional<Server::Impl::WorkItem> Server::Impl::next_work() {
  // Poll briefly before sleeping: the next request of a busy client usually comes
  // within microseconds of the last reply.
  if (spin_.count() > 0) {
    const auto until = Clock::now() + spin_;
    do {
      if (auto item = queue_.try_pop()) return item;
    } while (Clock::now() < until);
  }
  return queue_.pop();
}

void Server::Impl::worker_main() {
  while (auto item = next_work()) {
    if (item->system) {
      item->system();
      continue;
    }
    // An exec is handed to its node and answered from the node's thread (or its
    // deadline timer): the worker does not wait for it, and goes back for the next
    // item. The queue's slot stays taken until the reply, so fairness holds.
    std::shared_ptr<Request> request = std::move(item->request);
    running_.fetch_add(1);
    handler_.start(request, [this, request](Result<protocol::OutgoingFrame> reply) {
      reply_to(request, std::move(reply));
    });
  }
  live_workers_.fetch_sub(1);
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof(one));
}

void Server::Impl::reply_to(const std::shared_ptr<Request>& request,
                            Result<protocol::OutgoingFrame> reply) {
  running_.fetch_sub(1);
  count_answer(request->header.type, reply ? Errc::ok : reply.error().code, request->received);
  if (!reply) {
    reply = error_reply(request->header.request_id, request->header.type, request->version,
                        reply.error());
  }
  // Straight to the socket when nothing is queued ahead; the I/O thread only
  // hears about it when there is something left for it to do.
  if (std::shared_ptr<Connection> conn = request->connection.lock()) {
    conn->queued_payload_bytes.fetch_sub(request->payload.size());
    const auto state = conn->send(std::move(*reply));
    if (state == Connection::SendState::queued || state == Connection::SendState::broken ||
        !conn->reading.load()) {
      post(Completion{request->conn});
    }
  }
  after_request(request->conn);
  queue_.finish();  // last: a stopping daemon waits for every slot (finish_stop)
}

}  // namespace vkn::server
