#include "gpu/spirv_intake.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <exception>
#include <iterator>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <spirv-tools/libspirv.h>
#include <spirv_cross/spirv_cross_c.h>

namespace vkn {
namespace {

constexpr size_t kHeaderWords = 5;
constexpr std::array<const char*, 3> kAxis{"x", "y", "z"};

// unique_ptr over a C library handle `H` (a pointer type) released with `Destroy`.
template <typename H, void (*Destroy)(H)>
struct CHandleDeleter {
  void operator()(H handle) const { Destroy(handle); }
};
template <typename H, void (*Destroy)(H)>
using OwnedC = std::unique_ptr<std::remove_pointer_t<H>, CHandleDeleter<H, Destroy>>;

using OwnedSpvContext = OwnedC<spv_context, spvContextDestroy>;
using OwnedValidatorOptions = OwnedC<spv_validator_options, spvValidatorOptionsDestroy>;
using OwnedDiagnostic = OwnedC<spv_diagnostic, spvDiagnosticDestroy>;
using OwnedSpvcContext = OwnedC<spvc_context, spvc_context_destroy>;

std::string hex(uint32_t value) {
  std::array<char, 10> buf{'0', 'x'};
  const auto end = std::to_chars(buf.data() + 2, buf.data() + buf.size(), value, 16).ptr;
  return std::string(buf.data(), end);
}

Result<void> check_header(std::span<const uint32_t> words) {
  if (words.empty()) return fail(Errc::invalid_spirv, "empty SPIR-V module");
  if (words.size() > kMaxSpirvWords) {
    return fail(Errc::invalid_spirv, "SPIR-V module larger than 4 MiB",
                std::to_string(words.size()) + " words");
  }
  if (words.size() < kHeaderWords) {
    return fail(Errc::invalid_spirv, "SPIR-V module shorter than its 5-word header");
  }
  if (words[0] != kSpirvMagic) {
    return fail(Errc::invalid_spirv, "not SPIR-V (wrong or byte-swapped magic number)",
                hex(words[0]));
  }
  return {};
}

Result<void> validate(std::span<const uint32_t> words) {
  // The Vulkan 1.3 environment accepts SPIR-V 1.0 to 1.6, i.e. modules built for any Vulkan
  // 1.x target. A module of N words defines fewer than N ids, so a larger id bound is only
  // slack; capping it keeps SPIRV-Cross from allocating for ids that cannot exist.
  OwnedSpvContext context(spvContextCreate(SPV_ENV_VULKAN_1_3));
  OwnedValidatorOptions options(spvValidatorOptionsCreate());
  if (!context || !options) return fail(Errc::out_of_host_memory, "SPIRV-Tools validator setup");
  spvValidatorOptionsSetUniversalLimit(options.get(), spv_validator_limit_max_id_bound,
                                       static_cast<uint32_t>(kMaxSpirvWords));
  spv_const_binary_t binary{words.data(), words.size()};
  spv_diagnostic raw = nullptr;
  const spv_result_t result = spvValidateWithOptions(context.get(), options.get(), &binary, &raw);
  const OwnedDiagnostic diagnostic(raw);
  if (result == SPV_SUCCESS) return {};
  const std::string detail = diagnostic && diagnostic->error
                                 ? std::string(diagnostic->error)
                                 : "spv_result_t " + std::to_string(static_cast<int>(result));
  return fail(Errc::invalid_spirv, "SPIR-V validation failed", detail);
}

// A parsed module ready for reflection. `compiler` and `resources` belong to `context`.
struct Reflector {
  OwnedSpvcContext context;
  spvc_compiler compiler = nullptr;
  spvc_resources resources = nullptr;

