#include "server/listener.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "protocol/socket_path.h"
#include "util/log.h"
#include "util/strformat.h"

namespace vkn::server {
namespace {

Error sys_error(std::string_view what, const std::filesystem::path& p, int err) {
  return Error::make(Errc::io_error, vkn::format("{} {}", what, p.native()), std::strerror(err));
}

// Removes a socket nobody answers on; refuses a live daemon or a non-socket path.
Result<void> clear_path(const std::filesystem::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};
    return fail(sys_error("lstat", path, errno));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return fail(Errc::already_exists, "the socket path exists and is not a socket", path.native());
  }
  if (auto live = protocol::connect_unix(path, std::chrono::milliseconds(500)); live) {
    return fail(Errc::already_exists, "a daemon already serves this socket", path.native());
  }
  log(LogLevel::info, "vknoded: removing stale socket {}", path.native());
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return fail(sys_error("unlink", path, errno));
  return {};
}

Result<protocol::UniqueFd> bind_at(const std::filesystem::path& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.native().size() >= sizeof(addr.sun_path)) {
    return fail(Errc::invalid_argument, "socket path too long", path.native());
  }
  std::memcpy(addr.sun_path, path.c_str(), path.native().size());
  protocol::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.is_open()) return fail(sys_error("socket for", path, errno));
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    return fail(sys_error("bind", path, errno));
  }
  return fd;
}

}  // namespace

Result<Listener> Listener::open(const ListenerOptions& options) {
  const std::filesystem::path& path = options.path;
  if (auto r = posix_file_ops().create_directories(path.parent_path()); !r) return fail(r.error());
  auto lock =
      FileLock::acquire(posix_file_ops(), path.native() + ".lock", std::chrono::milliseconds(0));
  if (!lock) {
    if (lock.error().code == Errc::timeout) {
      return fail(Errc::already_exists, "another daemon holds the socket's lock",
                  path.native() + ".lock");
    }
    return fail(lock.error());
  }
  if (auto r = clear_path(path); !r) return fail(r.error());

  // Bind under a temporary name, set mode and group, then rename into place, so the
  // socket is never reachable with looser permissions. Fall back to binding in place
  // when the temporary name would be too long.
  std::filesystem::path tmp = path.native() + vkn::format(".{}.tmp", ::getpid());
  if (tmp.native().size() >= sizeof(sockaddr_un{}.sun_path)) tmp = path;
  ::unlink(tmp.c_str());
  auto fd = bind_at(tmp);
  if (!fd) return fail(fd.error());
  auto undo = [&] { ::unlink(tmp.c_str()); };
  if (::chmod(tmp.c_str(), options.mode) != 0) {
    const int err = errno;
    undo();
    return fail(sys_error("chmod", tmp, err));
  }
  if (options.group && ::chown(tmp.c_str(), static_cast<uid_t>(-1), *options.group) != 0) {
    const int err = errno;
    undo();
    return fail(sys_error(vkn::format("chown to group {}", *options.group), tmp, err));
  }
  if (::listen(fd->get(), options.backlog) != 0) {
    const int err = errno;
    undo();
    return fail(sys_error("listen", tmp, err));
  }
  if (tmp != path && ::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    undo();
    return fail(sys_error("rename into place", path, err));
  }
  return Listener(std::move(*fd), std::move(*lock), path);
}

Result<Listener> Listener::adopt(int fd) {
  sockaddr_un addr{};
  socklen_t len = sizeof(addr);
  int type = 0, listening = 0;
  socklen_t ilen = sizeof(int);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
      addr.sun_family != AF_UNIX || addr.sun_path[0] == '\0' ||
      ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &ilen) != 0 || type != SOCK_STREAM ||
      ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ilen) != 0 || !listening) {
    return fail(Errc::invalid_argument,
                "the inherited descriptor is not a listening Unix stream socket");
  }
  std::filesystem::path path(
      std::string(addr.sun_path, strnlen(addr.sun_path, sizeof(addr.sun_path))));
  auto lock =
      FileLock::acquire(posix_file_ops(), path.native() + ".lock", std::chrono::milliseconds(0));
  if (!lock) {
    if (lock.error().code == Errc::timeout) {
      return fail(Errc::already_exists, "another daemon holds the socket's lock",
                  path.native() + ".lock");
    }
    return fail(lock.error());
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  return Listener(protocol::UniqueFd(fd), std::move(*lock), path, false);
}

void Listener::close() {
  if (!fd_.is_open()) return;
  fd_.reset();
  if (owns_path_) ::unlink(path_.c_str());
  lock_.reset();
}

}  // namespace vkn::server
