// SPIR-V intake: checks that a caller's module is a well-formed Vulkan compute
// shader that vknode can bind, and reflects its KernelLayout. Runs entirely on
// the CPU (SPIRV-Tools validates, SPIRV-Cross reflects); no device is needed.
// Free function without shared state; safe to call from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "vknode/error.h"
#include "vknode/gpu/kernel_layout.h"

namespace vkn {

// Modules above this many words (4 MiB) are refused before validation.
inline constexpr size_t kMaxSpirvWords = size_t{1} << 20;
inline constexpr uint32_t kSpirvMagic = 0x07230203;

// Validates `words` as Vulkan 1.3 SPIR-V (which accepts SPIR-V 1.0 through 1.6,
// so modules built for Vulkan 1.0-1.3 pass) and reflects the layout of its single
// GLCompute entry point. `spec` holds the values the kernel will be specialized
// with; those that size the workgroup are applied to the result's local_size.
//
// On success: bindings are the storage buffers of set 0, sorted and unique;
// push_constant_bytes is the declared size of the push-constant block;
// spec_constants lists every declared specialization constant with its default.
// Errors:
//   invalid_spirv     empty, larger than kMaxSpirvWords, wrong magic, rejected by
//                     the validator (its message names the failing instruction),
//                     not exactly one entry point, not GLCompute, or a local
//                     size of 0 (also when a `spec` value makes it 0).
//   unsupported       a descriptor other than a storage buffer, a set other than
//                     0, an array of buffers, two buffers on one binding, or a
//                     64-bit specialization constant; the message names the
//                     variable or constant.
//   invalid_argument  `spec` names an id the shader does not declare, or names
//                     one id twice.
//   out_of_host_memory  allocation failed.
// Never throws.
[[nodiscard]] Result<KernelLayout> inspect_spirv(std::span<const uint32_t> words,
                                                 std::span<const SpecConstant> spec = {});

}  // namespace vkn
