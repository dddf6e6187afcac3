// The vknode daemon protocol's framing: a fixed 32-byte header, then the payload.
// See docs/protocol.md for the full format. Plain constants and value types;
// thread-compatible.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "vknode/error.h"

namespace vkn::protocol {

inline constexpr uint32_t kMagic = 0x504E4B56;  // "VKNP" in little-endian byte order
inline constexpr uint16_t kMinVersion = 1;
inline constexpr uint16_t kMaxVersion = 2;
// From this version on, header word 28 (reserved in version 1) carries a request's
// device node index (docs/protocol.md, "Device nodes").
inline constexpr uint16_t kDeviceVersion = 2;
inline constexpr size_t kHeaderSize = 32;
// Hard limit on one frame's inline payload; larger data travels in a memfd.
inline constexpr uint32_t kMaxPayload = 64u << 20;
// Blobs at least this large go through a memfd by default (clients may lower it).
inline constexpr uint64_t kDefaultShmThreshold = 1u << 20;
// Hard limit on one memfd attachment (a client splits larger writes).
inline constexpr uint64_t kMaxAttachment = 1ull << 30;

enum class MessageType : uint16_t {
  hello = 1,
  ping = 2,
  status = 3,
  register_kernel = 10,
  list_kernels = 11,
  create_buffer = 20,
  write_buffer = 21,
  read_buffer = 22,
  delete_buffer = 23,
  list_buffers = 24,
  exec = 30,
  persist_cache = 40,
  shutdown = 41,
};
// "hello", "ping", ...; "unknown" for other values.
const char* to_string(MessageType type);
bool is_known_type(uint16_t type);
// Whether requests of this type go to a device node (and may name one in the header): kernel
// registration, buffers, exec, cache persist. The others (hello, ping, status, list_kernels,
// shutdown) are the daemon's own.
bool targets_device_node(MessageType type);

// Frame flags.
inline constexpr uint32_t kFlagReply = 1u << 0;  // a reply (else a request)
inline constexpr uint32_t kFlagAttachment = 1u
                                            << 1;  // one memfd travels with the frame (SCM_RIGHTS)
inline constexpr uint32_t kKnownFlags = kFlagReply | kFlagAttachment;

struct FrameHeader {
  uint16_t version = kMaxVersion;
  MessageType type = MessageType::ping;
  uint32_t flags = 0;
  uint32_t payload_size = 0;
  uint64_t request_id = 0;
  uint32_t timeout_ms = 0;  // requests: the caller's deadline, 0 for none; replies: 0
  // Version >= kDeviceVersion requests: the device node the request targets (0: the
  // first). Version 1 frames and replies: 0 (the word is reserved there).
  uint32_t device = 0;

  bool is_reply() const { return flags & kFlagReply; }
  bool has_attachment() const { return flags & kFlagAttachment; }
};

using HeaderBytes = std::array<std::byte, kHeaderSize>;

HeaderBytes encode_header(const FrameHeader& header);
// Checks magic, version range, known type, known flags, the device word (0 in
// version 1 frames and in replies) and the size limit. Errors: protocol_error naming
// the bad field. Whether the device index names an existing device node is the
// daemon's check.
[[nodiscard]] Result<FrameHeader> decode_header(std::span<const std::byte> bytes);

}  // namespace vkn::protocol
