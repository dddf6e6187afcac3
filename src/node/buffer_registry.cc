#include "vknode/node/buffer_registry.h"

#include <numeric>

#include "util/strformat.h"
#include "vknode/gpu/device.h"
#include "vknode/gpu/stream.h"

namespace vkn {

const char* to_string(ElementType type) {
  switch (type) {
    case ElementType::bytes: return "bytes";
    case ElementType::u32: return "u32";
    case ElementType::i32: return "i32";
    case ElementType::f32: return "f32";
    case ElementType::f64: return "f64";
  }
  return "unknown";
}

size_t element_size(ElementType type) {
  switch (type) {
    case ElementType::bytes: return 1;
    case ElementType::u32:
    case ElementType::i32:
    case ElementType::f32: return 4;
    case ElementType::f64: return 8;
  }
  return 1;
}

BufferKind BufferRegistry::kind_for(const Device& device) {
  // With a large host-visible VRAM window (resizable BAR), small writes go straight into
  // the buffer instead of through staging and a copy command.
  return device.info().device_local_host_visible_bytes >= (1ull << 30) ? BufferKind::device_mappable
                                                                       : BufferKind::device;
}

Result<void> BufferRegistry::check_name(std::string_view name) {
  if (name.empty() || name.size() > 128) return fail(Errc::invalid_argument, "buffer names are 1..128 characters");
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '.' || c == ':' || c == '/' || c == '-';
    if (!ok) return fail(Errc::invalid_argument, "buffer names use only [A-Za-z0-9_.:/-]", name);
  }
  return {};
}

Result<void> BufferRegistry::create(Device& device, std::string_view name, const BufferSpec& spec) {
  if (auto r = check_name(name); !r) return r;
  if (spec.bytes == 0) return fail(Errc::invalid_argument, "buffer size must be positive", name);
  if (!spec.shape.empty()) {
    uint64_t elements = 1;
    for (uint64_t d : spec.shape) elements *= d;
    if (elements * element_size(spec.element) != spec.bytes) {
      return fail(Errc::invalid_argument,
                  vkn::format("shape holds {} elements of {} but the buffer has {} bytes", elements,
                              to_string(spec.element), spec.bytes),
                  name);
    }
  }
  if (entries_.find(name) != entries_.end()) return fail(Errc::already_exists, "a buffer has that name", name);
  if (spec.bytes > budget_ - std::min(budget_, bytes_in_use_)) {
    return fail(Errc::quota_exceeded,
                vkn::format("{} bytes requested, {} of the {}-byte budget in use", spec.bytes, bytes_in_use_, budget_),
                name);
  }
  auto buffer = Buffer::create(device, spec.bytes, kind_for(device));
  if (!buffer) return fail(buffer.error());
  Entry e;
  e.spec = spec;
  e.buffer.emplace(std::move(*buffer));
  if (spec.durable) e.mirror.assign(spec.bytes, std::byte{0});
  e.dirty = false;  // the node zero-fills new buffers, matching the zeroed mirror
  bytes_in_use_ += spec.bytes;
  entries_.emplace(std::string(name), std::move(e));
  return {};
}

Result<void> BufferRegistry::remove(std::string_view name) {
  auto it = entries_.find(name);
  if (it == entries_.end()) return fail(Errc::not_found, "no buffer", name);
  bytes_in_use_ -= it->second.spec.bytes;
  entries_.erase(it);
  return {};
}

Result<const Buffer*> BufferRegistry::get(std::string_view name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) return fail(Errc::not_found, "no buffer", name);
  if (it->second.lost || !it->second.buffer) {
    return fail(Errc::device_lost, "the buffer's contents were lost with the device (it was not durable)", name);
  }
  return &*it->second.buffer;
}

Result<Buffer*> BufferRegistry::get_for_write(std::string_view name) {
  auto it = entries_.find(name);
  if (it == entries_.end()) return fail(Errc::not_found, "no buffer", name);
  if (it->second.lost || !it->second.buffer) {
    return fail(Errc::device_lost, "the buffer's contents were lost with the device (it was not durable)", name);
  }
  it->second.dirty = it->second.spec.durable;
  durable_dirty_ = durable_dirty_ || it->second.spec.durable;
  ++it->second.writes;
  return &*it->second.buffer;
}

Result<BufferEntryInfo> BufferRegistry::info(std::string_view name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) return fail(Errc::not_found, "no buffer", name);
  return BufferEntryInfo{it->first, it->second.spec, it->second.lost, it->second.writes};
}

std::vector<BufferEntryInfo> BufferRegistry::list() const {
  std::vector<BufferEntryInfo> out;
  for (const auto& [name, e] : entries_) out.push_back({name, e.spec, e.lost, e.writes});
  return out;
}

Result<void> BufferRegistry::sync_durable(Stream& stream, std::chrono::nanoseconds timeout) {
  if (!durable_dirty_) return {};  // every job asks: no walk over the registry then
  bool any = false;
  for (auto& [name, e] : entries_) {
    if (!e.spec.durable || !e.dirty || !e.buffer) continue;
    if (auto r = stream.record_download(*e.buffer, 0, e.mirror); !r) {
      stream.discard_open_batch();
      return r;
    }
    any = true;
  }
  if (any) {
    if (auto r = stream.submit_and_wait(timeout); !r) return r;
    for (auto& [name, e] : entries_) e.dirty = false;
  }
  durable_dirty_ = false;
  return {};
}

Result<void> BufferRegistry::restore_after_reset(Device& device, Stream& stream, std::chrono::nanoseconds timeout) {
  for (auto& [name, e] : entries_) {
    e.buffer.reset();
    if (!e.spec.durable) {
      e.lost = true;
      continue;
    }
    auto buffer = Buffer::create(device, e.spec.bytes, kind_for(device));
    if (!buffer) return fail(buffer.error());
    e.buffer.emplace(std::move(*buffer));
    if (auto r = stream.upload(*e.buffer, 0, e.mirror, timeout); !r) return r;
    e.lost = false;
    e.dirty = false;
  }
  return {};
}

void BufferRegistry::release_device_buffers() {
  for (auto& [name, e] : entries_) e.buffer.reset();
}

const std::vector<std::byte>* BufferRegistry::durable_mirror(std::string_view name) const {
  auto it = entries_.find(name);
  if (it == entries_.end() || !it->second.spec.durable) return nullptr;
  return &it->second.mirror;
}

}  // namespace vkn
