// MappingCache: one connection's recently received memfds, kept mapped. Mapping a
// 256 MiB memfd afresh for every request, and unmapping it after, costs more than
// the copy it serves (a fault per page, and a write fault per page to dirty it), so
// a client that reuses its shared memory (vkn::SharedBuffer, the client's pool)
// finds it already mapped here: a memfd that arrives again is recognised by its
// inode and the cached mapping is used. Holds at most kMaxEntries mappings (least
// recently used go first); a connection's cache goes with the connection. Only
// memfds the client sent on this connection are ever looked up. Used by the I/O
// thread only (not thread-safe); the mappings it hands out are shared.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <list>
#include <memory>

#include "protocol/shared_memory.h"
#include "protocol/unique_fd.h"
#include "vknode/error.h"

namespace vkn::server {

class MappingCache {
 public:
  static constexpr size_t kMaxEntries = 4;

  // The mapping of the memfd `fd` (checked as SharedMemory::adopt checks it).
  // Errors: SharedMemory::adopt's.
  [[nodiscard]] Result<std::shared_ptr<protocol::SharedMemory>> adopt(protocol::UniqueFd fd,
                                                                      uint64_t max_bytes);

  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    dev_t dev;
    ino_t ino;
    std::shared_ptr<protocol::SharedMemory> memory;
  };
  std::list<Entry> entries_;  // most recently used first
};

}  // namespace vkn::server
