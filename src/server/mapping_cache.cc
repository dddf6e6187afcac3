#include "server/mapping_cache.h"

#include <fcntl.h>
#include <sys/stat.h>

namespace vkn::server {

Result<std::shared_ptr<protocol::SharedMemory>> MappingCache::adopt(protocol::UniqueFd fd,
                                                                    uint64_t max_bytes) {
  struct stat st {};
  const int seals = ::fcntl(fd.get(), F_GET_SEALS);
  constexpr int kSizeSeals = F_SEAL_SHRINK | F_SEAL_GROW;
  if (seals >= 0 && (seals & kSizeSeals) == kSizeSeals && ::fstat(fd.get(), &st) == 0) {
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      // Sealed: the same inode still has the size it was mapped with.
      if (it->dev == st.st_dev && it->ino == st.st_ino &&
          it->memory->size() == static_cast<uint64_t>(st.st_size)) {
        entries_.splice(entries_.begin(), entries_, it);
        return entries_.front().memory;
      }
    }
  }
  auto memory = protocol::SharedMemory::adopt(std::move(fd), max_bytes);
  if (!memory) return fail(memory.error());
  auto shared = std::make_shared<protocol::SharedMemory>(std::move(*memory));
  entries_.push_front(Entry{st.st_dev, st.st_ino, shared});
  while (entries_.size() > kMaxEntries) entries_.pop_back();
  return shared;
}

}  // namespace vkn::server
