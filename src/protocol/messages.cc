#include "protocol/messages.h"

#include <cstring>

#include "util/strformat.h"

namespace vkn::protocol {
namespace {

constexpr uint32_t kLastErrc = static_cast<uint32_t>(Errc::cancelled);
constexpr uint8_t kLastElementType = static_cast<uint8_t>(ElementType::f64);
constexpr uint8_t kLastHealth = static_cast<uint8_t>(NodeHealth::stopped);

template <typename T>
Result<T> finish(Reader& r, std::string_view what, T value) {
  if (auto done = r.finish(what); !done) return fail(done.error());
  return value;
}

void encode_spec(Writer& w, const BufferSpec& spec) {
  w.u64(spec.bytes);
  w.u8(static_cast<uint8_t>(spec.element));
  w.u32(static_cast<uint32_t>(spec.shape.size()));
  for (uint64_t d : spec.shape) w.u64(d);
  w.boolean(spec.durable);
}

BufferSpec decode_spec(Reader& r) {
  BufferSpec spec;
  spec.bytes = r.u64();
  const uint8_t element = r.u8();
  if (element > kLastElementType) r.fail(vkn::format("element type {} is unknown", element));
  spec.element = static_cast<ElementType>(element);
  const uint32_t rank = r.count(kMaxShapeRank, 8);
  for (uint32_t i = 0; i < rank && r.ok(); ++i) spec.shape.push_back(r.u64());
  spec.durable = r.boolean();
  return spec;
}

void encode_node_status(Writer& w, const NodeStatus& s) {
  w.str(s.name);
  w.u8(static_cast<uint8_t>(s.health));
  w.u64(static_cast<uint64_t>(s.uptime.count()));
  for (uint64_t v :
       {s.exec_count, s.inline_execs, s.job_count, s.queue_depth, static_cast<uint64_t>(s.inflight_age.count()),
        s.timeouts, s.withdrawn, s.errors, s.restarts, s.device_resets}) {
    w.u64(v);
  }
  w.str(s.device_name);
  w.str(s.device_uuid);
  for (uint64_t v : {s.registry_bytes, s.registry_budget, s.buffer_count, s.kernel_count,
                     s.quarantined_kernels, s.cache_hits, s.cache_misses, s.cache_bytes}) {
    w.u64(v);
  }
  w.str(s.cache_path);
  w.u64(s.validation_errors);
  w.str(s.last_error);
}

NodeStatus decode_node_status(Reader& r) {
  NodeStatus s;
  s.name = r.str(kMaxNameBytes);
  const uint8_t health = r.u8();
  if (health > kLastHealth) r.fail(vkn::format("node health {} is unknown", health));
  s.health = static_cast<NodeHealth>(health);
  s.uptime = std::chrono::milliseconds(r.u64());
  s.exec_count = r.u64();
  s.inline_execs = r.u64();
  s.job_count = r.u64();
  s.queue_depth = r.u64();
  s.inflight_age = std::chrono::milliseconds(r.u64());
  s.timeouts = r.u64();
  s.withdrawn = r.u64();
  s.errors = r.u64();
  s.restarts = r.u64();
  s.device_resets = r.u64();
  s.device_name = r.str(kMaxTextBytes);
  s.device_uuid = r.str(kMaxTextBytes);
  s.registry_bytes = r.u64();
  s.registry_budget = r.u64();
  s.buffer_count = r.u64();
  s.kernel_count = r.u64();
  s.quarantined_kernels = r.u64();
  s.cache_hits = r.u64();
  s.cache_misses = r.u64();
  s.cache_bytes = r.u64();
  s.cache_path = r.str(kMaxTextBytes);
  s.validation_errors = r.u64();
  s.last_error = r.str(kMaxTextBytes);
  return s;
}

}  // namespace

const char* element_type_name(ElementType type) {
  switch (type) {
    case ElementType::bytes:
      return "bytes";
    case ElementType::u32:
      return "u32";
    case ElementType::i32:
      return "i32";
    case ElementType::f32:
      return "f32";
    case ElementType::f64:
      return "f64";
  }
  return "unknown";
}

const char* health_name(NodeHealth health) {
  switch (health) {
    case NodeHealth::starting:
      return "starting";
    case NodeHealth::ready:
      return "ready";
    case NodeHealth::recovering:
      return "recovering";
    case NodeHealth::down:
      return "down";
    case NodeHealth::stopped:
      return "stopped";
  }
  return "unknown";
}

void encode_error(Writer& w, const Error& error) {
  w.u32(static_cast<uint32_t>(error.code));
  w.u32(static_cast<uint32_t>(error.vk_result));
  w.str(error.code == Errc::ok ? std::string_view()
                               : std::string_view(error.message).substr(0, kMaxTextBytes));
}

Result<void> decode_error(Reader& r) {
  const uint32_t code = r.u32();
  const int32_t vk_result = static_cast<int32_t>(r.u32());
  std::string message = r.str(kMaxTextBytes);
  if (!r.ok()) return r.finish("reply envelope");
  if (code > kLastErrc)
    return fail(Errc::protocol_error, "reply carries an unknown error code",
                vkn::format("{}", code));
  if (code == 0) return {};
  Error e;
  e.code = static_cast<Errc>(code);
  e.vk_result = vk_result;
  e.message = std::move(message);
  return fail(std::move(e));
}

// --- hello
void encode(Writer& w, const HelloRequest& m) {
  w.u16(m.min_version);
  w.u16(m.max_version);
  w.str(m.client_name);
}

Result<HelloRequest> decode_hello_request(Reader& r) {
  HelloRequest m;
  m.min_version = r.u16();
  m.max_version = r.u16();
  m.client_name = r.str(kMaxNameBytes);
  if (r.ok() && m.min_version > m.max_version) r.fail("min_version > max_version");
  return finish(r, "hello request", std::move(m));
}

void encode(Writer& w, const DaemonHello& m) {
  w.u16(m.protocol_version);
  w.str(m.daemon_version);
  w.u32(m.daemon_pid);
  w.u32(m.peer_uid);
  w.boolean(m.peer_is_admin);
  w.u32(m.max_payload);
  w.u64(m.shm_threshold);
  w.u64(m.max_attachment);
}

Result<DaemonHello> decode_hello_reply(Reader& r) {
  DaemonHello m;
  m.protocol_version = r.u16();
  m.daemon_version = r.str(kMaxTextBytes);
  m.daemon_pid = r.u32();
  m.peer_uid = r.u32();
  m.peer_is_admin = r.boolean();
  m.max_payload = r.u32();
  m.shm_threshold = r.u64();
  m.max_attachment = r.u64();
  return finish(r, "hello reply", std::move(m));
}

// --- status
void encode(Writer& w, const DaemonStatus& m) {
  w.boolean(m.live);
  w.boolean(m.ready);
  w.str(m.daemon_version);
  w.u16(m.protocol_version);
  w.u32(m.pid);
  w.u32(m.daemon_uid);
  w.str(m.socket_path);
  w.str(m.state_dir);
  w.u64(static_cast<uint64_t>(m.uptime.count()));
  for (uint64_t v : {m.connections, m.queued_requests, m.running_requests, m.requests,
                     m.request_errors, m.rejected_quota, m.snapshots}) {
    w.u64(v);
  }
  w.str(m.last_snapshot_error);
  w.u32(static_cast<uint32_t>(m.devices.size()));
  for (const auto& d : m.devices) encode_node_status(w, d);
  const UserUsage& u = m.usage;
  w.u32(u.uid);
  for (uint64_t v :
       {u.bytes, u.buffers, u.queued, u.kernels, u.quota_bytes, u.quota_buffers, u.quota_queued}) {
    w.u64(v);
  }
}

Result<DaemonStatus> decode_status_reply(Reader& r) {
  DaemonStatus m;
  m.live = r.boolean();
  m.ready = r.boolean();
  m.daemon_version = r.str(kMaxTextBytes);
  m.protocol_version = r.u16();
  m.pid = r.u32();
  m.daemon_uid = r.u32();
  m.socket_path = r.str(kMaxTextBytes);
  m.state_dir = r.str(kMaxTextBytes);
  m.uptime = std::chrono::milliseconds(r.u64());
  m.connections = r.u64();
  m.queued_requests = r.u64();
  m.running_requests = r.u64();
  m.requests = r.u64();
  m.request_errors = r.u64();
  m.rejected_quota = r.u64();
  m.snapshots = r.u64();
  m.last_snapshot_error = r.str(kMaxTextBytes);
  const uint32_t n = r.count(kMaxDevices, 100);
  for (uint32_t i = 0; i < n && r.ok(); ++i) m.devices.push_back(decode_node_status(r));
  UserUsage& u = m.usage;
  u.uid = r.u32();
  u.bytes = r.u64();
  u.buffers = r.u64();
  u.queued = r.u64();
  u.kernels = r.u64();
  u.quota_bytes = r.u64();
  u.quota_buffers = r.u64();
  u.quota_queued = r.u64();
  return finish(r, "status reply", std::move(m));
}

// --- kernels
void encode_kernel_id(Writer& w, const KernelId& id) { w.raw(std::as_bytes(std::span(id))); }

KernelId decode_kernel_id(Reader& r) {
  KernelId id{};
  auto bytes = r.raw(id.size());
  if (r.ok()) std::memcpy(id.data(), bytes.data(), id.size());
  return id;
}

void encode(Writer& w, const RegisterKernelRequest& m) {
  w.blob(m.spirv);
  w.u32(static_cast<uint32_t>(m.spec.size()));
  for (const auto& s : m.spec) {
    w.u32(s.id);
    w.u32(s.value);
  }
  w.str(m.name);
}

Result<RegisterKernelRequest> decode_register_kernel_request(Reader& r) {
  RegisterKernelRequest m;
  m.spirv = r.blob(kMaxSpirvBytes);
  if (r.ok() && (m.spirv.empty() || m.spirv.size() % 4 != 0)) {
    r.fail(vkn::format("SPIR-V of {} bytes is not a whole number of words", m.spirv.size()));
  }
  const uint32_t n = r.count(kMaxSpecConstants, 8);
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    SpecConstant s;
    s.id = r.u32();
    s.value = r.u32();
    m.spec.push_back(s);
  }
  m.name = r.str(kMaxNameBytes);
  return finish(r, "register_kernel request", std::move(m));
}

