// Durable-buffer snapshots: the file a daemon writes at SIGTERM (and periodically)
// so that a restarted daemon brings its durable buffers back. Format in
// docs/daemon.md ("Snapshot file format"): a 64-byte header with magic, version,
// entry count, payload size and the payload's SHA-256, then the entries. Written with
// write_file_atomically; the reader checks everything and reports a damaged file as
// an error, never crashing. Stateless functions; thread-safe.
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>
#include <vector>

#include "server/backend.h"
#include "util/file_ops.h"

namespace vkn::server {

inline constexpr size_t kSnapshotHeaderSize = 64;
inline constexpr uint32_t kSnapshotVersion = 1;
inline constexpr uint64_t kMaxSnapshotBytes = 64ull << 30;
inline constexpr const char* kSnapshotFileName = "buffers.snapshot";

std::vector<std::byte> encode_snapshot(const std::vector<DurableImage>& images);
// Errors: invalid_argument naming what is wrong (magic, version, sizes, checksum, entries).
[[nodiscard]] Result<std::vector<DurableImage>> decode_snapshot(std::span<const std::byte> file);

// Errors: io_error.
[[nodiscard]] Result<void> write_snapshot(FileOps& ops, const std::filesystem::path& path,
                                          const std::vector<DurableImage>& images);
// Errors: not_found when there is no snapshot; invalid_argument when it is damaged; io_error.
[[nodiscard]] Result<std::vector<DurableImage>> read_snapshot(FileOps& ops,
                                                              const std::filesystem::path& path);

}  // namespace vkn::server