  // The error for a failed SPIRV-Cross call, with SPIRV-Cross's own message.
  std::unexpected<Error> failure(std::string_view what,
                                 spvc_result result = SPVC_ERROR_INVALID_SPIRV) const {
    if (result == SPVC_ERROR_OUT_OF_MEMORY) return fail(Errc::out_of_host_memory, what);
    const char* last = spvc_context_get_last_error_string(context.get());
    return fail(Errc::invalid_spirv, what, last != nullptr ? last : "");
  }
};

Result<Reflector> open_reflector(std::span<const uint32_t> words) {
  spvc_context raw = nullptr;
  if (spvc_context_create(&raw) != SPVC_SUCCESS) {
    return fail(Errc::out_of_host_memory, "SPIRV-Cross context");
  }
  Reflector r{OwnedSpvcContext(raw)};
  spvc_parsed_ir ir = nullptr;
  spvc_result result = spvc_context_parse_spirv(raw, words.data(), words.size(), &ir);
  if (result != SPVC_SUCCESS) return r.failure("SPIRV-Cross could not parse the module", result);
  result = spvc_context_create_compiler(raw, SPVC_BACKEND_NONE, ir,
                                        SPVC_CAPTURE_MODE_TAKE_OWNERSHIP, &r.compiler);
  if (result != SPVC_SUCCESS) return r.failure("SPIRV-Cross could not load the module", result);
  result = spvc_compiler_create_shader_resources(r.compiler, &r.resources);
  if (result != SPVC_SUCCESS) return r.failure("SPIRV-Cross could not list resources", result);
  return r;
}

Result<std::string> compute_entry_point(const Reflector& r) {
  const spvc_entry_point* entries = nullptr;
  size_t count = 0;
  const spvc_result result = spvc_compiler_get_entry_points(r.compiler, &entries, &count);
  if (result != SPVC_SUCCESS) return r.failure("SPIRV-Cross could not list entry points", result);
  if (count != 1) {
    return fail(Errc::invalid_spirv, "a kernel needs exactly one entry point",
                std::to_string(count) + " found");
  }
  const std::string name = entries[0].name != nullptr ? entries[0].name : "";
  if (entries[0].execution_model != SpvExecutionModelGLCompute) {
    return fail(Errc::invalid_spirv, "entry point is not a compute shader (GLCompute)", name);
  }
  return name;
}

Result<std::span<const spvc_reflected_resource>> resources_of(const Reflector& r,
                                                              spvc_resource_type type) {
  const spvc_reflected_resource* list = nullptr;
  size_t count = 0;
  const spvc_result result =
      spvc_resources_get_resource_list_for_type(r.resources, type, &list, &count);
  if (result != SPVC_SUCCESS) return r.failure("SPIRV-Cross could not list resources", result);
  return std::span(list, count);
}

// The variable's name, or its "%id" when the module carries no names (e.g. glslc -O).
std::string name_of(const spvc_reflected_resource& res) {
  const bool named = res.name != nullptr && res.name[0] != '\0';
  return named ? std::string(res.name) : "%" + std::to_string(res.id);
}

// "name (set S, binding B)", for messages.
std::string describe(const Reflector& r, const spvc_reflected_resource& res) {
  const auto decoration = [&](SpvDecoration which) {
    return std::to_string(spvc_compiler_get_decoration(r.compiler, res.id, which));
  };
  return name_of(res) + " (set " + decoration(SpvDecorationDescriptorSet) + ", binding " +
         decoration(SpvDecorationBinding) + ")";
}

struct UnsupportedKind {
  spvc_resource_type type;
  const char* what;
};
constexpr std::array kUnsupportedKinds{
    UnsupportedKind{SPVC_RESOURCE_TYPE_UNIFORM_BUFFER, "uniform buffer"},
    UnsupportedKind{SPVC_RESOURCE_TYPE_STORAGE_IMAGE, "storage image"},
    UnsupportedKind{SPVC_RESOURCE_TYPE_SAMPLED_IMAGE, "sampled image"},
    UnsupportedKind{SPVC_RESOURCE_TYPE_SEPARATE_IMAGE, "image"},
    UnsupportedKind{SPVC_RESOURCE_TYPE_SEPARATE_SAMPLERS, "sampler"},
    UnsupportedKind{SPVC_RESOURCE_TYPE_ATOMIC_COUNTER, "atomic counter"},
    UnsupportedKind{SPVC_RESOURCE_TYPE_SUBPASS_INPUT, "input attachment"},
    UnsupportedKind{SPVC_RESOURCE_TYPE_ACCELERATION_STRUCTURE, "acceleration structure"},
    UnsupportedKind{SPVC_RESOURCE_TYPE_SHADER_RECORD_BUFFER, "shader record buffer"},
};

Result<void> reject_other_descriptors(const Reflector& r) {
  for (const UnsupportedKind& kind : kUnsupportedKinds) {
    auto list = resources_of(r, kind.type);
    if (!list) return fail(std::move(list).error());
    if (!list->empty()) {
      return fail(Errc::unsupported,
                  std::string(kind.what) + " not supported, kernels bind storage buffers only",
                  describe(r, list->front()));
    }
  }
  return {};
}

Result<BindingInfo> reflect_storage_buffer(const Reflector& r, const spvc_reflected_resource& res) {
  if (spvc_compiler_get_decoration(r.compiler, res.id, SpvDecorationDescriptorSet) != 0) {
    return fail(Errc::unsupported, "storage buffers must be in descriptor set 0", describe(r, res));
  }
  const spvc_type type = spvc_compiler_get_type_handle(r.compiler, res.type_id);
  if (type == nullptr) return r.failure("SPIRV-Cross could not resolve a buffer type");
  if (spvc_type_get_num_array_dimensions(type) != 0) {
    return fail(Errc::unsupported, "arrays of storage buffers are not supported", describe(r, res));
  }
  const SpvDecoration* decorations = nullptr;
  size_t count = 0;
  const spvc_result result =
      spvc_compiler_get_buffer_block_decorations(r.compiler, res.id, &decorations, &count);
  if (result != SPVC_SUCCESS) return r.failure("SPIRV-Cross could not read decorations", result);
  const std::span<const SpvDecoration> flags(decorations, count);
  BindingInfo info;
  info.binding = spvc_compiler_get_decoration(r.compiler, res.id, SpvDecorationBinding);
  // NonWritable on the variable or on every member (GLSL `readonly`).
  info.read_only = std::ranges::find(flags, SpvDecorationNonWritable) != flags.end();
  info.name = name_of(res);
  return info;
}

Result<std::vector<BindingInfo>> reflect_bindings(const Reflector& r) {
  if (auto ok = reject_other_descriptors(r); !ok) return fail(std::move(ok).error());
  auto ssbos = resources_of(r, SPVC_RESOURCE_TYPE_STORAGE_BUFFER);
  if (!ssbos) return fail(std::move(ssbos).error());
  std::vector<BindingInfo> bindings;
  bindings.reserve(ssbos->size());
  for (const spvc_reflected_resource& res : *ssbos) {
    auto info = reflect_storage_buffer(r, res);
    if (!info) return fail(std::move(info).error());
    bindings.push_back(std::move(*info));
  }
  std::ranges::sort(bindings, {}, &BindingInfo::binding);
  const auto dup = std::ranges::adjacent_find(bindings, {}, &BindingInfo::binding);
  if (dup != bindings.end()) {
    return fail(Errc::unsupported, "two storage buffers share one binding",
                "binding " + std::to_string(dup->binding) + ": " + dup->name + " and " +
                    std::next(dup)->name);
  }
  return bindings;
}

Result<uint32_t> reflect_push_constant_bytes(const Reflector& r) {
  auto blocks = resources_of(r, SPVC_RESOURCE_TYPE_PUSH_CONSTANT);
  if (!blocks) return fail(std::move(blocks).error());
  if (blocks->empty()) return 0u;
  if (blocks->size() > 1) return fail(Errc::invalid_spirv, "more than one push-constant block");
  const spvc_type type = spvc_compiler_get_type_handle(r.compiler, blocks->front().base_type_id);
  if (type == nullptr) return r.failure("SPIRV-Cross could not resolve the push-constant type");
  size_t size = 0;
  const spvc_result result = spvc_compiler_get_declared_struct_size(r.compiler, type, &size);
  if (result != SPVC_SUCCESS) return r.failure("SPIRV-Cross could not size push constants", result);
  if (size > UINT32_MAX) return fail(Errc::invalid_spirv, "push-constant block too large");
  return static_cast<uint32_t>(size);
}

Result<uint32_t> spec_default(const Reflector& r, const spvc_specialization_constant& sc) {
  const spvc_constant constant = spvc_compiler_get_constant_handle(r.compiler, sc.id);
  const spvc_type type = constant == nullptr ? nullptr
                                             : spvc_compiler_get_type_handle(
                                                   r.compiler, spvc_constant_get_type(constant));
  if (type == nullptr) return r.failure("SPIRV-Cross could not resolve a specialization constant");
  if (spvc_type_get_bit_width(type) > 32) {
    return fail(Errc::unsupported, "64-bit specialization constants are not supported",
                "id " + std::to_string(sc.constant_id));
  }
  // Narrower scalars and bools come zero- or sign-extended to 32 bits.
  return spvc_constant_get_scalar_u32(constant, 0, 0);
}

Result<std::vector<SpecConstantInfo>> reflect_spec_constants(const Reflector& r) {
  const spvc_specialization_constant* list = nullptr;
  size_t count = 0;
  const spvc_result result = spvc_compiler_get_specialization_constants(r.compiler, &list, &count);
  if (result != SPVC_SUCCESS) return r.failure("SPIRV-Cross could not list spec constants", result);
  std::vector<SpecConstantInfo> constants;
  constants.reserve(count);
  for (const spvc_specialization_constant& sc : std::span(list, count)) {
    auto value = spec_default(r, sc);
    if (!value) return fail(std::move(value).error());
    constants.push_back({sc.constant_id, *value});
  }
  std::ranges::sort(constants, {}, &SpecConstantInfo::id);
  const auto dup = std::ranges::adjacent_find(constants, {}, &SpecConstantInfo::id);
  if (dup != constants.end()) {
    return fail(Errc::unsupported, "two specialization constants share one id",
                std::to_string(dup->id));
  }
  return constants;
}

Result<void> check_spec(std::span<const SpecConstant> spec,
                        const std::vector<SpecConstantInfo>& declared) {
  for (size_t i = 0; i < spec.size(); ++i) {
    const uint32_t id = spec[i].id;
    if (!std::ranges::binary_search(declared, id, {}, &SpecConstantInfo::id)) {
      return fail(Errc::invalid_argument, "specialization constant id not declared by the shader",
                  std::to_string(id));
    }
    const auto same_id = [id](const SpecConstant& s) { return s.id == id; };
    if (std::ranges::any_of(spec.first(i), same_id)) {
      return fail(Errc::invalid_argument, "specialization constant id given twice",
                  std::to_string(id));
    }
  }
  return {};
}

std::optional<uint32_t> find_spec(std::span<const SpecConstant> spec, uint32_t id) {
  const auto it = std::ranges::find(spec, id, &SpecConstant::id);
  if (it == spec.end()) return std::nullopt;
  return it->value;
}

// LocalSize, LocalSizeId or the WorkgroupSize builtin (which wins), with `spec` applied to the
// components that are specialization constants.
Result<std::array<uint32_t, 3>> reflect_local_size(const Reflector& r,
                                                   std::span<const SpecConstant> spec) {
  std::array<uint32_t, 3> size{};
  for (uint32_t i = 0; i < 3; ++i) {
    size[i] = spvc_compiler_get_execution_mode_argument_by_index(r.compiler,
                                                                 SpvExecutionModeLocalSize, i);
  }
  std::array<spvc_specialization_constant, 3> ids{};
  spvc_compiler_get_work_group_size_specialization_constants(r.compiler, &ids[0], &ids[1], &ids[2]);
  for (size_t i = 0; i < 3; ++i) {
    if (ids[i].id == 0) continue;
    if (!spvc_compiler_has_decoration(r.compiler, ids[i].id, SpvDecorationSpecId)) {
      return fail(Errc::unsupported,
                  "workgroup size computed by a specialization-constant expression", kAxis[i]);
    }
    if (auto value = find_spec(spec, ids[i].constant_id)) size[i] = *value;
  }
  for (size_t i = 0; i < 3; ++i) {
    if (size[i] == 0) return fail(Errc::invalid_spirv, "workgroup size is 0 along axis", kAxis[i]);
  }
  return size;
}

Result<KernelLayout> inspect(std::span<const uint32_t> words, std::span<const SpecConstant> spec) {
  if (auto ok = check_header(words); !ok) return fail(std::move(ok).error());
  if (auto ok = validate(words); !ok) return fail(std::move(ok).error());
  auto r = open_reflector(words);
  if (!r) return fail(std::move(r).error());
  KernelLayout layout;
  auto entry_point = compute_entry_point(*r);
  if (!entry_point) return fail(std::move(entry_point).error());
  layout.entry_point = std::move(*entry_point);
  auto bindings = reflect_bindings(*r);
  if (!bindings) return fail(std::move(bindings).error());
  layout.bindings = std::move(*bindings);
  auto push_bytes = reflect_push_constant_bytes(*r);
  if (!push_bytes) return fail(std::move(push_bytes).error());
  layout.push_constant_bytes = *push_bytes;
  auto constants = reflect_spec_constants(*r);
  if (!constants) return fail(std::move(constants).error());
  if (auto ok = check_spec(spec, *constants); !ok) return fail(std::move(ok).error());
  layout.spec_constants = std::move(*constants);
  auto local_size = reflect_local_size(*r, spec);
  if (!local_size) return fail(std::move(local_size).error());
  layout.local_size = *local_size;
  return layout;
}

}  // namespace

Result<KernelLayout> inspect_spirv(std::span<const uint32_t> words,
                                   std::span<const SpecConstant> spec) {
  // SPIRV-Cross reports most failures through return codes, but a few queries (work-group size,
  // execution-mode arguments) throw on ids of an unexpected kind. The out-of-memory message
  // fits std::string's small buffer, so building it allocates nothing.
  try {
    return inspect(words, spec);
  } catch (const std::bad_alloc&) {
    return fail(Errc::out_of_host_memory, "out of memory");
  } catch (const std::exception& e) {
    return fail(Errc::invalid_spirv, "SPIRV-Cross rejected the module", e.what());
  } catch (...) {
    return fail(Errc::invalid_spirv, "SPIRV-Cross rejected the module");
  }
}

}  // namespace vkn
