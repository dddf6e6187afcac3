#include "util/file_ops.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

namespace vkn {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

// Real POSIX calls, except for the faults a test switches on. Each fault field is an errno.
class FaultyFileOps : public PosixFileOps {
 public:
  int open_for_write_errno = 0;  // open() with O_WRONLY, O_RDWR or O_CREAT, as on a read-only fs
  int write_errno = 0;
  int fsync_file_errno = 0;
  int fsync_dir_errno = 0;
  int rename_errno = 0;
  int fail_call_number = -1;  // when >= 0, that call (counting from 0) of any kind fails with EIO
  int calls = 0;

  Result<FileHandle> open(const fs::path& path, int flags, mode_t mode) override {
    if (should_fail()) return fail(file_error(EIO, "open", path));
    if (open_for_write_errno != 0 && (flags & (O_WRONLY | O_RDWR | O_CREAT)) != 0) {
      return fail(file_error(open_for_write_errno, "open", path));
    }
    return PosixFileOps::open(path, flags, mode);
  }
  Result<void> write_all(FileHandle& file, std::span<const uint8_t> data) override {
    if (should_fail()) return fail(file_error(EIO, "write", file.path()));
    if (write_errno != 0) {
      // Like a disk filling up part way: half the data lands, then the error.
      (void)PosixFileOps::write_all(file, data.first(data.size() / 2));
      return fail(file_error(write_errno, "write", file.path()));
    }
    return PosixFileOps::write_all(file, data);
  }
  Result<void> fsync(FileHandle& file) override {
    if (should_fail()) return fail(file_error(EIO, "fsync", file.path()));
    struct stat st;
    const bool is_dir = ::fstat(file.fd(), &st) == 0 && S_ISDIR(st.st_mode);
    int err = is_dir ? fsync_dir_errno : fsync_file_errno;
    if (err != 0) return fail(file_error(err, "fsync", file.path()));
    return PosixFileOps::fsync(file);
  }
  Result<void> rename(const fs::path& from, const fs::path& to) override {
    if (should_fail()) return fail(file_error(EIO, "rename", from));
    if (rename_errno != 0) return fail(file_error(rename_errno, "rename", from));
    return PosixFileOps::rename(from, to);
  }

