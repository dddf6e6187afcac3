// The daemon protocol's messages: one request and one reply body per MessageType,
// with encoders and validating decoders (see docs/protocol.md, "Messages").
// Decoders check every length and count against the limits below and against the
// bytes present; they return protocol_error and never crash on any input. Decoded
// spans point into the frame's payload or attachment and live as long as those.
// Stateless functions; thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "protocol/codec.h"
#include "protocol/wire.h"
#include "vknode/error.h"
#include "vknode/node/program.h"
#include "vknode/protocol/daemon_types.h"

namespace vkn::protocol {

// Decoder limits (the server then applies its finer checks: name syntax, quotas,
// device limits, reflection).
inline constexpr size_t kMaxNameBytes = 256;
inline constexpr size_t kMaxTextBytes = 64 * 1024;  // messages, paths, versions
inline constexpr uint64_t kMaxSpirvBytes = 16u << 20;
inline constexpr uint32_t kMaxSpecConstants = 256;
inline constexpr uint32_t kMaxBindings = 64;
inline constexpr size_t kMaxPushBytes = 4096;
inline constexpr uint32_t kMaxShapeRank = 8;
inline constexpr uint32_t kMaxDevices = 64;
inline constexpr uint32_t kMaxListEntries = 1u << 20;

// --- Reply envelope: every reply body starts with an Errc, a VkResult and a message.
void encode_error(Writer& w, const Error& error);  // Errc::ok for success
// The daemon's error when the reply carries one (passed through unchanged), a
// protocol_error when the envelope is malformed, else success.
[[nodiscard]] Result<void> decode_error(Reader& r);

// --- hello
struct HelloRequest {
  uint16_t min_version = kMinVersion;
  uint16_t max_version = kMaxVersion;
  std::string client_name;
};
void encode(Writer& w, const HelloRequest& m);
[[nodiscard]] Result<HelloRequest> decode_hello_request(Reader& r);
void encode(Writer& w, const DaemonHello& m);
[[nodiscard]] Result<DaemonHello> decode_hello_reply(Reader& r);

// --- status
void encode(Writer& w, const DaemonStatus& m);
[[nodiscard]] Result<DaemonStatus> decode_status_reply(Reader& r);

// --- register_kernel
struct RegisterKernelRequest {
  std::span<const std::byte> spirv;  // a whole number of 32-bit words
  std::vector<SpecConstant> spec;
  std::string name;
};
void encode(Writer& w, const RegisterKernelRequest& m);
[[nodiscard]] Result<RegisterKernelRequest> decode_register_kernel_request(Reader& r);
void encode_kernel_id(Writer& w, const KernelId& id);
KernelId decode_kernel_id(Reader& r);

// --- list_kernels
void encode(Writer& w, const std::vector<KernelEntry>& m);
[[nodiscard]] Result<std::vector<KernelEntry>> decode_kernel_list(Reader& r);

// --- create_buffer
struct CreateBufferRequest {
  std::string name;
  BufferSpec spec;
  bool session = false;  // freed when this connection closes
};
void encode(Writer& w, const CreateBufferRequest& m);
[[nodiscard]] Result<CreateBufferRequest> decode_create_buffer_request(Reader& r);

// --- write_buffer
struct WriteBufferRequest {
  std::string name;
  uint64_t offset = 0;
  std::span<const std::byte> data;
};
void encode(Writer& w, const WriteBufferRequest& m);
[[nodiscard]] Result<WriteBufferRequest> decode_write_buffer_request(Reader& r);

// --- read_buffer (reply: one blob)
struct ReadBufferRequest {
  std::string name;
  uint64_t offset = 0;
  uint64_t bytes = 0;  // 0: to the end
};
void encode(Writer& w, const ReadBufferRequest& m);
[[nodiscard]] Result<ReadBufferRequest> decode_read_buffer_request(Reader& r);

// --- delete_buffer
struct NameRequest {
  std::string name;
};
void encode(Writer& w, const NameRequest& m);
[[nodiscard]] Result<NameRequest> decode_name_request(Reader& r);

// --- list_buffers
struct ListBuffersRequest {
  bool all_users = false;  // admin only
};
void encode(Writer& w, const ListBuffersRequest& m);
[[nodiscard]] Result<ListBuffersRequest> decode_list_buffers_request(Reader& r);
void encode(Writer& w, const std::vector<BufferListEntry>& m);
[[nodiscard]] Result<std::vector<BufferListEntry>> decode_buffer_list(Reader& r);

// --- exec (request: a Program; reply: a ProgramResult)
void encode(Writer& w, const Program& m);
[[nodiscard]] Result<Program> decode_program(Reader& r);
void encode(Writer& w, const ProgramResult& m);
[[nodiscard]] Result<ProgramResult> decode_program_result(Reader& r);

// --- persist_cache (reply: the cache file's path)

// Names of element types and node health on the wire-side (the node library's own
// to_string functions are not linked into clients).
const char* element_type_name(ElementType type);
const char* health_name(NodeHealth health);

}  // namespace vkn::protocol
