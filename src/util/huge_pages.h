// Large host buffers that are filled once in full (a Program's downloads, a sampler's draws):
// on Linux, asking for transparent huge pages before the first touch turns the ~80,000 page
// faults of a 328 MB buffer into ~160. On a VM each fault costs microseconds, and they were
// most of the time spent reading draws back (docs/benchmarks.md).
#pragma once

#include <cstddef>
#include <vector>

namespace vkn {

// Buffers at least this large get the advice.
inline constexpr size_t kHugePageAdviceMin = 8u << 20;

// Advises huge pages for the whole 2 MiB pages inside [p, p + bytes); memory not yet touched
// then faults in 2 MiB at a time. Harmless where the kernel ignores it.
void advise_huge_pages(void* p, size_t bytes);

// v.resize(n) (value-initialized), with huge pages advised for new storage of at least
// kHugePageAdviceMin bytes before it is first written.
template <typename T>
void resize_with_huge_pages(std::vector<T>& v, size_t n) {
  if (n > v.capacity() && n * sizeof(T) >= kHugePageAdviceMin && v.empty()) {
    v.reserve(n);
    advise_huge_pages(v.data(), n * sizeof(T));
  }
  v.resize(n);
}

}  // namespace vkn
