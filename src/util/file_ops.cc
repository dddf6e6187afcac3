#include "util/file_ops.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <utility>

namespace vkn {
namespace {

// file_error, but always io_error: for calls where a missing path is a plain I/O failure.
Error io_failure(int err, std::string_view op, const std::filesystem::path& path) {
  Error e = file_error(err, op, path);
  e.code = Errc::io_error;
  return e;
}

// A name no other writer uses: pid, a per-process counter and the clock, plus O_EXCL on open.
std::filesystem::path temp_path_for(const std::filesystem::path& path) {
  static std::atomic<uint64_t> counter{0};
  const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  char suffix[64];
  std::snprintf(suffix, sizeof(suffix), ".tmp-%ld-%llu-%llx", static_cast<long>(::getpid()),
                static_cast<unsigned long long>(counter.fetch_add(1)),
                static_cast<unsigned long long>(now));
  return path.parent_path() / ("." + path.filename().string() + suffix);
}

}  // namespace

FileHandle::FileHandle(FileHandle&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {}

FileHandle& FileHandle::operator=(FileHandle&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
  }
  return *this;
}

void FileHandle::close() noexcept {
  if (fd_ >= 0) {
    // Not retried on EINTR: on Linux the descriptor is released even then.
    (void)::close(fd_);
    fd_ = -1;
  }
}

Error file_error(int err, std::string_view op, const std::filesystem::path& path) {
  char buf[256];
  const char* text = ::strerror_r(err, buf, sizeof(buf));  // GNU variant: returns the text
  std::string what(op);
  what += ' ';
  what += path.string();
  return Error::make(err == ENOENT ? Errc::not_found : Errc::io_error, what, text);
}

Result<std::vector<uint8_t>> PosixFileOps::read_file(const std::filesystem::path& path,
                                                     size_t max_bytes) {
  auto opened = open(path, O_RDONLY, 0);
  if (!opened) return std::unexpected(std::move(opened.error()));
  FileHandle file = std::move(*opened);

  auto too_large = [&] {
    return fail(Errc::invalid_argument,
                "file " + path.string() + " is larger than " + std::to_string(max_bytes), "bytes");
  };
  struct stat st;
  if (::fstat(file.fd(), &st) != 0) return fail(io_failure(errno, "stat", path));
  // st_size means nothing for directories, pipes and devices; read(2) decides for those.
  const size_t size_hint =
      S_ISREG(st.st_mode) && st.st_size > 0 ? static_cast<size_t>(st.st_size) : 0;
  if (size_hint > max_bytes) return too_large();

  // Read to EOF rather than trusting st_size (the file may change underneath, or be a pipe);
  // one spare byte lets a file of exactly the expected size finish in one pass.
  const size_t limit = max_bytes == SIZE_MAX ? SIZE_MAX : max_bytes + 1;
  std::vector<uint8_t> data(std::min(size_hint + 1, limit));
  size_t used = 0;
  for (;;) {
    if (used == data.size()) {
      if (used > max_bytes) return too_large();
      data.resize(std::min(limit, used + std::max<size_t>(used, 4096)));
    }
    ssize_t n = ::read(file.fd(), data.data() + used, data.size() - used);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(io_failure(errno, "read", path));
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  if (used > max_bytes) return too_large();
  data.resize(used);
  return data;
}

Result<FileHandle> PosixFileOps::open(const std::filesystem::path& path, int flags, mode_t mode) {
  for (;;) {
    int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
    if (fd >= 0) return FileHandle(fd, path);
    if (errno != EINTR) return fail(file_error(errno, "open", path));
  }
}

Result<void> PosixFileOps::write_all(FileHandle& file, std::span<const uint8_t> data) {
  while (!data.empty()) {
    ssize_t n = ::write(file.fd(), data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(io_failure(errno, "write", file.path()));
    }
    if (n == 0) return fail(io_failure(EIO, "write", file.path()));
    data = data.subspan(static_cast<size_t>(n));
  }
  return {};
}

Result<void> PosixFileOps::fsync(FileHandle& file) {
  while (::fsync(file.fd()) != 0) {
    if (errno != EINTR) return fail(io_failure(errno, "fsync", file.path()));
  }
  return {};
}

Result<void> PosixFileOps::rename(const std::filesystem::path& from,
                                  const std::filesystem::path& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    return fail(io_failure(errno, "rename " + from.string() + " to", to));
  }
  return {};
}

Result<void> PosixFileOps::unlink(const std::filesystem::path& path) {
  if (::unlink(path.c_str()) != 0) return fail(file_error(errno, "unlink", path));
  return {};
}

Result<void> PosixFileOps::create_directories(const std::filesystem::path& path) {
  std::filesystem::path prefix;
  for (const auto& part : path) {
    prefix /= part;
    if (part.empty() || ::mkdir(prefix.c_str(), 0755) == 0 || errno == EEXIST) continue;
    return fail(io_failure(errno, "mkdir", prefix));
  }
  // EEXIST also covers a non-directory in the way.
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return fail(io_failure(errno, "stat", path));
  if (!S_ISDIR(st.st_mode)) return fail(io_failure(ENOTDIR, "mkdir", path));
  return {};
}

Result<bool> PosixFileOps::try_lock(FileHandle& file) {
  for (;;) {
    if (::flock(file.fd(), LOCK_EX | LOCK_NB) == 0) return true;
    if (errno == EWOULDBLOCK) return false;
    if (errno != EINTR) return fail(io_failure(errno, "flock", file.path()));
  }
}

FileOps& posix_file_ops() {
  static PosixFileOps ops;
  return ops;
}

Result<void> write_file_atomically(FileOps& ops, const std::filesystem::path& path,
                                   std::span<const uint8_t> data) {
  auto as_io = [](Error e) {
    e.code = Errc::io_error;
    return std::unexpected(std::move(e));
  };
  const std::filesystem::path temp = temp_path_for(path);
  auto opened = ops.open(temp, O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (!opened) return as_io(std::move(opened.error()));
  FileHandle file = std::move(*opened);

  Result<void> written = ops.write_all(file, data);
  if (written) written = ops.fsync(file);
  file.close();
  if (written) written = ops.rename(temp, path);
  if (!written) {
    (void)ops.unlink(temp);  // best effort; the original error is the one to report
    return as_io(std::move(written.error()));
  }

  // Make the rename itself durable. Failing here leaves the new data in place.
  std::filesystem::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  auto dir_file = ops.open(dir, O_RDONLY | O_DIRECTORY, 0);
  if (!dir_file) return as_io(std::move(dir_file.error()));
  if (auto synced = ops.fsync(*dir_file); !synced) return as_io(std::move(synced.error()));
  return {};
}

Result<FileLock> FileLock::acquire(FileOps& ops, const std::filesystem::path& path,
                                   std::chrono::milliseconds timeout) {
  auto opened = ops.open(path, O_RDWR | O_CREAT, 0644);
  if (!opened) {
    Error e = std::move(opened.error());
    e.code = Errc::io_error;
    return fail(std::move(e));
  }
  FileHandle file = std::move(*opened);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto locked = ops.try_lock(file);
    if (!locked) return std::unexpected(std::move(locked.error()));
    if (*locked) return FileLock(std::move(file));
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      return fail(
          Errc::timeout,
          "lock still held by another holder after " + std::to_string(timeout.count()) + " ms",
          path.string());
    }
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
        std::chrono::milliseconds(10), deadline - now));
  }
}

}  // namespace vkn
