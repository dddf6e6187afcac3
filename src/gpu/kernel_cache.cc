#include "vknode/gpu/kernel_cache.h"

namespace vkn {

Result<std::shared_ptr<Kernel>> KernelCache::get_or_create(std::span<const uint32_t> spirv,
                                                           std::span<const SpecConstant> spec, std::string_view name) {
  const KernelId id = kernel_id(spirv, spec);
  if (auto found = find(id)) return found;
  // Built outside the lock: pipeline creation can take milliseconds.
  auto kernel = Kernel::create(device_, pipeline_cache_, spirv, spec, name);
  if (!kernel) return fail(kernel.error());
  std::lock_guard lock(mu_);
  auto [it, inserted] = kernels_.emplace(id, *kernel);
  if (inserted) generation_.fetch_add(1, std::memory_order_release);
  return it->second;
}

std::shared_ptr<Kernel> KernelCache::find(const KernelId& id) const {
  std::lock_guard lock(mu_);
  auto it = kernels_.find(id);
  return it == kernels_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<Kernel>> KernelCache::list() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<Kernel>> out;
  for (const auto& [id, k] : kernels_) out.push_back(k);
  return out;
}

size_t KernelCache::size() const {
  std::lock_guard lock(mu_);
  return kernels_.size();
}

bool KernelCache::erase(const KernelId& id) {
  std::lock_guard lock(mu_);
  if (kernels_.erase(id) == 0) return false;
  generation_.fetch_add(1, std::memory_order_release);
  return true;
}

void KernelCache::clear() {
  std::lock_guard lock(mu_);
  generation_.fetch_add(1, std::memory_order_release);
  kernels_.clear();
}

}  // namespace vkn
