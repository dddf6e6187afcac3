// BufferRegistry: the node's named, persistent device buffers with metadata, held
// against a memory budget. A durable buffer keeps a host copy that the node brings
// up to date at sync points (the end of each job that may have written it), so it
// survives device loss; other buffers are reported lost after a device reset.
// Owned by the node; used on the node's worker thread only (not thread-safe).
#pragma once

#include <cstddef>
#include <cstdint>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vknode/error.h"
#include "vknode/gpu/buffer.h"

namespace vkn {

class Device;
class Stream;

enum class ElementType { bytes, u32, i32, f32, f64 };
const char* to_string(ElementType type);
size_t element_size(ElementType type);

struct BufferSpec {
  uint64_t bytes = 0;
  ElementType element = ElementType::bytes;
  std::vector<uint64_t> shape;  // optional; when given, its product times element size == bytes
  bool durable = false;
};

struct BufferEntryInfo {
  std::string name;
  BufferSpec spec;
  bool lost = false;  // its device memory went with a lost device
  uint64_t writes = 0;
};

class BufferRegistry {
 public:
  // The memory registry buffers use on `device`: device_mappable (host-visible VRAM)
  // where the device has a large resizable-BAR window, else device.
  static BufferKind kind_for(const Device& device);
  // Names are 1..128 characters of [A-Za-z0-9_.:/-].
  static Result<void> check_name(std::string_view name);

  BufferRegistry(uint64_t budget_bytes) : budget_(budget_bytes) {}

  // Errors: invalid_argument (bad name, size, shape), already_exists, quota_exceeded
  // (over the memory budget; nothing is evicted), out_of_device_memory, device_lost.
  [[nodiscard]] Result<void> create(Device& device, std::string_view name, const BufferSpec& spec);
  // Errors: not_found.
  [[nodiscard]] Result<void> remove(std::string_view name);
  // The buffer for reading. Errors: not_found; device_lost when it was lost.
  [[nodiscard]] Result<const Buffer*> get(std::string_view name) const;
  // The buffer for writing; marks a durable buffer for host sync. Errors as get().
  [[nodiscard]] Result<Buffer*> get_for_write(std::string_view name);
  [[nodiscard]] Result<BufferEntryInfo> info(std::string_view name) const;
  std::vector<BufferEntryInfo> list() const;

  uint64_t bytes_in_use() const { return bytes_in_use_; }
  uint64_t budget() const { return budget_; }
  size_t size() const { return entries_.size(); }

  // Copies every dirty durable buffer into its host mirror. Errors: from the stream.
  [[nodiscard]] Result<void> sync_durable(Stream& stream, std::chrono::nanoseconds timeout);
  // After a device reset: recreate durable buffers from their mirrors on `device`,
  // mark the rest lost (their entries stay, so callers learn what happened).
  [[nodiscard]] Result<void> restore_after_reset(Device& device, Stream& stream, std::chrono::nanoseconds timeout);
  // Drops every device buffer (before the device is destroyed); entries stay.
  void release_device_buffers();
  // Host mirror of a durable buffer (tests and snapshots). nullptr when not durable.
  const std::vector<std::byte>* durable_mirror(std::string_view name) const;

 private:
  struct Entry {
    BufferSpec spec;
    std::optional<Buffer> buffer;  // empty when lost or released
    bool lost = false;
    bool dirty = false;
    uint64_t writes = 0;
    std::vector<std::byte> mirror;  // durable buffers only
  };
  uint64_t budget_;
  uint64_t bytes_in_use_ = 0;
  std::map<std::string, Entry, std::less<>> entries_;
  bool durable_dirty_ = false;  // some durable buffer may be dirty (set by get_for_write)
};

}  // namespace vkn
