#include "protocol/wire.h"

#include "protocol/codec.h"
#include "util/strformat.h"

namespace vkn::protocol {

const char* to_string(MessageType type) {
  switch (type) {
    case MessageType::hello:
      return "hello";
    case MessageType::ping:
      return "ping";
    case MessageType::status:
      return "status";
    case MessageType::register_kernel:
      return "register_kernel";
    case MessageType::list_kernels:
      return "list_kernels";
    case MessageType::create_buffer:
      return "create_buffer";
    case MessageType::write_buffer:
      return "write_buffer";
    case MessageType::read_buffer:
      return "read_buffer";
    case MessageType::delete_buffer:
      return "delete_buffer";
    case MessageType::list_buffers:
      return "list_buffers";
    case MessageType::exec:
      return "exec";
    case MessageType::persist_cache:
      return "persist_cache";
    case MessageType::shutdown:
      return "shutdown";
  }
  return "unknown";
}

bool targets_device_node(MessageType type) {
  switch (type) {
    case MessageType::register_kernel:
    case MessageType::create_buffer:
    case MessageType::write_buffer:
    case MessageType::read_buffer:
    case MessageType::delete_buffer:
    case MessageType::list_buffers:
    case MessageType::exec:
    case MessageType::persist_cache:
      return true;
    default:
      return false;
  }
}

bool is_known_type(uint16_t type) {
  return std::string_view(to_string(static_cast<MessageType>(type))) != "unknown";
}

HeaderBytes encode_header(const FrameHeader& header) {
  Writer w;
  w.u32(kMagic);
  w.u16(header.version);
  w.u16(static_cast<uint16_t>(header.type));
  w.u32(header.flags);
  w.u32(header.payload_size);
  w.u64(header.request_id);
  w.u32(header.timeout_ms);
  w.u32(header.device);  // reserved (0) in version 1
  HeaderBytes out;
  std::copy(w.out().begin(), w.out().end(), out.begin());
  return out;
}

Result<FrameHeader> decode_header(std::span<const std::byte> bytes) {
  if (bytes.size() < kHeaderSize) {
    return fail(Errc::protocol_error, "truncated frame header",
                vkn::format("{} bytes", bytes.size()));
  }
  Reader r(bytes.first(kHeaderSize));
  const uint32_t magic = r.u32();
  FrameHeader h;
  h.version = r.u16();
  const uint16_t type = r.u16();
  h.flags = r.u32();
  h.payload_size = r.u32();
  h.request_id = r.u64();
  h.timeout_ms = r.u32();
  h.device = r.u32();
  if (magic != kMagic)
    return fail(Errc::protocol_error, "bad frame magic", vkn::format("{:08x}", magic));
  if (h.version < kMinVersion || h.version > kMaxVersion) {
    return fail(Errc::protocol_error, "unsupported protocol version",
                vkn::format("{} (this side speaks {}..{})", h.version, kMinVersion, kMaxVersion));
  }
  if (!is_known_type(type))
    return fail(Errc::protocol_error, "unknown message type", vkn::format("{}", type));
  h.type = static_cast<MessageType>(type);
  if (h.flags & ~kKnownFlags)
    return fail(Errc::protocol_error, "unknown frame flags", vkn::format("{:x}", h.flags));
  if (h.payload_size > kMaxPayload) {
    return fail(Errc::protocol_error, "frame too large",
                vkn::format("{} bytes (limit {})", h.payload_size, kMaxPayload));
  }
  if (h.device != 0 && h.version < kDeviceVersion) {
    return fail(Errc::protocol_error, "reserved header word is not zero",
                vkn::format("version {} frames have no device field", h.version));
  }
  if (h.device != 0 && h.is_reply())
    return fail(Errc::protocol_error, "a reply names a device node");
  return h;
}

}  // namespace vkn::protocol
