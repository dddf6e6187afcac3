// Listener: the daemon's listening Unix socket and the lock that makes it the only
// daemon on that path. open() takes an exclusive flock on "<socket>.lock", refuses
// if a daemon answers on the socket, removes a stale socket, and binds under a
// temporary name that gets its mode and group before it is renamed into place.
// Destroying it (or close()) stops listening and removes the socket. Move-only;
// thread-compatible.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>

#include "protocol/unique_fd.h"
#include "util/file_ops.h"
#include "vknode/error.h"

namespace vkn::server {

struct ListenerOptions {
  std::filesystem::path path;
  mode_t mode = 0660;
  std::optional<gid_t> group;  // chown the socket to this group
  int backlog = 128;
};

class Listener {
 public:
  // Errors: already_exists when another daemon holds the lock or answers on the
  // socket, or the path is not a socket; invalid_argument; io_error.
  [[nodiscard]] static Result<Listener> open(const ListenerOptions& options);
  // Takes over a listening socket handed over by systemd (socket activation): takes
  // the lock, never removes the socket (systemd owns it). Errors: invalid_argument
  // when `fd` is not a listening Unix stream socket with a path; already_exists.
  [[nodiscard]] static Result<Listener> adopt(int fd);

  Listener(Listener&&) noexcept = default;
  Listener& operator=(Listener&&) noexcept = default;
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  ~Listener() { close(); }

  int fd() const { return fd_.get(); }
  const std::filesystem::path& path() const { return path_; }
  // Stops listening and removes the socket; the lock goes with the object.
  void close();

 private:
  Listener(protocol::UniqueFd fd, FileLock lock, std::filesystem::path path, bool owns_path = true)
      : fd_(std::move(fd)), lock_(std::move(lock)), path_(std::move(path)), owns_path_(owns_path) {}

  protocol::UniqueFd fd_;
  std::optional<FileLock> lock_;
  std::filesystem::path path_;
  bool owns_path_ = true;
};

}  // namespace vkn::server