void encode(Writer& w, const std::vector<KernelEntry>& m) {
  w.u32(static_cast<uint32_t>(m.size()));
  for (const auto& k : m) {
    encode_kernel_id(w, k.id);
    w.str(k.name);
    w.boolean(k.builtin);
    w.u32(k.builtin_index);
  }
}

Result<std::vector<KernelEntry>> decode_kernel_list(Reader& r) {
  std::vector<KernelEntry> m;
  const uint32_t n = r.count(kMaxListEntries, 32 + 4 + 1 + 4);
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    KernelEntry k;
    k.id = decode_kernel_id(r);
    k.name = r.str(kMaxNameBytes);
    k.builtin = r.boolean();
    k.builtin_index = r.u32();
    m.push_back(std::move(k));
  }
  return finish(r, "kernel list", std::move(m));
}

// --- buffers
void encode(Writer& w, const CreateBufferRequest& m) {
  w.str(m.name);
  encode_spec(w, m.spec);
  w.boolean(m.session);
}

Result<CreateBufferRequest> decode_create_buffer_request(Reader& r) {
  CreateBufferRequest m;
  m.name = r.str(kMaxNameBytes);
  m.spec = decode_spec(r);
  m.session = r.boolean();
  return finish(r, "create_buffer request", std::move(m));
}

