#include "protocol/socket_path.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "util/strformat.h"

namespace vkn::protocol {
namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

Result<std::filesystem::path> check_length(std::filesystem::path p) {
  if (p.native().size() >= sizeof(sockaddr_un{}.sun_path)) {
    return fail(Errc::invalid_argument, "socket path too long for a Unix socket", p.native());
  }
  return p;
}

Result<std::filesystem::path> runtime_dir_path() {
  const std::string xdg = env("XDG_RUNTIME_DIR");
  if (xdg.empty()) {
    return fail(Errc::not_found, "no daemon socket path",
                "set VKNODE_SOCKET or XDG_RUNTIME_DIR, or run the daemon as root");
  }
  return check_length(std::filesystem::path(xdg) / "vknode.sock");
}

}  // namespace

Result<std::filesystem::path> server_socket_path(std::string_view explicit_path) {
  if (!explicit_path.empty()) return check_length(std::filesystem::path(explicit_path));
  if (auto v = env("VKNODE_SOCKET"); !v.empty()) return check_length(v);
  if (::geteuid() == 0) return std::filesystem::path(kSystemSocketPath);
  return runtime_dir_path();
}

Result<std::filesystem::path> client_socket_path(std::string_view explicit_path) {
  if (!explicit_path.empty()) return check_length(std::filesystem::path(explicit_path));
  if (auto v = env("VKNODE_SOCKET"); !v.empty()) return check_length(v);
  std::error_code ec;
  if (::geteuid() == 0 || std::filesystem::exists(kSystemSocketPath, ec)) {
    return std::filesystem::path(kSystemSocketPath);
  }
  return runtime_dir_path();
}

Result<UniqueFd> connect_unix(const std::filesystem::path& path,
                              std::chrono::milliseconds timeout) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.native().size() >= sizeof(addr.sun_path)) {
    return fail(Errc::invalid_argument, "socket path too long", path.native());
  }
  std::memcpy(addr.sun_path, path.c_str(), path.native().size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.is_open()) return fail(Errc::io_error, "socket", std::strerror(errno));
  // A full accept backlog answers EAGAIN at once: retry until the timeout.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int rc;
  for (;;) {
    rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
    if (rc == 0 || errno == EINTR) {
      if (rc == 0) break;
      continue;
    }
    if (errno != EAGAIN || std::chrono::steady_clock::now() >= deadline) break;
    ::usleep(1000);
  }
  if (rc != 0) {
    const int err = errno;
    if (err == EACCES || err == EPERM) {
      return fail(Errc::permission_denied, vkn::format("cannot connect to {}", path.native()),
                  std::strerror(err));
    }
    return fail(Errc::node_dead, vkn::format("no daemon answers at {}", path.native()),
                std::strerror(err));
  }
  const int flags = ::fcntl(fd.get(), F_GETFL);
  ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
  return fd;
}

}  // namespace vkn::protocol
