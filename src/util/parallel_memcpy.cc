#include "util/parallel_memcpy.h"

#include <algorithm>
#include <cstring>
#include <thread>
#include <vector>

namespace vkn {

void parallel_memcpy(void* dst, const void* src, size_t bytes) {
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const size_t threads = std::min<size_t>({cores, 8, bytes / (kParallelMemcpyMin / 2)});
  if (bytes < kParallelMemcpyMin || threads < 2) {
    if (bytes > 0) std::memcpy(dst, src, bytes);
    return;
  }
  // Pieces are multiples of 4 KiB so that no two threads write one page.
  const size_t piece = (bytes / threads + 4095) / 4096 * 4096;
  std::vector<std::jthread> workers;
  workers.reserve(threads);
  for (size_t start = piece; start < bytes; start += piece) {
    const size_t n = std::min(piece, bytes - start);
    workers.emplace_back([=] {
      std::memcpy(static_cast<char*>(dst) + start, static_cast<const char*>(src) + start, n);
    });
  }
  std::memcpy(dst, src, std::min(piece, bytes));
}

}  // namespace vkn
