#include "gpu/pipeline_cache_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "util/sha256.h"

namespace vkn {
namespace {

namespace fs = std::filesystem;

// Real POSIX calls, except for the faults a test switches on. Each fault field is an errno.
class FaultyFileOps : public PosixFileOps {
 public:
  int read_errno = 0;
  int open_for_write_errno = 0;  // open() with O_WRONLY, O_RDWR or O_CREAT, as on a read-only fs
  int write_errno = 0;
  int fsync_errno = 0;
  int rename_errno = 0;

  Result<std::vector<uint8_t>> read_file(const fs::path& path, size_t max_bytes) override {
    if (read_errno != 0) return fail(file_error(read_errno, "read", path));
    return PosixFileOps::read_file(path, max_bytes);
  }
  Result<FileHandle> open(const fs::path& path, int flags, mode_t mode) override {
    if (open_for_write_errno != 0 && (flags & (O_WRONLY | O_RDWR | O_CREAT)) != 0) {
      return fail(file_error(open_for_write_errno, "open", path));
    }
    return PosixFileOps::open(path, flags, mode);
  }
  Result<void> write_all(FileHandle& file, std::span<const uint8_t> data) override {
    if (write_errno != 0) return fail(file_error(write_errno, "write", file.path()));
    return PosixFileOps::write_all(file, data);
  }
  Result<void> fsync(FileHandle& file) override {
    if (fsync_errno != 0) return fail(file_error(fsync_errno, "fsync", file.path()));
    return PosixFileOps::fsync(file);
  }
  Result<void> rename(const fs::path& from, const fs::path& to) override {
    if (rename_errno != 0) return fail(file_error(rename_errno, "rename", from));
    return PosixFileOps::rename(from, to);
  }
};

// Layout from docs/pipeline_cache_format.md, written out here independently of the encoder.
constexpr size_t kOffVersion = 8;
constexpr size_t kOffHeaderSize = 12;
constexpr size_t kOffVendor = 16;
constexpr size_t kOffDevice = 20;
constexpr size_t kOffDriver = 24;
constexpr size_t kOffUuid = 28;
constexpr size_t kOffPayloadSize = 44;
constexpr size_t kOffChecksum = 52;
constexpr size_t kHeaderSize = 84;

void put_le32(std::vector<uint8_t>& b, size_t off, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[off + i] = static_cast<uint8_t>(v >> (8 * i));
}
void put_le64(std::vector<uint8_t>& b, size_t off, uint64_t v) {
  put_le32(b, off, static_cast<uint32_t>(v));
  put_le32(b, off + 4, static_cast<uint32_t>(v >> 32));
}

PipelineCacheKey test_key() {
  PipelineCacheKey key;
  key.vendor_id = 0x10005;  // Mesa's vendor id, as lavapipe reports
  key.device_id = 0x0000abcd;
  key.driver_version = 0x05c00042;
  for (size_t i = 0; i < key.uuid.size(); ++i) key.uuid[i] = static_cast<uint8_t>(0xa0 + i);
  return key;
}

// A driver blob: VkPipelineCacheHeaderVersionOne for `key`, then `extra` bytes of "driver data".
std::vector<uint8_t> driver_blob(const PipelineCacheKey& key, size_t extra = 40) {
  std::vector<uint8_t> blob(32 + extra);
  put_le32(blob, 0, 32);
  put_le32(blob, 4, 1);  // VK_PIPELINE_CACHE_HEADER_VERSION_ONE
  put_le32(blob, 8, key.vendor_id);
  put_le32(blob, 12, key.device_id);
  std::copy(key.uuid.begin(), key.uuid.end(), blob.begin() + 16);
  for (size_t i = 0; i < extra; ++i) blob[32 + i] = static_cast<uint8_t>(i * 13 + 1);
  return blob;
}

// A whole cache file built by hand; `header_size` above 84 pads the header with zeros.
std::vector<uint8_t> encode_file(const PipelineCacheKey& key, const std::vector<uint8_t>& blob,
                                 uint32_t header_size = kHeaderSize) {
  std::vector<uint8_t> f(header_size + blob.size());
  std::memcpy(f.data(), "VKNPCACH", 8);
  put_le32(f, kOffVersion, 1);
  put_le32(f, kOffHeaderSize, header_size);
  put_le32(f, kOffVendor, key.vendor_id);
  put_le32(f, kOffDevice, key.device_id);
  put_le32(f, kOffDriver, key.driver_version);
  std::copy(key.uuid.begin(), key.uuid.end(), f.begin() + kOffUuid);
  put_le64(f, kOffPayloadSize, blob.size());
  const Sha256Digest digest = sha256(blob);
  std::copy(digest.begin(), digest.end(), f.begin() + kOffChecksum);
  std::copy(blob.begin(), blob.end(), f.begin() + header_size);
  return f;
}

// Sets or unsets an environment variable for one scope, then restores it.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

class PipelineCacheFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "vknode-pcfile-XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr) << std::strerror(errno);
    dir_ = templ;
    path_ = dir_ / pipeline_cache_file_name(key_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void write_raw(std::span<const uint8_t> bytes) {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    ASSERT_TRUE(out.good());
  }
  std::vector<uint8_t> read_raw() {
    std::ifstream in(path_, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  Result<std::vector<uint8_t>> load() {
    return load_pipeline_cache_file(posix_file_ops(), path_, key_);
  }

  // Loads `bytes` and expects invalid_argument with `reason` in the message.
  void expect_rejected(std::span<const uint8_t> bytes, std::string_view reason) {
    write_raw(bytes);
    auto r = load();
    ASSERT_FALSE(r) << "loaded " << bytes.size() << " bytes, expected: " << reason;
    EXPECT_EQ(r.error().code, Errc::invalid_argument) << r.error().to_string();
    EXPECT_NE(r.error().message.find(reason), std::string::npos) << r.error().message;
  }
  size_t entry_count() {
    return static_cast<size_t>(
        std::distance(fs::directory_iterator(dir_), fs::directory_iterator()));
  }

  const PipelineCacheKey key_ = test_key();
  fs::path dir_;
  fs::path path_;
};

TEST_F(PipelineCacheFileTest, FileNameEncodesKeyInHex) {
  EXPECT_EQ(pipeline_cache_file_name(key_),
            "pipeline-00010005-0000abcd-05c00042-a0a1a2a3a4a5a6a7a8a9aaabacadaeaf.vkpc");
  PipelineCacheKey other = key_;
  other.driver_version += 1;
  EXPECT_NE(pipeline_cache_file_name(other), pipeline_cache_file_name(key_));
  EXPECT_EQ(pipeline_cache_lock_path("/c/vknode"), fs::path("/c/vknode/pipeline.lock"));
}

TEST_F(PipelineCacheFileTest, RoundTrip) {
  const std::vector<uint8_t> blob = driver_blob(key_, 1000);
  ASSERT_TRUE(store_pipeline_cache_file(posix_file_ops(), path_, key_, blob));
  auto loaded = load();
  ASSERT_TRUE(loaded) << loaded.error().to_string();
  EXPECT_EQ(*loaded, blob);
  EXPECT_EQ(entry_count(), 1u);  // no temp file left
}

TEST_F(PipelineCacheFileTest, StoredBytesFollowDocumentedLayout) {
  const std::vector<uint8_t> blob = driver_blob(key_);
  ASSERT_TRUE(store_pipeline_cache_file(posix_file_ops(), path_, key_, blob));
  EXPECT_EQ(read_raw(), encode_file(key_, blob));
}

TEST_F(PipelineCacheFileTest, StoreReplacesOlderFile) {
  ASSERT_TRUE(store_pipeline_cache_file(posix_file_ops(), path_, key_, driver_blob(key_, 500)));
  const std::vector<uint8_t> newer = driver_blob(key_, 7);
  ASSERT_TRUE(store_pipeline_cache_file(posix_file_ops(), path_, key_, newer));
  auto loaded = load();
  ASSERT_TRUE(loaded) << loaded.error().to_string();
  EXPECT_EQ(*loaded, newer);
}

TEST_F(PipelineCacheFileTest, StoreUnderDirectoryLockInFreshCacheDir) {
  const fs::path cache_dir = dir_ / "home" / ".cache" / "vknode";
  ASSERT_TRUE(posix_file_ops().create_directories(cache_dir));
  auto lock = FileLock::acquire(posix_file_ops(), pipeline_cache_lock_path(cache_dir),
                                std::chrono::milliseconds(1000));
  ASSERT_TRUE(lock) << lock.error().to_string();
  const fs::path path = cache_dir / pipeline_cache_file_name(key_);
  const std::vector<uint8_t> blob = driver_blob(key_);
  ASSERT_TRUE(store_pipeline_cache_file(posix_file_ops(), path, key_, blob));
  auto loaded = load_pipeline_cache_file(posix_file_ops(), path, key_);
  ASSERT_TRUE(loaded) << loaded.error().to_string();
  EXPECT_EQ(*loaded, blob);
}

TEST_F(PipelineCacheFileTest, AbsentFileIsNotFound) {
  auto r = load();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::not_found);
}

TEST_F(PipelineCacheFileTest, ReadFailureIsIoError) {
  ASSERT_TRUE(store_pipeline_cache_file(posix_file_ops(), path_, key_, driver_blob(key_)));
  FaultyFileOps ops;
  ops.read_errno = EIO;
  auto r = load_pipeline_cache_file(ops, path_, key_);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::io_error);
  EXPECT_NE(r.error().message.find("Input/output error"), std::string::npos);
}

TEST_F(PipelineCacheFileTest, TruncatedAtEveryLengthIsRejected) {
  const std::vector<uint8_t> file = encode_file(key_, driver_blob(key_, 24));
  for (size_t len = 0; len < file.size(); ++len) {
    SCOPED_TRACE("length " + std::to_string(len));
    expect_rejected(std::span(file).first(len), "truncated");
  }
}

TEST_F(PipelineCacheFileTest, TrailingBytesAreRejected) {
  std::vector<uint8_t> file = encode_file(key_, driver_blob(key_));
  file.push_back(0);
  expect_rejected(file, "payload size disagrees with file length");
}

TEST_F(PipelineCacheFileTest, BadMagicIsRejected) {
  std::vector<uint8_t> file = encode_file(key_, driver_blob(key_));
  file[3] ^= 0x20;  // "VKNpCACH"
  expect_rejected(file, "bad magic");
  // A short file that is not a cache file at all is bad magic, not truncated.
  const std::vector<uint8_t> text = {'h', 'e', 'l', 'l', 'o'};
  expect_rejected(text, "bad magic");
}

TEST_F(PipelineCacheFileTest, WrongFormatVersionIsRejected) {
  for (uint32_t version : {0u, 2u, 0x01000000u}) {
    std::vector<uint8_t> file = encode_file(key_, driver_blob(key_));
    put_le32(file, kOffVersion, version);
    expect_rejected(file, "wrong format version");
  }
}

TEST_F(PipelineCacheFileTest, BadHeaderSizeIsRejected) {
  for (uint32_t header_size : {0u, 83u, 4097u, 0xffffffffu}) {
    std::vector<uint8_t> file = encode_file(key_, driver_blob(key_));
    put_le32(file, kOffHeaderSize, header_size);
    expect_rejected(file, "bad header size");
  }
}

TEST_F(PipelineCacheFileTest, LongerHeaderIsSkipped) {
  // A later writer may append header fields; the payload starts at header size.
  const std::vector<uint8_t> blob = driver_blob(key_);
  write_raw(encode_file(key_, blob, 120));
  auto loaded = load();
  ASSERT_TRUE(loaded) << loaded.error().to_string();
  EXPECT_EQ(*loaded, blob);
}

TEST_F(PipelineCacheFileTest, ForeignDeviceIsRejected) {
  // The file (and its driver blob) are self-consistent, but for another device or driver.
  std::vector<PipelineCacheKey> others(4, key_);
  others[0].vendor_id = 0x10de;
  others[1].device_id += 1;
  others[2].driver_version += 1;
  others[3].uuid[15] ^= 1;
  for (const PipelineCacheKey& other : others) {
    expect_rejected(encode_file(other, driver_blob(other)), "foreign device");
  }
}

TEST_F(PipelineCacheFileTest, PayloadBitFlipIsChecksumMismatch) {
  const std::vector<uint8_t> file = encode_file(key_, driver_blob(key_, 16));
  for (size_t i = kHeaderSize; i < file.size(); ++i) {
    SCOPED_TRACE("byte " + std::to_string(i));
    std::vector<uint8_t> flipped = file;
    flipped[i] ^= static_cast<uint8_t>(1u << (i % 8));
    expect_rejected(flipped, "checksum mismatch");
  }
  std::vector<uint8_t> bad_sum = file;
  bad_sum[kOffChecksum + 31] ^= 0x80;
  expect_rejected(bad_sum, "checksum mismatch");
}

TEST_F(PipelineCacheFileTest, PayloadTooLargeIsRejected) {
  std::vector<uint8_t> file = encode_file(key_, driver_blob(key_));
  put_le64(file, kOffPayloadSize, (uint64_t{1} << 30) + 1);
  expect_rejected(file, "payload too large");
  put_le64(file, kOffPayloadSize, ~uint64_t{0});
  expect_rejected(file, "payload too large");
}

TEST_F(PipelineCacheFileTest, DriverHeaderMismatchIsRejected) {
  // The outer header matches the key and the checksum is right; the driver's own header is not.
  struct Case {
    size_t offset;
    uint32_t value;
  };
  for (Case c :
       {Case{0, 31}, Case{0, 1000}, Case{4, 2}, Case{8, 0x8086}, Case{12, 1}, Case{16, 0}}) {
    SCOPED_TRACE("offset " + std::to_string(c.offset));
    std::vector<uint8_t> blob = driver_blob(key_);
    put_le32(blob, c.offset, c.value);
    expect_rejected(encode_file(key_, blob), "bad driver header");
  }
  expect_rejected(encode_file(key_, {1, 2, 3}), "bad driver header");
  expect_rejected(encode_file(key_, {}), "bad driver header");
}

TEST_F(PipelineCacheFileTest, ArbitraryBytesAreRejectedWithoutCrashing) {
  std::mt19937 rng(12345);
  const std::vector<uint8_t> valid = encode_file(key_, driver_blob(key_));
  for (int round = 0; round < 300; ++round) {
    std::vector<uint8_t> bytes;
    if (round % 2 == 0) {
      bytes.resize(rng() % 200);
      for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    } else {
      // A valid file with a few random bytes overwritten, so the checks past magic get hit.
      bytes = valid;
      for (int k = 0; k < 3; ++k) bytes[rng() % bytes.size()] = static_cast<uint8_t>(rng());
      if (bytes == valid) continue;
    }
    write_raw(bytes);
    auto r = load();
    ASSERT_FALSE(r) << "round " << round;
    EXPECT_EQ(r.error().code, Errc::invalid_argument) << r.error().to_string();
  }
}

TEST_F(PipelineCacheFileTest, CheckDriverBlobNamesTheMismatch) {
  EXPECT_TRUE(check_driver_blob(driver_blob(key_, 0), key_));
  struct Case {
    size_t offset;
    uint32_t value;
    const char* reason;
  };
  for (Case c :
       {Case{0, 16, "headerSize"}, Case{0, 73, "headerSize"}, Case{4, 2, "headerVersion"},
        Case{8, 0x1002, "vendorID"}, Case{12, 7, "deviceID"}, Case{20, 0, "pipelineCacheUUID"}}) {
    std::vector<uint8_t> blob = driver_blob(key_);
    put_le32(blob, c.offset, c.value);
    auto r = check_driver_blob(blob, key_);
    ASSERT_FALSE(r) << c.reason;
    EXPECT_EQ(r.error().code, Errc::invalid_argument);
    EXPECT_NE(r.error().message.find(c.reason), std::string::npos) << r.error().message;
  }
  const std::vector<uint8_t> blob = driver_blob(key_);
  auto short_blob = check_driver_blob(std::span(blob).first(31), key_);
  ASSERT_FALSE(short_blob);
  EXPECT_EQ(short_blob.error().code, Errc::invalid_argument);
}

TEST_F(PipelineCacheFileTest, StoreRejectsBlobForAnotherDevice) {
  PipelineCacheKey other = key_;
  other.device_id = 0x1234;
  auto r = store_pipeline_cache_file(posix_file_ops(), path_, key_, driver_blob(other));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  EXPECT_NE(r.error().message.find("deviceID"), std::string::npos);
  EXPECT_EQ(entry_count(), 0u);
}

TEST_F(PipelineCacheFileTest, FailedStoreKeepsPreviousFile) {
  const std::vector<uint8_t> old_blob = driver_blob(key_, 100);
  const std::vector<uint8_t> new_blob = driver_blob(key_, 200);
  struct Fault {
    const char* name;
    int FaultyFileOps::*field;
    int err;
    const char* reason;
  };
  for (Fault f :
       {Fault{"ENOSPC on write", &FaultyFileOps::write_errno, ENOSPC, "No space left on device"},
        Fault{"fsync", &FaultyFileOps::fsync_errno, EIO, "fsync"},
        Fault{"rename", &FaultyFileOps::rename_errno, EIO, "rename"},
        Fault{"read-only", &FaultyFileOps::open_for_write_errno, EROFS, "Read-only file system"}}) {
    SCOPED_TRACE(f.name);
    ASSERT_TRUE(store_pipeline_cache_file(posix_file_ops(), path_, key_, old_blob));
    FaultyFileOps ops;
    ops.*f.field = f.err;
    auto r = store_pipeline_cache_file(ops, path_, key_, new_blob);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::io_error);
    EXPECT_NE(r.error().message.find(f.reason), std::string::npos) << r.error().message;
    auto loaded = load();
    ASSERT_TRUE(loaded) << loaded.error().to_string();
    EXPECT_EQ(*loaded, old_blob);
    EXPECT_EQ(entry_count(), 1u);  // no temp file left behind
  }
}

TEST_F(PipelineCacheFileTest, StoreInReadOnlyDirectoryIsIoError) {
  // Tests run as root, which chmod does not stop, so EROFS comes through the fault seam.
  FaultyFileOps ops;
  ops.open_for_write_errno = EROFS;
  auto r = store_pipeline_cache_file(ops, path_, key_, driver_blob(key_));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::io_error);
  EXPECT_EQ(entry_count(), 0u);
  auto loaded = load();
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().code, Errc::not_found);
}

