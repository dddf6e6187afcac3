// The on-disk pipeline cache file: a small header naming the format and the device, then the
// driver's blob from vkGetPipelineCacheData. See docs/pipeline_cache_format.md for the layout
// and the write protocol. Pure file I/O through FileOps; needs no Vulkan device.
// All functions are thread-safe; writers of one directory serialize with a FileLock on
// pipeline_cache_lock_path(dir).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "util/file_ops.h"
#include "vknode/error.h"

namespace vkn {

// Which device and driver a pipeline cache belongs to; a blob is only reused on an exact match.
struct PipelineCacheKey {
  uint32_t vendor_id = 0;
  uint32_t device_id = 0;
  uint32_t driver_version = 0;
  std::array<uint8_t, 16> uuid{};  // VkPhysicalDeviceProperties::pipelineCacheUUID
};

inline constexpr size_t kPipelineCacheFileHeaderSize = 84;  // format version 1
inline constexpr uint32_t kPipelineCacheFileVersion = 1;
inline constexpr size_t kPipelineCacheMaxHeaderSize = 4096;  // sanity bound on header size
inline constexpr uint64_t kPipelineCacheMaxPayload = uint64_t{1} << 30;  // 1 GiB

// The directory for pipeline cache files: $VKNODE_CACHE_DIR, else $XDG_CACHE_HOME/vknode, else
// $HOME/.cache/vknode. Empty variables count as unset, and so does a relative XDG_CACHE_HOME
// (as the XDG base directory spec says). not_found if none applies. Does not create it.
[[nodiscard]] Result<std::filesystem::path> default_pipeline_cache_dir();

// "pipeline-<vendor>-<device>-<driver>-<uuid>.vkpc": the ids as 8 lowercase hex digits, the
// uuid as 32. One file per device and driver, so devices sharing a directory don't collide.
std::string pipeline_cache_file_name(const PipelineCacheKey& key);

// "<dir>/pipeline.lock": the lock file writers of `dir` hold (FileLock) while storing.
std::filesystem::path pipeline_cache_lock_path(const std::filesystem::path& dir);

// Checks the VkPipelineCacheHeaderVersionOne at the start of a driver blob: headerSize is at
// least 32 and within the blob, headerVersion is VK_PIPELINE_CACHE_HEADER_VERSION_ONE, and
// vendorID, deviceID and pipelineCacheUUID match `key`. invalid_argument naming the mismatch.
[[nodiscard]] Result<void> check_driver_blob(std::span<const uint8_t> blob,
                                             const PipelineCacheKey& key);

// The driver blob stored in the file at `path`, if the file is present, intact and written for
// `key`. not_found if there is no file; io_error if it cannot be read; invalid_argument for any
// bad content, with a message saying which: truncated, bad magic, wrong format version, bad
// header size, foreign device, payload too large, payload size disagrees with file length,
// checksum mismatch, bad driver header. Safe on arbitrary bytes.
[[nodiscard]] Result<std::vector<uint8_t>> load_pipeline_cache_file(
    FileOps& ops, const std::filesystem::path& path, const PipelineCacheKey& key);

// Writes header + `blob` to `path` with write_file_atomically. invalid_argument (and nothing
// written) if `blob` fails check_driver_blob or exceeds kPipelineCacheMaxPayload; io_error if
// the write fails, leaving any previous file intact.
// Requires: the directory exists and the caller holds its FileLock.
[[nodiscard]] Result<void> store_pipeline_cache_file(FileOps& ops,
                                                     const std::filesystem::path& path,
                                                     const PipelineCacheKey& key,
                                                     std::span<const uint8_t> blob);

}  // namespace vkn
