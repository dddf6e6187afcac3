#include "server/request_handler.h"

#include <unistd.h>

#include <cstring>

#include "protocol/messages.h"
#include "util/log.h"
#include "util/strformat.h"

namespace vkn::server {
namespace {

using protocol::MessageType;

// Rewrites every buffer name in `program` into the caller's namespace on `device`.
Result<void> map_program_names(uint32_t uid, uint32_t device, Program& program) {
  auto map = [uid, device](std::string& name) -> Result<void> {
    auto mapped = UserTable::registry_name(uid, name, device);
    if (!mapped) return fail(mapped.error());
    name = std::move(*mapped);
    return {};
  };
  for (ProgramStep& step : program.steps) {
    Result<void> r;
    if (auto* s = std::get_if<UploadStep>(&step)) r = map(s->buffer);
    if (auto* s = std::get_if<CopyStep>(&step)) {
      r = map(s->src);
      if (r) r = map(s->dst);
    }
    if (auto* s = std::get_if<FillStep>(&step)) r = map(s->buffer);
    if (auto* s = std::get_if<DownloadStep>(&step)) r = map(s->buffer);
    if (auto* s = std::get_if<DispatchStep>(&step)) {
      for (NamedBinding& b : s->bindings) {
        if (r) r = map(b.buffer);
      }
    }
    if (!r) return r;
  }
  return {};
}

}  // namespace

bool is_admin(const Peer& peer) { return peer.uid == 0 || peer.uid == ::getuid(); }

bool RequestHandler::is_queued(MessageType type) {
  // Work for a node goes through the fair queue; the daemon's own requests are answered at once.
  return protocol::targets_device_node(type);
}

Result<protocol::OutgoingFrame> RequestHandler::run(const std::shared_ptr<Request>& request) {
  if (request->is_expired()) {
    return fail(Errc::node_timeout,
                "the deadline passed while the request was queued in the daemon");
  }
  return dispatch(request);
}

void RequestHandler::start(const std::shared_ptr<Request>& request, ReplyDone done) {
  if (request->header.type != MessageType::exec || request->is_expired()) {
    return done(run(request));
  }
  exec_async(request, std::move(done));
}

Result<protocol::OutgoingFrame> RequestHandler::dispatch(const std::shared_ptr<Request>& request) {
  switch (request->header.type) {
    case MessageType::register_kernel:
      return register_kernel(request);
    case MessageType::create_buffer:
      return create_buffer(request);
    case MessageType::write_buffer:
      return write_buffer(request);
    case MessageType::read_buffer:
      return read_buffer(request);
    case MessageType::delete_buffer:
      return delete_buffer(request);
    case MessageType::list_buffers:
      return list_buffers(request);
    case MessageType::exec:
      return exec(request);
    case MessageType::persist_cache:
      return persist_cache(request);
    default:
      return fail(Errc::protocol_error, "not a queued request",
                  protocol::to_string(request->header.type));
  }
}

Result<Backend*> RequestHandler::backend_for(const Request& request) {
  const uint32_t device = request.header.device;
  if (device >= backends_.size()) {
    return fail(Errc::not_found, vkn::format("no device node {}", device),
                vkn::format("this daemon runs {} (0..{}); see `vknode status`", backends_.size(),
                            backends_.size() - 1));
  }
  return backends_[device].get();
}

Result<std::pair<std::string, BufferRecord>> RequestHandler::own_buffer(const Request& request,
                                                                        std::string_view name) {
  auto registry = UserTable::registry_name(request.peer.uid, name, request.header.device);
  if (!registry) return fail(registry.error());
  auto record = users_.find_buffer(*registry);
  if (!record) return fail(Errc::not_found, "no such buffer", name);
  return std::make_pair(std::move(*registry), *record);
}

Result<protocol::OutgoingFrame> RequestHandler::register_kernel(
    const std::shared_ptr<Request>& request) {
  auto reader = request->reader();
  auto m = protocol::decode_register_kernel_request(reader);
  if (!m) return fail(m.error());
  auto target = backend_for(*request);
  if (!target) return fail(target.error());
  std::vector<uint32_t> words(m->spirv.size() / 4);
  std::memcpy(words.data(), m->spirv.data(), words.size() * 4);
  auto id = (*target)->register_kernel(words, m->spec, m->name, request->time_left());
  if (!id) return fail(id.error());
  // Kernels are the user's on every device node, so that an exec on any node can
  // dispatch them: register on the others too. A node that fails here (e.g. while it
  // recovers) answers that exec with its error; registering again fixes it, and
  // clients do so after every reconnect.
  for (const auto& other : backends_) {
    if (other.get() == *target) continue;
    if (auto r = other->register_kernel(words, m->spec, m->name, request->time_left()); !r) {
      log(LogLevel::warn, "vknoded: kernel '{}' not registered on node {}: {}", m->name,
          other->node_name(), r.error().to_string());
    }
  }
  if (auto r = users_.add_kernel(request->peer.uid, *id, m->name); !r) return fail(r.error());
  ReplyWriter w(shm_threshold_);
  protocol::encode_kernel_id(w.body(), *id);
  return w.finish(request->header, request->version);
}

Result<protocol::OutgoingFrame> RequestHandler::create_buffer(
    const std::shared_ptr<Request>& request) {
  auto reader = request->reader();
  auto m = protocol::decode_create_buffer_request(reader);
  if (!m) return fail(m.error());
  auto target = backend_for(*request);
  if (!target) return fail(target.error());
  Backend& backend = **target;
  auto registry = UserTable::registry_name(request->peer.uid, m->name, request->header.device);
  if (!registry) return fail(registry.error());
  if (m->spec.durable && m->session) {
    return fail(Errc::invalid_argument, "a buffer cannot be both durable and session-scoped",
                m->name);
  }
  if (m->spec.bytes == 0)
    return fail(Errc::invalid_argument, "a buffer needs at least one byte", m->name);
  if (auto r = users_.reserve_buffer(request->peer.uid, *registry, m->spec.bytes, m->spec.durable,
                                     m->session ? request->conn : 0);
      !r) {
    return fail(r.error());
  }
  if (auto r = backend.create_buffer(*registry, m->spec, request->time_left()); !r) {
    // A create that timed out may still happen on the node; keep the table honest
    // by checking rather than guessing.
    if (r.error().code == Errc::node_timeout) {
      (void)backend.delete_buffer(*registry, std::nullopt);
    }
    users_.cancel_buffer(*registry);
    return fail(r.error());
  }
  users_.commit_buffer(*registry);
  return ok_reply(request->header, request->version);
}

Result<protocol::OutgoingFrame> RequestHandler::write_buffer(
    const std::shared_ptr<Request>& request) {
  auto reader = request->reader();
  auto m = protocol::decode_write_buffer_request(reader);
  if (!m) return fail(m.error());
  auto target = backend_for(*request);
  if (!target) return fail(target.error());
  auto owned = own_buffer(*request, m->name);
  if (!owned) return fail(owned.error());
  if (m->offset > owned->second.bytes || m->data.size() > owned->second.bytes - m->offset) {
    return fail(Errc::invalid_argument,
                vkn::format("write of {} bytes at offset {} outside a {}-byte buffer",
                            m->data.size(), m->offset, owned->second.bytes),
                m->name);
  }
  // The request owns the bytes (payload or memfd); the node job holds it.
  if (auto r =
          (*target)->write_buffer(owned->first, m->offset, m->data, request, request->time_left());
      !r) {
    return fail(r.error());
  }
  return ok_reply(request->header, request->version);
}

Result<protocol::OutgoingFrame> RequestHandler::read_buffer(
    const std::shared_ptr<Request>& request) {
  auto reader = request->reader();
  auto m = protocol::decode_read_buffer_request(reader);
  if (!m) return fail(m.error());
  auto target = backend_for(*request);
  if (!target) return fail(target.error());
  Backend& backend = **target;
  auto owned = own_buffer(*request, m->name);
  if (!owned) return fail(owned.error());
  const uint64_t size = owned->second.bytes;
  if (m->offset > size) {
    return fail(Errc::invalid_argument,
                vkn::format("offset {} beyond a {}-byte buffer", m->offset, size), m->name);
  }
  const uint64_t bytes = m->bytes ? m->bytes : size - m->offset;
  if (bytes > size - m->offset) {
    return fail(Errc::invalid_argument,
                vkn::format("read of {} bytes at offset {} outside a {}-byte buffer", bytes,
                            m->offset, size),
                m->name);
  }
  if (bytes > protocol::kMaxAttachment) {
    return fail(Errc::invalid_argument,
                vkn::format("one read moves at most {} bytes (clients split larger reads)",
                            protocol::kMaxAttachment));
  }
  ReplyWriter w(shm_threshold_);
  if (request->attachment && request->attachment->size() >= bytes && bytes > 0) {
    // The client lent its own memfd: read straight into it; the reply carries no
    // descriptor and its blob refers to the client's memfd.
    std::span<std::byte> into = request->attachment->bytes().first(bytes);
    if (auto r = backend.read_buffer(owned->first, m->offset, into, request, request->time_left());
        !r) {
      return fail(r.error());
    }
    w.body().blob_ref(0, bytes);
    return w.finish(request->header, request->version);
  }
  if (bytes >= shm_threshold_) {
    // Read straight into the memfd the client will map.
    auto memory = protocol::SharedMemory::create(bytes, "vknode-read");
    if (!memory) return fail(memory.error());
    auto shared = std::make_shared<protocol::SharedMemory>(std::move(*memory));
    shared->prefault(shared->bytes(), true);
    if (auto r = backend.read_buffer(owned->first, m->offset, shared->bytes(), shared,
                                     request->time_left());
        !r) {
      return fail(r.error());
    }
    w.body().blob_ref(0, bytes);
    return w.finish_with(request->header, request->version, *shared);
  }
  auto data = std::make_shared<std::vector<std::byte>>(bytes);
  if (auto r = backend.read_buffer(owned->first, m->offset, *data, data, request->time_left());
      !r) {
    return fail(r.error());
  }
  w.body().blob(*data);
  return w.finish(request->header, request->version);
}

Result<protocol::OutgoingFrame> RequestHandler::delete_buffer(
    const std::shared_ptr<Request>& request) {
  auto reader = request->reader();
  auto m = protocol::decode_name_request(reader);
  if (!m) return fail(m.error());
  auto target = backend_for(*request);
  if (!target) return fail(target.error());
  auto owned = own_buffer(*request, m->name);
  if (!owned) return fail(owned.error());
  auto r = (*target)->delete_buffer(owned->first, request->time_left());
  if (!r && r.error().code != Errc::not_found) return fail(r.error());
  users_.remove_buffer(owned->first);
  return ok_reply(request->header, request->version);
}

Result<protocol::OutgoingFrame> RequestHandler::list_buffers(
    const std::shared_ptr<Request>& request) {
  auto reader = request->reader();
  auto m = protocol::decode_list_buffers_request(reader);
  if (!m) return fail(m.error());
  if (m->all_users && !is_admin(request->peer)) {
    return fail(Errc::permission_denied, "listing every user's buffers is an admin operation");
  }
  auto target = backend_for(*request);
  if (!target) return fail(target.error());
  auto infos = (*target)->list_buffers(request->time_left());
  if (!infos) return fail(infos.error());
  std::vector<BufferListEntry> out;
  for (const BufferEntryInfo& info : *infos) {
    auto owner = UserTable::parse_registry_name(info.name);
    if (!owner || owner->device != request->header.device) continue;  // not a daemon buffer
    if (!m->all_users && owner->uid != request->peer.uid) continue;
    auto record = users_.find_buffer(info.name);
    if (!record) continue;  // being created or deleted
    BufferListEntry e;
    e.info = info;
    if (!m->all_users) e.info.name = owner->name;
    e.owner_uid = owner->uid;
    e.session = record->session != 0;
    out.push_back(std::move(e));
  }
  ReplyWriter w(shm_threshold_);
  protocol::encode(w.body(), out);
  return w.finish(request->header, request->version);
}

Result<Program> RequestHandler::exec_program(const std::shared_ptr<Request>& request,
                                             Backend** target) {
  auto reader = request->reader();
  auto program = protocol::decode_program(reader);
  if (!program) return fail(program.error());
  auto backend = backend_for(*request);
  if (!backend) return fail(backend.error());
  if (auto r = map_program_names(request->peer.uid, request->header.device, *program); !r)
    return fail(r.error());
  for (const ProgramStep& step : program->steps) {
    if (auto* d = std::get_if<DispatchStep>(&step);
        d && !users_.may_use_kernel(request->peer.uid, d->kernel)) {
      return fail(Errc::permission_denied, "kernel not registered by this user", to_hex(d->kernel));
    }
  }
  *target = *backend;
  return program;
}

Result<protocol::OutgoingFrame> RequestHandler::exec_reply(const Request& request,
                                                           Result<ProgramResult> result) const {
  if (!result) return fail(result.error());
  ReplyWriter w(shm_threshold_);
  protocol::encode(w.body(), *result);
  return w.finish(request.header, request.version);
}

Result<protocol::OutgoingFrame> RequestHandler::exec(const std::shared_ptr<Request>& request) {
  Backend* target = nullptr;
  auto program = exec_program(request, &target);
  if (!program) return fail(program.error());
  return exec_reply(*request, target->exec(*program, request->time_left()));
}

void RequestHandler::exec_async(const std::shared_ptr<Request>& request, ReplyDone done) {
  Backend* target = nullptr;
  auto program = exec_program(request, &target);
  if (!program) return done(fail(program.error()));
  // The reply is built where the result lands (the node's thread): the request stays
  // alive in the closure for as long as the node may answer.
  target->exec_async(std::move(*program), request->time_left(),
                     [this, request, done = std::move(done)](Result<ProgramResult> result) {
                       done(exec_reply(*request, std::move(result)));
                     });
}

Result<protocol::OutgoingFrame> RequestHandler::persist_cache(
    const std::shared_ptr<Request>& request) {
  if (!is_admin(request->peer))
    return fail(Errc::permission_denied, "persist_cache is an admin operation");
  auto target = backend_for(*request);
  if (!target) return fail(target.error());
  auto path = (*target)->persist_pipeline_cache();
  if (!path) return fail(path.error());
  ReplyWriter w(shm_threshold_);
  w.body().str(*path);
  return w.finish(request->header, request->version);
}

void RequestHandler::free_session_buffers(uint64_t conn) {
  for (const std::string& name : users_.session_buffers(conn)) {
    auto parsed = UserTable::parse_registry_name(name);
    const uint32_t device = parsed ? parsed->device : 0;
    if (device >= backends_.size()) {
      users_.remove_buffer(name);
      continue;
    }
    if (auto r = backends_[device]->delete_buffer(name, std::nullopt);
        !r && r.error().code != Errc::not_found) {
      log(LogLevel::warn, "vknoded: freeing session buffer {}: {}", name, r.error().to_string());
    }
    users_.remove_buffer(name);
  }
  users_.forget_connection(conn);
}

}  // namespace vkn::server
