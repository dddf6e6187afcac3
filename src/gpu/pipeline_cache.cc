#include "vknode/gpu/pipeline_cache.h"

#include "util/strformat.h"
#include <vector>

#include "gpu/kernel_layout_codec.h"
#include "gpu/pipeline_cache_file.h"
#include "util/file_ops.h"
#include "util/log.h"
#include "vknode/gpu/builtin_kernels.h"
#include "vknode/gpu/device.h"

namespace vkn {
namespace {

constexpr std::chrono::milliseconds kLockTimeout{10'000};

PipelineCacheKey key_of(const Device& device) {
  const DeviceInfo& info = device.info();
  return {info.vendor_id, info.device_id, info.driver_version, info.pipeline_cache_uuid};
}

Result<VkPipelineCache> make_cache(VkDevice device, std::span<const uint8_t> initial) {
  VkPipelineCacheCreateInfo ci{VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
  ci.initialDataSize = initial.size();
  ci.pInitialData = initial.empty() ? nullptr : initial.data();
  VkPipelineCache cache = VK_NULL_HANDLE;
  const VkResult r = vkCreatePipelineCache(device, &ci, nullptr, &cache);
  if (r != VK_SUCCESS) return fail(Error::vulkan(r, "vkCreatePipelineCache"));
  return cache;
}

Result<std::vector<uint8_t>> cache_data(VkDevice device, VkPipelineCache cache) {
  size_t size = 0;
  VkResult r = vkGetPipelineCacheData(device, cache, &size, nullptr);
  if (r != VK_SUCCESS) return fail(Error::vulkan(r, "vkGetPipelineCacheData"));
  std::vector<uint8_t> data(size);
  r = vkGetPipelineCacheData(device, cache, &size, data.data());
  if (r != VK_SUCCESS && r != VK_INCOMPLETE) return fail(Error::vulkan(r, "vkGetPipelineCacheData"));
  data.resize(size);
  return data;
}

}  // namespace

Result<std::unique_ptr<PipelineCache>> PipelineCache::open(Device& device, const PipelineCacheOptions& options) {
  FileOps& ops = options.file_ops ? *options.file_ops : posix_file_ops();
  std::unique_ptr<PipelineCache> pc(new PipelineCache(device, ops));
  if (options.persistent) {
    std::filesystem::path dir = options.directory;
    if (dir.empty()) {
      auto d = default_pipeline_cache_dir();
      if (d) {
        dir = *d;
      } else {
        log(LogLevel::warn, "pipeline cache kept in memory only: {}", d.error().to_string());
      }
    }
    if (!dir.empty()) {
      pc->path_ = dir / pipeline_cache_file_name(key_of(device));
      pc->lock_path_ = pipeline_cache_lock_path(dir);
    }
  }
  if (pc->is_persistent()) pc->load_layouts();
  if (!pc->is_persistent() || !pc->load_from_disk()) {
    auto cache = make_cache(device.handle(), {});
    if (!cache) return fail(cache.error());
    pc->cache_ = OwnedPipelineCache(device.handle(), *cache);
  }
  if (options.warm_up_driver) pc->warm_up_driver();
  return pc;
}

void PipelineCache::warm_up_driver() {
  const VkDevice dev = device_.handle();
  const VkPipelineLayout layout = device_.shared_pipeline_layout();
  if (layout == VK_NULL_HANDLE || device_.is_lost()) return;
  const std::span<const uint32_t> spirv = builtin_spirv(BuiltinKernel::fill_u32);
  VkShaderModuleCreateInfo smci{VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
  smci.codeSize = spirv.size_bytes();
  smci.pCode = spirv.data();
  VkShaderModule module = VK_NULL_HANDLE;
  if (vkCreateShaderModule(dev, &smci, nullptr, &module) != VK_SUCCESS) return;
  const OwnedShaderModule owned_module(dev, module);
  VkComputePipelineCreateInfo cpci{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
  cpci.stage = {VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO};
  cpci.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
  cpci.stage.module = module;
  cpci.stage.pName = "main";
  cpci.layout = layout;
  VkPipeline pipeline = VK_NULL_HANDLE;
  // A failure here is harmless: the first real kernel pays the one-time cost instead.
  if (vkCreateComputePipelines(dev, cache_.get(), 1, &cpci, nullptr, &pipeline) == VK_SUCCESS) {
    const OwnedPipeline owned_pipeline(dev, pipeline);
  }
}

Result<void> PipelineCache::load_from_disk() {
  auto blob = load_pipeline_cache_file(ops_, path_, key_of(device_));
  if (!blob) {
    if (blob.error().code != Errc::not_found) {
      disk_stats_.load_warning = blob.error().to_string();
      log(LogLevel::warn, "ignoring pipeline cache {}: {}", path_.string(), disk_stats_.load_warning);
    }
    return fail(blob.error());
  }
  auto cache = make_cache(device_.handle(), *blob);
  if (!cache) {
    disk_stats_.load_warning = cache.error().to_string();
    log(LogLevel::warn, "the driver rejected pipeline cache {}: {}", path_.string(), disk_stats_.load_warning);
    return fail(cache.error());
  }
  cache_ = OwnedPipelineCache(device_.handle(), *cache);
  disk_stats_.loaded_bytes = blob->size();
  return {};
}

Result<void> PipelineCache::merge_from_disk() {
  auto blob = load_pipeline_cache_file(ops_, path_, key_of(device_));
  if (!blob) return {};  // nothing usable on disk: ours replaces it
  auto other = make_cache(device_.handle(), *blob);
  if (!other) return {};
  const VkResult r = vkMergePipelineCaches(device_.handle(), cache_.get(), 1, &*other);
  vkDestroyPipelineCache(device_.handle(), *other, nullptr);
  if (r != VK_SUCCESS) return fail(Error::vulkan(r, "vkMergePipelineCaches"));
  return {};
}

Result<void> PipelineCache::persist() {
  if (!is_persistent()) return {};
  if (device_.is_lost()) return fail(Errc::device_lost, "cannot read the pipeline cache of a lost device");
  std::lock_guard lock(mu_);
  if (auto r = ops_.create_directories(path_.parent_path()); !r) return r;
  auto file_lock = FileLock::acquire(ops_, lock_path_, kLockTimeout);
  if (!file_lock) return fail(file_lock.error());
  // Another process may have persisted pipelines we lack; keep theirs too.
  if (auto r = merge_from_disk(); !r) return r;
  const bool was_dirty = dirty_.exchange(false);
  auto data = cache_data(device_.handle(), cache_.get());
  if (!data) {
    dirty_.store(was_dirty);
    return fail(data.error());
  }
  if (auto r = store_pipeline_cache_file(ops_, path_, key_of(device_), *data); !r) {
    dirty_.store(was_dirty);
    return r;
  }
  disk_stats_.persisted_bytes = data->size();
  ++disk_stats_.persists;
  return persist_layouts();
}

std::filesystem::path PipelineCache::layouts_path() const {
  std::filesystem::path p = path_;
  p += ".layouts";
  return p;
}

void PipelineCache::load_layouts() {
  constexpr size_t kMaxLayoutFile = 64u << 20;
  auto bytes = ops_.read_file(layouts_path(), kMaxLayoutFile);
  if (!bytes) {
    if (bytes.error().code != Errc::not_found) {
      log(LogLevel::warn, "ignoring kernel layouts {}: {}", layouts_path().string(), bytes.error().to_string());
    }
    return;
  }
  auto layouts = decode_layout_file(*bytes);
  if (!layouts) {
    log(LogLevel::warn, "ignoring kernel layouts {}: {}", layouts_path().string(), layouts.error().to_string());
    return;
  }
  std::lock_guard lock(layouts_mu_);
  layouts_.merge(*layouts);
}

// Requires: the directory's file lock is held.
Result<void> PipelineCache::persist_layouts() {
  load_layouts();  // keep what other processes added
  std::vector<uint8_t> bytes;
  {
    std::lock_guard lock(layouts_mu_);
    if (layouts_.empty()) return {};
    bytes = encode_layout_file(layouts_);
  }
  return write_file_atomically(ops_, layouts_path(), bytes);
}

std::optional<KernelLayout> PipelineCache::find_layout(const KernelId& id) const {
  std::lock_guard lock(layouts_mu_);
  auto it = layouts_.find(id);
  if (it == layouts_.end()) return std::nullopt;
  return it->second;
}

void PipelineCache::remember_layout(const KernelId& id, const KernelLayout& layout) {
  std::lock_guard lock(layouts_mu_);
  if (layouts_.emplace(id, layout).second) dirty_.store(true);
}

void PipelineCache::record_creation(const VkPipelineCreationFeedback& feedback) {
  if (!(feedback.flags & VK_PIPELINE_CREATION_FEEDBACK_VALID_BIT)) {
    unknown_.fetch_add(1);
    dirty_.store(true);
  } else if (feedback.flags & VK_PIPELINE_CREATION_FEEDBACK_APPLICATION_PIPELINE_CACHE_HIT_BIT) {
    hits_.fetch_add(1);
  } else {
    misses_.fetch_add(1);
    dirty_.store(true);
  }
}

PipelineCacheStats PipelineCache::stats() const {
  PipelineCacheStats s;
  {
    std::lock_guard lock(mu_);
    s = disk_stats_;
  }
  s.hits = hits_.load();
  s.misses = misses_.load();
  s.unknown = unknown_.load();
  std::lock_guard lock(layouts_mu_);
  s.layouts = layouts_.size();
  return s;
}

uint64_t PipelineCache::size_bytes() const {
  size_t size = 0;
  if (vkGetPipelineCacheData(device_.handle(), cache_.get(), &size, nullptr) != VK_SUCCESS) return 0;
  return size;
}

}  // namespace vkn
