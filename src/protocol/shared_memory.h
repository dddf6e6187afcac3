// SharedMemory: a memfd mapped into this process, the way large blobs travel
// between a client and the daemon (SCM_RIGHTS, see docs/protocol.md). The sender
// creates and fills it, then seals its size; the receiver adopts it only if it is a
// memfd sealed against shrinking, so the sender cannot truncate it under the
// receiver's mapping (which would raise SIGBUS). Owns the descriptor and the
// mapping. Move-only; thread-compatible.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "protocol/unique_fd.h"
#include "vknode/error.h"

namespace vkn::protocol {

class SharedMemory {
 public:
  // A new read-write memfd of `bytes` (may be 0). Errors: out_of_host_memory, io_error.
  [[nodiscard]] static Result<SharedMemory> create(uint64_t bytes,
                                                   std::string_view name = "vknode");
  // Maps a memfd received from a peer. Errors: protocol_error when `fd` is not a
  // memfd sealed against shrinking and growing, or is larger than `max_bytes`;
  // io_error when it cannot be mapped.
  [[nodiscard]] static Result<SharedMemory> adopt(UniqueFd fd, uint64_t max_bytes);

  SharedMemory(SharedMemory&& other) noexcept;
  SharedMemory& operator=(SharedMemory&& other) noexcept;
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;
  ~SharedMemory();

  // Seals the size (shrink, grow, further seals) before the memfd is sent; a no-op
  // when already sealed. io_error.
  [[nodiscard]] Result<void> seal() const;

  // Fills in this process's page tables for `range` (a part of bytes()) in one call
  // instead of one fault per page, for a transfer about to read or write it. Best
  // effort: kernels without MADV_POPULATE_* just fault as usual.
  void prefault(std::span<const std::byte> range, bool for_write) const;

  std::span<std::byte> bytes() { return {data_, size_}; }
  std::span<const std::byte> bytes() const { return {data_, size_}; }
  uint64_t size() const { return size_; }
  int fd() const { return fd_.get(); }

 private:
  SharedMemory(UniqueFd fd, std::byte* data, uint64_t size)
      : fd_(std::move(fd)), data_(data), size_(size) {}
  void unmap();

  UniqueFd fd_;
  std::byte* data_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace vkn::protocol