void encode(Writer& w, const WriteBufferRequest& m) {
  w.str(m.name);
  w.u64(m.offset);
  w.blob(m.data);
}

Result<WriteBufferRequest> decode_write_buffer_request(Reader& r) {
  WriteBufferRequest m;
  m.name = r.str(kMaxNameBytes);
  m.offset = r.u64();
  m.data = r.blob(kMaxAttachment);
  return finish(r, "write_buffer request", std::move(m));
}

void encode(Writer& w, const ReadBufferRequest& m) {
  w.str(m.name);
  w.u64(m.offset);
  w.u64(m.bytes);
}

Result<ReadBufferRequest> decode_read_buffer_request(Reader& r) {
  ReadBufferRequest m;
  m.name = r.str(kMaxNameBytes);
  m.offset = r.u64();
  m.bytes = r.u64();
  return finish(r, "read_buffer request", std::move(m));
}

void encode(Writer& w, const NameRequest& m) { w.str(m.name); }

Result<NameRequest> decode_name_request(Reader& r) {
  NameRequest m;
  m.name = r.str(kMaxNameBytes);
  return finish(r, "request", std::move(m));
}

void encode(Writer& w, const ListBuffersRequest& m) { w.boolean(m.all_users); }

Result<ListBuffersRequest> decode_list_buffers_request(Reader& r) {
  ListBuffersRequest m;
  m.all_users = r.boolean();
  return finish(r, "list_buffers request", std::move(m));
}

void encode(Writer& w, const std::vector<BufferListEntry>& m) {
  w.u32(static_cast<uint32_t>(m.size()));
  for (const auto& e : m) {
    w.str(e.info.name);
    encode_spec(w, e.info.spec);
    w.boolean(e.info.lost);
    w.u64(e.info.writes);
    w.u32(e.owner_uid);
    w.boolean(e.session);
  }
}

Result<std::vector<BufferListEntry>> decode_buffer_list(Reader& r) {
  std::vector<BufferListEntry> m;
  const uint32_t n = r.count(kMaxListEntries, 4 + 8 + 1 + 4 + 1 + 1 + 8 + 4 + 1);
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    BufferListEntry e;
    e.info.name = r.str(kMaxNameBytes);
    e.info.spec = decode_spec(r);
    e.info.lost = r.boolean();
    e.info.writes = r.u64();
    e.owner_uid = r.u32();
    e.session = r.boolean();
    m.push_back(std::move(e));
  }
  return finish(r, "buffer list", std::move(m));
}

}  // namespace vkn::protocol
