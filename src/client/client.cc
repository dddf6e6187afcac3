#include "vknode/client/client.h"

#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "client/client_connection.h"
#include "client/memory_pool.h"
#include "protocol/messages.h"
#include "protocol/socket_path.h"
#include "util/parallel_memcpy.h"
#include "util/strformat.h"

namespace vkn {

using client::ClientConnection;
using client::Clock;
using protocol::MessageType;

class Client::Impl {
 public:
  Impl(ClientOptions options, std::filesystem::path path)
      : options_(std::move(options)),
        path_(std::move(path)),
        spin_(options_.spin
                  ? *options_.spin
                  : std::chrono::microseconds(std::thread::hardware_concurrency() >= 8 ? 50 : 0)) {
    if (!options_.default_timeout) {
      if (const char* v = std::getenv("VKNODE_TIMEOUT_MS"); v != nullptr && std::atoll(v) > 0) {
        options_.default_timeout = std::chrono::milliseconds(std::atoll(v));
      }
    }
  }

  // The live connection, reconnecting (and re-registering kernels) after a restart.
  Result<std::shared_ptr<ClientConnection>> connection() {
    std::lock_guard lock(mu_);
    if (conn_ && !conn_->is_dead()) return conn_;
    auto fresh = ClientConnection::open(path_, options_.name, options_.connect_timeout, spin_);
    if (!fresh) return fail(fresh.error());
    std::shared_ptr<ClientConnection> conn = std::move(*fresh);
    for (const KernelRecord& k : kernels_) {
      // Best effort: a kernel that fails now fails again, with its error, at exec.
      (void)register_on(*conn, k, Clock::now() + options_.connect_timeout, options_.device);
    }
    conn_ = conn;
    return conn;
  }

  std::optional<Clock::time_point> deadline(const RequestOptions& o) const {
    const auto t = o.timeout ? o.timeout : options_.default_timeout;
    if (!t) return std::nullopt;
    return Clock::now() + *t;
  }

  uint64_t threshold(const ClientConnection& conn) const {
    return options_.shm_threshold ? options_.shm_threshold : conn.hello().shm_threshold;
  }
  uint64_t shm_threshold() {
    return options_.shm_threshold ? options_.shm_threshold : hello().shm_threshold;
  }

  // The device node a request goes to: requests that touch no node always name 0.
  uint32_t device_for(MessageType type, const RequestOptions& o) const {
    return protocol::targets_device_node(type) ? o.device.value_or(options_.device) : 0;
  }

  // Sends one request and returns its reply with the envelope checked.
  Result<protocol::IncomingFrame> call(MessageType type,
                                       const std::function<void(protocol::Writer&)>& encode,
                                       const RequestOptions& o) {
    const auto until = deadline(o);
    for (int attempt = 0;; ++attempt) {
      auto conn = connection();
      if (!conn) return fail(conn.error());
      protocol::AttachmentPlan plan;
      plan.threshold = threshold(**conn);
      protocol::Writer w(&plan);
      if (encode) encode(w);
      bool sent = false;
      auto reply =
          (*conn)->call(type, w.take(), &plan, until, nullptr, device_for(type, o), &sent);
      if (is_unsent_loss(reply, sent, attempt)) continue;
      if (!reply) return fail(reply.error());
      protocol::Reader r(reply->payload, reply->attachment_bytes());
      if (auto e = protocol::decode_error(r); !e) return fail(e.error());
      return reply;
    }
  }

  // The connection was found dead before any byte of the request went out (the
  // daemon restarted or closed it while this client was idle: with no reader thread,
  // nobody noticed earlier). The request never arrived, so it goes once more, on a
  // new connection.
  static bool is_unsent_loss(const Result<protocol::IncomingFrame>& reply, bool sent,
                             int attempt) {
    return !reply && reply.error().code == Errc::node_dead && !sent && attempt == 0;
  }