 private:
  bool should_fail() { return calls++ == fail_call_number; }
};

std::vector<uint8_t> bytes(std::string_view s) { return {s.begin(), s.end()}; }

class FileOpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "vknode-file-ops-XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr) << std::strerror(errno);
    dir_ = templ;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void write_plain(const fs::path& path, std::string_view content) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << content;
    ASSERT_TRUE(out.good());
  }
  std::string read_plain(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  std::vector<std::string> entries() {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    return names;
  }

  // Writes "new" over an "old" target through `ops`, which must fail: expects io_error naming
  // the directory and `reason`, the old content intact and no temp file left behind.
  void expect_failed_write_keeps_old(FaultyFileOps& ops, std::string_view reason) {
    write_plain(dir_ / "target", "old");
    auto r = write_file_atomically(ops, dir_ / "target", bytes(std::string(10'000, 'n')));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::io_error);
    EXPECT_NE(r.error().message.find(reason), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find(dir_.string()), std::string::npos) << r.error().message;
    EXPECT_EQ(read_plain(dir_ / "target"), "old");
    EXPECT_EQ(entries(), std::vector<std::string>{"target"});
  }

  fs::path dir_;
};

TEST_F(FileOpsTest, ReadFileReturnsWholeContent) {
  std::string content(100'000, 'x');
  content[12345] = 'y';
  write_plain(dir_ / "f", content);
  auto data = posix_file_ops().read_file(dir_ / "f", 1 << 20);
  ASSERT_TRUE(data) << data.error().to_string();
  EXPECT_EQ(std::string(data->begin(), data->end()), content);
}

TEST_F(FileOpsTest, ReadFileOfEmptyFileIsEmpty) {
  write_plain(dir_ / "empty", "");
  auto data = posix_file_ops().read_file(dir_ / "empty", 10);
  ASSERT_TRUE(data) << data.error().to_string();
  EXPECT_TRUE(data->empty());
}

TEST_F(FileOpsTest, ReadFileOfMissingFileIsNotFound) {
  auto data = posix_file_ops().read_file(dir_ / "absent", 10);
  ASSERT_FALSE(data);
  EXPECT_EQ(data.error().code, Errc::not_found);
  EXPECT_NE(data.error().message.find("absent"), std::string::npos);
}

TEST_F(FileOpsTest, ReadFileOverLimitIsInvalidArgument) {
  write_plain(dir_ / "f", "0123456789");
  auto at_limit = posix_file_ops().read_file(dir_ / "f", 10);
  ASSERT_TRUE(at_limit) << at_limit.error().to_string();
  EXPECT_EQ(at_limit->size(), 10u);
  auto over = posix_file_ops().read_file(dir_ / "f", 9);
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().code, Errc::invalid_argument);
}

TEST_F(FileOpsTest, ReadFileOfDirectoryIsIoError) {
  auto data = posix_file_ops().read_file(dir_, 10);
  ASSERT_FALSE(data);
  EXPECT_EQ(data.error().code, Errc::io_error);
}

TEST_F(FileOpsTest, CreateDirectoriesMakesNestedPathAndIsIdempotent) {
  const fs::path nested = dir_ / "a" / "b" / "c";
  ASSERT_TRUE(posix_file_ops().create_directories(nested));
  EXPECT_TRUE(fs::is_directory(nested));
  EXPECT_TRUE(posix_file_ops().create_directories(nested));
  EXPECT_TRUE(posix_file_ops().create_directories(dir_ / "a" / "b" / "c" / ""));
}

TEST_F(FileOpsTest, CreateDirectoriesThroughAFileIsIoError) {
  write_plain(dir_ / "file", "x");
  auto over_file = posix_file_ops().create_directories(dir_ / "file");
  ASSERT_FALSE(over_file);
  EXPECT_EQ(over_file.error().code, Errc::io_error);
  auto below_file = posix_file_ops().create_directories(dir_ / "file" / "sub");
  ASSERT_FALSE(below_file);
  EXPECT_EQ(below_file.error().code, Errc::io_error);
}

TEST_F(FileOpsTest, UnlinkRemovesFileAndReportsMissingAsNotFound) {
  write_plain(dir_ / "f", "x");
  ASSERT_TRUE(posix_file_ops().unlink(dir_ / "f"));
  EXPECT_FALSE(fs::exists(dir_ / "f"));
  auto again = posix_file_ops().unlink(dir_ / "f");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Errc::not_found);
}

TEST_F(FileOpsTest, FileErrorNamesOperationPathAndReason) {
  Error e = file_error(ENOSPC, "write", "/some/where");
  EXPECT_EQ(e.code, Errc::io_error);
  EXPECT_EQ(e.message, "write /some/where: No space left on device");
  EXPECT_EQ(file_error(ENOENT, "open", "/x").code, Errc::not_found);
}

TEST_F(FileOpsTest, FileHandleClosesOnDestructionAndMove) {
  int fd = -1;
  {
    auto opened = posix_file_ops().open(dir_ / "f", O_WRONLY | O_CREAT, 0644);
    ASSERT_TRUE(opened) << opened.error().to_string();
    fd = opened->fd();
    EXPECT_TRUE(opened->is_open());
    EXPECT_NE(::fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
    FileHandle moved = std::move(*opened);
    EXPECT_FALSE(opened->is_open());
    EXPECT_EQ(moved.fd(), fd);
    EXPECT_EQ(moved.path(), dir_ / "f");
  }
  errno = 0;
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1);
  EXPECT_EQ(errno, EBADF);
}

TEST_F(FileOpsTest, WriteAtomicallyCreatesFileWithoutLeftovers) {
  ASSERT_TRUE(write_file_atomically(posix_file_ops(), dir_ / "target", bytes("hello")));
  EXPECT_EQ(read_plain(dir_ / "target"), "hello");
  EXPECT_EQ(entries(), std::vector<std::string>{"target"});
  EXPECT_EQ(fs::status(dir_ / "target").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                fs::perms::others_read);
}

TEST_F(FileOpsTest, WriteAtomicallyReplacesExistingFile) {
  write_plain(dir_ / "target", "old content that is longer");
  ASSERT_TRUE(write_file_atomically(posix_file_ops(), dir_ / "target", bytes("new")));
  EXPECT_EQ(read_plain(dir_ / "target"), "new");
  EXPECT_EQ(entries(), std::vector<std::string>{"target"});
}

TEST_F(FileOpsTest, WriteAtomicallyWritesEmptyFile) {
  write_plain(dir_ / "target", "old");
  ASSERT_TRUE(write_file_atomically(posix_file_ops(), dir_ / "target", {}));
  EXPECT_EQ(read_plain(dir_ / "target"), "");
}

TEST_F(FileOpsTest, WriteAtomicallyOnFullDiskKeepsOldFile) {
  FaultyFileOps ops;
  ops.write_errno = ENOSPC;
  expect_failed_write_keeps_old(ops, "No space left on device");
}

TEST_F(FileOpsTest, WriteAtomicallyFsyncFailureKeepsOldFile) {
  FaultyFileOps ops;
  ops.fsync_file_errno = EIO;
  expect_failed_write_keeps_old(ops, "fsync");
}

TEST_F(FileOpsTest, WriteAtomicallyRenameFailureKeepsOldFile) {
  FaultyFileOps ops;
  ops.rename_errno = EXDEV;
  expect_failed_write_keeps_old(ops, "rename");
}

TEST_F(FileOpsTest, WriteAtomicallyInReadOnlyDirectoryIsIoError) {
  // Tests run as root, which chmod does not stop, so the read-only file system is simulated.
  FaultyFileOps ops;
  ops.open_for_write_errno = EROFS;
  expect_failed_write_keeps_old(ops, "Read-only file system");
}

TEST_F(FileOpsTest, WriteAtomicallyIntoMissingDirectoryIsIoError) {
  auto r = write_file_atomically(posix_file_ops(), dir_ / "missing" / "target", bytes("new"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::io_error);
  EXPECT_TRUE(entries().empty());
}

TEST_F(FileOpsTest, WriteAtomicallyDirectoryFsyncFailureLeavesNewFile) {
  write_plain(dir_ / "target", "old");
  FaultyFileOps ops;
  ops.fsync_dir_errno = EIO;
  auto r = write_file_atomically(ops, dir_ / "target", bytes("new"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::io_error);
  EXPECT_EQ(read_plain(dir_ / "target"), "new");  // renamed, just not known to be durable
  EXPECT_EQ(entries(), std::vector<std::string>{"target"});
}

TEST_F(FileOpsTest, WriteAtomicallyFailingEachCallInTurn) {
  // Fail the 1st, 2nd, ... file operation until a write gets through. Every failure must leave
  // the old content (or, once renamed, the new) and never a temp file.
  int failures = 0;
  for (int n = 0;; ++n) {
    write_plain(dir_ / "target", "old");
    FaultyFileOps ops;
    ops.fail_call_number = n;
    auto r = write_file_atomically(ops, dir_ / "target", bytes("new"));
    EXPECT_EQ(entries(), std::vector<std::string>{"target"}) << "call " << n;
    if (r) {
      EXPECT_EQ(read_plain(dir_ / "target"), "new");
      break;
    }
    ++failures;
    EXPECT_EQ(r.error().code, Errc::io_error) << r.error().to_string();
    const std::string content = read_plain(dir_ / "target");
    EXPECT_TRUE(content == "old" || content == "new") << "call " << n << ": " << content;
    ASSERT_LT(n, 100);
  }
  EXPECT_GE(failures, 5);  // open, write, fsync, rename, open dir, fsync dir (unlink is spare)
}

TEST_F(FileOpsTest, ConcurrentAtomicWritersUseDistinctTempFiles) {
  std::vector<std::thread> writers;
  for (int i = 0; i < 4; ++i) {
    writers.emplace_back([this, i] {
      for (int j = 0; j < 20; ++j) {
        auto r = write_file_atomically(posix_file_ops(), dir_ / "target",
                                       bytes(std::string(1000, static_cast<char>('a' + i))));
        EXPECT_TRUE(r) << r.error().to_string();
      }
    });
  }
  for (auto& w : writers) w.join();
  const std::string content = read_plain(dir_ / "target");
  ASSERT_EQ(content.size(), 1000u);
  EXPECT_EQ(content, std::string(1000, content[0]));
  EXPECT_EQ(entries(), std::vector<std::string>{"target"});
}

TEST_F(FileOpsTest, FileLockExcludesSecondHolderUntilDestroyed) {
  const fs::path lock_path = dir_ / "x.lock";
  {
    auto first = FileLock::acquire(posix_file_ops(), lock_path, milliseconds(0));
    ASSERT_TRUE(first) << first.error().to_string();
    EXPECT_EQ(first->path(), lock_path);
    const auto start = std::chrono::steady_clock::now();
    auto second = FileLock::acquire(posix_file_ops(), lock_path, milliseconds(50));
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error().code, Errc::timeout);
    EXPECT_NE(second.error().message.find(lock_path.string()), std::string::npos);
    EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(50));
  }
  auto after = FileLock::acquire(posix_file_ops(), lock_path, milliseconds(0));
  EXPECT_TRUE(after) << after.error().to_string();
  EXPECT_TRUE(fs::exists(lock_path));  // the lock file stays
}

TEST_F(FileOpsTest, FileLockMovesWithOwnership) {
  const fs::path lock_path = dir_ / "x.lock";
  auto first = FileLock::acquire(posix_file_ops(), lock_path, milliseconds(0));
  ASSERT_TRUE(first) << first.error().to_string();
  {
    FileLock moved = std::move(*first);
    auto second = FileLock::acquire(posix_file_ops(), lock_path, milliseconds(0));
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error().code, Errc::timeout);
  }
  // `moved` is gone and the moved-from `first` holds nothing.
  auto third = FileLock::acquire(posix_file_ops(), lock_path, milliseconds(0));
  EXPECT_TRUE(third) << third.error().to_string();
}

TEST_F(FileOpsTest, FileLockWaitsForHolderToRelease) {
  const fs::path lock_path = dir_ / "x.lock";
  auto first = FileLock::acquire(posix_file_ops(), lock_path, milliseconds(0));
  ASSERT_TRUE(first) << first.error().to_string();
  std::thread releaser([&first] {
    std::this_thread::sleep_for(milliseconds(50));
    FileLock dropped = std::move(*first);
  });
  auto second = FileLock::acquire(posix_file_ops(), lock_path, milliseconds(10'000));
  releaser.join();
  EXPECT_TRUE(second) << second.error().to_string();
}

TEST_F(FileOpsTest, FileLockExcludesAnotherProcess) {
  const fs::path lock_path = dir_ / "x.lock";
  int locked_pipe[2], release_pipe[2];
  ASSERT_EQ(::pipe(locked_pipe), 0);
  ASSERT_EQ(::pipe(release_pipe), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto lock = FileLock::acquire(posix_file_ops(), lock_path, milliseconds(5000));
    if (!lock) ::_exit(1);
    char c = 'L';
    if (::write(locked_pipe[1], &c, 1) != 1) ::_exit(2);
    (void)::read(release_pipe[0], &c, 1);  // returns when the parent writes or dies
    ::_exit(0);
  }
  ::close(locked_pipe[1]);
  ::close(release_pipe[0]);
  char c = 0;
  ASSERT_EQ(::read(locked_pipe[0], &c, 1), 1) << "child failed to take the lock";

  auto blocked = FileLock::acquire(posix_file_ops(), lock_path, milliseconds(50));
  ASSERT_FALSE(blocked);
  EXPECT_EQ(blocked.error().code, Errc::timeout);

  ASSERT_EQ(::write(release_pipe[1], &c, 1), 1);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ::close(locked_pipe[0]);
  ::close(release_pipe[1]);

  auto after = FileLock::acquire(posix_file_ops(), lock_path, milliseconds(1000));
  EXPECT_TRUE(after) << after.error().to_string();
}

TEST_F(FileOpsTest, FileLockOnReadOnlyFileSystemIsIoError) {
  FaultyFileOps ops;
  ops.open_for_write_errno = EROFS;
  auto lock = FileLock::acquire(ops, dir_ / "x.lock", milliseconds(0));
  ASSERT_FALSE(lock);
  EXPECT_EQ(lock.error().code, Errc::io_error);
}

TEST_F(FileOpsTest, FileLockInMissingDirectoryIsIoError) {
  auto lock = FileLock::acquire(posix_file_ops(), dir_ / "missing" / "x.lock", milliseconds(0));
  ASSERT_FALSE(lock);
  EXPECT_EQ(lock.error().code, Errc::io_error);
}

}  // namespace
}  // namespace vkn
