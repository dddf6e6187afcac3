// What the reliability tests watch in their own process: open file descriptors and
// resident memory (from /proc/self), to show that repeated work leaks neither.
#pragma once

#include <dirent.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>

namespace vkn::reliability {

// Entries of /proc/self/fd, less the one opendir itself holds.
inline int open_fd_count() {
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  int n = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n - 1;
}

// VmRSS from /proc/self/status, in KiB (0 if unreadable).
inline uint64_t rss_kib() {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return 0;
  char line[256];
  uint64_t kib = 0;
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, "VmRSS:", 6) == 0) {
      std::sscanf(line + 6, "%lu", &kib);
      break;
    }
  }
  std::fclose(f);
  return kib;
}

}  // namespace vkn::reliability