  struct KernelRecord {
    std::vector<uint32_t> spirv;
    std::vector<SpecConstant> spec;
    std::string name;
  };

  // The daemon makes the kernel available on every device node; `device` is the
  // one whose failure fails the call.
  Result<KernelId> register_on(ClientConnection& conn, const KernelRecord& k,
                               std::optional<Clock::time_point> until, uint32_t device) {
    protocol::AttachmentPlan plan;
    plan.threshold = threshold(conn);
    protocol::Writer w(&plan);
    protocol::encode(
        w, protocol::RegisterKernelRequest{std::as_bytes(std::span(k.spirv)), k.spec, k.name});
    auto reply = conn.call(MessageType::register_kernel, w.take(), &plan, until, nullptr, device);
    if (!reply) return fail(reply.error());
    protocol::Reader r(reply->payload, reply->attachment_bytes());
    if (auto e = protocol::decode_error(r); !e) return fail(e.error());
    const KernelId id = protocol::decode_kernel_id(r);
    if (auto done = r.finish("register_kernel reply"); !done) return fail(done.error());
    return id;
  }

  void remember_kernel(KernelRecord k, const KernelId& id) {
    std::lock_guard lock(mu_);
    if (remembered_.insert(id).second) kernels_.push_back(std::move(k));
  }

  DaemonHello hello() {
    std::lock_guard lock(mu_);
    return conn_ ? conn_->hello() : DaemonHello{};
  }

  // Sends a request whose large data lives in `lent` (filled by the caller for a
  // write, or to be filled by the daemon for a read); envelope checked.
  Result<protocol::IncomingFrame> call_lent(MessageType type,
                                            const std::function<void(protocol::Writer&)>& encode,
                                            const RequestOptions& o,
                                            const protocol::SharedMemory& lent) {
    const auto until = deadline(o);
    for (int attempt = 0;; ++attempt) {
      auto conn = connection();
      if (!conn) return fail(conn.error());
      protocol::Writer w;
      encode(w);
      bool sent = false;
      auto reply =
          (*conn)->call(type, w.take(), nullptr, until, &lent, device_for(type, o), &sent);
      if (is_unsent_loss(reply, sent, attempt)) continue;
      if (!reply) return fail(reply.error());
      protocol::Reader r(reply->payload, reply->attachment_bytes());
      if (auto e = protocol::decode_error(r); !e) return fail(e.error());
      return reply;
    }
  }

  std::map<uint32_t, KernelId> builtins_;  // guarded by mu_
  client::MemoryPool pool_;
  std::mutex mu_;

