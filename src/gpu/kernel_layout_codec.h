// Binary encoding of KernelLayout, used by the kernel layout cache that lets a new
// process skip SPIR-V validation and reflection for SPIR-V it has seen before
// (docs/pipeline_cache_format.md, "Layout side file"). Decoding never trusts a count
// or length: every one is bounded and checked against the bytes left.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <vector>

#include "vknode/error.h"
#include "vknode/gpu/kernel.h"
#include "vknode/gpu/kernel_layout.h"

namespace vkn {

void encode_kernel_layout(const KernelLayout& layout, std::vector<uint8_t>& out);
// Errors: invalid_argument (truncated, a bound exceeded).
[[nodiscard]] Result<KernelLayout> decode_kernel_layout(std::span<const uint8_t> bytes, size_t* consumed);

// A whole side file: magic, version, count, entries (id + layout), SHA-256 of all before it.
std::vector<uint8_t> encode_layout_file(const std::map<KernelId, KernelLayout>& layouts);
// Errors: invalid_argument (bad magic, version, checksum, or any entry).
[[nodiscard]] Result<std::map<KernelId, KernelLayout>> decode_layout_file(std::span<const uint8_t> bytes);

}  // namespace vkn
