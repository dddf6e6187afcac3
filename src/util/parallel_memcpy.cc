#include "util/parallel_memcpy.h"

#include <algorithm>
#include <cstring>
#include <system_error>
#include <thread>
#include <vector>

namespace vkn {
namespace {

size_t core_count() {
  // Read once: hardware_concurrency() reads sysfs on every call.
  static const size_t cores = std::max(1u, std::thread::hardware_concurrency());
  return cores;
}

}  // namespace

void parallel_memcpy(void* dst, const void* src, size_t bytes) {
  if (bytes < kParallelMemcpyMin) {
    if (bytes > 0) std::memcpy(dst, src, bytes);
    return;
  }
  const size_t threads = std::min<size_t>({core_count(), 8, bytes / (kParallelMemcpyMin / 2)});
  // Pieces are multiples of 4 KiB so that no two threads write one page.
  const size_t piece = (bytes / std::max<size_t>(threads, 1) + 4095) / 4096 * 4096;
  std::vector<std::jthread> workers;
  workers.reserve(threads);
  size_t start = piece;
  for (; threads > 1 && start < bytes; start += piece) {
    const size_t n = std::min(piece, bytes - start);
    try {
      workers.emplace_back([=] {
        std::memcpy(static_cast<char*>(dst) + start, static_cast<const char*>(src) + start, n);
      });
    } catch (const std::system_error&) {
      break;  // no more threads: the calling thread copies the rest
    }
  }
  std::memcpy(dst, src, std::min(piece, bytes));
  if (start < bytes) std::memcpy(static_cast<char*>(dst) + start, static_cast<const char*>(src) + start, bytes - start);
}

}  // namespace vkn
