#include "server/server.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "protocol/socket_path.h"
#include "server/device_selection.h"
#include "server/node_backend.h"
#include "server/server_impl.h"
#include "server/snapshot.h"
#include "util/log.h"
#include "util/strformat.h"

namespace vkn::server {

Result<std::filesystem::path> default_state_dir() {
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return v ? std::string(v) : std::string();
  };
  if (auto v = env("VKNODE_STATE_DIR"); !v.empty()) return std::filesystem::path(v);
  if (::geteuid() == 0) return std::filesystem::path("/var/lib/vknode");
  if (auto v = env("XDG_STATE_HOME"); !v.empty() && v.front() == '/')
    return std::filesystem::path(v) / "vknode";
  if (auto v = env("HOME"); !v.empty()) return std::filesystem::path(v) / ".local/state/vknode";
  return fail(Errc::not_found, "no state directory",
              "set --state-dir, VKNODE_STATE_DIR, XDG_STATE_HOME or HOME");
}

Result<std::unique_ptr<Server>> Server::create(ServerOptions options) {
  auto path = protocol::server_socket_path(options.socket_path);
  if (!path) return fail(path.error());
  if (options.state_dir.empty()) {
    auto dir = default_state_dir();
    if (!dir) return fail(dir.error());
    options.state_dir = *dir;
  }
  // The socket first: a second daemon must fail before it touches the device.
  ListenerOptions lo;
  lo.path = *path;
  lo.mode = options.socket_mode;
  lo.group = options.socket_group;
  auto listener = options.inherited_listen_fd >= 0 ? Listener::adopt(options.inherited_listen_fd)
                                                   : Listener::open(lo);
  if (!listener) return fail(listener.error());

  Backends backends;
  if (options.TEST_backend) {
    for (size_t i = 0; i < std::max<size_t>(1, options.devices.size()); ++i) {
      auto b = options.TEST_backend();
      if (!b) return fail(b.error());
      backends.push_back(std::move(*b));
    }
  } else {
    auto selectors =
        options.devices.empty()
            ? Result<std::vector<std::string>>(std::vector{options.node.device_selector})
            : expand_device_selectors(options.devices);
    if (!selectors) return fail(selectors.error());
    // One node per selector, each on its own thread and device; nodes started before
    // a failure are stopped as `backends` goes out of scope.
    for (const std::string& selector : *selectors) {
      NodeOptions node = options.node;
      node.device_selector = selector;
      auto b = NodeBackend::start(node);
      if (!b) {
        Error e = b.error();
        e.message =
            vkn::format("device node {} (--device '{}'): {}", backends.size(), selector, e.message);
        return fail(std::move(e));
      }
      backends.push_back(std::move(*b));
    }
  }
  const auto snapshot = options.state_dir / kSnapshotFileName;
  auto impl = std::make_unique<Impl>(std::move(options), std::move(*listener), std::move(backends),
                                     snapshot);
  if (auto r = impl->init(); !r) return fail(r.error());
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() = default;
Result<void> Server::run() { return impl_->run(); }
void Server::request_stop() { impl_->request_stop(); }
const std::filesystem::path& Server::socket_path() const { return impl_->socket_path(); }
const std::filesystem::path& Server::snapshot_path() const { return impl_->snapshot_path(); }
std::string Server::node_name(uint32_t device) const { return impl_->node_name(device); }
uint32_t Server::device_count() const { return impl_->device_count(); }
uint16_t Server::metrics_port() const { return impl_->metrics_port(); }

Server::Impl::Impl(ServerOptions options, Listener listener, Backends backends,
                   std::filesystem::path snapshot)
    : options_(std::move(options)),
      socket_path_(listener.path()),
      snapshot_path_(std::move(snapshot)),
      backends_(std::move(backends)),
      users_(options_.quota),
      handler_(backends_, users_, options_.shm_threshold),
      queue_(std::max<uint32_t>(1, options_.workers)),
      spin_(options_.spin
                ? *options_.spin
                : std::chrono::microseconds(std::thread::hardware_concurrency() >= 8 ? 50 : 0)),
      listener_(std::move(listener)) {}

Server::Impl::~Impl() {
  // run() normally stops everything; this covers a Server destroyed without run().
  if (!workers_.empty()) {
    for (auto& item : queue_.close()) (void)item;
    for (auto& t : workers_) t.join();
    workers_.clear();
  }
  metrics_endpoint_.reset();
  for (auto& b : backends_) b->stop();
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

Result<void> Server::Impl::init() {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (epoll_fd_ < 0 || wake_fd_ < 0)
    return fail(Errc::io_error, "epoll/eventfd", std::strerror(errno));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 0;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listener_.fd(), &ev) != 0) {
    return fail(Errc::io_error, "epoll_ctl listener", std::strerror(errno));
  }
  ev.data.u64 = 1;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) {
    return fail(Errc::io_error, "epoll_ctl eventfd", std::strerror(errno));
  }
  // Built-ins are the same SPIR-V, so the same ids, on every node.
  users_.set_builtins(backends_.front()->builtin_kernels());
  restore_snapshot();
  if (options_.metrics_port) {
    auto endpoint =
        MetricsEndpoint::start(*options_.metrics_port, [this] { return render_metrics(); });
    if (!endpoint) return fail(endpoint.error());
    metrics_endpoint_ = std::move(*endpoint);
    log(LogLevel::info, "vknoded: metrics on http://127.0.0.1:{}/metrics",
        metrics_endpoint_->port());
  }
  const uint32_t n = std::max<uint32_t>(1, options_.workers);
  live_workers_ = n;
  for (uint32_t i = 0; i < n; ++i) workers_.emplace_back([this] { worker_main(); });
  next_snapshot_ = Clock::now() + options_.snapshot_interval;
  log(LogLevel::info, "vknoded: serving {} device nodes on {} (state in {})", backends_.size(),
      socket_path_.native(), options_.state_dir.native());
  return {};
}

void Server::Impl::request_stop() {
  stop_requested_.store(true);
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof(one));
}

Result<void> Server::Impl::run() {
  auto last_activity = Clock::now() - spin_;
  while (!stop_requested_.load()) {
    // Poll without sleeping for a while after activity (see ServerOptions::spin).
    const bool spinning = Clock::now() - last_activity < spin_;
    if (loop_once(spinning ? 0 : 100, false) > 0) last_activity = Clock::now();
    maybe_schedule_snapshot();
  }
  finish_stop();
  return {};
}

}  // namespace vkn::server
