// Cache-line prefetches for hand-offs between threads.
#pragma once

namespace vkn {

// Asks for the line holding `p` in the state that permits a write (PREFETCHW on x86,
// which every x86-64 CPU either runs or treats as a no-op): a line that is read and then
// swapped then moves between cores once instead of twice. Never faults.
#if defined(__x86_64__) || defined(__i386__)
// In assembly: without -mprfchw the compiler turns the builtin into a read prefetch.
inline void prefetch_for_write(const void* p) { asm volatile("prefetchw %0" : : "m"(*static_cast<const char*>(p))); }
#else
inline void prefetch_for_write(const void* p) { __builtin_prefetch(p, 1); }
#endif

inline void prefetch_for_read(const void* p) { __builtin_prefetch(p, 0); }

}  // namespace vkn
