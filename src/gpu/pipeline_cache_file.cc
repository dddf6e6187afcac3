#include "gpu/pipeline_cache_file.h"

#include <vulkan/vulkan.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "util/sha256.h"

namespace vkn {
namespace {

constexpr std::array<uint8_t, 8> kMagic = {'V', 'K', 'N', 'P', 'C', 'A', 'C', 'H'};

// Field offsets of the version 1 header (docs/pipeline_cache_format.md).
constexpr size_t kOffVersion = 8;
constexpr size_t kOffHeaderSize = 12;
constexpr size_t kOffVendor = 16;
constexpr size_t kOffDevice = 20;
constexpr size_t kOffDriver = 24;
constexpr size_t kOffUuid = 28;
constexpr size_t kOffPayloadSize = 44;
constexpr size_t kOffChecksum = 52;
static_assert(kOffChecksum + kSha256Size == kPipelineCacheFileHeaderSize);

// The driver header is little-endian whatever the host (Vulkan spec,
// VkPipelineCacheHeaderVersionOne), so it is decoded by offset rather than by memcpy.
static_assert(sizeof(VkPipelineCacheHeaderVersionOne) == 32);
static_assert(VK_UUID_SIZE == 16);

uint32_t load_le32(const uint8_t* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
}

uint64_t load_le64(const uint8_t* p) {
  return uint64_t{load_le32(p)} | (uint64_t{load_le32(p + 4)} << 32);
}

void store_le32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

void store_le64(uint8_t* p, uint64_t v) {
  store_le32(p, static_cast<uint32_t>(v));
  store_le32(p + 4, static_cast<uint32_t>(v >> 32));
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%08x", v);
  return buf;
}

std::string describe(uint32_t vendor, uint32_t device, uint32_t driver,
                     std::span<const uint8_t> uuid) {
  return "vendor " + hex32(vendor) + " device " + hex32(device) + " driver " + hex32(driver) +
         " uuid " + to_hex(uuid);
}

// Non-empty value of an environment variable, or empty.
std::string_view env(const char* name) {
  const char* value = std::getenv(name);
  return value ? std::string_view(value) : std::string_view();
}

}  // namespace

Result<std::filesystem::path> default_pipeline_cache_dir() {
  if (auto dir = env("VKNODE_CACHE_DIR"); !dir.empty()) return std::filesystem::path(dir);
  if (auto xdg = env("XDG_CACHE_HOME"); !xdg.empty() && xdg.front() == '/') {
    return std::filesystem::path(xdg) / "vknode";
  }
  if (auto home = env("HOME"); !home.empty()) {
    return std::filesystem::path(home) / ".cache" / "vknode";
  }
  return fail(Errc::not_found, "pipeline cache directory",
              "none of VKNODE_CACHE_DIR, XDG_CACHE_HOME, HOME is set");
}

std::string pipeline_cache_file_name(const PipelineCacheKey& key) {
  return "pipeline-" + hex32(key.vendor_id) + "-" + hex32(key.device_id) + "-" +
         hex32(key.driver_version) + "-" + to_hex(key.uuid) + ".vkpc";
}

std::filesystem::path pipeline_cache_lock_path(const std::filesystem::path& dir) {
  return dir / "pipeline.lock";
}

Result<void> check_driver_blob(std::span<const uint8_t> blob, const PipelineCacheKey& key) {
  using Header = VkPipelineCacheHeaderVersionOne;
  if (blob.size() < sizeof(Header)) {
    return fail(Errc::invalid_argument, "driver blob shorter than its header",
                std::to_string(blob.size()) + " bytes");
  }
  const uint8_t* p = blob.data();
  const uint32_t header_size = load_le32(p + offsetof(Header, headerSize));
  if (header_size < sizeof(Header) || header_size > blob.size()) {
    return fail(Errc::invalid_argument, "driver blob headerSize out of range",
                std::to_string(header_size));
  }
  const uint32_t version = load_le32(p + offsetof(Header, headerVersion));
  if (version != VK_PIPELINE_CACHE_HEADER_VERSION_ONE) {
    return fail(Errc::invalid_argument, "driver blob headerVersion is not ONE",
                std::to_string(version));
  }
  const uint32_t vendor = load_le32(p + offsetof(Header, vendorID));
  if (vendor != key.vendor_id) {
    return fail(Errc::invalid_argument, "driver blob vendorID mismatch",
                hex32(vendor) + " != " + hex32(key.vendor_id));
  }
  const uint32_t device = load_le32(p + offsetof(Header, deviceID));
  if (device != key.device_id) {
    return fail(Errc::invalid_argument, "driver blob deviceID mismatch",
                hex32(device) + " != " + hex32(key.device_id));
  }
  std::span<const uint8_t> uuid(p + offsetof(Header, pipelineCacheUUID), VK_UUID_SIZE);
  if (!std::equal(uuid.begin(), uuid.end(), key.uuid.begin())) {
    return fail(Errc::invalid_argument, "driver blob pipelineCacheUUID mismatch",
                to_hex(uuid) + " != " + to_hex(key.uuid));
  }
  return {};
}

Result<std::vector<uint8_t>> load_pipeline_cache_file(FileOps& ops,
                                                      const std::filesystem::path& path,
                                                      const PipelineCacheKey& key) {
  auto bad = [&](std::string_view what, std::string_view which = {}) {
    return fail(Errc::invalid_argument,
                "pipeline cache file " + path.string() + ": " + std::string(what), which);
  };
  auto read = ops.read_file(path, kPipelineCacheMaxHeaderSize + kPipelineCacheMaxPayload);
  if (!read) {
    if (read.error().code == Errc::invalid_argument) return bad("payload too large");
    return std::unexpected(std::move(read.error()));
  }
  const std::vector<uint8_t>& file = *read;
  const uint8_t* p = file.data();

  // Magic first, on whatever prefix exists, so that a short foreign file reads as "bad magic".
  const size_t magic_len = std::min(file.size(), kMagic.size());
  if (!std::equal(p, p + magic_len, kMagic.begin())) return bad("bad magic");
  if (file.size() < kPipelineCacheFileHeaderSize) {
    return bad("truncated header", std::to_string(file.size()) + " bytes");
  }
  const uint32_t version = load_le32(p + kOffVersion);
  if (version != kPipelineCacheFileVersion) {
    return bad("wrong format version", std::to_string(version));
  }
  const uint32_t header_size = load_le32(p + kOffHeaderSize);
  if (header_size < kPipelineCacheFileHeaderSize || header_size > kPipelineCacheMaxHeaderSize) {
    return bad("bad header size", std::to_string(header_size));
  }
  if (header_size > file.size()) {
    return bad("truncated header", std::to_string(file.size()) + " bytes");
  }

  const uint32_t vendor = load_le32(p + kOffVendor);
  const uint32_t device = load_le32(p + kOffDevice);
  const uint32_t driver = load_le32(p + kOffDriver);
  std::span<const uint8_t> uuid(p + kOffUuid, key.uuid.size());
  if (vendor != key.vendor_id || device != key.device_id || driver != key.driver_version ||
      !std::equal(uuid.begin(), uuid.end(), key.uuid.begin())) {
    return bad("foreign device",
               describe(vendor, device, driver, uuid) + ", expected " +
                   describe(key.vendor_id, key.device_id, key.driver_version, key.uuid));
  }

  const uint64_t payload_size = load_le64(p + kOffPayloadSize);
  const uint64_t available = file.size() - header_size;
  if (payload_size > kPipelineCacheMaxPayload) {
    return bad("payload too large", std::to_string(payload_size));
  }
  if (payload_size > available) {
    return bad("truncated payload",
               std::to_string(available) + " of " + std::to_string(payload_size) + " bytes");
  }
  if (payload_size < available) {
    return bad("payload size disagrees with file length",
               std::to_string(payload_size) + " + header " + std::to_string(header_size) +
                   " != " + std::to_string(file.size()));
  }

  std::span<const uint8_t> payload(p + header_size, payload_size);
  const Sha256Digest digest = sha256(payload);
  if (!std::equal(digest.begin(), digest.end(), p + kOffChecksum)) {
    return bad("checksum mismatch");
  }
  if (auto ok = check_driver_blob(payload, key); !ok) {
    return bad("bad driver header", ok.error().message);
  }
  return std::vector<uint8_t>(payload.begin(), payload.end());
}

Result<void> store_pipeline_cache_file(FileOps& ops, const std::filesystem::path& path,
                                       const PipelineCacheKey& key, std::span<const uint8_t> blob) {
  if (blob.size() > kPipelineCacheMaxPayload) {
    return fail(Errc::invalid_argument, "pipeline cache blob too large",
                std::to_string(blob.size()) + " bytes");
  }
  if (auto ok = check_driver_blob(blob, key); !ok) return std::unexpected(std::move(ok.error()));

  std::vector<uint8_t> file(kPipelineCacheFileHeaderSize + blob.size());
  uint8_t* p = file.data();
  std::copy(kMagic.begin(), kMagic.end(), p);
  store_le32(p + kOffVersion, kPipelineCacheFileVersion);
  store_le32(p + kOffHeaderSize, static_cast<uint32_t>(kPipelineCacheFileHeaderSize));
  store_le32(p + kOffVendor, key.vendor_id);
  store_le32(p + kOffDevice, key.device_id);
  store_le32(p + kOffDriver, key.driver_version);
  std::copy(key.uuid.begin(), key.uuid.end(), p + kOffUuid);
  store_le64(p + kOffPayloadSize, blob.size());
  const Sha256Digest digest = sha256(blob);
  std::copy(digest.begin(), digest.end(), p + kOffChecksum);
  std::copy(blob.begin(), blob.end(), p + kPipelineCacheFileHeaderSize);
  return write_file_atomically(ops, path, file);
}

}  // namespace vkn
