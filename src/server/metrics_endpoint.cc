#include "server/metrics_endpoint.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string_view>

#include "util/log.h"
#include "util/strformat.h"

namespace vkn::server {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxRequestBytes = 8192;
constexpr std::chrono::seconds kConnectionDeadline{2};

int ms_left(Clock::time_point deadline) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

std::string response(std::string_view status, std::string_view content_type,
                     std::string_view body) {
  return vkn::format(
      "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
      status, content_type, body.size(), body);
}

// Writes all of `data` before the deadline; gives up silently otherwise (the scraper
// sees a short answer and retries at its next scrape).
void send_all(int fd, std::string_view data, Clock::time_point deadline) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, ms_left(deadline)) > 0) continue;
    }
    return;
  }
}

}  // namespace

Result<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::start(
    uint16_t port, std::function<std::string()> render) {
  protocol::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.is_open()) return fail(Errc::io_error, "metrics socket", std::strerror(errno));
  const int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);  // never reachable from other machines
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return fail(Errc::io_error, vkn::format("metrics endpoint: binding 127.0.0.1:{}", port),
                std::strerror(errno));
  }
  if (::listen(fd.get(), 16) != 0)
    return fail(Errc::io_error, "metrics endpoint: listen", std::strerror(errno));
  socklen_t len = sizeof(addr);
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    return fail(Errc::io_error, "metrics endpoint: getsockname", std::strerror(errno));
  protocol::UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake.is_open()) return fail(Errc::io_error, "metrics eventfd", std::strerror(errno));
  return std::unique_ptr<MetricsEndpoint>(
      new MetricsEndpoint(std::move(fd), std::move(wake), ntohs(addr.sin_port), std::move(render)));
}

MetricsEndpoint::MetricsEndpoint(protocol::UniqueFd listen, protocol::UniqueFd wake, uint16_t port,
                                 std::function<std::string()> render)
    : listen_(std::move(listen)), wake_(std::move(wake)), port_(port), render_(std::move(render)) {
  thread_ = std::thread([this] { serve(); });
}

MetricsEndpoint::~MetricsEndpoint() {
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_.get(), &one, sizeof(one));
  thread_.join();
}

void MetricsEndpoint::serve() {
  for (;;) {
    pollfd p[2] = {{listen_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      log(LogLevel::error, "vknoded: metrics endpoint stopped: poll: {}", std::strerror(errno));
      return;
    }
    if (p[1].revents != 0) return;
    const int fd = ::accept4(listen_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) continue;  // EAGAIN, or a connection reset before we took it
    protocol::UniqueFd conn(fd);
    answer(conn.get());
  }
}

void MetricsEndpoint::answer(int fd) {
  const auto deadline = Clock::now() + kConnectionDeadline;
  // Read the request head (the request line and headers; a GET has no body).
  std::string head;
  char buf[1024];
  while (head.find("\r\n\r\n") == std::string::npos) {
    if (head.size() > kMaxRequestBytes) {
      send_all(fd, response("431 Request Header Fields Too Large", "text/plain", "too large\n"),
               deadline);
      return;
    }
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      head.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) break;  // the peer finished sending: answer what came
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, ms_left(deadline)) <= 0) return;  // too slow: closed unanswered
  }
  const std::string_view line = std::string_view(head).substr(0, head.find("\r\n"));
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || !line.substr(sp2 + 1).starts_with("HTTP/1.")) {
    send_all(fd, response("400 Bad Request", "text/plain", "bad request\n"), deadline);
    return;
  }
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (method != "GET" || target != "/metrics") {
    send_all(fd, response("404 Not Found", "text/plain", "only GET /metrics is served\n"),
             deadline);
    return;
  }
  send_all(fd, response("200 OK", "text/plain; version=0.0.4; charset=utf-8", render_()), deadline);
}

}  // namespace vkn::server
