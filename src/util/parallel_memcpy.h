// parallel_memcpy: memcpy that splits large copies across a few threads, because one
// core cannot saturate memory bandwidth when filling or draining staging memory.
#pragma once

#include <cstddef>

namespace vkn {

// Copies like memcpy (the ranges must not overlap). Copies below kParallelMemcpyMin
// bytes run on the calling thread.
inline constexpr size_t kParallelMemcpyMin = 8u << 20;
void parallel_memcpy(void* dst, const void* src, size_t bytes);

}  // namespace vkn
