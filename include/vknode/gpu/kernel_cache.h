// KernelCache: kernels of one device, keyed by content hash (KernelId), so the same
// SPIR-V with the same specialization builds its pipeline once per process.
// Owns shared references to its kernels. Thread-safe.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>
#include <vector>

#include "vknode/error.h"
#include "vknode/gpu/kernel.h"

namespace vkn {

class KernelCache {
 public:
  // `cache` may be nullptr; both must outlive this object.
  KernelCache(Device& device, PipelineCache* cache) : device_(device), pipeline_cache_(cache) {}

  // The kernel for this SPIR-V and specialization, built on first use.
  // Errors: those of Kernel::create.
  [[nodiscard]] Result<std::shared_ptr<Kernel>> get_or_create(std::span<const uint32_t> spirv,
                                                              std::span<const SpecConstant> spec = {},
                                                              std::string_view name = {});
  // nullptr when no kernel with that id was built.
  std::shared_ptr<Kernel> find(const KernelId& id) const;
  std::vector<std::shared_ptr<Kernel>> list() const;
  size_t size() const;
  // Removes one kernel; false when absent. Batches already recorded keep it alive only
  // if the caller holds its own reference.
  bool erase(const KernelId& id);
  void clear();
  // Moves with every kernel added or removed: a holder of raw pointers from find() may keep
  // them while it has not moved (the cache holds a reference to each).
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

 private:
  Device& device_;
  PipelineCache* pipeline_cache_;
  mutable std::mutex mu_;
  std::map<KernelId, std::shared_ptr<Kernel>> kernels_;  // guarded by mu_
  std::atomic<uint64_t> generation_{0};                   // written under mu_
};

}  // namespace vkn
