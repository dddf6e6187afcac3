#include "vknode/gpu/buffer.h"

#include <cstring>
#include "util/strformat.h"

#include "gpu/memory_allocator.h"
#include "vknode/gpu/vk_handle.h"
#include "vknode/gpu/device.h"

namespace vkn {

// The buffer is declared after its memory so that it is destroyed first.
struct Buffer::State {
  MemoryLease memory;
  OwnedBuffer buffer;
};

namespace {

struct MemoryFlags {
  VkMemoryPropertyFlags required;
  VkMemoryPropertyFlags preferred;
};

MemoryFlags flags_for(BufferKind kind) {
  constexpr auto kHostVisible = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
  switch (kind) {
    case BufferKind::device: return {VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0};
    case BufferKind::device_mappable:
      return {VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, kHostVisible};
    case BufferKind::upload: return {kHostVisible, 0};
    case BufferKind::readback: return {kHostVisible, VK_MEMORY_PROPERTY_HOST_CACHED_BIT};
  }
  return {0, 0};
}

}  // namespace

const char* to_string(BufferKind kind) {
  switch (kind) {
    case BufferKind::device: return "device";
    case BufferKind::device_mappable: return "device_mappable";
    case BufferKind::upload: return "upload";
    case BufferKind::readback: return "readback";
  }
  return "unknown";
}

Buffer::Buffer(std::unique_ptr<State> state, uint64_t size, BufferKind kind)
    : state_(std::move(state)), size_(size), kind_(kind) {}
Buffer::Buffer(Buffer&&) noexcept = default;
Buffer& Buffer::operator=(Buffer&&) noexcept = default;
Buffer::~Buffer() = default;

VkBuffer Buffer::handle() const { return state_ ? state_->buffer.get() : VK_NULL_HANDLE; }
std::byte* Buffer::mapped() const { return state_ ? state_->memory.mapped() : nullptr; }

Result<Buffer> Buffer::create(Device& device, uint64_t bytes, BufferKind kind) {
  if (bytes == 0) return fail(Errc::invalid_argument, "buffer size must be positive");
  if (device.is_lost()) return fail(Errc::device_lost, "cannot create a buffer on a lost device");
  VkBufferCreateInfo ci{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  ci.size = bytes;
  ci.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
  ci.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  VkBuffer raw = VK_NULL_HANDLE;
  VkResult r = vkCreateBuffer(device.handle(), &ci, nullptr, &raw);
  if (r != VK_SUCCESS) return fail(Error::vulkan(r, vkn::format("vkCreateBuffer of {} bytes", bytes)));
  auto state = std::make_unique<State>();
  state->buffer = OwnedBuffer(device.handle(), raw);

  VkMemoryRequirements req{};
  vkGetBufferMemoryRequirements(device.handle(), raw, &req);
  const MemoryFlags flags = flags_for(kind);
  auto type = device.find_memory_type(req.memoryTypeBits, flags.required, flags.preferred);
  if (!type) return fail(type.error());
  auto lease = device.allocator().allocate(req, *type);
  if (!lease) {
    Error e = lease.error();
    e.message = vkn::format("{} buffer of {} bytes: {}", to_string(kind), bytes, e.message);
    return fail(std::move(e));
  }
  state->memory = std::move(*lease);
  r = vkBindBufferMemory(device.handle(), raw, state->memory.memory(), state->memory.offset());
  if (r != VK_SUCCESS) return fail(Error::vulkan(r, "vkBindBufferMemory"));
  return Buffer(std::move(state), bytes, kind);
}

Result<void> Buffer::check_range(uint64_t offset, uint64_t bytes) const {
  if (offset > size_ || bytes > size_ - offset) {
    return fail(Errc::invalid_argument,
                vkn::format("range [{}, {}+{}) is outside the buffer of {} bytes", offset, offset, bytes, size_));
  }
  return {};
}

Result<void> Buffer::write_mapped(uint64_t offset, std::span<const std::byte> data) {
  if (!is_mapped()) return fail(Errc::invalid_argument, "buffer is not host-visible");
  if (auto r = check_range(offset, data.size()); !r) return r;
  if (!data.empty()) std::memcpy(mapped() + offset, data.data(), data.size());
  return {};
}

Result<void> Buffer::read_mapped(uint64_t offset, std::span<std::byte> out) const {
  if (!is_mapped()) return fail(Errc::invalid_argument, "buffer is not host-visible");
  if (auto r = check_range(offset, out.size()); !r) return r;
  if (!out.empty()) std::memcpy(out.data(), mapped() + offset, out.size());
  return {};
}

}  // namespace vkn
