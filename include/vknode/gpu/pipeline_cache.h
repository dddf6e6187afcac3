// PipelineCache: the device's VkPipelineCache, loaded once from disk and persisted
// back (see docs/pipeline_cache_format.md). Owns its VkPipelineCache.
// Thread-safety: the handle may be used by several pipeline creations at once
// (Vulkan synchronizes pipeline caches internally); persist() and the counters
// are thread-safe.
#pragma once

#include <vulkan/vulkan.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <mutex>
#include <string>

#include "vknode/error.h"
#include "vknode/gpu/kernel.h"
#include "vknode/gpu/kernel_layout.h"
#include "vknode/gpu/vk_handle.h"

namespace vkn {

class Device;
class FileOps;

struct PipelineCacheOptions {
  // Directory of the cache file. Empty: $VKNODE_CACHE_DIR, $XDG_CACHE_HOME/vknode, ~/.cache/vknode.
  std::filesystem::path directory;
  // false: an in-memory cache only; nothing is read from or written to disk.
  bool persistent = true;
  // File-system seam for fault-injection tests; nullptr means the real POSIX calls.
  FileOps* file_ops = nullptr;
  // Create (and drop) one small built-in pipeline through the cache at open: drivers do
  // one-time work on a process's first pipeline (60-90 us on NVIDIA's, measured), which
  // a node's first kernel would otherwise pay.
  bool warm_up_driver = true;
};

struct PipelineCacheStats {
  uint64_t hits = 0;     // pipelines the driver reported as found in the cache
  uint64_t misses = 0;   // pipelines the driver compiled
  uint64_t unknown = 0;  // creations without creation feedback from the driver
  uint64_t loaded_bytes = 0;    // driver data loaded from disk at open
  uint64_t persisted_bytes = 0; // driver data written by the last persist
  uint64_t persists = 0;
  uint64_t layouts = 0;         // kernel layouts known (skipping SPIR-V intake on reuse)
  std::string load_warning;     // why the file on disk was ignored, if it was
};

class PipelineCache {
 public:
  // Opens the cache. A missing, truncated, corrupt or foreign file is not an error:
  // it is logged as a warning and the cache starts empty. Errors: vulkan_error.
  [[nodiscard]] static Result<std::unique_ptr<PipelineCache>> open(Device& device,
                                                                  const PipelineCacheOptions& options = {});
  PipelineCache(const PipelineCache&) = delete;
  PipelineCache& operator=(const PipelineCache&) = delete;

  VkPipelineCache handle() const { return cache_.get(); }
  // The cache file ("" when not persistent).
  const std::filesystem::path& path() const { return path_; }
  bool is_persistent() const { return !path_.empty(); }

  // Writes the cache to disk under the directory's file lock, first merging what
  // other processes persisted meanwhile. Errors: io_error (disk full, read-only,
  // ...: the old file stays intact), timeout (lock not acquired), vulkan_error.
  [[nodiscard]] Result<void> persist();
  // Whether pipelines were created since the last persist.
  bool is_dirty() const { return dirty_.load(); }

  // The validated, reflected layout of SPIR-V seen before (by any process sharing the
  // cache directory), so a new process need not validate and reflect it again. The
  // side file is checksummed; see docs/pipeline_cache_format.md.
  std::optional<KernelLayout> find_layout(const KernelId& id) const;
  void remember_layout(const KernelId& id, const KernelLayout& layout);

  // Called by Kernel after each pipeline creation.
  void record_creation(const VkPipelineCreationFeedback& feedback);
  PipelineCacheStats stats() const;
  // Pipelines created through the cache so far (hits + misses + unknown), without a lock.
  uint64_t creations() const {
    return hits_.load(std::memory_order_relaxed) + misses_.load(std::memory_order_relaxed) +
           unknown_.load(std::memory_order_relaxed);
  }
  // Bytes of driver data the cache holds now.
  uint64_t size_bytes() const;

 private:
  PipelineCache(Device& device, FileOps& ops) : device_(device), ops_(ops) {}
  Result<void> load_from_disk();
  void warm_up_driver();
  Result<void> merge_from_disk();
  void load_layouts();
  Result<void> persist_layouts();
  std::filesystem::path layouts_path() const;

  Device& device_;
  FileOps& ops_;
  OwnedPipelineCache cache_;
  std::filesystem::path path_;
  std::filesystem::path lock_path_;
  std::atomic<bool> dirty_{false};
  std::atomic<uint64_t> hits_{0}, misses_{0}, unknown_{0};
  mutable std::mutex mu_;
  PipelineCacheStats disk_stats_;  // guarded by mu_ (loaded/persisted bytes, persists, warning)
  mutable std::mutex layouts_mu_;
  std::map<KernelId, KernelLayout> layouts_;  // guarded by layouts_mu_
};

}  // namespace vkn