TEST_F(PipelineCacheFileTest, DefaultDirPrefersVknodeCacheDirThenXdgThenHome) {
  ScopedEnv vknode("VKNODE_CACHE_DIR", "/v/cache");
  ScopedEnv xdg("XDG_CACHE_HOME", "/x/cache");
  ScopedEnv home("HOME", "/h/user");
  auto dir = default_pipeline_cache_dir();
  ASSERT_TRUE(dir) << dir.error().to_string();
  EXPECT_EQ(*dir, fs::path("/v/cache"));
  {
    ScopedEnv no_vknode("VKNODE_CACHE_DIR", nullptr);
    dir = default_pipeline_cache_dir();
    ASSERT_TRUE(dir) << dir.error().to_string();
    EXPECT_EQ(*dir, fs::path("/x/cache/vknode"));
    {
      ScopedEnv no_xdg("XDG_CACHE_HOME", nullptr);
      dir = default_pipeline_cache_dir();
      ASSERT_TRUE(dir) << dir.error().to_string();
      EXPECT_EQ(*dir, fs::path("/h/user/.cache/vknode"));
      {
        ScopedEnv no_home("HOME", nullptr);
        dir = default_pipeline_cache_dir();
        ASSERT_FALSE(dir);
        EXPECT_EQ(dir.error().code, Errc::not_found);
      }
    }
  }
  // Restored on the way out.
  dir = default_pipeline_cache_dir();
  ASSERT_TRUE(dir) << dir.error().to_string();
  EXPECT_EQ(*dir, fs::path("/v/cache"));
}

TEST_F(PipelineCacheFileTest, DefaultDirIgnoresEmptyAndRelativeValues) {
  ScopedEnv vknode("VKNODE_CACHE_DIR", "");
  ScopedEnv xdg("XDG_CACHE_HOME", "relative/cache");
  ScopedEnv home("HOME", "/h/user");
  auto dir = default_pipeline_cache_dir();
  ASSERT_TRUE(dir) << dir.error().to_string();
  EXPECT_EQ(*dir, fs::path("/h/user/.cache/vknode"));
  ScopedEnv empty_home("HOME", "");
  dir = default_pipeline_cache_dir();
  ASSERT_FALSE(dir);
  EXPECT_EQ(dir.error().code, Errc::not_found);
}

}  // namespace
}  // namespace vkn
