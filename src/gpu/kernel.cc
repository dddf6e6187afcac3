#include "vknode/gpu/kernel.h"

#include <chrono>
#include <cstring>
#include "util/strformat.h"
#include <vector>

#include "gpu/spirv_intake.h"
#include "util/sha256.h"
#include "vknode/gpu/buffer.h"
#include "vknode/gpu/device.h"
#include "vknode/gpu/pipeline_cache.h"

namespace vkn {

KernelId kernel_id(std::span<const uint32_t> spirv, std::span<const SpecConstant> spec) {
  Sha256 h;
  h.update(std::span(reinterpret_cast<const uint8_t*>(spirv.data()), spirv.size_bytes()));
  for (const SpecConstant& c : spec) {
    const uint32_t pair[2] = {c.id, c.value};
    h.update(std::span(reinterpret_cast<const uint8_t*>(pair), sizeof(pair)));
  }
  return h.finish();
}

std::string to_hex(const KernelId& id) { return vkn::to_hex(std::span<const uint8_t>(id)); }

Result<KernelId> kernel_id_from_hex(std::string_view hex) {
  if (hex.size() != 64) return fail(Errc::invalid_argument, "a kernel id is 64 hex digits", hex);
  KernelId id{};
  for (size_t i = 0; i < 32; ++i) {
    unsigned v = 0;
    for (size_t k = 0; k < 2; ++k) {
      const char c = hex[2 * i + k];
      unsigned d = 0;
      if (c >= '0' && c <= '9') d = c - '0';
      else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
      else return fail(Errc::invalid_argument, "a kernel id is 64 hex digits", hex);
      v = v * 16 + d;
    }
    id[i] = static_cast<uint8_t>(v);
  }
  return id;
}

Result<std::shared_ptr<Kernel>> Kernel::create(Device& device, PipelineCache* cache, std::span<const uint32_t> spirv,
                                               std::span<const SpecConstant> spec, std::string_view name) {
  if (device.is_lost()) return fail(Errc::device_lost, "cannot create a kernel on a lost device");
  std::shared_ptr<Kernel> k(new Kernel(device));
  k->id_ = kernel_id(spirv, spec);
  k->name_ = name.empty() ? to_hex(k->id_).substr(0, 12) : std::string(name);
  if (auto r = k->build(cache, spirv, spec); !r) {
    Error e = r.error();
    e.message = vkn::format("kernel '{}': {}", k->name_, e.message);
    return fail(std::move(e));
  }
  return k;
}

namespace {
double us_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

Result<void> Kernel::build(PipelineCache* cache, std::span<const uint32_t> spirv, std::span<const SpecConstant> spec) {
  const auto t_intake = std::chrono::steady_clock::now();
  // SPIR-V with this content hash was validated and reflected before (maybe by another
  // process sharing the cache directory): reuse that result.
  std::optional<KernelLayout> known = cache ? cache->find_layout(id_) : std::nullopt;
  if (known) {
    layout_ = std::move(*known);
  } else {
    auto layout = inspect_spirv(spirv, spec);
    if (!layout) return fail(layout.error());
    layout_ = std::move(*layout);
  }
  times_.intake_us = us_since(t_intake);
  const DeviceInfo& info = device_.info();
  uint64_t invocations = 1;
  for (int i = 0; i < 3; ++i) {
    if (layout_.local_size[i] > info.max_workgroup_size[i]) {
      return fail(Errc::invalid_argument, vkn::format("workgroup size {} in dimension {} exceeds the device limit {}",
                                                      layout_.local_size[i], i, info.max_workgroup_size[i]));
    }
    invocations *= layout_.local_size[i];
  }
  if (invocations > info.max_workgroup_invocations) {
    return fail(Errc::invalid_argument, vkn::format("workgroup of {} invocations exceeds the device limit {}",
                                                    invocations, info.max_workgroup_invocations));
  }
  if (layout_.push_constant_bytes > info.max_push_constants_size) {
    return fail(Errc::invalid_argument, vkn::format("push constants of {} bytes exceed the device limit {}",
                                                    layout_.push_constant_bytes, info.max_push_constants_size));
  }
  const auto t_layout = std::chrono::steady_clock::now();
  if (auto r = create_layouts(); !r) return r;
  times_.layout_us = us_since(t_layout);
  const auto t_pipeline = std::chrono::steady_clock::now();
  VkPipelineCreationFeedback feedback{};
  if (auto r = create_pipeline(cache, spirv, spec, feedback); !r) return r;
  times_.pipeline_us = us_since(t_pipeline);
  cache_hit_ = (feedback.flags & VK_PIPELINE_CREATION_FEEDBACK_VALID_BIT) &&
               (feedback.flags & VK_PIPELINE_CREATION_FEEDBACK_APPLICATION_PIPELINE_CACHE_HIT_BIT);
  if (cache != nullptr) {
    cache->record_creation(feedback);
    if (!known) cache->remember_layout(id_, layout_);
  }
  return {};
}

Result<void> Kernel::create_layouts() {
  const VkDevice dev = device_.handle();
  bool fits_shared = device_.shared_pipeline_layout() != VK_NULL_HANDLE;
  for (const BindingInfo& b : layout_.bindings) fits_shared &= b.binding < Device::kSharedLayoutBindings;
  if (fits_shared) return {};
  std::vector<VkDescriptorSetLayoutBinding> bindings;
  for (const BindingInfo& b : layout_.bindings) {
    bindings.push_back({b.binding, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, VK_SHADER_STAGE_COMPUTE_BIT, nullptr});
  }
  VkDescriptorSetLayoutCreateInfo dslci{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
  dslci.flags = VK_DESCRIPTOR_SET_LAYOUT_CREATE_PUSH_DESCRIPTOR_BIT_KHR;
  dslci.bindingCount = static_cast<uint32_t>(bindings.size());
  dslci.pBindings = bindings.data();
  VkDescriptorSetLayout set_layout = VK_NULL_HANDLE;
  VkResult r = vkCreateDescriptorSetLayout(dev, &dslci, nullptr, &set_layout);
  if (r != VK_SUCCESS) return fail(Error::vulkan(r, "vkCreateDescriptorSetLayout"));
  set_layout_ = OwnedDescriptorSetLayout(dev, set_layout);

  VkPushConstantRange push{VK_SHADER_STAGE_COMPUTE_BIT, 0, layout_.push_constant_bytes};
  VkPipelineLayoutCreateInfo plci{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
  plci.setLayoutCount = 1;
  plci.pSetLayouts = &set_layout;
  plci.pushConstantRangeCount = layout_.push_constant_bytes > 0 ? 1 : 0;
  plci.pPushConstantRanges = &push;
  VkPipelineLayout pipeline_layout = VK_NULL_HANDLE;
  r = vkCreatePipelineLayout(dev, &plci, nullptr, &pipeline_layout);
  if (r != VK_SUCCESS) return fail(Error::vulkan(r, "vkCreatePipelineLayout"));
  pipeline_layout_ = OwnedPipelineLayout(dev, pipeline_layout);
  return {};
}

VkPipelineLayout Kernel::pipeline_layout() const {
  return pipeline_layout_ ? pipeline_layout_.get() : device_.shared_pipeline_layout();
}

Result<void> Kernel::create_pipeline(PipelineCache* cache, std::span<const uint32_t> spirv,
                                     std::span<const SpecConstant> spec, VkPipelineCreationFeedback& feedback) {
  const VkDevice dev = device_.handle();
  std::vector<VkSpecializationMapEntry> entries;
  std::vector<uint32_t> values;
  for (size_t i = 0; i < spec.size(); ++i) {
    entries.push_back({spec[i].id, static_cast<uint32_t>(i * 4), 4});
    values.push_back(spec[i].value);
  }
  const VkSpecializationInfo spec_info{static_cast<uint32_t>(entries.size()), entries.data(), values.size() * 4,
                                       values.data()};
  VkPipelineCreationFeedbackCreateInfo feedback_ci{VK_STRUCTURE_TYPE_PIPELINE_CREATION_FEEDBACK_CREATE_INFO};
  feedback_ci.pPipelineCreationFeedback = &feedback;
  VkComputePipelineCreateInfo cpci{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
  if (device_.info().has_creation_feedback) cpci.pNext = &feedback_ci;
  cpci.stage = {VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO};
  cpci.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
  cpci.stage.pName = layout_.entry_point.c_str();
  cpci.stage.pSpecializationInfo = entries.empty() ? nullptr : &spec_info;
  cpci.layout = pipeline_layout();
  const VkPipelineCache vk_cache = cache ? cache->handle() : VK_NULL_HANDLE;
  VkShaderModuleCreateInfo smci{VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
  smci.codeSize = spirv.size_bytes();
  smci.pCode = spirv.data();
  VkPipeline pipeline = VK_NULL_HANDLE;

  // With a cache, first try by shader-module identifier: on a hit the driver neither
  // parses nor compiles the SPIR-V (creating a module alone costs milliseconds on some
  // drivers). A miss answers VK_PIPELINE_COMPILE_REQUIRED and we build normally.
  if (vk_cache != VK_NULL_HANDLE && device_.module_identifier_fn() != nullptr) {
    VkShaderModuleIdentifierEXT ident{VK_STRUCTURE_TYPE_SHADER_MODULE_IDENTIFIER_EXT};
    device_.module_identifier_fn()(dev, &smci, &ident);
    VkPipelineShaderStageModuleIdentifierCreateInfoEXT by_id{
        VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_MODULE_IDENTIFIER_CREATE_INFO_EXT};
    by_id.identifierSize = ident.identifierSize;
    by_id.pIdentifier = ident.identifier;
    VkComputePipelineCreateInfo try_ci = cpci;
    try_ci.flags |= VK_PIPELINE_CREATE_FAIL_ON_PIPELINE_COMPILE_REQUIRED_BIT;
    try_ci.stage.pNext = &by_id;
    const VkResult r = vkCreateComputePipelines(dev, vk_cache, 1, &try_ci, nullptr, &pipeline);
    if (r == VK_SUCCESS && pipeline != VK_NULL_HANDLE) {
      pipeline_ = OwnedPipeline(dev, pipeline);
      return {};
    }
    if (r != VK_PIPELINE_COMPILE_REQUIRED && r != VK_SUCCESS) {
      return fail(Error::vulkan(r, "vkCreateComputePipelines (by module identifier)"));
    }
    feedback = {};
  }
  VkShaderModule module = VK_NULL_HANDLE;
  VkResult r = vkCreateShaderModule(dev, &smci, nullptr, &module);
  if (r != VK_SUCCESS) return fail(Error::vulkan(r, "vkCreateShaderModule"));
  module_ = OwnedShaderModule(dev, module);
  cpci.stage.module = module;
  r = vkCreateComputePipelines(dev, vk_cache, 1, &cpci, nullptr, &pipeline);
  if (r != VK_SUCCESS) return fail(Error::vulkan(r, "vkCreateComputePipelines"));
  pipeline_ = OwnedPipeline(dev, pipeline);
  return {};
}

Result<void> Kernel::check_dispatch(std::span<const BufferBinding> bindings, std::span<const std::byte> push,
                                    GroupCount groups) const {
  auto bad = [&](std::string what) { return fail(Errc::invalid_argument, vkn::format("kernel '{}': {}", name_, what)); };
  if (push.size() != layout_.push_constant_bytes) {
    return bad(vkn::format("push data is {} bytes, the kernel declares {}", push.size(), layout_.push_constant_bytes));
  }
  if (bindings.size() != layout_.bindings.size()) {
    return bad(vkn::format("{} buffers bound, the kernel declares {}", bindings.size(), layout_.bindings.size()));
  }
  const DeviceInfo& info = device_.info();
  for (size_t i = 0; i < bindings.size(); ++i) {
    const BufferBinding& b = bindings[i];
    bool declared = false;
    for (const BindingInfo& d : layout_.bindings) declared |= d.binding == b.binding;
    if (!declared) return bad(vkn::format("binding {} is not declared by the kernel", b.binding));
    for (size_t j = 0; j < i; ++j) {
      if (bindings[j].binding == b.binding) return bad(vkn::format("binding {} is given twice", b.binding));
    }
    if (b.buffer == nullptr || b.buffer->handle() == VK_NULL_HANDLE) {
      return bad(vkn::format("binding {} has no buffer", b.binding));
    }
    const uint64_t range = b.range == VK_WHOLE_SIZE ? b.buffer->size() - std::min(b.offset, b.buffer->size()) : b.range;
    if (auto r = b.buffer->check_range(b.offset, range); !r || range == 0) {
      return bad(vkn::format("binding {}: range [{}, +{}) is empty or outside the buffer of {} bytes", b.binding,
                             b.offset, range, b.buffer->size()));
    }
    if (b.offset % info.min_storage_buffer_offset_alignment != 0) {
      return bad(vkn::format("binding {}: offset {} is not a multiple of {}", b.binding, b.offset,
                             info.min_storage_buffer_offset_alignment));
    }
    if (range > info.max_storage_buffer_range) {
      return bad(vkn::format("binding {}: range of {} bytes exceeds maxStorageBufferRange {}", b.binding, range,
                             info.max_storage_buffer_range));
    }
  }
  for (int i = 0; i < 3; ++i) {
    if (groups[i] > info.max_workgroup_count[i]) {
      return bad(vkn::format("{} groups in dimension {} exceed the device limit {}", groups[i], i,
                             info.max_workgroup_count[i]));
    }
  }
  return {};
}

}  // namespace vkn