 private:
  ClientOptions options_;
  const std::filesystem::path path_;
  const std::chrono::microseconds spin_;
  // Guarded by mu_.
  std::shared_ptr<ClientConnection> conn_;
  std::vector<KernelRecord> kernels_;
  std::set<KernelId> remembered_;
};

class SharedBuffer::Memory {
 public:
  explicit Memory(protocol::SharedMemory m) : memory(std::move(m)) {}
  protocol::SharedMemory memory;
};

Result<SharedBuffer> SharedBuffer::create(uint64_t bytes) {
  if (bytes > protocol::kMaxAttachment) {
    return fail(Errc::invalid_argument, "a SharedBuffer holds at most 1 GiB",
                vkn::format("{} bytes", bytes));
  }
  auto m = protocol::SharedMemory::create(bytes, "vknode-shared");
  if (!m) return fail(m.error());
  return SharedBuffer(std::make_unique<Memory>(std::move(*m)));
}

SharedBuffer::SharedBuffer(std::unique_ptr<Memory> memory) : memory_(std::move(memory)) {}
SharedBuffer::SharedBuffer(SharedBuffer&&) noexcept = default;
SharedBuffer& SharedBuffer::operator=(SharedBuffer&&) noexcept = default;
SharedBuffer::~SharedBuffer() = default;
std::span<std::byte> SharedBuffer::bytes() {
  return memory_ ? memory_->memory.bytes() : std::span<std::byte>();
}
std::span<const std::byte> SharedBuffer::bytes() const {
  return memory_ ? memory_->memory.bytes() : std::span<const std::byte>();
}
uint64_t SharedBuffer::size() const { return memory_ ? memory_->memory.size() : 0; }

namespace {

template <typename T>
Result<T> finish(protocol::Reader& r, std::string_view what, T value) {
  if (auto done = r.finish(what); !done) return fail(done.error());
  return value;
}

protocol::Reader body_reader(const protocol::IncomingFrame& frame) {
  protocol::Reader r(frame.payload, frame.attachment_bytes());
  (void)protocol::decode_error(r);  // checked by call()
  return r;
}

}  // namespace

Result<std::unique_ptr<Client>> Client::connect(ClientOptions options) {
  auto path = protocol::client_socket_path(options.socket_path);
  if (!path) return fail(path.error());
  auto impl = std::make_unique<Impl>(std::move(options), *path);
  if (auto conn = impl->connection(); !conn) return fail(conn.error());
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

DaemonHello Client::daemon() const { return impl_->hello(); }

Result<void> Client::ping(const RequestOptions& options) {
  auto reply = impl_->call(MessageType::ping, nullptr, options);
  if (!reply) return fail(reply.error());
  return {};
}

Result<DaemonStatus> Client::status(const RequestOptions& options) {
  auto reply = impl_->call(MessageType::status, nullptr, options);
  if (!reply) return fail(reply.error());
  auto r = body_reader(*reply);
  return protocol::decode_status_reply(r);
}

Result<KernelId> Client::register_kernel(std::span<const uint32_t> spirv,
                                         std::span<const SpecConstant> spec,
                                         std::string_view kernel_name,
                                         const RequestOptions& options) {
  Impl::KernelRecord k{
      {spirv.begin(), spirv.end()}, {spec.begin(), spec.end()}, std::string(kernel_name)};
  auto conn = impl_->connection();
  if (!conn) return fail(conn.error());
  auto id = impl_->register_on(**conn, k, impl_->deadline(options),
                               impl_->device_for(MessageType::register_kernel, options));
  if (!id) return fail(id.error());
  impl_->remember_kernel(std::move(k), *id);
  return id;
}

Result<std::vector<KernelEntry>> Client::list_kernels(const RequestOptions& options) {
  auto reply = impl_->call(MessageType::list_kernels, nullptr, options);
  if (!reply) return fail(reply.error());
  auto r = body_reader(*reply);
  auto list = protocol::decode_kernel_list(r);
  if (!list) return fail(list.error());
  std::lock_guard lock(impl_->mu_);
  for (const KernelEntry& k : *list) {
    if (k.builtin) impl_->builtins_[k.builtin_index] = k.id;
  }
  return list;
}

Result<KernelId> Client::builtin_kernel_id(BuiltinKernel kernel) {
  const auto index = static_cast<uint32_t>(kernel);
  {
    std::lock_guard lock(impl_->mu_);
    if (auto it = impl_->builtins_.find(index); it != impl_->builtins_.end()) return it->second;
  }
  if (auto list = list_kernels(); !list) return fail(list.error());
  std::lock_guard lock(impl_->mu_);
  if (auto it = impl_->builtins_.find(index); it != impl_->builtins_.end()) return it->second;
  return fail(Errc::not_found, "the daemon has no such built-in kernel", vkn::format("{}", index));
}

Result<void> Client::create_buffer(std::string_view name, const BufferSpec& spec, BufferScope scope,
                                   const RequestOptions& options) {
  protocol::CreateBufferRequest m{std::string(name), spec, scope == BufferScope::session};
  auto reply = impl_->call(
      MessageType::create_buffer, [&](protocol::Writer& w) { protocol::encode(w, m); }, options);
  if (!reply) return fail(reply.error());
  return {};
}

Result<void> Client::delete_buffer(std::string_view name, const RequestOptions& options) {
  protocol::NameRequest m{std::string(name)};
  auto reply = impl_->call(
      MessageType::delete_buffer, [&](protocol::Writer& w) { protocol::encode(w, m); }, options);
  if (!reply) return fail(reply.error());
  return {};
}

Result<void> Client::write_buffer(std::string_view name, uint64_t offset,
                                  std::span<const std::byte> data, const RequestOptions& options) {
  // One memfd carries at most max_attachment bytes: larger writes go in pieces.
  const uint64_t piece =
      std::max<uint64_t>(1, std::min(impl_->hello().max_attachment, protocol::kMaxAttachment));
  const uint64_t threshold = impl_->shm_threshold();
  uint64_t done = 0;
  do {
    const uint64_t n = std::min<uint64_t>(piece, data.size() - done);
    if (n >= threshold && threshold > 0) {
      // Large: copy once into a pooled memfd, which the daemon uploads from.
      auto memory = impl_->pool_.acquire(n);
      if (!memory) return fail(memory.error());
      parallel_memcpy(memory->bytes().data(), data.data() + done, n);
      auto reply = impl_->call_lent(
          MessageType::write_buffer,
          [&](protocol::Writer& w) {
            w.str(name);
            w.u64(offset + done);
            w.blob_ref(0, n);
          },
          options, *memory);
      if (!reply)
        return fail(reply.error());  // the memfd is not reused: the daemon may still read it
      impl_->pool_.release(std::move(*memory));
    } else {
      protocol::WriteBufferRequest m{std::string(name), offset + done, data.subspan(done, n)};
      auto reply = impl_->call(
          MessageType::write_buffer, [&](protocol::Writer& w) { protocol::encode(w, m); }, options);
      if (!reply) return fail(reply.error());
    }
    done += n;
  } while (done < data.size());
  return {};
}

Result<void> Client::read_buffer_into(std::string_view name, uint64_t offset,
                                      std::span<std::byte> out, const RequestOptions& options) {
  const uint64_t piece =
      std::max<uint64_t>(1, std::min(impl_->hello().max_attachment, protocol::kMaxAttachment));
  const uint64_t threshold = impl_->shm_threshold();
  uint64_t done = 0;
  while (done < out.size()) {
    const uint64_t n = std::min<uint64_t>(piece, out.size() - done);
    protocol::ReadBufferRequest m{std::string(name), offset + done, n};
    auto encode = [&](protocol::Writer& w) { protocol::encode(w, m); };
    if (n >= threshold && threshold > 0) {
      // Large: lend a pooled memfd for the daemon to read the buffer into.
      auto memory = impl_->pool_.acquire(n);
      if (!memory) return fail(memory.error());
      auto reply = impl_->call_lent(MessageType::read_buffer, encode, options, *memory);
      if (!reply) return fail(reply.error());  // not reused: a late job may still write into it
      protocol::Reader r(reply->payload,
                         reply->attachment ? reply->attachment_bytes() : memory->bytes());
      (void)protocol::decode_error(r);
      auto data = r.blob(n);
      if (auto f = r.finish("read_buffer reply"); !f) return fail(f.error());
      if (data.size() != n)
        return fail(Errc::protocol_error, "read_buffer reply has the wrong size");
      parallel_memcpy(out.data() + done, data.data(), n);
      impl_->pool_.release(std::move(*memory));
    } else {
      auto reply = impl_->call(MessageType::read_buffer, encode, options);
      if (!reply) return fail(reply.error());
      auto r = body_reader(*reply);
      auto data = r.blob(n);
      if (auto f = r.finish("read_buffer reply"); !f) return fail(f.error());
      if (data.size() != n)
        return fail(Errc::protocol_error, "read_buffer reply has the wrong size");
      std::memcpy(out.data() + done, data.data(), n);
    }
    done += n;
  }
  return {};
}

Result<void> Client::write_buffer(std::string_view name, uint64_t offset,
                                  const SharedBuffer& shared, uint64_t bytes,
                                  const RequestOptions& options) {
  const uint64_t n = bytes ? bytes : shared.size();
  if (n > shared.size())
    return fail(Errc::invalid_argument, "more bytes than the SharedBuffer holds");
  auto reply = impl_->call_lent(
      MessageType::write_buffer,
      [&](protocol::Writer& w) {
        w.str(name);
        w.u64(offset);
        w.blob_ref(0, n);
      },
      options, shared.memory_->memory);
  if (!reply) return fail(reply.error());
  return {};
}

Result<void> Client::read_buffer(std::string_view name, uint64_t offset, SharedBuffer& shared,
                                 uint64_t bytes, const RequestOptions& options) {
  const uint64_t n = bytes ? bytes : shared.size();
  if (n > shared.size())
    return fail(Errc::invalid_argument, "more bytes than the SharedBuffer holds");
  if (n == 0) return {};
  protocol::ReadBufferRequest m{std::string(name), offset, n};
  auto reply = impl_->call_lent(
      MessageType::read_buffer, [&](protocol::Writer& w) { protocol::encode(w, m); }, options,
      shared.memory_->memory);
  if (!reply) return fail(reply.error());
  if (reply->attachment) {
    // A daemon that did not use the lent memfd sent its own: copy from it.
    protocol::Reader r(reply->payload, reply->attachment_bytes());
    (void)protocol::decode_error(r);
    auto data = r.blob(n);
    if (auto f = r.finish("read_buffer reply"); !f) return fail(f.error());
    if (data.size() != n) return fail(Errc::protocol_error, "read_buffer reply has the wrong size");
    std::memcpy(shared.bytes().data(), data.data(), n);
  }
  return {};
}

Result<std::vector<std::byte>> Client::read_buffer(std::string_view name, uint64_t offset,
                                                   uint64_t bytes, const RequestOptions& options) {
  if (bytes != 0) {
    std::vector<std::byte> out(bytes);
    if (auto r = read_buffer_into(name, offset, out, options); !r) return fail(r.error());
    return out;
  }
  protocol::ReadBufferRequest m{std::string(name), offset, 0};
  auto reply = impl_->call(
      MessageType::read_buffer, [&](protocol::Writer& w) { protocol::encode(w, m); }, options);
  if (!reply) return fail(reply.error());
  auto r = body_reader(*reply);
  auto data = r.blob(protocol::kMaxAttachment);
  return finish(r, "read_buffer reply", std::vector<std::byte>(data.begin(), data.end()));
}

Result<std::vector<BufferListEntry>> Client::list_buffers(bool all_users,
                                                          const RequestOptions& options) {
  protocol::ListBuffersRequest m{all_users};
  auto reply = impl_->call(
      MessageType::list_buffers, [&](protocol::Writer& w) { protocol::encode(w, m); }, options);
  if (!reply) return fail(reply.error());
  auto r = body_reader(*reply);
  return protocol::decode_buffer_list(r);
}

Result<ProgramResult> Client::exec(const Program& program, const RequestOptions& options) {
  auto reply = impl_->call(
      MessageType::exec, [&](protocol::Writer& w) { protocol::encode(w, program); }, options);
  if (!reply) return fail(reply.error());
  auto r = body_reader(*reply);
  return protocol::decode_program_result(r);
}

Result<std::string> Client::persist_pipeline_cache(const RequestOptions& options) {
  auto reply = impl_->call(MessageType::persist_cache, nullptr, options);
  if (!reply) return fail(reply.error());
  auto r = body_reader(*reply);
  std::string path = r.str(protocol::kMaxTextBytes);
  return finish(r, "persist_cache reply", std::move(path));
}

Result<void> Client::shutdown(const RequestOptions& options) {
  auto reply = impl_->call(MessageType::shutdown, nullptr, options);
  if (!reply) return fail(reply.error());
  return {};
}

}  // namespace vkn
