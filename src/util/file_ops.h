// FileOps: the file-system calls vknode makes for the state it persists (pipeline cache files,
// buffer snapshots), behind a virtual interface so that tests can inject the faults a real file
// system will not produce on demand (ENOSPC, EROFS, a failing fsync or rename), as LevelDB does
// with its Env. posix_file_ops() returns the real implementation; it is stateless and
// thread-safe. Fakes usually derive from PosixFileOps and override the one call they break.
//
// Built on it: write_file_atomically() (temp file + fsync + rename + directory fsync) and
// FileLock (an exclusive flock with a deadline).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "vknode/error.h"

namespace vkn {

// Owns one open file descriptor and the path it was opened with (for error messages).
// Move-only; closes the descriptor when destroyed. Thread-compatible.
class FileHandle {
 public:
  FileHandle() = default;
  // Adopts `fd`, which must be open (or -1 for an empty handle).
  FileHandle(int fd, std::filesystem::path path) noexcept : fd_(fd), path_(std::move(path)) {}
  FileHandle(FileHandle&& other) noexcept;
  FileHandle& operator=(FileHandle&& other) noexcept;
  FileHandle(const FileHandle&) = delete;
  FileHandle& operator=(const FileHandle&) = delete;
  ~FileHandle() { close(); }

  bool is_open() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  const std::filesystem::path& path() const { return path_; }

  // Closes the descriptor now, ignoring close(2)'s result: data that must survive is fsynced
  // first, so a close error carries no news. No-op when not open.
  void close() noexcept;

 private:
  int fd_ = -1;
  std::filesystem::path path_;
};

// The error for a failed system call: "<op> <path>: <strerror(err)>", with code not_found for
// ENOENT and io_error for anything else. Fakes use it to fail the way the real calls do.
Error file_error(int err, std::string_view op, const std::filesystem::path& path);

// Every call retries EINTR. Failures carry the path and strerror (see file_error).
class FileOps {
 public:
  virtual ~FileOps() = default;

  // The whole content of the file at `path`. not_found if it does not exist; invalid_argument
  // if it holds more than `max_bytes`; io_error for any other failure.
  [[nodiscard]] virtual Result<std::vector<uint8_t>> read_file(const std::filesystem::path& path,
                                                               size_t max_bytes) = 0;

  // open(2) with `flags` | O_CLOEXEC and `mode`. not_found for ENOENT, else io_error.
  [[nodiscard]] virtual Result<FileHandle> open(const std::filesystem::path& path, int flags,
                                                mode_t mode) = 0;

  // Writes all of `data` at the file's offset, continuing after short writes. io_error.
  [[nodiscard]] virtual Result<void> write_all(FileHandle& file, std::span<const uint8_t> data) = 0;

  // fsync(2): the file's data and metadata (or a directory's entries) reach the disk. io_error.
  [[nodiscard]] virtual Result<void> fsync(FileHandle& file) = 0;

  // rename(2): atomically replaces `to` by `from`. Requires: both in one file system. io_error.
  [[nodiscard]] virtual Result<void> rename(const std::filesystem::path& from,
                                            const std::filesystem::path& to) = 0;

  // unlink(2). not_found if absent, else io_error.
  [[nodiscard]] virtual Result<void> unlink(const std::filesystem::path& path) = 0;

  // mkdir -p with mode 0755; succeeds if the directory already exists. io_error.
  [[nodiscard]] virtual Result<void> create_directories(const std::filesystem::path& path) = 0;

  // flock(LOCK_EX | LOCK_NB): true once this open file description holds the exclusive lock,
  // false if another one holds it. The lock lasts until the descriptor is closed. io_error.
  [[nodiscard]] virtual Result<bool> try_lock(FileHandle& file) = 0;
};

// The real thing: direct POSIX calls.
class PosixFileOps : public FileOps {
 public:
  Result<std::vector<uint8_t>> read_file(const std::filesystem::path& path,
                                         size_t max_bytes) override;
  Result<FileHandle> open(const std::filesystem::path& path, int flags, mode_t mode) override;
  Result<void> write_all(FileHandle& file, std::span<const uint8_t> data) override;
  Result<void> fsync(FileHandle& file) override;
  Result<void> rename(const std::filesystem::path& from, const std::filesystem::path& to) override;
  Result<void> unlink(const std::filesystem::path& path) override;
  Result<void> create_directories(const std::filesystem::path& path) override;
  Result<bool> try_lock(FileHandle& file) override;
};

// The process-wide PosixFileOps.
FileOps& posix_file_ops();

// Replaces the file at `path` with `data` so that after a crash the path holds either the old
// content or the new, never a mix: writes a uniquely named temp file in the same directory,
// fsyncs it, renames it over `path`, then fsyncs the directory. On failure before the rename
// the temp file is removed and the old file is untouched; if only the final directory fsync
// fails, `path` already holds the new data but it may not be durable. The file gets mode 0644.
// Errors: io_error with the path and strerror.
// Requires: the parent directory exists; concurrent writers of `path` serialize (e.g. FileLock).
[[nodiscard]] Result<void> write_file_atomically(FileOps& ops, const std::filesystem::path& path,
                                                 std::span<const uint8_t> data);

// An exclusive flock(2) on a lock file, held until the FileLock is destroyed. flock locks
// belong to an open file description, so two FileLocks on the same file exclude each other
// whether they are in one process or two. The lock file is created (mode 0644) and never
// removed: removing it would let two holders lock different inodes of the same name.
// Move-only; thread-compatible.
class FileLock {
 public:
  // Opens (creating if needed) `path` and takes the lock, polling until `timeout` has passed;
  // a zero timeout tries once. timeout if another holder keeps it; io_error if the file cannot
  // be opened or locked. Requires: the parent directory exists.
  [[nodiscard]] static Result<FileLock> acquire(FileOps& ops, const std::filesystem::path& path,
                                                std::chrono::milliseconds timeout);

  FileLock(FileLock&&) noexcept = default;
  FileLock& operator=(FileLock&&) noexcept = default;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock() = default;  // closing the descriptor releases the lock

  const std::filesystem::path& path() const { return file_.path(); }

 private:
  explicit FileLock(FileHandle file) : file_(std::move(file)) {}

  FileHandle file_;
};

}  // namespace vkn
